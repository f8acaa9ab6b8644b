"""Colour models for clothes: bright saturated (dataset I) or realistic palettes (later sets)."""

from __future__ import annotations

import colorsys

import numpy as np

RGB = tuple[float, float, float]

# Common garment colours (sRGB); realistic clothes are mostly neutrals and muted tones.
REALISTIC_PALETTE: tuple[RGB, ...] = (
    (0.08, 0.08, 0.09), (0.92, 0.92, 0.90), (0.50, 0.50, 0.52), (0.28, 0.28, 0.30),
    (0.12, 0.16, 0.32), (0.27, 0.38, 0.56), (0.55, 0.65, 0.78), (0.80, 0.72, 0.58),
    (0.45, 0.33, 0.22), (0.30, 0.34, 0.20), (0.45, 0.10, 0.14), (0.70, 0.20, 0.18),
    (0.85, 0.78, 0.30), (0.20, 0.42, 0.35), (0.62, 0.45, 0.60), (0.95, 0.60, 0.55),
)
REALISTIC_PALETTE_WEIGHTS = np.array([6, 4, 3, 3, 4, 4, 2, 3, 2, 2, 1.5, 1.5, 1, 1, 1, 1])


def bright_colour(rng: np.random.Generator) -> RGB:
    hue = rng.random()
    saturation = rng.uniform(0.75, 1.0)
    value = rng.uniform(0.75, 1.0)
    return tuple(float(c) for c in colorsys.hsv_to_rgb(hue, saturation, value))


def realistic_colour(rng: np.random.Generator) -> RGB:
    if rng.random() < 0.8:
        weights = REALISTIC_PALETTE_WEIGHTS / REALISTIC_PALETTE_WEIGHTS.sum()
        base = np.array(REALISTIC_PALETTE[rng.choice(len(REALISTIC_PALETTE), p=weights)])
        jitter = rng.normal(0, 0.03, 3)  # no two garments dyed exactly alike
        return tuple(float(c) for c in np.clip(base + jitter, 0, 1))
    hsv = (rng.random(), rng.uniform(0.2, 0.65), rng.uniform(0.2, 0.85))
    return tuple(float(c) for c in colorsys.hsv_to_rgb(*hsv))


def sample_colour(rng: np.random.Generator, model: str) -> RGB:
    return bright_colour(rng) if model == "bright" else realistic_colour(rng)


def room_colour(rng: np.random.Generator) -> RGB:
    """Walls and floors: muted, mid-bright surfaces."""
    hsv = (rng.random(), rng.uniform(0.0, 0.5), rng.uniform(0.25, 0.9))
    return tuple(float(c) for c in colorsys.hsv_to_rgb(*hsv))


def srgb_to_linear(colour: RGB) -> RGB:
    c = np.asarray(colour, dtype=float)
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return tuple(float(v) for v in linear)
