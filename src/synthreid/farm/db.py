"""The job database: the permanent record of every run, character and image, and the queue.

SQLite (a file; WAL mode, long busy timeout) by default, PostgreSQL for many machines: the same
code, only the URL changes. Times come from the database clock (`db_now`), as epoch seconds.
"""

from __future__ import annotations

import weakref
from collections.abc import Collection
from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from synthreid.errors import JobError

SCHEMA_VERSION = 3  # 2: jobs.token, a unique token per claim; 3: assets
metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("preset", String(200), nullable=False),
    Column("config", JSON, nullable=False),  # the frozen GenerationConfig
    Column("seed", BigInteger, nullable=False),
    Column("characters", Integer, nullable=False),
    Column("images_per_character", Integer, nullable=False),
    Column("versions", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

characters = Table(
    "characters", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("runs.id"), nullable=False),
    Column("index", Integer, nullable=False),  # character_id within the run
    Column("spec", JSON, nullable=False),  # the whole sampled CharacterSpec
    UniqueConstraint("run_id", "index"),
)

images = Table(
    "images", metadata,
    Column("id", Integer, primary_key=True),
    Column("character_id", ForeignKey("characters.id"), nullable=False),
    Column("index", Integer, nullable=False),
    Column("spec", JSON, nullable=False),  # ImageSpec: camera, pose, light, seed
    Column("status", String(16), nullable=False, default="pending"),
    Column("storage_key", String(400)),  # the RGB image; mask and record sit beside it
    Column("sha256", String(64)),
    Column("size", BigInteger),
    Column("record", JSON),  # crop, keypoints, versions: what the renderer wrote
    UniqueConstraint("character_id", "index"),
)

jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("runs.id"), nullable=False, index=True),
    Column("character_id", ForeignKey("characters.id"), nullable=False, unique=True),
    Column("status", String(16), nullable=False, default="pending", index=True),
    Column("worker", String(200)),
    Column("attempts", Integer, nullable=False, default=0),
    # A fresh random token per claim: it names the claim's storage folder, so no two claims
    # ever share files, even when `retry` or `release` let an attempt number come back.
    Column("token", String(32)),
    Column("lease_until", Float),
    Column("finished_at", Float),
    Column("last_error", Text),
)


assets = Table(  # user files a run's specs name, by content (see farm/assets.py)
    "assets", metadata,
    Column("sha256", String(64), primary_key=True),
    Column("suffix", String(16), nullable=False),
    Column("data", LargeBinary, nullable=False),
)


class db_now(FunctionElement):
    """The database server's clock, in epoch seconds (sub-second precision)."""

    type = Float()
    inherit_cache = True


@compiles(db_now, "sqlite")
def _now_sqlite(element, compiler, **kw) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(db_now, "postgresql")
def _now_postgresql(element, compiler, **kw) -> str:
    return "extract(epoch from clock_timestamp())::float8"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def connect(url: str, create: bool = True) -> Engine:
    """An engine for `url` with the schema in place (created when missing and `create`).

    Every failure is one line: a malformed URL, a missing driver, an unreachable server, or a
    database written by a newer synthreid."""
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise JobError(f"database URL {url!r} is not valid (expected sqlite:///FILE or "
                       f"postgresql+psycopg://USER@HOST/DB)") from None
    if backend not in ("sqlite", "postgresql"):
        raise JobError(f"database URL {url!r} is not valid: only sqlite and postgresql are "
                       f"supported")
    database = make_url(url).database
    if backend == "sqlite" and not create and database not in (None, "", ":memory:") and \
            not Path(database).expanduser().is_file():
        # Connecting would create an empty file at a mistyped path.
        raise JobError(f"database file {database} does not exist; run 'synthreid plan' first "
                       f"(or check --db)")
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as error:
        raise JobError(f"database URL {url!r} is not valid: {error}") from None
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    for attempt in range(2):
        try:
            _prepare(engine, url, create)
            break
        except (OperationalError, IntegrityError, ProgrammingError) as error:
            # Two commands creating the schema at once: the loser finds it made, and checks it.
            if attempt == 0 and create and _already_made(error):
                continue
            if isinstance(error, OperationalError):
                raise JobError(f"cannot reach database "
                               f"{engine.url.render_as_string(hide_password=True)}: "
                               f"{unreachable_reason(error)}") from None
            raise JobError(f"database error: {str(error).splitlines()[0]}") from None
        except SQLAlchemyError as error:
            raise JobError(f"database error: {str(error).splitlines()[0]}") from None
    if backend == "sqlite" and database not in (None, "", ":memory:"):
        path = Path(database).expanduser()
        _SQLITE_FILES[engine] = (path, path.stat().st_ino)
    return engine


