"""Upper bounds on sizes that no real run comes near: a typo (an extra zero, or twelve) is one
line before anything is written, not a filled disk, a MemoryError or 120 GB training images.

For scale: the thesis rendered 1,500 characters x 10 images a preset; RandPerson has 8,000
identities, MSMT17 4,101; re-id inputs are 256x128 or 384x128, refiners run at 256x128.
"""

MAX_CHARACTERS = 1_000_000  # characters in one run or preview
MAX_IMAGES_PER_CHARACTER = 1_000
MAX_IMAGES = 20_000_000  # characters x images of one run (about 1 TB of 256-px PNG crops)
MAX_SIDE_PX = 4096  # a side of a network's input or a refiner's image
MAX_ITERATIONS = 10_000_000  # refiner iterations
MAX_EPOCHS = 10_000


def check_run_size(characters: int, images: int, what: str = "run") -> None:
    """Characters and images per character of a run, each and together within bounds."""
    from synthreid.errors import ConfigError

    if not 1 <= characters <= MAX_CHARACTERS:
        raise ConfigError(f"{what}: characters: expected 1 to {MAX_CHARACTERS:,}, got "
                          f"{characters:,}")
    if not 1 <= images <= MAX_IMAGES_PER_CHARACTER:
        raise ConfigError(f"{what}: images per character: expected 1 to "
                          f"{MAX_IMAGES_PER_CHARACTER:,}, got {images:,}")
    if characters * images > MAX_IMAGES:
        raise ConfigError(f"{what}: {characters:,} x {images:,} images is more than "
                          f"{MAX_IMAGES:,} in one run; split it into runs")
