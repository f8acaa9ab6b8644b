"""Render speed: images/s and the split of time (body, scene, render, write) per preset/engine.

    python benchmarks/render_speed.py [--characters 4] [--images 5] [--levers]

Targets on a 2-core CPU at 256 px crop height: Cycles 16 samples with mask >= 1.5 images/s,
Workbench >= 6 images/s, everything but the render itself <= 15% of the time.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from synthreid.body.model import BodyModel
from synthreid.render.renderer import Renderer
from synthreid.scene.backgrounds import cubemap_faces
from synthreid.scene.config import config_from_dict, load_config
from synthreid.scene.sampling import sample_character, sample_images


def measure(model: BodyModel, preset: str, engine: str, characters: int, images: int,
            room: dict | None = None) -> None:
    data = load_config(preset).model_dump()
    if room is not None:
        data["room"].update(room)
    data["render"].update(engine=engine, samples=16, device="cpu")
    data["crop"]["height_px"] = 256
    config = config_from_dict(data)
    renderer = Renderer(config, model)
    # Warm-up: first-use costs (shader compilation, cubemap drawing) are not per-image costs.
    warm = sample_character(config, 10_000, 0)
    with tempfile.TemporaryDirectory() as out:
        renderer.render_character(warm, sample_images(config, warm, 1), out)
        renderer.timings.seconds.clear()
        start = time.perf_counter()
        for cid in range(characters):
            character = sample_character(config, cid, 0)
            renderer.render_character(character, sample_images(config, character, images), out)
        wall = time.perf_counter() - start
    split = renderer.timings.seconds
    total = sum(split.values())
    shares = "  ".join(f"{k} {100 * v / total:4.1f}%" for k, v in sorted(split.items()))
    name = Path(preset).stem if preset.endswith(".yaml") else preset
    name += f"+{room['kind']}" if room else ""
    print(f"preset {name:12} {engine:9} {characters * images / wall:5.2f} images/s   {shares}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--characters", type=int, default=4)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--levers", action="store_true",
                        help="the cost of each realism lever: preset IV with and without it "
                             "(experiments/levers/*.yaml, photo textures left out; a "
                             "backplate over built-in cubemap faces), Cycles")
    args = parser.parse_args()
    model = BodyModel()
    if args.levers:
        levers = Path(__file__).resolve().parents[1] / "experiments" / "levers"
        for preset in ["IV"] + [str(levers / f"IV-{name}.yaml") for name in (
                "effects", "lights", "outdoor", "indoor", "occluders", "crowd")]:
            measure(model, preset, "cycles", args.characters, args.images)
        with tempfile.TemporaryDirectory() as photos:  # the built-in faces stand in for photos
            for face in ("px", "ny"):
                shutil.copy(cubemap_faces("builtin:street")[face], Path(photos) / f"{face}.png")
            measure(model, "IV", "cycles", args.characters, args.images,
                    room={"kind": "backplate", "cubemaps": [photos]})
        return
    for preset in ("I", "IV"):
        for engine in ("cycles", "workbench"):
            measure(model, preset, engine, args.characters, args.images)


if __name__ == "__main__":
    main()
