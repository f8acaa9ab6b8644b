"""The files a job needs beyond its spec (a user's cubemap faces, equirectangular images, BVH
motions, photo texture patches) go into the job database by content when the run is planned,
and specs name them `asset:<sha256><suffix>`. A job is then a frozen, self-contained spec: a worker on any machine
fetches what it names into a local cache (checked against its hash) and needs none of the
planning machine's folders. Built-in cubemaps stay `builtin:NAME` (drawn the same everywhere).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine

from synthreid import atomic
from synthreid.errors import JobError
from synthreid.farm.db import assets
from synthreid.scene.backgrounds import cubemap_faces
from synthreid.scene.config import CUBEMAP_FACES
from synthreid.scene.spec import CharacterSpec

PREFIX = "asset:"
# The only asset names a planner writes: a sha256 hex digest and a file suffix it stores. A name
# is joined to the cache folder only after it matches, so a hostile job row cannot name a path.
ASSET_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".exr", ".hdr", ".bvh",
                  ".json")
ASSET_NAME = re.compile(r"[0-9a-f]{64}(" + "|".join(re.escape(s) for s in ASSET_SUFFIXES) + ")")


class HostileAsset(JobError):
    """A job names an asset that is not a content key: the job can never run."""


def checked_name(reference: str) -> str:
    """The asset name in `asset:<name>` (or a bare name), refused unless it is a content key."""
    name = reference.removeprefix(PREFIX)
    if not ASSET_NAME.fullmatch(name):
        shown = name if len(name) <= 120 else name[:117] + "..."
        raise HostileAsset(f"asset name {shown!r} is not a content key (64 hex digits and one "
                           f"of {', '.join(ASSET_SUFFIXES)})")
    return name


def _put(connection: Connection, data: bytes, suffix: str) -> str:
    if suffix not in ASSET_SUFFIXES:
        raise JobError(f"cannot store a {suffix or 'suffix-less'} file as an asset; known: "
                       f"{', '.join(ASSET_SUFFIXES)}")
    digest = hashlib.sha256(data).hexdigest()
    known = connection.execute(select(assets.c.sha256).where(assets.c.sha256 == digest)).first()
    if known is None:
        connection.execute(insert(assets).values(sha256=digest, suffix=suffix, data=data))
    return f"{PREFIX}{digest}{suffix}"


def _store_file(connection: Connection, path: str) -> str:
    file = Path(path).expanduser()
    return _put(connection, file.read_bytes(), file.suffix.lower())


def _store_cubemap(connection: Connection, source: str) -> str:
    """Each face by content, then a manifest of the faces (the key the spec holds)."""
    faces = {face: _store_file(connection, str(path)).removeprefix(PREFIX)
             for face, path in cubemap_faces(source).items()}
    return _put(connection, json.dumps(faces, sort_keys=True).encode(), ".json")


def freeze(connection: Connection, spec: CharacterSpec, memo: dict[str, str]) -> CharacterSpec:
    """The spec with every user file it names replaced by its content key (stored once)."""
    room = spec.room
    background, motion = room.background, spec.gait.motion
    if background and background.startswith(PREFIX):
        checked_name(background)
    elif background and not background.startswith("builtin:"):
        if background not in memo:
            store = _store_cubemap if room.kind == "cubemap" else _store_file
            memo[background] = store(connection, background)
        background = memo[background]

    def store_file(path: str) -> str:
        if path.startswith(PREFIX):
            checked_name(path)
            return path
        if path not in memo:
            memo[path] = _store_file(connection, path)
        return memo[path]

    motion = store_file(motion) if motion else motion
    frozen = _with_textures(_with_sources(spec, background, motion), store_file)
    return _with_crowd(frozen, lambda bystander: freeze(connection, bystander, memo))


def _with_sources(spec: CharacterSpec, background: str | None,
                  motion: str | None) -> CharacterSpec:
    return spec.model_copy(update={
        "room": spec.room.model_copy(update={"background": background}),
        "gait": spec.gait.model_copy(update={"motion": motion})})


def _with_textures(spec: CharacterSpec, rename) -> CharacterSpec:
    """The spec with each photo texture's file renamed by `rename` (to or from an asset)."""
    garments = tuple(
        g.model_copy(update={"texture": g.texture.model_copy(
            update={"image": rename(g.texture.image)})})
        if g.texture is not None and g.texture.image else g for g in spec.garments)
    return spec.model_copy(update={"garments": garments})


def _with_crowd(spec: CharacterSpec, convert) -> CharacterSpec:
    """The spec with each bystander converted as the person was (their files too)."""
    if not spec.crowd:
        return spec
    return spec.model_copy(update={"crowd": tuple(convert(b) for b in spec.crowd)})


def _fetch(engine: Engine, name: str, target: Path) -> Path:
    """Asset `name` (sha256 + suffix) as the file `target`, fetched and checked once."""
    name = checked_name(name)
    if target.is_file():
        return target
    digest = name.split(".", 1)[0]
    with engine.connect() as connection:
        data = connection.execute(select(assets.c.data).where(assets.c.sha256 == digest)).scalar()
    if data is None:
        raise JobError(f"asset {name} is not in the job database")
    if hashlib.sha256(data).hexdigest() != digest:
        raise JobError(f"asset {name} does not match its checksum")
    return atomic.write_bytes(target, bytes(data))


def materialize(engine: Engine, spec: CharacterSpec, cache: Path) -> CharacterSpec:
    """The spec with every asset key replaced by a local file (or cubemap folder) in `cache`."""
    room = spec.room
    background, motion = room.background, spec.gait.motion
    if background and background.startswith(PREFIX):
        name = checked_name(background)
        if room.kind == "cubemap":  # the faces go straight into the folder the renderer reads
            faces = json.loads(_fetch(engine, name, cache / name).read_text())
            folder = cache / f"cubemap-{name.split('.', 1)[0]}"
            if not isinstance(faces, dict) or set(faces) - set(CUBEMAP_FACES):
                raise HostileAsset(f"asset {name}: a cubemap manifest maps the faces "
                                   f"{', '.join(CUBEMAP_FACES)} to asset names")
            for face, face_name in faces.items():
                face_name = checked_name(str(face_name))
                _fetch(engine, face_name, folder / f"{face}{Path(face_name).suffix}")
            background = str(folder)
        else:
            background = str(_fetch(engine, name, cache / name))

    def fetch_file(path: str) -> str:
        if not path.startswith(PREFIX):
            return path
        name = checked_name(path)
        return str(_fetch(engine, name, cache / name))

    motion = fetch_file(motion) if motion else motion
    local = _with_textures(_with_sources(spec, background, motion), fetch_file)
    return _with_crowd(local, lambda bystander: materialize(engine, bystander, cache))
