"""Real renders with Blender (Cycles, few samples): crops, masks, keypoints, reproducibility."""

import json

import numpy as np
import pytest
from PIL import Image

from synthreid.scene.config import config_from_dict, load_config
from synthreid.scene.sampling import sample_character, sample_images
from synthreid.scene.spec import CharacterSpec, ImageSpec

pytestmark = pytest.mark.render
MARGIN = 4


def small(preset: str, mode: str):
    data = load_config(preset).model_dump()
    data["render"].update(samples=4, threads=2)
    data["crop"].update(mode=mode, height_px=128, margin_px=MARGIN)
    return config_from_dict(data)


@pytest.fixture(scope="module")
def renders(body_model, tmp_path_factory):
    from synthreid.render.renderer import Renderer

    results = {}
    for mode, preset in (("tight", "IV"), ("bbox3d", "III")):
        config = small(preset, mode)
        renderer = Renderer(config, body_model)
        out = tmp_path_factory.mktemp(mode)
        images = []
        for cid in range(2):
            character = sample_character(config, cid, 11)
            images += renderer.render_character(character, sample_images(config, character, 2), out)
        results[mode] = (config, renderer, out, images)
    return results


def mask_of(image):
    return np.asarray(Image.open(image.mask).convert("L")) > 127


def test_rgb_and_mask_align_and_show_a_person(renders):
    for _, _, _, images in renders.values():
        for image in images:
            rgb = Image.open(image.rgb)
            mask = mask_of(image)
            assert rgb.size == (mask.shape[1], mask.shape[0])
            assert rgb.height == 128
            assert 0.2 < mask.mean() < 0.9  # a person, not an empty or full frame
            pixels = np.asarray(rgb.convert("RGB")).astype(float)
            assert pixels.std() > 5  # not a blank render


def test_tight_crop_mask_touches_every_edge_within_the_margin(renders):
    for image in renders["tight"][3]:
        ys, xs = np.nonzero(mask_of(image))
        height, width = mask_of(image).shape
        gaps = (xs.min(), ys.min(), width - 1 - xs.max(), height - 1 - ys.max())
        assert max(gaps) <= MARGIN + 2, (image.stem, gaps)


def test_bbox3d_crop_contains_the_whole_mask(renders):
    for image in renders["bbox3d"][3]:
        mask = mask_of(image)
        border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
        assert border.mean() < 0.02, image.stem  # the loose box leaves the person inside


def test_keypoints_fall_inside_the_crop_or_are_marked_invisible(renders):
    for _, _, _, images in renders.values():
        for image in images:
            height, width = mask_of(image).shape
            xyv = np.array(image.record["keypoints"]["xyv"])
            assert xyv.shape == (17, 3)
            labelled = xyv[:, 2] > 0
            assert labelled.sum() >= 10
            assert np.all((xyv[labelled, 0] >= 0) & (xyv[labelled, 0] < width))
            assert np.all((xyv[labelled, 1] >= 0) & (xyv[labelled, 1] < height))
            assert np.all(xyv[~labelled, :2] == 0)
            # Visible keypoints sit on the person (within a couple of pixels of the mask).
            mask = mask_of(image)
            for x, y, v in xyv[xyv[:, 2] == 2]:
                window = mask[max(int(y) - 3, 0):int(y) + 4, max(int(x) - 3, 0):int(x) + 4]
                assert window.any(), (image.stem, x, y)


def test_record_renders_the_same_image_again(renders, body_model, tmp_path):
    from synthreid.errors import RenderError
    from synthreid.render.renderer import Renderer

    config, stale, out, images = renders["tight"]
    renderer = Renderer(config, body_model)  # a fresh process-wide scene, as a worker has
    with pytest.raises(RenderError, match="one Renderer per process"):
        stale.render_character(CharacterSpec.model_validate(images[0].record["character"]), [],
                               tmp_path)
    first = images[0]
    record = json.loads((out / "records" / f"{first.stem}.json").read_text())
    character = CharacterSpec.model_validate(record["character"])
    image = ImageSpec.model_validate(record["image"])
    again = renderer.render_character(character, [image], tmp_path)[0]
    a = np.asarray(Image.open(first.rgb)).astype(int)
    b = np.asarray(Image.open(again.rgb)).astype(int)
    assert a.shape == b.shape
    # Cycles on the CPU with a fixed seed is deterministic: identical pixels.
    assert np.abs(a - b).max() == 0
    assert np.array_equal(mask_of(first), mask_of(again))
    # byte for byte, so stored files can be compared by digest: no render date or time stamped in
    assert again.mask.read_bytes() == first.mask.read_bytes()
    assert again.rgb.read_bytes() == first.rgb.read_bytes()


