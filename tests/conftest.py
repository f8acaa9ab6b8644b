import os
from pathlib import Path

import pytest

# anny's cache (about a minute to build once) lives in a known folder shared by all tests.
os.environ.setdefault("SYNTHREID_CACHE", str(Path.home() / ".cache" / "synthreid"))


@pytest.fixture(scope="session")
def body_model():
    from synthreid.body.model import BodyModel

    return BodyModel()
