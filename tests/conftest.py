import os
from pathlib import Path

import pytest

# anny's cache (about a minute to build once) lives in a known folder shared by all tests.
os.environ.setdefault("SYNTHREID_CACHE", str(Path.home() / ".cache" / "synthreid"))


@pytest.fixture(scope="session")
def body_model():
    from synthreid.body.model import BodyModel

    return BodyModel()


POSTGRES_ENV = "SYNTHREID_TEST_POSTGRES"  # e.g. postgresql+psycopg://postgres@127.0.0.1:54329/postgres


def _postgres_database(tmp_name: str) -> str:
    """A fresh, empty database on the server named by SYNTHREID_TEST_POSTGRES."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(os.environ[POSTGRES_ENV])
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{tmp_name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{tmp_name}"'))
    admin.dispose()
    return admin_url.set(database=tmp_name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """An empty job database: a SQLite file, and a real PostgreSQL server when one is given."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"no PostgreSQL server given: set {POSTGRES_ENV} (.ci/run starts one)")
    name = "synthreid_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[-40:]
    return _postgres_database(name.lower())
