"""Reading dataset images: the one loader every stage (re-id, refiners) uses."""

from __future__ import annotations

import numpy as np
from PIL import Image


def load_resized(path, height: int, width: int) -> np.ndarray:
    """An image as RGB uint8 pixels (height, width, 3), resized bilinearly."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR))
