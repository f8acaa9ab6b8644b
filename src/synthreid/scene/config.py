"""The generation schema (what `preview`, `plan` and the experiment's generate stages sample
from), typed and loaded from YAML; presets I-IV ship as YAML in `synthreid/presets/`.

A user YAML may start with `extends: <preset or path>` and override any field; the merge is a
deep merge of mappings (lists are replaced whole).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, Field, field_validator, model_validator

from synthreid.errors import ConfigError
from synthreid.limits import MAX_CHARACTERS, MAX_IMAGES_PER_CHARACTER
from synthreid.typed import Interval, Strict, deep_merge, read_yaml, validate_model

PRESET_NAMES = ("I", "II", "III", "IV")  # the thesis' datasets (Table 3.1)
ALL_PRESETS = PRESET_NAMES + ("IV-10k",)  # and larger ones built on them
TEXTURE_FAMILIES = ("stripes", "checks", "noise", "dots", "plaid")
HAIR_STYLES = ("none", "buzz", "short", "bob", "long", "bun", "ponytail")
ACCESSORIES = ("backpack", "shoulder_bag", "hat", "cap", "glasses")
BUILTIN_CUBEMAPS = ("brick", "tiles", "street", "office")
CUBEMAP_FACES = ("px", "nx", "py", "ny", "pz", "nz")  # +x, -x, +y, -y, +z (up), -z (down)
# Background photos (cubemap faces, panoramas, backplates) Blender loads; dataset readers accept
# more (datasets/records.py IMAGE_SUFFIXES, e.g. VIPeR's .bmp).
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")


def _ordered(value: Interval) -> Interval:
    low, high = value
    if low > high:
        raise ValueError(f"lower bound {low} is above upper bound {high}")
    return value


def _known(values: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r}; expected one of {', '.join(allowed)}")
    return values


def _rgb(value: tuple[float, float, float]) -> tuple[float, float, float]:
    if not all(0 <= c <= 1 for c in value):
        raise ValueError(f"colour {tuple(value)}: sRGB components must lie in [0, 1]")
    return value


def _positive_interval(value: Interval) -> Interval:
    if not value[0] > 0:
        raise ValueError(f"values must be > 0, got {value[0]}")
    return _ordered(value)


RGB = Annotated[tuple[float, float, float], AfterValidator(_rgb),
                Field(description="sRGB in [0, 1]")]


class BodyConfig(Strict):
    female_probability: float = Field(0.5, ge=0, le=1)
    age_years: Interval = (18.0, 70.0)
    height_m_male: Interval = (1.62, 1.92)
    height_m_female: Interval = (1.52, 1.80)
    muscle: Interval = (0.2, 0.8)
    weight: Interval = (0.2, 0.8)
    proportions: Interval = (0.3, 0.7)
    skin_tones: list[RGB] = Field(
        min_length=1, default_factory=lambda: [
            (0.90, 0.72, 0.62), (0.80, 0.60, 0.48), (0.68, 0.48, 0.36),
            (0.52, 0.35, 0.25), (0.36, 0.23, 0.16), (0.24, 0.15, 0.10),
        ]
    )

    _check = field_validator("muscle", "weight", "proportions")(_ordered)
    _positive = field_validator("age_years", "height_m_male", "height_m_female")(
        _positive_interval)

    @field_validator("muscle", "weight", "proportions")
    @classmethod
    def _unit(cls, value: Interval) -> Interval:
        if not (0 <= value[0] and value[1] <= 1):
            raise ValueError("anny phenotypes live in [0, 1]")
        return value


class PhotoTextures(Strict):
    """Garment textures cut from real photos (`synthreid textures`): with `probability`, a
    shirt takes an upper patch and pants or a skirt a lower patch of the library in `folder`."""
    folder: str
    probability: float = Field(0.5, ge=0, le=1)
    scale: Interval = (2.0, 3.5)  # patch repeats per metre, up the garment


class ClothesConfig(Strict):
    colour_model: Literal["bright", "realistic"] = "realistic"
    sleeve_length: Interval = (0.25, 0.95)  # fraction of the arm, shoulder to wrist
    leg_length: Interval = (0.35, 1.0)  # fraction of the leg, hip to ankle
    skirt_probability: float = Field(0.0, ge=0, le=1)
    shoes: bool = True
    texture_probability: float = Field(0.0, ge=0, le=1)
    texture_families: list[str] = Field(min_length=1,
                                        default_factory=lambda: list(TEXTURE_FAMILIES))

    _check = field_validator("sleeve_length", "leg_length")(_ordered)

    _families = field_validator("texture_families")(
        lambda values: _known(values, TEXTURE_FAMILIES, "texture family"))
    photo_textures: PhotoTextures | None = None  # None: procedural patterns only
    omitted_when_none = ("photo_textures",)


class HairConfig(Strict):
    styles: list[str] = Field(min_length=1, default_factory=lambda: ["none"])
    colours: list[RGB] = Field(
        min_length=1, default_factory=lambda: [
            (0.02, 0.015, 0.01), (0.09, 0.05, 0.025), (0.25, 0.14, 0.06),
            (0.55, 0.40, 0.20), (0.45, 0.45, 0.45), (0.30, 0.08, 0.03),
        ]
    )

    _styles = field_validator("styles")(lambda values: _known(values, HAIR_STYLES, "hair style"))


class AccessoryConfig(Strict):
    probabilities: dict[str, float] = Field(default_factory=dict)

    @field_validator("probabilities")
    @classmethod
    def _known(cls, probabilities: dict[str, float]) -> dict[str, float]:
        for name, p in probabilities.items():
            if name not in ACCESSORIES:
                raise ValueError(f"unknown accessory {name!r}; expected one of "
                                 f"{', '.join(ACCESSORIES)}")
            if not 0 <= p <= 1:
                raise ValueError(f"probability of {name} must be in [0, 1], got {p}")
        return probabilities


class RoomConfig(Strict):
    kind: Literal["cuboid", "cubemap", "equirect", "backplate"] = "cuboid"
    size_m: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)],
                  Annotated[float, Field(gt=0)]] = (16.0, 16.0, 8.0)
    wall_colour: RGB | None = None  # None: a random colour per character
    floor_colour: RGB | None = None
    per_face_colours: bool = True  # random mode: each wall its own colour
    # cubemap: folders of six faces, or "builtin:NAME"; equirect (panoramas) and backplate
    # (plain photos behind the person): image files, or folders of them (street photos, say:
    # each character draws one file)
    cubemaps: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sources(self) -> RoomConfig:
        if self.kind != "cuboid" and not self.cubemaps:
            raise ValueError(f"room.kind {self.kind!r} needs at least one entry in cubemaps")
        for source in self.cubemaps:
            if source.startswith("builtin:") and \
                    source.removeprefix("builtin:") not in BUILTIN_CUBEMAPS:
                raise ValueError(f"cubemaps: unknown {source!r}; built-in ones are "
                                 f"{', '.join('builtin:' + n for n in BUILTIN_CUBEMAPS)}")
        return self


def check_assets(config: GenerationConfig, source: object = "config") -> None:
    """The files a config names (cubemap folders, equirect images, BVH folders) exist and hold
    what they should. Checked where a config is loaded from the user, not where a stored one
    is read back: a farm worker renders from the job database, not from these paths."""
    try:
        for background in config.room.cubemaps:
            _check_background_source(config.room.kind, background)
        _check_motions(config.gait.bvh_folder)
        _check_photo_textures(config.clothes.photo_textures)
    except ValueError as error:
        raise ConfigError(f"{source}: {error}") from None


def _check_photo_textures(photos: PhotoTextures | None) -> None:
    if photos is None:
        return
    folder = Path(photos.folder).expanduser()
    for part in ("upper", "lower"):
        if not any((folder / part).glob("*.png")):
            raise ValueError(f"clothes.photo_textures.folder: {folder / part} holds no .png "
                             f"patches (make a library with 'synthreid textures')")


def _check_motions(folder: str | None) -> None:
    if folder is not None:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ValueError(f"gait.bvh_folder: folder {path} does not exist")
        if not any(path.glob("*.bvh")):
            raise ValueError(f"gait.bvh_folder: folder {path} holds no .bvh files")


PHOTO_ROOMS = ("equirect", "backplate")  # rooms whose background is a photo file


def equirect_images(folder: Path) -> list[Path]:
    """The images of a background folder, in a fixed order (so a seed picks the same one)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)


