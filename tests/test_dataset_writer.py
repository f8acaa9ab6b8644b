"""The dataset writer shared by export and refine: whole folders or nothing, formats kept."""

import io

import numpy as np
import pytest
from PIL import Image

from synthreid.datasets import read_dataset
from synthreid.datasets.writer import (
    make_market_folders,
    market_stem,
    save_image,
    staged_folder,
)
from synthreid.errors import DatasetError


def _png_bytes(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_failed_write_leaves_nothing_and_a_finished_one_reads_back(tmp_path):
    out = tmp_path / "data"
    with pytest.raises(RuntimeError):
        with staged_folder(out) as staging:
            save_image(_png_bytes(0), make_market_folders(staging)["train"] / "x.png", "png")
            raise RuntimeError("killed")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with staged_folder(out) as staging:
        folders = make_market_folders(staging)
        for split, pid in [("train", 1), ("train", 2), ("val", 4), ("query", 3), ("gallery", 3)]:
            name = market_stem(pid, 1 if split == "query" else 2, pid - 1, 0) + ".jpg"
            save_image(_png_bytes(pid), folders[split] / name, "jpg")
    dataset = read_dataset("market1501", out)
    assert sorted(r.pid for r in dataset.train) == [1, 2]
    assert [(r.pid, r.camid) for r in dataset.query] == [(3, 1)]
    assert Image.open(dataset.train[0].path).format == "JPEG"


def test_a_user_folder_is_never_replaced(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    with pytest.raises(DatasetError, match="not empty"):
        with staged_folder(out):
            pass
    assert (out / "notes.txt").read_text() == "keep"


def test_png_bytes_are_kept_byte_for_byte(tmp_path):
    data = _png_bytes(3)
    save_image(data, tmp_path / "a.png", "png")
    assert (tmp_path / "a.png").read_bytes() == data
    save_image(Image.open(io.BytesIO(data)), tmp_path / "b.png", "PNG")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")),
                          np.asarray(Image.open(io.BytesIO(data))))


def test_ids_above_9999_name_and_read_back(tmp_path):
    """The IV-10k preset's ids: Market-1501 readers of other frameworks stop at 1,501; ours and
    our export's names go on (as many digits as an id needs)."""
    from synthreid.scene.config import load_config

    assert load_config("IV-10k").characters == 10_000
    with staged_folder(tmp_path / "big") as staging:
        folders = make_market_folders(staging)
        for split, pid, camid in [("train", 10_000, 1), ("train", 10_001, 2), ("val", 9_999, 1),
                                  ("query", 12_345, 1), ("gallery", 12_345, 2)]:
            save_image(_png_bytes(pid), folders[split] / f"{market_stem(pid, camid, pid - 1, 0)}"
                       ".jpg", "jpg")
    dataset = read_dataset("synthetic", tmp_path / "big")
    assert sorted(r.pid for r in dataset.train) == [10_000, 10_001]
    assert [r.pid for r in dataset.query + dataset.gallery] == [12_345, 12_345]
    assert [r.pid for r in dataset.validation] == [9_999]
