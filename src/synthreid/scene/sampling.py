"""Random characters and images from a preset. Every draw comes from a Generator seeded by
(run seed, character id), so the same seed always gives the same character."""

from __future__ import annotations

import colorsys
import math
from pathlib import Path

import numpy as np
from PIL import Image

from synthreid.scene.camera import sample_unit_directions
from synthreid.scene.colours import room_colour, sample_colour
from synthreid.scene.config import (
    PHOTO_ROOMS,
    CameraEffects,
    CrowdConfig,
    GenerationConfig,
    LightsConfig,
    OccludersConfig,
    PhotoTextures,
    equirect_images,
)
from synthreid.scene.spec import (
    AccessorySpec,
    BodySpec,
    BystanderSpec,
    CameraSpec,
    CharacterSpec,
    EffectsSpec,
    GaitSpec,
    GarmentSpec,
    HairSpec,
    ImageSpec,
    LampSpec,
    PropSpec,
    RoomSpec,
    TextureSpec,
)
from synthreid.seeds import CharacterStream

# Texture scales (repeats per metre) that look like real fabric at re-id resolutions.
TEXTURE_SCALES = {"stripes": (6, 16), "checks": (5, 12), "noise": (4, 10), "dots": (8, 18),
                  "plaid": (4, 9)}


def character_seed(run_seed: int, character_id: int) -> int:
    """A per-character seed derived from the run seed; recorded in the spec."""
    return int(np.random.SeedSequence([run_seed, character_id]).generate_state(1)[0])


def _interval(rng: np.random.Generator, interval: tuple[float, float]) -> float:
    return float(rng.uniform(*interval)) if interval[1] > interval[0] else float(interval[0])


def sample_body(config: GenerationConfig, rng: np.random.Generator) -> BodySpec:
    body = config.body
    female = bool(rng.random() < body.female_probability)
    heights = body.height_m_female if female else body.height_m_male
    # Heights are roughly normal within the preset's range: mean at its centre, 2 sigma at its ends.
    mean, sigma = sum(heights) / 2, (heights[1] - heights[0]) / 4
    height = float(np.clip(rng.normal(mean, sigma), *heights)) if sigma > 0 else heights[0]
    tone = body.skin_tones[rng.integers(len(body.skin_tones))]
    return BodySpec(
        female=female, age_years=_interval(rng, body.age_years), height_m=height,
        muscle=_interval(rng, body.muscle), weight=_interval(rng, body.weight),
        proportions=_interval(rng, body.proportions), skin_tone=tone,
    )


def _texture(config: GenerationConfig, rng: np.random.Generator) -> TextureSpec | None:
    clothes = config.clothes
    if not clothes.texture_families or rng.random() >= clothes.texture_probability:
        return None
    family = clothes.texture_families[rng.integers(len(clothes.texture_families))]
    return TextureSpec(
        family=family, colour2=sample_colour(rng, clothes.colour_model),
        scale=_interval(rng, TEXTURE_SCALES[family]),
        angle=float(rng.choice([0.0, math.pi / 2, rng.uniform(0, math.pi)])),
    )


def photo_garments(photos: PhotoTextures, garments: tuple[GarmentSpec, ...],
                   rng: np.random.Generator) -> tuple[GarmentSpec, ...]:
    """Garments with, each at `photos.probability`, a patch of the photo library (upper for
    shirts, lower for pants and skirts); the garment's colour becomes the patch's mean."""
    from synthreid.scene.photo_textures import library_patches

    patches = {part: library_patches(photos.folder, part) for part in ("upper", "lower")}
    dressed = []
    for garment in garments:
        draws = rng.random(3)  # fixed per garment: later draws do not depend on earlier ones
        part = {"shirt": "upper", "pants": "lower", "skirt": "lower"}.get(garment.kind)
        if part is None or not patches[part] or draws[0] >= photos.probability:
            dressed.append(garment)
            continue
        path = patches[part][int(draws[1] * len(patches[part]))]
        with Image.open(path) as patch:
            mean = np.asarray(patch.convert("RGB"), dtype=np.float64).mean(axis=(0, 1)) / 255
        colour = tuple(float(c) for c in mean)
        texture = TextureSpec(family="photo", colour2=colour, image=str(path.resolve()),
                              scale=photos.scale[0] + (photos.scale[1] - photos.scale[0])
                              * float(draws[2]))
        dressed.append(garment.model_copy(update={"colour": colour, "texture": texture}))
    return tuple(dressed)


