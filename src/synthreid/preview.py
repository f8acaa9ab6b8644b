"""`synthreid preview`: render a preset straight into a folder, without the job database.

    from synthreid.preview import preview
    preview("IV", characters=4, images=3, seed=0, out="out/preview-IV")
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from synthreid import atomic
from synthreid.errors import ConfigError
from synthreid.limits import check_run_size
from synthreid.progress import Reporter, report
from synthreid.scene.config import GenerationConfig, config_from_dict, load_config
from synthreid.scene.sampling import sample_character, sample_images
from synthreid.typed import differing_keys, dump_config, read_yaml


@dataclass
class PreviewResult:
    out: Path
    images: list[Path]
    contact_sheet: Path
    keypoints: Path
    rendered: int  # images rendered by this call (the rest were already there)


OUTPUTS = ("images", "masks", "records", "keypoints.json", "contact_sheet.png", "config.yaml")


def _claim_folder(out: Path, asked: dict, overwrite: bool) -> None:
    present = [name for name in OUTPUTS if (out / name).exists()]
    if not present:
        out.mkdir(parents=True, exist_ok=True)
        return
    saved_path = out / "config.yaml"
    saved = read_yaml(saved_path) if saved_path.is_file() else {}
    differ = differing_keys(saved, asked) if saved else ["config.yaml (missing)"]
    if not differ:
        return  # the same preview: resume it
    if not overwrite:
        raise ConfigError(f"{out}: holds a preview with other settings ({', '.join(differ[:6])}"
                          f"{', ...' if len(differ) > 6 else ''}); use another --out, or "
                          f"--overwrite to replace it")
    for name in present:
        target = out / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()


def _done(out: Path, stems: list[str]) -> bool:
    return all((out / "records" / f"{stem}.json").exists() for stem in stems)


def preview(preset: str | Path | GenerationConfig, characters: int, images: int, seed: int,
            out: str | Path, engine: str | None = None, crop: str | None = None,
            samples: int | None = None, progress: Reporter | None = None,
            overwrite: bool = False) -> PreviewResult:
    """Render `characters` x `images` of a preset into `out`, resumably: images already
    rendered (their record exists) are kept, so an interrupted preview picks up where it was.
    A folder holding a preview of other settings (config, seed) is refused unless
    `overwrite`, which removes that preview first."""
    from synthreid.datasets.coco import coco_keypoints
    from synthreid.render.contact_sheet import contact_sheet
    from synthreid.render.renderer import image_stem

    config = preset if isinstance(preset, GenerationConfig) else load_config(preset)
    data = config.model_dump()
    for section, key, value in (("render", "engine", engine), ("render", "samples", samples),
                                ("crop", "mode", crop)):
        if value is not None:
            data[section][key] = value
    config = config_from_dict(data, "preview options")
    check_run_size(characters, images, "preview")
    out = Path(out)
    _claim_folder(out, {**config.model_dump(mode="json"), "seed": seed}, overwrite)
    atomic.write_text(out / "config.yaml", dump_config(config) + f"seed: {seed}\n")

    jobs = []
    for character_id in range(characters):
        character = sample_character(config, character_id, seed)
        views = sample_images(config, character, images)
        stems = [image_stem(character_id, v.image_index) for v in views]
        if not _done(out, stems):
            jobs.append((character, views))

    rendered = 0
    if jobs:
        from synthreid.render.renderer import Renderer

        renderer = Renderer(config)
        report(progress, "rendering", 0, len(jobs) * images)
        for character, views in jobs:
            renderer.render_character(character, views, out)
            rendered += len(views)
            report(progress, "rendering", rendered, len(jobs) * images)

    records = [json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))]
    image_paths = sorted((out / "images").glob("*.png"))
    keypoints = coco_keypoints(records, out / "images", out / "masks", out / "keypoints.json")
    sheet = contact_sheet(image_paths, out / "contact_sheet.png")
    return PreviewResult(out=out, images=image_paths, contact_sheet=sheet, keypoints=keypoints,
                         rendered=rendered)
