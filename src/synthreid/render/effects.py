"""Camera effects on a rendered crop (numpy and PIL; no Blender): what separates a clean render
from a real re-id camera's crop. Applied in the order a camera applies them: exposure and white
balance on the scene's light, defocus and motion blur through the lens, then the sensor's
resolution, its noise, and JPEG compression of the stream. The person mask follows every
geometric change (resampling) and ignores the photometric ones.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image
from scipy import ndimage

from synthreid.scene.spec import EffectsSpec


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """A straight line of `length` pixels at `angle`, anti-aliased, summing to 1."""
    size = max(1, int(math.ceil(length)) | 1)  # odd, so the blur is centred
    kernel = np.zeros((size * 4 + 1, size * 4 + 1))
    centre = size * 2
    for t in np.linspace(-length / 2, length / 2, max(2, int(length * 8))):
        x, y = centre + t * math.cos(angle), centre - t * math.sin(angle)
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        kernel[y0, x0] += (1 - fx) * (1 - fy)
        kernel[y0, x0 + 1] += fx * (1 - fy)
        kernel[y0 + 1, x0] += (1 - fx) * fy
        kernel[y0 + 1, x0 + 1] += fx * fy
    return kernel / kernel.sum()


def apply_effects(rgb: np.ndarray, mask: np.ndarray,
                  effects: EffectsSpec) -> tuple[np.ndarray, np.ndarray]:
    """(rgb, mask) after the effects: HxWx3 uint8 and HxW bool in, the same types out (a new
    size when `height_px` is set; the aspect ratio is kept)."""
    pixels = rgb.astype(np.float32)
    pixels *= effects.exposure * np.asarray(effects.gains, np.float32)
    pixels = np.clip(pixels, 0, 255)
    if effects.defocus_sigma_px > 0:
        pixels = ndimage.gaussian_filter(pixels, (effects.defocus_sigma_px,
                                                  effects.defocus_sigma_px, 0), mode="nearest")
    if effects.motion_blur_px > 0:
        kernel = motion_kernel(effects.motion_blur_px, effects.motion_angle)
        pixels = np.stack([ndimage.convolve(pixels[..., c], kernel, mode="nearest")
                           for c in range(3)], axis=-1)
    image = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))
    if effects.height_px is not None and effects.height_px != image.height:
        width = max(1, round(image.width * effects.height_px / image.height))
        # Area averaging when shrinking, as a sensor integrates light over its larger pixels.
        image = image.resize((width, effects.height_px), Image.BOX
                             if effects.height_px < image.height else Image.BICUBIC)
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255)
                          .resize((width, effects.height_px), Image.NEAREST)) > 127
    if effects.noise_sigma > 0:
        noise = np.random.default_rng(effects.noise_seed).normal(
            0, effects.noise_sigma, (image.height, image.width, 3))
        image = Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).round()
                                .astype(np.uint8))
    if effects.jpeg_quality is not None:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=effects.jpeg_quality)
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return np.asarray(image), mask


def high_frequency_energy(rgb: np.ndarray) -> float:
    """Mean squared Laplacian of the grey image: falls when an image gets blurrier."""
    grey = rgb.astype(np.float64).mean(axis=-1)
    return float((ndimage.laplace(grey) ** 2).mean())