def sample_garments(config: GenerationConfig, rng: np.random.Generator) -> tuple[GarmentSpec, ...]:
    clothes = config.clothes
    colour = lambda: sample_colour(rng, clothes.colour_model)  # noqa: E731
    shirt = GarmentSpec(kind="shirt", length=_interval(rng, clothes.sleeve_length),
                        colour=colour(), texture=_texture(config, rng))
    lower_kind = "skirt" if rng.random() < clothes.skirt_probability else "pants"
    lower = GarmentSpec(kind=lower_kind, length=_interval(rng, clothes.leg_length),
                        colour=colour(), texture=_texture(config, rng))
    garments = [shirt, lower]
    if clothes.shoes:
        dark = (0.05, 0.05, 0.05)
        shoe_colour = dark if rng.random() < 0.5 else colour()
        garments.append(GarmentSpec(kind="shoes", colour=shoe_colour))
    return tuple(garments)


def sample_hair(config: GenerationConfig, rng: np.random.Generator) -> HairSpec:
    styles, colours = config.hair.styles, config.hair.colours
    return HairSpec(style=styles[rng.integers(len(styles))],
                    colour=colours[rng.integers(len(colours))])


def sample_accessories(config: GenerationConfig,
                       rng: np.random.Generator) -> tuple[AccessorySpec, ...]:
    chosen: list[AccessorySpec] = []
    for kind, probability in sorted(config.accessories.probabilities.items()):
        draw, colour, side = rng.random(), sample_colour(rng, "realistic"), rng.random()
        if draw >= probability:
            continue
        if kind in ("hat", "cap") and any(a.kind in ("hat", "cap") for a in chosen):
            continue  # one head covering at a time
        chosen.append(AccessorySpec(kind=kind, colour=colour,
                                    side="left" if side < 0.5 else "right"))
    return tuple(chosen)


def sample_room(config: GenerationConfig, rng: np.random.Generator) -> RoomSpec:
    room = config.room
    if room.wall_colour is not None:
        walls = (room.wall_colour,) * 4
    elif room.per_face_colours:
        walls = tuple(room_colour(rng) for _ in range(4))
    else:
        walls = (room_colour(rng),) * 4
    floor = room.floor_colour if room.floor_colour is not None else room_colour(rng)
    background = room.cubemaps[rng.integers(len(room.cubemaps))] if room.cubemaps else None
    if room.kind in PHOTO_ROOMS and background and Path(background).expanduser().is_dir():
        # A folder of photos: one file per character, drawn after every other room draw.
        photos = equirect_images(Path(background).expanduser())
        background = str(photos[rng.integers(len(photos))].resolve())
    return RoomSpec(kind=room.kind, size_m=room.size_m, wall_colours=walls, floor_colour=floor,
                    background=background)


def sample_gait(config: GenerationConfig, rng: np.random.Generator) -> GaitSpec:
    gait = config.gait
    stride, swing = _interval(rng, gait.stride), _interval(rng, gait.arm_swing)
    motion = None
    if gait.bvh_folder is not None:
        motions = sorted(Path(gait.bvh_folder).expanduser().glob("*.bvh"))
        motion = str(motions[rng.integers(len(motions))].resolve())
    return GaitSpec(stride=stride, arm_swing=swing, motion=motion)


def sample_character(config: GenerationConfig, character_id: int, run_seed: int) -> CharacterSpec:
    seed = character_seed(run_seed, character_id)
    character = _character(config, character_id, seed)
    if config.crowd is None:
        return character
    # A stream of its own: a crowd leaves the person as it was. Bystanders are characters of
    # the same preset with seeds of their own (and no crowd of theirs).
    rng = np.random.default_rng([seed, CharacterStream.CROWD])
    count = int(rng.integers(config.crowd.people[0], config.crowd.people[1] + 1))
    crowd = tuple(_character(config, character_id, int(s))
                  for s in rng.integers(2**31 - 1, size=count))
    return character.model_copy(update={"crowd": crowd})


def _character(config: GenerationConfig, character_id: int, seed: int) -> CharacterSpec:
    rng = np.random.default_rng(seed)
    character = CharacterSpec(
        character_id=character_id, seed=seed, preset=config.name,
        body=sample_body(config, rng), garments=sample_garments(config, rng),
        hair=sample_hair(config, rng), accessories=sample_accessories(config, rng),
        gait=sample_gait(config, rng),
        room=sample_room(config, rng),
    )
    photos = config.clothes.photo_textures
    if photos is None:
        return character
    # A stream of its own: photo textures leave every other draw of the character as it was.
    rng = np.random.default_rng([seed, CharacterStream.PHOTO_TEXTURES])
    garments = photo_garments(photos, character.garments, rng)
    return character.model_copy(update={"garments": garments})


