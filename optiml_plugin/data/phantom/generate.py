"""One phantom: anatomy, lesions, exposure and noise (:func:`generate_phantom`)."""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from optiml_plugin.data.phantom.anatomy import _anatomy
from optiml_plugin.data.phantom.geometry import _check_args, _Exposure, _sample_exposure
from optiml_plugin.data.phantom.lesions import _lesions
from optiml_plugin.data.phantom.params import LESION_CLASSES


@dataclass
class Phantom:
    """One synthetic chest radiograph with its masks and lesion annotations.

    Attributes:
        image: (H, W) uint8 radiograph, bright = dense.
        lung_mask: (H, W) uint8, 0 background, 1 right lung (image left), 2 left
            lung (image right).
        lesion_mask: (H, W) uint8, 0 none, else 1 + index into
            :data:`LESION_CLASSES` of the lesion on top (the last one drawn).
        boxes: (K, 4) float32 boxes ``x1, y1, x2, y2`` in pixels, the tight
            bounding box of each lesion's mask with exclusive ``x2`` / ``y2``
            (``x2 = max column + 1``).
        box_labels: (K,) int64 index into :data:`LESION_CLASSES`.
        image_labels: (len(LESION_CLASSES),) float32 multi-hot of present classes.
        seed: Seed the phantom was generated from.
        lesion_instance_masks: (K, H, W) bool mask of each lesion (before
            overlaps are resolved); always set by :func:`generate_phantom`.
    """

    image: np.ndarray
    lung_mask: np.ndarray
    lesion_mask: np.ndarray
    boxes: np.ndarray
    box_labels: np.ndarray
    image_labels: np.ndarray
    seed: int
    lesion_instance_masks: np.ndarray | None = None

    def to_pil(self) -> Image.Image:
        """Returns the radiograph as a PIL image in mode ``L``."""
        return Image.fromarray(self.image)


def _expose(
    atten: np.ndarray,
    clean: np.ndarray,
    exposure: _Exposure,
    noise: np.ndarray,
    field: np.ndarray,
) -> np.ndarray:
    """Maps attenuation to a uint8 radiograph (monotone in ``atten`` per pixel).

    Noise is Poisson-like: its standard deviation grows with the lesion-free
    attenuation ``clean``, so adding a lesion never changes pixels outside it.
    """
    sigma = exposure.noise_sigma * np.sqrt(0.15 + np.clip(clean, 0.0, None))
    value = np.clip(atten + sigma * noise, 0.0, 1.0) ** exposure.gamma
    value = (exposure.contrast * value + exposure.brightness) * field
    return np.clip(value * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)


def _low_frequency_field(size: int, exposure: _Exposure) -> np.ndarray:
    """Smooth multiplicative intensity variation (a few long-wavelength waves)."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0
    field = np.ones((size, size), dtype=np.float32)
    for amplitude, fx, fy, phase in exposure.field:
        field += amplitude * np.cos(fx * coords[None, :] + fy * coords[:, None] + phase)
    return field


def generate_phantom(
    seed: int,
    size: int = 256,
    lesion_prob: float = 0.5,
    max_lesions: int = 3,
    lesion_scale: float = 1.0,
) -> Phantom:
    """Generates one synthetic chest radiograph (deterministic in its arguments).

    Args:
        seed: Non-negative seed; the same arguments give a bit-identical phantom.
        size: Side of the square image in pixels (>= 64).
        lesion_prob: Probability that the image has any lesion; then 1 to
            ``max_lesions`` lesions of random classes are drawn (a lesion that
            cannot be placed is dropped, which is rare).
        max_lesions: Maximum number of lesions (>= 1).
        lesion_scale: Size factor of nodules and opacities (> 0); 1 keeps the
            defaults (nodule radius 1.2-3 % of ``size``, opacity extent 5-10 %).

    Returns:
        The phantom. The anatomy, exposure and noise depend only on ``seed`` and
        ``size``, so switching ``lesion_prob`` between 0 and 1 changes only the
        pixels inside the lesion masks (and never darkens them).

    Raises:
        ValueError: For a negative seed or an argument out of range.
    """
    seed = operator.index(seed)
    size = operator.index(size)
    max_lesions = operator.index(max_lesions)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}.")
    _check_args(size, lesion_prob, max_lesions)
    if not lesion_scale > 0:
        raise ValueError(f"lesion_scale must be > 0, got {lesion_scale}.")
    anatomy_rng, lesion_rng, noise_rng = np.random.default_rng(seed).spawn(3)

    clean, lung_mask, airs, softs = _anatomy(size, anatomy_rng)
    exposure = _sample_exposure(noise_rng)
    noise = noise_rng.standard_normal((size, size), dtype=np.float32)
    field = _low_frequency_field(size, exposure)
    lesions = _lesions(
        lesion_rng, lung_mask, airs, softs, lesion_prob, max_lesions, lesion_scale
    )

    atten = clean
    lesion_mask = np.zeros((size, size), dtype=np.uint8)
    if lesions:
        atten = clean.copy()
        for cls, mask, contribution in lesions:
            atten += contribution
            lesion_mask[mask] = cls + 1
    image = _expose(atten, clean, exposure, noise, field)

    masks = np.zeros((len(lesions), size, size), dtype=bool)
    boxes = np.zeros((len(lesions), 4), dtype=np.float32)
    labels = np.zeros(len(lesions), dtype=np.int64)
    for k, (cls, mask, _) in enumerate(lesions):
        masks[k] = mask
        boxes[k] = _tight_box(mask)
        labels[k] = cls
    image_labels = np.zeros(len(LESION_CLASSES), dtype=np.float32)
    image_labels[labels] = 1.0
    return Phantom(
        image=image,
        lung_mask=lung_mask,
        lesion_mask=lesion_mask,
        boxes=boxes,
        box_labels=labels,
        image_labels=image_labels,
        seed=seed,
        lesion_instance_masks=masks,
    )


def _tight_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Tight ``x1, y1, x2, y2`` box of a non-empty mask (x2, y2 exclusive)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)
