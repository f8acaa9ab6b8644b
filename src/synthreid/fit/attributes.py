"""The generator attributes a fit searches: where each lives in a generation config, how the
preset's value is read, and how a fitted value is written back (as a range around it where the
config holds a range, so a fitted preset still varies its people's views a little).

`renders` says whether a new value needs new renders: camera effects are applied to the clean
renders afterwards (exactly as a worker applies them), so searching them costs no rendering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from synthreid.scene.config import GenerationConfig

DEFAULT_SUN_STRENGTH = 2.75  # the middle of the presets' 1.5-4 (scene/sampling.py)
DEFAULT_AMBIENT = 0.65  # the middle of the presets' 0.4-0.9


@dataclass(frozen=True)
class Attribute:
    name: str
    meaning: str
    renders: bool
    read: Callable[[GenerationConfig], float]
    overrides: Callable[[float, GenerationConfig], dict[str, Any]]
    default_candidates: tuple[float, ...]


def _midpoint(section: str, field: str, empty: float) -> Callable[[GenerationConfig], float]:
    """A reader of `section.field` (a number, or an interval's middle); `empty` when the
    section or the field is unset."""
    def read(config: GenerationConfig) -> float:
        part = getattr(config, section)
        value = getattr(part, field) if part is not None else None
        if value is None:
            return empty
        return float(sum(value) / 2) if isinstance(value, tuple) else float(value)
    return read


def _effect(field: str, empty: float) -> Callable[[GenerationConfig], float]:
    return _midpoint("camera_effects", field, empty)


def _light(field: str, empty: float) -> Callable[[GenerationConfig], float]:
    return _midpoint("lights", field, empty)


def _around(value: float, spread: float, low: float = 0.0,
            high: float = float("inf")) -> list[float]:
    """[value * (1 - spread), value * (1 + spread)], clipped to [low, high]."""
    return [round(max(low, value * (1 - spread)), 4), round(min(high, value * (1 + spread)), 4)]


def _resolution_overrides(scale: float, config: GenerationConfig) -> dict[str, Any]:
    if scale >= 1:
        return {"camera_effects": {"height_px": None}}
    height = config.crop.height_px * scale
    return {"camera_effects": {"height_px": [max(16, round(height * 0.9)),
                                             max(16, round(height * 1.1))]}}


def _resolution_read(config: GenerationConfig) -> float:
    effects = config.camera_effects
    if effects is None or effects.height_px is None:
        return 1.0
    return round(sum(effects.height_px) / 2 / config.crop.height_px, 4)


def _jpeg_overrides(quality: float, config: GenerationConfig) -> dict[str, Any]:
    if quality >= 100:
        return {"camera_effects": {"jpeg_quality": None}}
    return {"camera_effects": {"jpeg_quality": [max(1, round(quality) - 5),
                                                min(100, round(quality) + 5)]}}


def _polar_overrides(centre: float, config: GenerationConfig) -> dict[str, Any]:
    return {"camera": {"theta_deg": [max(0.0, centre - 5), min(90.0, centre + 5)]}}


ATTRIBUTES: dict[str, Attribute] = {a.name: a for a in [
    Attribute("resolution_scale",
              "the camera's resolution: crops resampled to this fraction of the rendered "
              "height (camera_effects.height_px = scale x crop.height_px, +-10%)",
              False, _resolution_read, _resolution_overrides, (0.4, 0.5, 0.625, 0.8, 1.0)),
    Attribute("defocus_px", "Gaussian defocus sigma at the rendered resolution "
              "(camera_effects.defocus_sigma_px, +-20%)", False, _effect("defocus_sigma_px", 0),
              lambda v, c: {"camera_effects": {"defocus_sigma_px": _around(v, 0.2)}},
              (0.0, 0.75, 1.5, 2.5, 4.0)),
    Attribute("jpeg_quality", "JPEG quality of the camera stream (100: none; "
              "camera_effects.jpeg_quality, +-5)", False, _effect("jpeg_quality", 100),
              _jpeg_overrides, (100, 85, 65, 45, 25)),
    Attribute("noise_sigma", "sensor noise in 8-bit levels (camera_effects.noise_sigma, +-30%)",
              False, _effect("noise_sigma", 0),
              lambda v, c: {"camera_effects": {"noise_sigma": _around(v, 0.3)}},
              (0.0, 2.0, 4.0, 8.0)),
    Attribute("motion_blur_px", "motion blur length (camera_effects.motion_blur_px, +-50%)",
              False, _effect("motion_blur_px", 0),
              lambda v, c: {"camera_effects": {"motion_blur_px": _around(v, 0.5)}},
              (0.0, 1.5, 3.0, 5.0)),
    Attribute("exposure", "the spread of exposure gains (camera_effects.exposure)", False,
              _effect("exposure", 0), lambda v, c: {"camera_effects": {"exposure": v}},
              (0.0, 0.15, 0.3, 0.5)),
    Attribute("white_balance", "the spread of white-balance gains "
              "(camera_effects.white_balance)", False, _effect("white_balance", 0),
              lambda v, c: {"camera_effects": {"white_balance": v}}, (0.0, 0.05, 0.1, 0.2)),
    Attribute("polar_deg", "the camera's polar angle from the zenith, 90 = eye level "
              "(camera.theta_deg = centre +-5)", True,
              lambda c: float(sum(c.camera.theta_deg) / 2), _polar_overrides,
              (50.0, 60.0, 70.0, 80.0, 87.0)),
    Attribute("margin_px", "the margin around the person in the crop (crop.margin_px)", True,
              lambda c: float(c.crop.margin_px),
              lambda v, c: {"crop": {"margin_px": int(round(v))}}, (0.0, 4.0, 10.0, 20.0)),
    Attribute("sun_temperature_k", "the sun's colour temperature (lights.sun_temperature_k, "
              "+-5%)", True, _light("sun_temperature_k", 6500.0),
              lambda v, c: {"lights": {"sun_temperature_k": _around(v, 0.05, 1000)}},
              (3000.0, 4000.0, 5000.0, 6500.0, 9000.0)),
    Attribute("sun_strength", "the sun's strength (lights.sun_strength, +-25%)", True,
              _light("sun_strength", DEFAULT_SUN_STRENGTH),
              lambda v, c: {"lights": {"sun_strength": _around(v, 0.25)}},
              (1.0, 2.0, 2.75, 4.0, 6.0)),
    Attribute("ambient", "the world light's strength (lights.ambient, +-25%)", True,
              _light("ambient", DEFAULT_AMBIENT),
              lambda v, c: {"lights": {"ambient": _around(v, 0.25)}},
              (0.2, 0.4, 0.65, 1.0, 1.5)),
    Attribute("focal_mm", "the lens' focal length (camera.focal_mm, +-10%)", True,
              lambda c: float(sum(c.camera.focal_mm) / 2),
              lambda v, c: {"camera": {"focal_mm": _around(v, 0.1, 1)}},
              (24.0, 35.0, 50.0, 70.0)),
    Attribute("distance_m", "the camera's distance from the person (camera.radius_m)", True,
              lambda c: float(c.camera.radius_m),
              lambda v, c: {"camera": {"radius_m": v}}, (3.0, 4.0, 5.0, 6.5)),
]}
