"""synthreid: artificial training data for person re-identification.

Heavy imports (bpy, anny, torch) stay inside the functions that need them, so importing the
package and `synthreid --help` are instant.
"""

__version__ = "0.1.0"


def package_versions() -> dict[str, str]:
    """Versions of synthreid and the packages that decide what an image looks like, read from
    the installed metadata (no heavy import)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("synthreid", "bpy", "anny", "torch"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "unknown"
    return found