def test_no_temporary_files_are_left(renders):
    for _, _, out, _ in renders.values():
        assert not [p for p in out.rglob("*") if p.name.startswith(".")]


def test_preview_command_writes_images_sheet_and_coco(tmp_path):
    from typer.testing import CliRunner

    from synthreid.cli import app

    args = ["preview", "II", "-c", "2", "-m", "2", "--seed", "3", "--out", str(tmp_path),
            "--engine", "workbench"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "images").glob("*.png"))) == 4
    assert (tmp_path / "contact_sheet.png").exists()
    coco = json.loads((tmp_path / "keypoints.json").read_text())
    assert len(coco["annotations"]) == 4 and len(coco["categories"][0]["keypoints"]) == 17
    # Resuming renders nothing new.
    again = CliRunner().invoke(app, args)
    assert "(0 rendered now)" in again.output
    # Other settings never resume into (or silently replace) this preview.
    before = (tmp_path / "images" / "000000_000.png").read_bytes()
    other = [a if a != "3" else "4" for a in args]
    refused = CliRunner().invoke(app, other)
    assert refused.exit_code == 2 and "holds a preview with other settings (seed)" in refused.output
    refused = CliRunner().invoke(app, [*args[:-1], "cycles"])
    assert refused.exit_code == 2 and "render.engine" in refused.output
    assert (tmp_path / "images" / "000000_000.png").read_bytes() == before
    replaced = CliRunner().invoke(app, [*other, "--overwrite"])
    assert replaced.exit_code == 0 and "(4 rendered now)" in replaced.output


def test_automatic_masks_find_the_rendered_person_and_resume(renders, tmp_path):
    """`synthreid masks` on rendered people (no masks given): close to the renderer's exact
    masks, readable back through `masks: DIR`, and a second run writes nothing."""
    from typer.testing import CliRunner

    from synthreid.cli import app
    from synthreid.datasets import read_dataset_file

    data, truth = tmp_path / "people", {}
    for index, image in enumerate(renders["tight"][3] + renders["bbox3d"][3]):
        folder = ("bounding_box_train" if index < 4 else
                  "query" if index % 2 == 0 else "bounding_box_test")
        target = data / folder / f"{index // 2 + 1:04d}_c{index % 2 + 1}_{index:06d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(image.rgb.read_bytes())
        truth[target.relative_to(data)] = mask_of(image)
    result = CliRunner().invoke(app, ["masks", "--data", f"market1501:{data}",
                                      "--out", str(tmp_path / "masks")])
    assert result.exit_code == 0, result.output
    scores, recalls = [], []
    for relative, expected in truth.items():
        found = np.asarray(Image.open(tmp_path / "masks" / relative)) > 127
        scores.append((found & expected).sum() / (found | expected).sum())
        recalls.append((found & expected).sum() / expected.sum())
    # These test renders are small, dark and noisy (4 samples): the model bleeds into the
    # background on some (benchmarks/mask_quality.py measures IoU 0.92 at preset quality), but
    # it must find the person.
    assert np.mean(scores) > 0.6 and min(scores) > 0.4 and np.mean(recalls) > 0.85, scores
    first = {p: p.stat().st_mtime_ns for p in (tmp_path / "masks").rglob("*.png")}
    again = CliRunner().invoke(app, ["masks", "--data", f"market1501:{data}",
                                     "--out", str(tmp_path / "masks")])
    assert again.exit_code == 0 and "0 masks written" in again.output
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "masks").rglob("*.png")} == first
    (tmp_path / "people.yaml").write_text(f"layout: market1501\nroot: {data}\nmasks: masks\n")
    dataset = read_dataset_file(tmp_path / "people.yaml")
    every = dataset.train + dataset.query + dataset.gallery
    assert len(every) == len(truth) and all(r.mask is not None for r in every)
