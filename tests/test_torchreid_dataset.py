"""The torchreid dataset class in docs/ reads an export with more than 1,501 ids as our reader
does: same images, ids and cameras (cameras from 0, training ids relabelled)."""

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from synthreid.datasets import read_dataset

DOCS = Path(__file__).resolve().parents[1] / "docs" / "torchreid_dataset.py"


def load_docs_module():
    spec = importlib.util.spec_from_file_location("torchreid_dataset", DOCS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_copyable_class_reads_more_than_1501_ids_like_our_reader(tmp_path):
    pixels = Image.fromarray(np.zeros((8, 4, 3), np.uint8))
    for folder, ids in (("bounding_box_train", range(1495, 1510)), ("bounding_box_val", [1]),
                        ("query", [2001, 2002]), ("bounding_box_test", [2001, 2002, 2003])):
        (tmp_path / folder).mkdir()
        for pid in ids:
            for shot in range(2):  # the export's names: PPPP_cC_CCCCCCIII.jpg
                pixels.save(tmp_path / folder / f"{pid:04d}_c{shot + 1}_{pid:06d}{shot:03d}.jpg")
    module = load_docs_module()
    ours = read_dataset("synthetic", tmp_path)
    for split, folder in (("query", "query"), ("gallery", "bounding_box_test")):
        theirs = module.read_folder(str(tmp_path / folder))
        assert [(Path(p).name, pid, cam) for p, pid, cam in theirs] == sorted(
            (r.path.name, r.pid, r.camid - 1) for r in getattr(ours, split))
    train = module.read_folder(str(tmp_path / "bounding_box_train"), relabel=True)
    assert max(pid for _, pid, _ in train) == 14 and len(train) == 30
    assert max(r.pid for r in ours.train) == 1509  # past torchreid's Market-1501 bound
