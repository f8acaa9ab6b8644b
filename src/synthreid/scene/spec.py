"""The scene spec: plain, validated, serialisable objects; no renderer needed to build or read them.

A character spec plus an image spec is everything a worker needs to render an image again.
Colours are sRGB in [0, 1]; lengths in metres; angles in radians unless named *_deg.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthreid.typed import Strict

RGB = tuple[float, float, float]


class Spec(Strict):
    """A drawn value of a character or image, recorded with every image and job."""


class TextureSpec(Spec):
    family: Literal["stripes", "checks", "noise", "dots", "plaid", "photo"]
    colour2: RGB
    scale: float = Field(gt=0, description="pattern repeats per metre")
    angle: float = 0.0  # rotation of stripes/checks about the body's vertical axis
    image: str | None = None  # photo: the patch file, wrapped around the body's vertical axis
    omitted_when_none = ("image",)


class GarmentSpec(Spec):
    kind: Literal["shirt", "pants", "skirt", "shoes"]
    length: float = Field(1.0, ge=0, le=1, description="sleeve/leg coverage, 0 none to 1 full")
    colour: RGB
    texture: TextureSpec | None = None


class HairSpec(Spec):
    style: Literal["none", "buzz", "short", "bob", "long", "bun", "ponytail"] = "none"
    colour: RGB = (0.05, 0.03, 0.02)


class AccessorySpec(Spec):
    kind: Literal["backpack", "shoulder_bag", "hat", "cap", "glasses"]
    colour: RGB
    side: Literal["left", "right"] = "left"


class BodySpec(Spec):
    female: bool
    age_years: float
    height_m: float
    muscle: float = Field(ge=0, le=1)
    weight: float = Field(ge=0, le=1)
    proportions: float = Field(ge=0, le=1)
    skin_tone: RGB


class GaitSpec(Spec):
    stride: float = Field(description="scales hip and knee swing")
    arm_swing: float
    motion: str | None = None  # a BVH file: motion capture instead of the parametric walk


class RoomSpec(Spec):
    kind: Literal["cuboid", "cubemap", "equirect", "backplate"]
    size_m: tuple[float, float, float]
    wall_colours: tuple[RGB, RGB, RGB, RGB]  # +x, -x, +y, -y walls
    floor_colour: RGB
    background: str | None = None  # a cubemap folder, "builtin:NAME", or a photo file


class CharacterSpec(Spec):
    character_id: int
    seed: int
    preset: str
    body: BodySpec
    garments: tuple[GarmentSpec, ...]
    hair: HairSpec
    accessories: tuple[AccessorySpec, ...]
    gait: GaitSpec
    room: RoomSpec
    crowd: tuple[CharacterSpec, ...] | None = None  # bystanders (their rooms unused); None: none
    omitted_when_none = ("crowd",)

    def garment(self, kind: str) -> GarmentSpec | None:
        return next((g for g in self.garments if g.kind == kind), None)


class CameraSpec(Spec):
    direction: tuple[float, float, float]  # unit vector from the character's centre
    radius_m: float = Field(gt=0)
    focal_mm: float = Field(gt=0)
    sensor_mm: float = Field(36.0, gt=0)


class EffectsSpec(Spec):
    """One image's draw of the camera effects (config.CameraEffects), applied after the render."""
    exposure: float = Field(1.0, gt=0)
    gains: RGB = (1.0, 1.0, 1.0)  # white balance, per channel
    defocus_sigma_px: float = Field(0.0, ge=0)
    motion_blur_px: float = Field(0.0, ge=0)
    motion_angle: float = 0.0  # radians from the image's x axis
    height_px: int | None = Field(None, ge=16)
    noise_sigma: float = Field(0.0, ge=0)
    noise_seed: int = 0
    jpeg_quality: int | None = Field(None, ge=1, le=100)


class LampSpec(Spec):
    """A point lamp, placed relative to the person's centre."""
    azimuth: float  # radians about +z
    distance_m: float = Field(gt=0)
    height_m: float  # above the person's centre
    colour: RGB
    power_w: float = Field(gt=0)


class PropSpec(Spec):
    """An occluder standing on the floor; x, y relative to the person's centre."""
    kind: Literal["pole", "box", "bicycle"]
    x: float
    y: float
    # pole: radius, radius, height; box: width, depth, height; bicycle: length, width, height
    size_m: tuple[float, float, float]
    heading: float = 0.0  # rotation about +z
    colour: RGB


class BystanderSpec(Spec):
    """Where one of the character's bystanders stands in an image, relative to the person."""
    index: int = Field(ge=0)  # into CharacterSpec.crowd
    x: float
    y: float
    heading: float
    gait_phase: float = Field(ge=0, lt=1)


class ImageSpec(Spec):
    image_index: int
    seed: int  # the renderer's sampling seed
    gait_phase: float = Field(ge=0, lt=1)
    heading: float  # the direction the character walks, about +z
    camera: CameraSpec
    sun_azimuth: float = 0.8
    sun_elevation: float = 0.9
    sun_strength: float = Field(3.0, ge=0)
    ambient: float = Field(0.6, ge=0, description="world light strength")
    effects: EffectsSpec | None = None  # camera effects after the render; None: none
    sun_colour: RGB | None = None  # None: white
    lamps: list[LampSpec] | None = None  # None: none
    props: list[PropSpec] | None = None  # occluders; None: none
    crowd: list[BystanderSpec] | None = None  # the bystanders in view; None: none
    sky_haze: float | None = Field(None, ge=0)  # a daylight sky of this haze; None: plain sky
    omitted_when_none = ("effects", "sun_colour", "lamps", "props", "crowd", "sky_haze")
