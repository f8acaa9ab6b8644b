"""Each reader on a small fixture in its dataset's real layout, and on broken copies."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthreid.datasets import IdSplit, read_dataset, relabel
from synthreid.errors import DatasetError
from synthreid.evaluate import protocols


def write_image(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((16, 8, 3), value % 256, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def market_fixture(root: Path, name_format="{pid:04d}_c{cam}s1_{i:06d}_00.jpg") -> Path:
    for pid in (2, 7, 9):
        for cam in (1, 2):
            write_image(root / "bounding_box_train" / name_format.format(pid=pid, cam=cam, i=1))
    for pid in (3, 5):
        write_image(root / "query" / name_format.format(pid=pid, cam=1, i=2))
        for cam in (2, 3):
            write_image(root / "bounding_box_test" / name_format.format(pid=pid, cam=cam, i=3))
    write_image(root / "bounding_box_test" / "-1_c1s1_000000_00.jpg")
    write_image(root / "bounding_box_test" / "0000_c2s1_000000_00.jpg")
    write_image(root / "bounding_box_train" / "0000_c2s1_000000_00.jpg")
    return root


def test_market_reader(tmp_path):
    data = read_dataset("market1501", market_fixture(tmp_path / "market"))
    assert {r.pid for r in data.train} == {2, 7, 9}  # distractor 0000 never trains
    assert len(data.query) == 2 and len(data.gallery) == 6
    assert {r.pid for r in data.gallery} == {-1, 0, 3, 5}
    assert {r.camid for r in data.query} == {1}
    assert data.distractor_ids == (0,)  # never drawn as a person by the thesis protocol
    labelled, mapping = relabel(data.train)
    assert sorted({r.pid for r in labelled}) == [0, 1, 2] and mapping == {2: 0, 7: 1, 9: 2}


def test_duke_and_cuhk03_np_share_the_layout(tmp_path):
    duke = read_dataset("dukemtmc", market_fixture(tmp_path / "duke", "{pid:04d}_c{cam}_f{i:07d}.jpg"))
    assert len(duke.gallery) == 6
    root = tmp_path / "cuhk03-np"
    market_fixture(root / "labeled", "{pid:04d}_c{cam}_{i}.png")
    cuhk = read_dataset("cuhk03-np", root, kind="labeled")
    assert cuhk.name == "cuhk03-np-labeled" and cuhk.train_ids == 3
    with pytest.raises(DatasetError, match="detected/bounding_box_train"):
        read_dataset("cuhk03-np", root, kind="detected")


@pytest.mark.parametrize("damage, message", [
    ("missing", "query: folder not found"),
    ("bad_name", "holiday.jpg: file name does not match"),
    ("unreadable", "0003_c1s1_000002_00.jpg: unreadable image"),
    ("empty", "query: no images (expected files named like 0001_c1s1_000001_00.jpg)"),
])
def test_market_reader_on_broken_copies(tmp_path, damage, message):
    root = market_fixture(tmp_path / "market")
    query = root / "query"
    if damage == "missing":
        shutil.rmtree(query)
    elif damage == "bad_name":
        write_image(query / "holiday.jpg")
    elif damage == "unreadable":
        (query / "0003_c1s1_000002_00.jpg").write_bytes(b"\x00not an image")
    else:
        for path in query.iterdir():
            path.unlink()
    with pytest.raises(DatasetError) as error:
        read_dataset("market1501", root)
    assert message in str(error.value) and "\n" not in str(error.value)


def msmt_fixture(root: Path) -> Path:
    lines = {"list_train.txt": [], "list_val.txt": [], "list_query.txt": [], "list_gallery.txt": []}
    for pid in (0, 1):
        name = f"{pid:04d}/{pid:04d}_000_0{pid + 1}_0303morning_0015_0.jpg"
        write_image(root / "train" / name)
        lines["list_train.txt"].append(f"{name} {pid}")
    write_image(root / "train" / "0002/0002_000_05_0303morning_0016_0.jpg")
    lines["list_val.txt"].append("0002/0002_000_05_0303morning_0016_0.jpg 2")
    for pid, cam, target in ((0, 3, "list_query.txt"), (0, 7, "list_gallery.txt")):
        name = f"{pid:04d}/{pid:04d}_001_{cam:02d}_0303noon_0001_1.jpg"
        write_image(root / "test" / name)
        lines[target].append(f"{name} {pid}")
    for file, content in lines.items():
        (root / file).write_text("\n".join(content) + "\n")
    return root


def test_msmt17_reader_and_broken_copies(tmp_path):
    root = msmt_fixture(tmp_path / "MSMT17_V1")
    data = read_dataset("msmt17", root)
    assert len(data.train) == 3 and data.query[0].camid == 3 and data.gallery[0].camid == 7
    assert data.distractor_ids == ()  # MSMT17's id 0 is a person
    (root / "list_query.txt").write_text("0000/0000_001_03_0303noon_0001_1.jpg\n")
    with pytest.raises(DatasetError, match=r"list_query.txt:1: expected"):
        read_dataset("msmt17", root)
    (root / "list_query.txt").unlink()
    with pytest.raises(DatasetError, match="list_query.txt: list file not found"):
        read_dataset("msmt17", root)
    shutil.rmtree(root / "test")
    with pytest.raises(DatasetError, match="expected image folders train/ and test/"):
        read_dataset("msmt17", root)


def cuhk03_mat_fixture(path: Path, pairs=5, people=12) -> Path:
    """cuhk-03.mat as MATLAB v7.3 writes it: cells are datasets of object references, stored
    transposed (column-major), with empty cells as 2-element arrays."""
    import h5py

    with h5py.File(path, "w") as mat:
        refs = mat.create_group("#refs#")
        counter = iter(range(10**6))

        def store(array):
            return refs.create_dataset(str(next(counter)), data=array).ref

        for kind in ("labeled", "detected"):
            pair_refs = []
            for pair in range(pairs):
                cell = np.empty((10, people), dtype=h5py.ref_dtype)  # transposed (people, 10)
                for person in range(people):
                    for index in range(10):
                        if index in (4, 9) and person % 3 == 0:
                            cell[index, person] = store(np.zeros(2, dtype=np.uint64))
                        else:
                            image = np.full((3, 8, 16), (pair * 40 + person) % 256, np.uint8)
                            cell[index, person] = store(image)  # (3, W, H): transposed (H, W, 3)
                pair_refs.append(store(cell))
            mat.create_dataset(kind, data=np.array([pair_refs], dtype=h5py.ref_dtype))
        split_refs = []
        for split in range(20):
            rng = np.random.default_rng(split)
            chosen = rng.choice(pairs * people, size=10, replace=False)
            rows = np.array([[c // people + 1, c % people + 1] for c in chosen], dtype=float)
            split_refs.append(store(rows.T))
        mat.create_dataset("testsets", data=np.array([split_refs], dtype=h5py.ref_dtype))
    return path


def test_cuhk03_mat_reader_extracts_once_and_follows_the_split(tmp_path):
    mat = cuhk03_mat_fixture(tmp_path / "cuhk-03.mat")
    data = read_dataset("cuhk03-mat", mat, kind="labeled", split=4)
    test_ids = {r.pid for r in data.query}
    assert len(test_ids) == 10 and test_ids == {r.pid for r in data.gallery}
    assert not test_ids & {r.pid for r in data.train}
    assert len(data.train) + len(data.query) + len(data.gallery) == 5 * (12 * 10 - 4 * 2)
    assert {r.camid for r in data.query} == {1} and {r.camid for r in data.gallery} == {2}
    with Image.open(data.query[0].path) as image:
        assert image.size == (8, 16)
    extracted = tmp_path / "cuhk03_labeled_images"
    stamp = extracted.stat().st_mtime_ns
    read_dataset("cuhk03-mat", mat, kind="labeled", split=0)
    assert extracted.stat().st_mtime_ns == stamp  # not extracted again
    with pytest.raises(DatasetError, match="split must be in 0..19"):
        read_dataset("cuhk03-mat", mat, split=20)
    both = read_dataset("cuhk03-mat", mat, kind="both", split=4)  # Open-ReID's CUHK03
    assert len(both.query) == 2 * len(data.query) and len(both.train) == 2 * len(data.train)
    assert {r.path.parent.name for r in both.query} == {"cuhk03_labeled_images",
                                                         "cuhk03_detected_images"}
    assert {r.pid for r in both.query} == test_ids and both.distractor_ids == ()
    (tmp_path / "broken.mat").write_bytes(b"MATLAB 5.0 MAT-file, not HDF5")
    with pytest.raises(DatasetError, match="broken.mat"):
        read_dataset("cuhk03-mat", tmp_path / "broken.mat")


def test_viper_and_prid2011(tmp_path):
    for pid in range(1, 11):
        write_image(tmp_path / "viper" / "cam_a" / f"{pid:03d}_45.bmp")
        write_image(tmp_path / "viper" / "cam_b" / f"{pid:03d}_90.bmp")
    viper = read_dataset("viper", tmp_path / "viper", seed=1)
    assert len(viper.query) == len(viper.gallery) == 5 and len(viper.train) == 10
    root = tmp_path / "prid_2011" / "single_shot"
    for pid in range(1, 206):
        write_image(root / "cam_b" / f"person_{pid:04d}.png")
        if pid <= 203:
            write_image(root / "cam_a" / f"person_{pid:04d}.png")
    prid = read_dataset("prid2011", tmp_path / "prid_2011", test_count=100)
    assert len(prid.query) == 100 and {r.pid for r in prid.query} <= set(range(1, 201))
    assert len(prid.gallery) == 105  # the 100 matches and cam_b's 5 unpaired people
    assert len(prid.train) == 200
    shutil.rmtree(root / "cam_b")
    with pytest.raises(DatasetError, match="cam_b: folder not found"):
        read_dataset("prid2011", tmp_path / "prid_2011")


def test_folder_per_identity_with_and_without_cameras(tmp_path):
    for person in ("alice", "bob", "carol", "dave"):
        for i in range(3):
            write_image(tmp_path / "plain" / person / f"img{i}.png")
            write_image(tmp_path / "cams" / person / f"{person}_c{i % 2 + 1}_{i}.png")
    plain = read_dataset("folders", tmp_path / "plain", split=IdSplit(ranges="3-4"))
    assert plain.cameras_assigned and "assigned" in plain.notes[-1]
    assert {r.pid for r in plain.query} == {3, 4} and plain.train_ids == 2
    cams = read_dataset("folders", tmp_path / "cams", split=IdSplit(count=2, seed=0))
    assert not cams.cameras_assigned and {r.camid for r in cams.train} == {1, 2}
    (tmp_path / "plain" / "erin").mkdir()
    with pytest.raises(DatasetError, match="erin: identity folder holds no images"):
        read_dataset("folders", tmp_path / "plain", split=IdSplit(count=1))


def prid450s_like(root: Path, people=30) -> Path:
    for pid in range(1, people + 1):
        for cam in (1, 2):
            write_image(root / f"cam{cam}" / f"{pid:04d}{cam:03d}.png", value=pid * 7)
    return root


@pytest.mark.parametrize("split, test_count", [
    (IdSplit(ranges="21-30"), 10), (IdSplit(count=12, seed=3), 12),
    (IdSplit(fraction=0.5, seed=3), 15),
])
def test_pattern_reader_splits(tmp_path, split, test_count):
    root = prid450s_like(tmp_path / "prid450s")
    data = read_dataset("pattern", root, pattern=r"(?P<pid>\d{4})(?P<camid>\d{3})\.png", split=split)
    assert len({r.pid for r in data.query}) == test_count
    assert not {r.pid for r in data.train} & {r.pid for r in data.query}
    assert all(r.camid == 1 for r in data.query) and all(r.camid == 2 for r in data.gallery)


def test_pattern_reader_split_file_and_errors(tmp_path):
    root = prid450s_like(tmp_path / "prid450s")
    split_file = tmp_path / "test_ids.txt"
    split_file.write_text("# test ids\n1\n2\n3\n")
    pattern = r"(?P<pid>\d{4})(?P<camid>\d{3})\.png"
    data = read_dataset("pattern", root, pattern=pattern, split=IdSplit(file=split_file))
    assert {r.pid for r in data.query} == {1, 2, 3}
    with pytest.raises(DatasetError, match="needs a named group"):
        read_dataset("pattern", root, pattern=r"\d+", split=IdSplit(count=3))
    with pytest.raises(DatasetError, match="not a regular expression"):
        read_dataset("pattern", root, pattern="(?P<pid>", split=IdSplit(count=3))
    with pytest.raises(DatasetError, match="exactly one"):
        read_dataset("pattern", root, pattern=pattern, split=IdSplit(count=3, ranges="1-2"))
    write_image(root / "cam1" / "notes.png")
    with pytest.raises(DatasetError, match="notes.png: file name does not match"):
        read_dataset("pattern", root, pattern=pattern, split=IdSplit(count=3))


def test_a_dataset_without_cameras_still_evaluates(tmp_path):
    root = prid450s_like(tmp_path / "flat")
    data = read_dataset("pattern", root, pattern=r"(?P<pid>\d{4})\d{3}\.png",
                        split=IdSplit(count=20, seed=0))
    assert data.cameras_assigned
    features = {r.path: np.eye(31)[r.pid] for r in data.query + data.gallery}

    def arrays(records):
        return (np.stack([features[r.path] for r in records]), np.array([r.pid for r in records]),
                np.array([r.camid for r in records]))

    result = protocols.market(*arrays(data.query), *arrays(data.gallery))
    assert result.queries == 20 and result.rank(1) == 1.0


def test_unknown_kind(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset layout 'imagenet'"):
        read_dataset("imagenet", tmp_path)


def test_a_dataset_yaml_carries_the_pattern_and_split(tmp_path):
    from synthreid.datasets import read_dataset_file

    prid450s_like(tmp_path / "prid450s")
    spec = tmp_path / "prid.yaml"
    spec.write_text("layout: pattern\nroot: prid450s\n"
                    "pattern: '(?P<pid>\\d{4})(?P<camid>\\d{3})\\.png'\n"
                    "split: {count: 10, seed: 1}\n")
    data = read_dataset_file(spec)
    assert len({r.pid for r in data.query}) == 10 and data.train_ids == 20
    spec.write_text("layout: pattern\nroot: prid450s\nsplit: {count: 10, colour: red}\n")
    with pytest.raises(DatasetError, match="split takes ranges"):
        read_dataset_file(spec)
    spec.write_text("root: prid450s\n")
    with pytest.raises(DatasetError, match="'layout' and 'root'"):
        read_dataset_file(spec)


def test_a_dataset_yaml_brings_masks_for_any_layout(tmp_path):
    from synthreid.datasets import read_dataset_file

    prid450s_like(tmp_path / "prid450s")
    write_image(tmp_path / "masks" / "cam1" / "0003001.png")  # one mask, same relative name
    spec = tmp_path / "prid.yaml"
    spec.write_text("layout: pattern\nroot: prid450s\nmasks: masks\n"
                    "pattern: '(?P<pid>\\d{4})(?P<camid>\\d{3})\\.png'\nsplit: {count: 10}\n")
    data = read_dataset_file(spec)
    records = data.train + data.query + data.gallery
    masked = [r for r in records if r.mask is not None]
    assert [r.path.name for r in masked] == ["0003001.png"]
    assert masked[0].mask == tmp_path / "masks" / "cam1" / "0003001.png"
    assert "masks from" in data.summary() and "1 of 60 images" in data.summary()
    spec.write_text("layout: pattern\nroot: prid450s\nmasks: nowhere\n"
                    "pattern: '(?P<pid>\\d{4})(?P<camid>\\d{3})\\.png'\nsplit: {count: 10}\n")
    with pytest.raises(DatasetError, match="masks: folder .*nowhere not found"):
        read_dataset_file(spec)