def _check_background_source(kind: str, source: str) -> None:
    if source.startswith("builtin:"):
        return
    path = Path(source).expanduser()
    if kind in PHOTO_ROOMS:
        if path.is_dir():  # a folder of photos: each character draws one
            if not equirect_images(path):
                raise ValueError(f"room.cubemaps: folder {path} holds no .png/.jpg images")
            return
        if not path.is_file() or path.suffix.lower() not in PHOTO_SUFFIXES:
            raise ValueError(f"room.cubemaps: {path} is not a .png/.jpg photo or a folder "
                             f"of them")
        return
    if not path.is_dir():
        raise ValueError(f"room.cubemaps: folder {path} does not exist")
    names = {p.stem for p in path.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES}
    missing = [face for face in CUBEMAP_FACES if face not in names]
    if missing:
        raise ValueError(f"room.cubemaps: folder {path} lacks face images {', '.join(missing)} "
                         f"(expected {', '.join(CUBEMAP_FACES)} as .png/.jpg)")


class CameraConfig(Strict):
    radius_m: float = 5.0
    theta_deg: Interval = (60.0, 90.0)  # polar angle from the zenith; 90 = eye level
    focal_mm: Interval = (45.0, 60.0)
    sensor_mm: float = Field(36.0, gt=0)

    @field_validator("radius_m")
    @classmethod
    def _positive(cls, radius: float) -> float:
        if not radius > 0:
            raise ValueError(f"must be > 0, got {radius}")
        return radius

    @field_validator("theta_deg")
    @classmethod
    def _segment(cls, value: Interval) -> Interval:
        theta1, theta2 = value
        if theta1 > theta2:
            raise ValueError(f"theta1 ({theta1}) must not exceed theta2 ({theta2})")
        if not (0 <= theta1 and theta2 <= 90):
            raise ValueError("polar angles must lie in [0, 90] degrees (the upper hemisphere)")
        return value

    _check = field_validator("focal_mm")(_positive_interval)


