"""Render a character's images: RGB, person mask, COCO keypoints and a record to render it again.

A worker builds one Renderer (anny model + Blender scene) and calls `render_character` per job.
Files are written under temporary names and renamed into place, so a crash never leaves a
half-written image behind.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from synthreid import package_versions
from synthreid.atomic import atomic_path
from synthreid.body.character import CharacterGeometry
from synthreid.body.model import BodyModel
from synthreid.datasets.coco import COCO17
from synthreid.errors import RenderError
from synthreid.render.backplate import composite_backplate
from synthreid.render.blender_scene import BlenderScene
from synthreid.render.crop import PinholeCamera, compute_crop
from synthreid.scene.camera import camera_position
from synthreid.scene.config import GenerationConfig
from synthreid.scene.spec import CharacterSpec, ImageSpec


def image_stem(character_id: int, image_index: int) -> str:
    return f"{character_id:06d}_{image_index:03d}"


@dataclass
class RenderedImage:
    stem: str
    rgb: Path
    mask: Path
    record: dict


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - since
        return now


class Renderer:
    def __init__(self, config: GenerationConfig, model: BodyModel | None = None) -> None:
        self.config = config
        self.model = model or BodyModel()
        self.scene = BlenderScene(config.render)
        self.timings = Timings()
        self._versions = package_versions()

    def render_character(self, character: CharacterSpec, images: list[ImageSpec],
                         out_dir: Path,
                         before_image: Callable[[], None] | None = None) -> list[RenderedImage]:
        """Render `images` of `character` into out_dir/{images,masks,records}/.

        `before_image` is called before each image; it may raise to abandon the character
        (a worker that lost its job or was asked to stop)."""
        out_dir = Path(out_dir)
        folders = {k: out_dir / k for k in ("images", "masks", "records")}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        geometry = CharacterGeometry(self.model, character)
        crowd = [CharacterGeometry(self.model, bystander) for bystander in character.crowd or ()]
        t = self.timings.add("body", t)
        self.scene.load_character(character, geometry, crowd)
        self.timings.add("scene", t)
        rendered = []
        for image in images:
            if before_image is not None:
                before_image()
            rendered.append(self._render_image(character, geometry, crowd, image, folders))
        return rendered

    def _render_image(self, character: CharacterSpec, geometry: CharacterGeometry,
                      crowd: list[CharacterGeometry], image: ImageSpec,
                      folders: dict[str, Path]) -> RenderedImage:
        crop_config = self.config.crop
        t = time.perf_counter()
        posed = geometry.pose(image.gait_phase, image.heading)
        points = posed.all_vertices()
        low, high = posed.bounds()
        target = (low + high) / 2
        cam = image.camera
        camera = PinholeCamera(position=camera_position(cam, target),
                               target=target, focal_mm=cam.focal_mm, sensor_mm=cam.sensor_mm)
        crop = compute_crop(camera, points, crop_config.mode, crop_config.height_px,
                            crop_config.margin_px)
        t = self.timings.add("body", t)
        self.scene.pose(posed)
        at = tuple(float(c) for c in target)  # where lamps, props and bystanders are placed from
        self.scene.light(image, at)
        self.scene.place_props(image.props, at)
        placed = {}
        for bystander in image.crowd or []:
            if bystander.index >= len(crowd):
                raise RenderError(f"image {image.image_index}: bystander {bystander.index} is not "
                                  f"in the character's crowd of {len(crowd)}")
            placed[bystander.index] = (bystander, crowd[bystander.index].pose(
                bystander.gait_phase, bystander.heading))
        self.scene.place_crowd(placed, at)
        self.scene.frame(camera, crop)
        t = self.timings.add("scene", t)

        stem = image_stem(character.character_id, image.image_index)
        rgb, mask = folders["images"] / f"{stem}.png", folders["masks"] / f"{stem}.png"
        record_path = folders["records"] / f"{stem}.json"
        # Renamed into place in the order image, mask, record (the innermost block ends
        # first): a record exists only beside its image and mask, which is what resume checks.
        with atomic_path(record_path) as tmp_record, atomic_path(mask) as tmp_mask, \
                atomic_path(rgb) as tmp_rgb:
            self.scene.render_rgb(tmp_rgb, image.seed)
            if character.room.kind == "backplate":
                composite_backplate(tmp_rgb, character.room.background, image.seed)
            self.scene.render_mask(tmp_mask)
            t = self.timings.add("render", t)
            size = (crop.width, crop.height)
            if image.effects is not None:
                size = _camera_effects(tmp_rgb, tmp_mask, image.effects)
                t = self.timings.add("effects", t)
            record = self._record(stem, character, image, camera, target, crop, posed,
                                  geometry, size)
            tmp_record.write_text(json.dumps(record, indent=1))
        self.timings.add("write", t)
        return RenderedImage(stem=stem, rgb=rgb, mask=mask, record=record)

    def _record(self, stem, character, image, camera, target, crop, posed, geometry,
                size: tuple[int, int]) -> dict:
        crop_config, cam = self.config.crop, image.camera

        keypoints = self._keypoints(camera, crop, posed.keypoints)
        scale = size[0] / crop.width, size[1] / crop.height  # camera effects may resample
        keypoints = [[round(x * scale[0], 2), round(y * scale[1], 2), v]
                     for x, y, v in keypoints]
        return {
            "stem": stem, "character": character.model_dump(mode="json"),
            "image": image.model_dump(mode="json"),
            "camera": {"position": camera.position.tolist(), "target": target.tolist(),
                       "focal_mm": cam.focal_mm, "sensor_mm": cam.sensor_mm},
            "crop": {"mode": crop_config.mode, "margin_px": crop_config.margin_px,
                     "resolution": crop.resolution, "x0": crop.x0, "y0": crop.y0,
                     "width": crop.width, "height": crop.height},
            "size": {"width": size[0], "height": size[1]},  # of the image as written
            "keypoints": {"names": list(COCO17), "xyv": keypoints},
            "render": self.config.render.model_dump(mode="json") | {"device": self.scene.device},
            "body_phenotype": geometry.shaped.phenotype,
            "versions": self._versions,
        }

    def _keypoints(self, camera: PinholeCamera, crop, keypoints3d: np.ndarray) -> list[list]:
        """COCO (x, y, v) in crop pixels: v=2 visible, 1 inside the crop but hidden, 0 outside
        the crop (then x = y = 0, as COCO writes unlabelled points)."""
        pixels = crop.to_pixels(camera.project(keypoints3d))
        inside = ((pixels[:, 0] >= 0) & (pixels[:, 0] < crop.width)
                  & (pixels[:, 1] >= 0) & (pixels[:, 1] < crop.height))
        seen = self.scene.visible(camera.position, keypoints3d)
        result = []
        for (x, y), is_inside, is_seen in zip(pixels, inside, seen):
            if not is_inside:
                result.append([0.0, 0.0, 0])
            else:
                result.append([round(float(x), 2), round(float(y), 2), 2 if is_seen else 1])
        return result


def _camera_effects(rgb_path: Path, mask_path: Path, effects) -> tuple[int, int]:
    """The rendered image and mask rewritten with the camera effects; their new size."""
    from synthreid.render.effects import apply_effects

    with Image.open(rgb_path) as rgb_file, Image.open(mask_path) as mask_file:
        rgb = np.asarray(rgb_file.convert("RGB"))
        mask = np.asarray(mask_file.convert("L")) > 127
    rgb, mask = apply_effects(rgb, mask, effects)
    Image.fromarray(rgb).save(rgb_path, "PNG")
    Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path, "PNG")
    return rgb.shape[1], rgb.shape[0]
