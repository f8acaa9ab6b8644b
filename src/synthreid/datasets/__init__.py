"""Real re-id datasets in their standard layouts, and layouts of the user's own.

    from synthreid.datasets import read_dataset
    market = read_dataset("market1501", "/data/Market-1501-v15.09.15")

The registry below is the one place readers are named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from synthreid.datasets.cuhk03 import read_cuhk03_mat, read_cuhk03_np
from synthreid.datasets.custom import IdSplit, read_folders, read_pattern
from synthreid.datasets.market import read_market_layout
from synthreid.datasets.msmt17 import read_msmt17
from synthreid.datasets.records import ImageRecord, ReidDataset, attach_masks, relabel
from synthreid.datasets.two_camera import read_prid2011, read_viper
from synthreid.errors import DatasetError

READERS: dict[str, Callable[..., ReidDataset]] = {
    "market1501": lambda root, **kw: read_market_layout(root, "market1501", **kw),
    "dukemtmc": lambda root, **kw: read_market_layout(root, "dukemtmc", **kw),
    "synthetic": lambda root, **kw: read_market_layout(root, "synthetic", **kw),
    "msmt17": read_msmt17,
    "cuhk03-np": read_cuhk03_np,
    "cuhk03-mat": read_cuhk03_mat,
    "viper": read_viper,
    "prid2011": read_prid2011,
    "folders": read_folders,
    "pattern": read_pattern,
}


def read_dataset(layout: str, root: str | Path, **options) -> ReidDataset:
    if layout not in READERS:
        raise DatasetError(f"unknown dataset layout {layout!r}; known: {', '.join(READERS)}")
    return READERS[layout](root, **options)


def read_dataset_file(path: str | Path, **extra) -> ReidDataset:
    """A dataset described in YAML, for layouts that need options on the command line:

        layout: pattern
        root: /data/prid450s
        pattern: '(?P<pid>\\d{4})(?P<camid>\\d{3})\\.png'
        split: {count: 100, seed: 0}   # or ranges: "301-450", fraction: 0.5, file: ids.txt

    `masks: DIR` gives person masks for any layout: DIR holds, for each image, a PNG of the
    same path relative to the root (e.g. `cam_a/001_45.png` for `cam_a/001_45.bmp`). Any other
    key is passed to the reader (e.g. `kind: detected` for cuhk03-np)."""
    import yaml

    path = Path(path).expanduser()
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise DatasetError(f"{path}: cannot read as YAML ({type(error).__name__})") from None
    if not isinstance(spec, dict) or "layout" not in spec or "root" not in spec:
        raise DatasetError(f"{path}: expected a mapping with 'layout' and 'root'")
    options = {k: v for k, v in spec.items() if k not in ("layout", "root")} | extra
    if isinstance(options.get("split"), dict):
        try:
            options["split"] = IdSplit(**options["split"])
        except TypeError:
            raise DatasetError(f"{path}: split takes ranges, count, fraction, file and seed") from None
    elif options.get("split") is not None and spec["layout"] != "cuhk03-mat":  # that takes 0-19
        raise DatasetError(f"{path}: split: expected a mapping (ranges, count, fraction, file, "
                           f"seed), got {options['split']!r}")
    masks = options.pop("masks", None)
    root = _beside(path, spec["root"])
    try:
        dataset = read_dataset(str(spec["layout"]), root, **options)
    except TypeError as error:
        raise DatasetError(f"{path}: an option does not fit layout {spec['layout']!r} "
                           f"({error})") from None
    return dataset if masks is None else attach_masks(dataset, _beside(path, masks))


def _beside(yaml_path: Path, value) -> Path:
    """A path from a dataset YAML: absolute, or relative to the YAML file's folder."""
    folder = Path(str(value)).expanduser()
    return folder if folder.is_absolute() else yaml_path.parent / folder


def open_dataset(spec: str, **options) -> ReidDataset:
    """A dataset as the commands take it: `LAYOUT:ROOT` (market1501:/data/Market-1501,
    synthetic:out/iv) or a dataset YAML file."""
    if spec.endswith((".yaml", ".yml")):
        return read_dataset_file(spec, **options)
    layout, sep, root = spec.partition(":")
    if not sep or not root:
        raise DatasetError(f"--data {spec!r}: expected LAYOUT:ROOT, e.g. market1501:/data/market, "
                           f"or a dataset .yaml file")
    return read_dataset(layout, root, **options)


__all__ = ["READERS", "IdSplit", "ImageRecord", "ReidDataset", "open_dataset", "read_dataset",
           "read_dataset_file", "relabel"]
