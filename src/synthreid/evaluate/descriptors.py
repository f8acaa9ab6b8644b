"""Hand-crafted descriptors: a no-learning baseline any re-id number should beat.

`hsv`: each crop resized to 128x64 and cut into 6 horizontal stripes (head, shoulders, torso,
hips, legs, feet, roughly); per stripe a histogram of hue (16 bins), saturation (8) and value
(8), each normalised to sum 1, then square-rooted, so the Euclidean distance the protocols use
is the Hellinger distance between the colour distributions (the square root also keeps one
dominant colour from swamping the rest).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from synthreid.datasets.records import ImageRecord
from synthreid.errors import EvaluationError
from synthreid.evaluate.features import FeatureSet, dataset_feature_set

DESCRIPTORS = ("hsv",)
STRIPES, BINS = 6, (16, 8, 8)


def hsv_descriptor(rgb: Image.Image) -> np.ndarray:
    hsv = np.asarray(rgb.convert("RGB").resize((64, 128), Image.BILINEAR).convert("HSV"))
    parts = []
    for stripe in np.array_split(hsv, STRIPES, axis=0):
        for channel, bins in enumerate(BINS):
            values = stripe[..., channel].ravel().astype(np.int64)
            counts = np.bincount(values * bins // 256, minlength=bins)
            parts.append(np.sqrt(counts / counts.sum()))
    return np.concatenate(parts).astype(np.float32)


def descriptor_features(name: str, dataset) -> FeatureSet:
    """Query and gallery arrays as `reid.features.dataset_features` returns them, from a
    descriptor instead of a model."""
    if name not in DESCRIPTORS:
        raise EvaluationError(f"--descriptor: expected one of {', '.join(DESCRIPTORS)}, "
                              f"got {name!r}")
    described = {}
    for split in ("query", "gallery"):
        records: list[ImageRecord] = getattr(dataset, split)
        features = []
        for record in records:
            with Image.open(record.path) as image:
                features.append(hsv_descriptor(image))
        size = STRIPES * sum(BINS)
        described[split] = np.stack(features) if features else np.zeros((0, size))
    return dataset_feature_set(dataset, described["query"], described["gallery"])
