"""Writing datasets: the one place images, masks and whole dataset folders are written.

`farm/export.py` writes new Market-layout datasets from the job database, `refine/apply.py`
writes a copy of any layout with new pixels; both go through here, so the folder names, the
image encodings and the all-or-nothing rules are the same for both.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from synthreid import atomic
from synthreid.datasets.market import FOLDERS, MASK_FOLDER, VALIDATION_FOLDER
from synthreid.errors import DatasetError
from synthreid.made_by import usable_folder

# Our export's splits -> Market-1501 folders (the reader's FOLDERS plus held-out validation ids).
MARKET_FOLDERS = {"train": FOLDERS["train"], "val": VALIDATION_FOLDER,
                  "gallery": FOLDERS["gallery"], "query": FOLDERS["query"]}


def market_stem(pid: int, camid: int, character: int, image: int) -> str:
    """`PPPP_cC_CCCCCCIII`: person id, camera, then character and image index (unique per run)."""
    return f"{pid:04d}_c{camid}_{character:06d}{image:03d}"


def check_free(out: str | Path) -> Path:
    """`out`, if a new dataset may be written there: absent or an empty folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out}: folder exists and is not empty")
    return out


@contextlib.contextmanager
def staged_folder(out: str | Path) -> Iterator[Path]:
    """A hidden folder beside `out` to fill; renamed to `out` when the block ends without an
    error, removed when it does not, so `out` appears whole or not at all. `out` may exist only
    as an empty folder: nothing a user made is replaced."""
    out = check_free(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    except OSError as error:
        raise DatasetError(f"{out}: cannot write beside it ({error.strerror or error})") from None
    try:
        yield staging
        try:
            if out.exists():
                out.rmdir()
            staging.rename(out)
        except OSError:  # another command filled `out` while this one wrote
            raise DatasetError(f"{out}: another command wrote a dataset there at the same "
                               f"time; it is kept, and nothing of this one") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def make_market_folders(root: Path) -> dict[str, Path]:
    folders = {split: root / name for split, name in MARKET_FOLDERS.items()}
    for folder in [*folders.values(), root / MASK_FOLDER]:
        folder.mkdir(parents=True, exist_ok=True)
    return folders


def save_image(image: Image.Image | bytes, path: str | Path, image_format: str,
               quality: int = 95) -> None:
    """`image` (a picture, or encoded bytes) written atomically as `image_format` ("png",
    "jpg"/"jpeg", or a PIL format name). PNG bytes given for a PNG are kept byte for byte."""
    image_format = {"jpg": "JPEG", "jpeg": "JPEG"}.get(image_format.lower(), image_format.upper())
    with atomic.atomic_path(path) as tmp:
        if isinstance(image, bytes) and image_format == "PNG" and image[:4] == b"\x89PNG":
            tmp.write_bytes(image)
            return
        if isinstance(image, bytes):
            with Image.open(io.BytesIO(image)) as decoded:
                image = decoded.convert("RGB")
        options = {"quality": quality} if image_format == "JPEG" else {}
        picture = image.convert("RGB") if image_format == "JPEG" else image
        picture.save(tmp, format=image_format, **options)


def write_csv(path: str | Path, rows: list[dict]) -> None:
    with atomic.atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def mirror_folder(root: Path, out: str | Path, error: type[Exception]) -> Path:
    """`out`, resolved, for files that mirror a dataset's layout (refined images, masks): it
    must lie outside the dataset and not be a file."""
    out = Path(out).resolve()
    if out == root or root in out.parents:
        raise error(f"--out {out}: must lie outside the source dataset {root}")
    return usable_folder(out, error)


def mirrored(path: Path, root: Path, out: Path, suffix: str | None = None) -> Path:
    """Where `path` (an image under `root`) goes in the mirror `out`, optionally re-suffixed."""
    target = out / path.relative_to(root)
    return target if suffix is None else target.with_suffix(suffix)


def copy_file(source: Path, target: Path) -> None:
    with atomic.atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