def sample_images(config: GenerationConfig, character: CharacterSpec,
                  count: int) -> list[ImageSpec]:
    """`count` views of a character: gait phase, heading and camera, from the character's seed."""
    rng = np.random.default_rng([character.seed, CharacterStream.VIEWS])
    camera = config.camera
    theta1, theta2 = (math.radians(t) for t in camera.theta_deg)
    directions = sample_unit_directions(rng, count, theta1, theta2)
    images = []
    for index in range(count):
        images.append(ImageSpec(
            image_index=index, seed=int(rng.integers(2**31 - 1)),
            gait_phase=float(rng.random()), heading=float(rng.uniform(0, 2 * math.pi)),
            camera=CameraSpec(direction=tuple(float(c) for c in directions[index]),
                              radius_m=camera.radius_m,
                              focal_mm=_interval(rng, camera.focal_mm),
                              sensor_mm=camera.sensor_mm),
            sun_azimuth=float(rng.uniform(0, 2 * math.pi)),
            sun_elevation=float(rng.uniform(math.radians(30), math.radians(75))),
            sun_strength=float(rng.uniform(1.5, 4.0)), ambient=float(rng.uniform(0.4, 0.9)),
        ))
    if config.camera_effects is not None:
        # A stream of its own, so effects leave every other draw of a preset as it was.
        effects_rng = np.random.default_rng([character.seed,
                                             CharacterStream.CAMERA_EFFECTS])
        images = [image.model_copy(update={"effects": sample_effects(config.camera_effects,
                                                                     effects_rng)})
                  for image in images]
    if config.occluders is not None:
        props_rng = np.random.default_rng([character.seed, CharacterStream.OCCLUDERS])
        images = [image.model_copy(update={"props": sample_props(config.occluders, image,
                                                                 props_rng)})
                  for image in images]
    if config.lights is not None:
        lights_rng = np.random.default_rng([character.seed, CharacterStream.LIGHTS])
        images = [image.model_copy(update=sample_lights(config.lights, lights_rng))
                  for image in images]
    if config.crowd is not None and character.crowd:
        crowd_rng = np.random.default_rng([character.seed, CharacterStream.CROWD_PLACES])
        images = [image.model_copy(update={"crowd": place_crowd(
            config.crowd, len(character.crowd), image, crowd_rng)}) for image in images]
    return images


def place_crowd(crowd: CrowdConfig, people: int, image: ImageSpec,
                rng: np.random.Generator) -> list[BystanderSpec]:
    """Where each bystander stands in this image, if present: near the line from the person
    toward the camera (`in_view`: in front of or behind the person, as the camera sees it) or
    anywhere around, at a distance from the person."""
    camera = math.atan2(image.camera.direction[1], image.camera.direction[0])
    placed = []
    for index in range(people):
        draws = rng.random(7)  # a fixed number of draws per bystander keeps later draws fixed
        if draws[0] >= crowd.probability:
            continue
        if draws[1] < crowd.in_view:  # half in front of the person, half behind
            azimuth = camera + (0.0 if draws[2] < 0.5 else math.pi) + (draws[3] - 0.5) * 0.6
        else:
            azimuth = 2 * math.pi * draws[3]
        distance = _lerp(crowd.distance_m, draws[4])
        placed.append(BystanderSpec(index=index, x=distance * math.cos(azimuth),
                                    y=distance * math.sin(azimuth),
                                    heading=2 * math.pi * float(draws[5]),
                                    gait_phase=float(draws[6])))
    return placed


