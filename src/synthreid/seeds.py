"""Every random stream that a recorded seed feeds, in one table. A stream is drawn as
`np.random.default_rng([seed, STREAM])`, so each part of a character, an image or a run draws
from a stream of its own: adding a draw to one part (a new lever, say) never moves another's,
and the same seed gives the same attributes and the same image.

The numbers are fixed for good: changing one changes everything ever made from that seed.
"""

from enum import IntEnum


class CharacterStream(IntEnum):
    """Streams of a character's seed (its own draws use the seed alone)."""
    VIEWS = 1  # gait phase, heading and camera of each image
    CAMERA_EFFECTS = 2
    LIGHTS = 3
    OCCLUDERS = 4
    PHOTO_TEXTURES = 5
    CROWD = 6  # who the bystanders are
    CROWD_PLACES = 7  # where they stand in each image


class ImageStream(IntEnum):
    """Streams of an image's seed."""
    BACKPLATE = 11  # the window of the photo behind the person


class RunStream(IntEnum):
    """Streams of a run's or a training run's seed."""
    EXPORT_SPLIT = 2  # which ids are test, validation and training ids in an export
    EXPORT_CAMERAS = 3  # the pseudo-camera of each exported image
    VALIDATION_IDS = 7  # ids held out of a training set for validation (when it has none)
    IDENTITY_CHECK = 22  # a refiner's identity probe ids and its realism target images
    FIT_TARGET = 23  # the target training crops a fit compares its renders with