class CropConfig(Strict):
    mode: Literal["tight", "bbox3d"] = "tight"
    margin_px: int = Field(4, ge=0, le=64)
    height_px: int = Field(256, ge=32, le=2048)


class RenderConfig(Strict):
    engine: Literal["cycles", "workbench"] = "cycles"
    samples: int = Field(16, ge=1, le=4096)
    denoise: bool = False
    device: Literal["cpu", "gpu", "auto"] = "auto"
    threads: int = Field(0, ge=0)  # 0: all cores


class GaitConfig(Strict):
    stride: Interval = (0.7, 1.0)  # scales hip swing
    arm_swing: Interval = (0.4, 1.0)
    bvh_folder: str | None = None  # motion capture (CMU BVH); None: the parametric walk

    _check = field_validator("stride", "arm_swing")(_positive_interval)


def _non_negative_interval(value: Interval) -> Interval:
    if value[0] < 0:
        raise ValueError(f"values must be >= 0, got {value[0]}")
    return _ordered(value)


def _up_to_eight(value: tuple[int, int], info) -> tuple[int, int]:
    """A count range (lamps, bystanders): each one more light or body in every image's scene."""
    if not 0 <= value[0] <= value[1] <= 8:
        raise ValueError(f"expected 0 <= low <= high <= 8 {info.field_name}, got {tuple(value)}")
    return value