def sample_props(occluders: OccludersConfig, image: ImageSpec,
                 rng: np.random.Generator) -> list[PropSpec]:
    """Nothing, or one prop on the floor between the person and this image's camera."""
    draws = rng.random(11)  # a fixed number of draws per image keeps later images' draws fixed
    if draws[0] >= occluders.probability:
        return []
    kind = occluders.kinds[int(draws[1] * len(occluders.kinds))]
    dx, dy = image.camera.direction[0], image.camera.direction[1]
    norm = math.hypot(dx, dy) or 1.0
    dx, dy = dx / norm, dy / norm  # toward the camera, on the floor
    along = image.camera.radius_m * _lerp(occluders.toward_camera, draws[2])
    side = _lerp(occluders.sideways_m, draws[3])
    grey = 0.15 + 0.6 * draws[4]
    colour = tuple(float(np.clip(grey + 0.1 * (c - 0.5), 0, 1)) for c in draws[8:11])
    heading = math.atan2(dy, dx)
    if kind == "pole":
        radius = _lerp(occluders.pole_radius_m, draws[5])
        size = (radius, radius, 3.0)
    elif kind == "box":
        size = tuple(_lerp(occluders.box_size_m, d) for d in (draws[5], draws[6], draws[7]))
    else:  # an adult's bicycle, seen from the side, give or take 30 degrees
        scale = 0.9 + 0.2 * draws[5]
        size = (1.75 * scale, 0.06, 1.0 * scale)
        heading += math.pi / 2 + (draws[6] - 0.5) * math.radians(60)
    return [PropSpec(kind=kind, x=dx * along - dy * side, y=dy * along + dx * side,
                     size_m=size, heading=float(heading), colour=colour)]


def _lerp(interval: tuple[float, float], t: float) -> float:
    return float(interval[0] + (interval[1] - interval[0]) * t)


def blackbody_rgb(kelvin: float) -> tuple[float, float, float]:
    """The colour of a black body at `kelvin`, as linear RGB scaled to a maximum of 1 (Tanner
    Helland's fit of the CIE data; 6500 K is white)."""
    t = kelvin / 100
    red = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    green = (99.4708025861 * math.log(t) - 161.1195681661 if t <= 66
             else 288.1221695283 * (t - 60) ** -0.0755148492)
    blue = 255.0 if t >= 66 else (0.0 if t <= 19 else
                                  138.5177312231 * math.log(t - 10) - 305.0447927307)
    rgb = np.clip(np.array([red, green, blue]) / 255, 0, 1) ** 2.2  # sRGB-ish -> linear
    return tuple(float(c) for c in rgb / rgb.max())


def sample_lights(lights: LightsConfig, rng: np.random.Generator) -> dict:
    def lamp_colour() -> tuple[float, float, float]:
        colour = np.array(blackbody_rgb(_interval(rng, lights.lamp_temperature_k)))
        if lights.lamp_saturation > 0:
            tint = np.array(colorsys.hsv_to_rgb(float(rng.random()), 1.0, 1.0))
            amount = float(rng.uniform(0, lights.lamp_saturation))
            colour = (1 - amount) * colour + amount * tint
        return tuple(float(c) for c in colour / colour.max())

    count = int(rng.integers(lights.lamps[0], lights.lamps[1] + 1))
    lamps = [LampSpec(azimuth=float(rng.uniform(0, 2 * math.pi)),
                      distance_m=_interval(rng, lights.lamp_distance_m),
                      height_m=_interval(rng, lights.lamp_height_m), colour=lamp_colour(),
                      power_w=_interval(rng, lights.lamp_power_w)) for _ in range(count)]
    drawn = {"sun_colour": blackbody_rgb(_interval(rng, lights.sun_temperature_k)),
             "lamps": lamps}
    # Drawn only when asked, after the rest: configs without them draw as before.
    if lights.sun_strength is not None:
        drawn["sun_strength"] = _interval(rng, lights.sun_strength)
    if lights.ambient is not None:
        drawn["ambient"] = _interval(rng, lights.ambient)
    if lights.sky:
        drawn["sky_haze"] = _interval(rng, lights.haze)
    return drawn


def sample_effects(effects: CameraEffects, rng: np.random.Generator) -> EffectsSpec:
    def gain(spread: float) -> float:
        return float(rng.uniform(1 - spread, 1 + spread))

    return EffectsSpec(
        exposure=gain(effects.exposure),
        gains=(gain(effects.white_balance), gain(effects.white_balance),
               gain(effects.white_balance)),
        defocus_sigma_px=_interval(rng, effects.defocus_sigma_px),
        motion_blur_px=_interval(rng, effects.motion_blur_px),
        motion_angle=float(rng.uniform(0, math.pi)),
        height_px=None if effects.height_px is None else round(_interval(rng, effects.height_px)),
        noise_sigma=_interval(rng, effects.noise_sigma),
        noise_seed=int(rng.integers(2**31 - 1)),
        jpeg_quality=None if effects.jpeg_quality is None else round(
            _interval(rng, effects.jpeg_quality)))