class DatabaseGone(JobError):
    """The job database was removed or replaced under a running farm: nothing more may be
    written to it (its connections would still write into the removed file, unseen)."""


# engine -> (file, inode at connect); weak, so an engine's entry goes with it (an id could be
# reused by a later engine and match the wrong file)
_SQLITE_FILES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_present(engine: Engine) -> None:
    """Raise DatabaseGone when a SQLite job database's file is gone or another file took its
    place since `connect`; a server database answers for itself."""
    known = _SQLITE_FILES.get(engine)
    if known is None:
        return
    path, inode = known
    try:
        same = path.stat().st_ino == inode
    except OSError:
        same = False
    if not same:
        raise DatabaseGone(f"the job database {path} was removed or replaced while the run was "
                           f"going on; its results since then are lost (plan the run again)")


def unreachable_reason(error: Exception) -> str:
    """The first line of what the database driver said."""
    orig = getattr(error, "orig", None)
    return str(orig).strip().splitlines()[0] if orig else str(error).splitlines()[0]


def _already_made(error: Exception) -> bool:
    text_ = str(error).lower()
    return "already exists" in text_ or "duplicate" in text_ or "unique constraint" in text_


def _prepare(engine: Engine, url: str, create: bool) -> None:
    """Check (and, when `create`, make) the schema, in one transaction."""
    with engine.begin() as connection:
        existing = inspect(connection).get_table_names()
        if "schema_version" in existing:
            version = connection.execute(select(schema_version.c.version)).scalar()
            if version is not None and version > SCHEMA_VERSION:
                raise JobError(f"database {engine.url.render_as_string(hide_password=True)} has "
                               f"schema version {version}, newer than this synthreid's "
                               f"{SCHEMA_VERSION}: upgrade synthreid")
            if version is not None and version < SCHEMA_VERSION:
                _migrate(connection, version)
        elif existing:
            raise JobError(f"database {url!r} holds other tables: not a synthreid job database")
        elif create:
            metadata.create_all(connection)
            connection.execute(schema_version.insert().values(version=SCHEMA_VERSION))
        else:
            raise JobError(f"database {url!r} has no synthreid tables; run 'synthreid plan' "
                           f"first")


def _migrate(connection, version: int) -> None:
    """Bring an older schema up to SCHEMA_VERSION, one step at a time, in one transaction."""
    if version == 1:
        connection.execute(text("ALTER TABLE jobs ADD COLUMN token VARCHAR(32)"))
        version = 2
    if version == 2:
        assets.create(connection)
        version = 3
    connection.execute(schema_version.update().values(version=version))


# Which runs a query counts: one run's id, several, or None for every run.
RunFilter = int | Collection[int] | None


def in_runs(column, run_ids: RunFilter):
    """The condition that a run-id `column` is one of `run_ids` (not None)."""
    return column.in_([run_ids] if isinstance(run_ids, int) else list(run_ids))


def job_counts(engine: Engine, run_ids: RunFilter = None) -> dict[str, int]:
    """Jobs per status, of the given runs or of all runs."""
    query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
    if run_ids is not None:
        query = query.where(in_runs(jobs.c.run_id, run_ids))
    with engine.connect() as connection:
        return dict(connection.execute(query).all())


def run_id(engine: Engine, name: str) -> int:
    with engine.connect() as connection:
        found = connection.execute(select(runs.c.id).where(runs.c.name == name)).scalar()
    if found is None:
        with engine.connect() as connection:
            names = connection.execute(select(runs.c.name).order_by(runs.c.id)).scalars().all()
        known = ", ".join(names) if names else "none planned yet"
        raise JobError(f"unknown run {name!r} (runs: {known})")
    return int(found)

