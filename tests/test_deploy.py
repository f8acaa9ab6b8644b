"""The deployment files install what they use: a storage scheme the compose file names has its
fsspec implementation in the image, through an extra the project declares."""

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMES = {"s3": "s3fs", "gs": "gcsfs", "az": "adlfs"}


def test_the_worker_image_installs_the_storage_the_compose_file_uses():
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    used = {match for service in compose["services"].values()
            for value in (service.get("environment") or {}).values()
            for match in re.findall(r"^(\w+)://", str(value)) if match in SCHEMES}
    assert used, "the compose file uses object storage"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    installed = re.search(r'pip install[^\n]*"\.\[([\w,]+)\]"',
                          (REPO / "deploy" / "Dockerfile").read_text())
    assert installed, "the Dockerfile installs the project with its extras"
    packages = " ".join(p for extra in installed.group(1).split(",") for p in extras[extra])
    for scheme in used:
        assert SCHEMES[scheme] in packages, scheme