class CameraEffects(Strict):
    """What a real re-id camera does to a crop, drawn per image (and recorded in its spec):
    exposure and white-balance shifts, defocus and motion blur, resampling to a low
    resolution, sensor noise and JPEG compression, in that order. Zero intervals: no effect."""
    exposure: float = Field(0.0, ge=0, lt=1)  # a gain in [1 - x, 1 + x]
    white_balance: float = Field(0.0, ge=0, lt=1)  # per-channel gains in [1 - x, 1 + x]
    defocus_sigma_px: Interval = (0.0, 0.0)  # Gaussian blur, at the rendered resolution
    motion_blur_px: Interval = (0.0, 0.0)  # length of a straight blur in a random direction
    height_px: Interval | None = None  # resample to a height in this interval (e.g. 128-160)
    noise_sigma: Interval = (0.0, 0.0)  # Gaussian sensor noise, in 8-bit levels
    jpeg_quality: Interval | None = None  # e.g. (40, 95)

    _check = field_validator("defocus_sigma_px", "motion_blur_px", "noise_sigma")(
        _non_negative_interval)

    @field_validator("height_px", "jpeg_quality")
    @classmethod
    def _optional(cls, value: Interval | None, info) -> Interval | None:
        if value is None:
            return value
        low, high = {"height_px": (16, 4096), "jpeg_quality": (1, 100)}[info.field_name]
        if not (low <= value[0] <= value[1] <= high):
            raise ValueError(f"expected {low} <= low <= high <= {high}, got {tuple(value)}")
        return value


class LightsConfig(Strict):
    """Light beyond the fixed white sun: a sun colour from a colour temperature (the plain sky
    of cuboid rooms takes it too; photo backgrounds keep their own), and
    point lamps around the person (street lights, shop windows), each with its own temperature
    or, with `lamp_saturation` > 0, a coloured tint. Drawn per image and recorded."""
    sun_temperature_k: Interval = (6500.0, 6500.0)  # 6500 K: white
    lamps: tuple[int, int] = (0, 0)  # how many, drawn per image
    lamp_power_w: Interval = (100.0, 600.0)
    lamp_temperature_k: Interval = (2700.0, 6500.0)
    lamp_saturation: float = Field(0.0, ge=0, le=1)  # 0: black-body colours only
    lamp_distance_m: Interval = (1.5, 4.0)  # from the person, horizontally
    lamp_height_m: Interval = (1.0, 3.5)
    # Daylight: Blender's multiple-scattering sky, with the sun where the sun light is, instead
    # of the plain sky (photo backgrounds keep their own); `haze` is its aerosol density.
    sky: bool = False
    haze: Interval = (0.5, 3.0)
    sun_strength: Interval | None = None  # None: the presets' 1.5-4
    ambient: Interval | None = None  # world light strength; None: the presets' 0.4-0.9

    _positive = field_validator("sun_temperature_k", "lamp_power_w", "lamp_temperature_k",
                                "lamp_distance_m", "lamp_height_m")(_positive_interval)
    _non_negative = field_validator("haze", "sun_strength", "ambient")(
        lambda value: value if value is None else _non_negative_interval(value))

    omitted_when_none = ("sun_strength", "ambient")

    def _omitted(self) -> set[str]:
        return super()._omitted() | ({"sky", "haze"} if not self.sky else set())

    _count = field_validator("lamps")(_up_to_eight)


class OccludersConfig(Strict):
    """Props between the camera and the person (street furniture a real camera sees through):
    per image, with `probability`, one prop of a random kind stands on the floor on the line
    from the person toward the camera, partly hiding the person. The mask shows only what is
    seen of the person."""
    probability: float = Field(0.5, ge=0, le=1)
    kinds: list[Literal["pole", "box", "bicycle"]] = Field(default_factory=lambda: ["pole", "box"])
    toward_camera: Interval = (0.15, 0.5)  # fraction of the camera distance, from the person
    sideways_m: Interval = (-0.35, 0.35)  # off the line of sight
    pole_radius_m: Interval = (0.05, 0.15)
    box_size_m: Interval = (0.5, 1.1)  # width, depth and height each drawn from this

    _check = field_validator("pole_radius_m", "box_size_m")(_positive_interval)

    @field_validator("toward_camera")
    @classmethod
    def _between(cls, value: Interval) -> Interval:
        if not 0 < value[0] <= value[1] < 1:
            raise ValueError(f"expected 0 < low <= high < 1, got {tuple(value)}")
        return value

    @field_validator("kinds")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one kind (pole, box, bicycle)")
        return value


class CrowdConfig(Strict):
    """Other people in the room: per character, a few bystanders drawn from the same preset
    (their own body, clothes and walk), built once and placed anew in each image, in front of
    or behind the person. They are never part of the person's mask; where one stands in front,
    the mask shows only what is still seen of the person."""
    people: tuple[int, int] = (1, 3)  # bystanders per character
    probability: float = Field(0.8, ge=0, le=1)  # each bystander's chance to be in an image
    distance_m: Interval = (0.6, 2.5)  # from the person, on the floor
    in_view: float = Field(0.5, ge=0, le=1)  # the chance a bystander stands near the line of sight

    _check = field_validator("distance_m")(_positive_interval)

    _count = field_validator("people")(_up_to_eight)


class GenerationConfig(Strict):
    name: str
    description: str = ""
    characters: int = Field(1500, ge=1, le=MAX_CHARACTERS)
    images_per_character: int = Field(10, ge=1, le=MAX_IMAGES_PER_CHARACTER)
    body: BodyConfig = BodyConfig()
    clothes: ClothesConfig = ClothesConfig()
    hair: HairConfig = HairConfig()
    accessories: AccessoryConfig = AccessoryConfig()
    room: RoomConfig = RoomConfig()
    camera: CameraConfig = CameraConfig()
    crop: CropConfig = CropConfig()
    render: RenderConfig = RenderConfig()
    gait: GaitConfig = GaitConfig()
    camera_effects: CameraEffects | None = None  # None: the clean render
    lights: LightsConfig | None = None  # None: the white sun and sky alone
    occluders: OccludersConfig | None = None  # None: nothing between camera and person
    crowd: CrowdConfig | None = None  # None: the person alone
    omitted_when_none = ("camera_effects", "lights", "occluders", "crowd")

    @model_validator(mode="after")
    def _camera_inside_room(self) -> GenerationConfig:
        if self.room.kind == "cuboid":
            half = min(self.room.size_m[0], self.room.size_m[1]) / 2
            if self.camera.radius_m >= half:
                raise ValueError(f"camera.radius_m ({self.camera.radius_m}) must be smaller than "
                                 f"half the room ({half}) so the camera stays inside it")
        return self


def _raw_config(name_or_path: str | Path, seen: tuple[str, ...] = ()) -> tuple[dict, Path | str]:
    key = str(name_or_path)
    if key in seen:
        raise ConfigError(f"{key}: 'extends' loops back on itself")
    if key in ALL_PRESETS:
        text = resources.files("synthreid.presets").joinpath(f"{key}.yaml").read_text()
        data, source = yaml.safe_load(text), f"preset {key}"
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise ConfigError(f"{path}: no such preset or file (presets: {', '.join(ALL_PRESETS)})")
        data, source = read_yaml(path), path
    parent = data.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str) or not parent.strip():
            raise ConfigError(f"{source}: extends: expected a preset name or a file path, got "
                              f"{parent!r}")
        if isinstance(source, Path) and parent not in ALL_PRESETS:
            parent = source.parent / parent
        try:
            base, _ = _raw_config(parent, seen + (key,))
        except ConfigError as error:
            raise ConfigError(f"{source}: extends: {error}") from None
        data = deep_merge(base, data)
    return data, source


def load_config(name_or_path: str | Path) -> GenerationConfig:
    """Load a preset (I, II, III, IV) or a YAML file; raise ConfigError naming the bad field."""
    data, source = _raw_config(name_or_path)
    config = config_from_dict(data, source)
    check_assets(config, source)
    return config


def config_from_dict(data: dict[str, Any], source: object = "config") -> GenerationConfig:
    return validate_model(GenerationConfig, data, source)


