"""Procedural synthetic chest radiographs ("phantoms") with exact lesion annotations.

A phantom is a frontal (PA-like) chest radiograph drawn from a handful of analytic
shapes. It is **synthetic**: it looks roughly like a chest X-ray, which is enough to
exercise the pretraining, evaluation and visualisation code without any patient
data, but it is *not* a medical or physical simulation and must not be used to
draw clinical conclusions.

The image is built as an attenuation map ``A`` (radiograph convention: bright means
dense / attenuating, dark means air) in a canonical body frame, then mapped through
a random pose (scale, shift, rotation of a few degrees). It models:

- the soft-tissue body outline (neck, shoulders, chest wall; thicker in the middle)
  against a dark background;
- two dark lung fields, slightly asymmetric, tapered to the apex, with lateral
  costophrenic angles and lung markings radiating from the hila;
- the mediastinum with the trachea, the aortic knob and the heart shadow, which
  extends more to the patient's left (image right);
- the spine (a vertical band with faint vertebral periodicity and disc spaces);
- posterior ribs (curved arcs across each lung, intercostal spacing growing
  downwards), faint anterior ribs and the clavicles;
- the diaphragm domes (right dome higher) with the denser upper abdomen below and
  an optional gastric bubble;
- exposure variation (gamma, contrast, brightness), a smooth low-frequency intensity
  field and signal-dependent (Poisson-like) Gaussian noise.

Optional lesions (:data:`LESION_CLASSES`) are added inside the lung fields:

- ``nodule``: a small, round, well-defined dense blob;
- ``opacity``: a larger, ill-defined, patchy region (thresholded sum of Gaussian
  blobs) that replaces part of the lung air;
- ``effusion``: fluid filling the bottom of one lung with a meniscus-shaped top
  edge (higher laterally), obliterating the costophrenic angle.

Annotations are exact: a lesion's contribution to the attenuation map is
soft-thresholded (``max(c - 0.02, 0)``, see ``_LESION_THRESHOLD``), so its mask is
exactly the set of pixels where it changes the attenuation, and its box is the
tight bounding box of that mask. Anatomy, exposure and noise come from random
streams that do not depend on the lesions, so the same seed with and without
lesions gives images that differ only inside the lesion masks.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from torch.utils.data import Dataset

LESION_CLASSES: tuple[str, ...] = ("nodule", "opacity", "effusion")

_NODULE, _OPACITY, _EFFUSION = range(len(LESION_CLASSES))
# Lesions are drawn effusions first, nodules last (a later lesion is "on top").
_DRAW_ORDER = {_EFFUSION: 0, _OPACITY: 1, _NODULE: 2}
# Soft threshold (attenuation units, soft tissue is about 0.6) subtracted from each
# lesion's contribution: the lesion mask is where the remaining contribution is > 0.
_LESION_THRESHOLD = 0.02
# Lesions must have at least this fraction of their mask inside their lung.
_MIN_INSIDE_LUNG = 0.95
_MAX_TRIES = 20
_MIN_SIZE = 64
_SEED_STRIDE = 1_000_003
_RIB_COUNT = 10  # posterior ribs per side
_RIGHT, _LEFT = 0, 1  # patient's right lung (image left), left lung (image right)


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


@dataclass(frozen=True)
class _Geometry:
    """Random anatomy and pose parameters, in canonical body coordinates.

    Canonical coordinates run from -1 (image left / top) to 1 (image right /
    bottom); per-side tuples are ``(right lung, left lung)``.
    """

    angle: float
    scale: float
    shift: tuple[float, float]
    body_half_width: float
    neck_half_width: float
    shoulder_y: float
    apex_y: tuple[float, float]
    dome_y: tuple[float, float]
    dome_depth: tuple[float, float]
    lung_width: tuple[float, float]
    medial_x: tuple[float, float]
    heart_center: tuple[float, float]
    heart_axes: tuple[float, float]
    heart_angle: float
    knob_center: tuple[float, float]
    knob_axes: tuple[float, float]
    spine_half_width: float
    vertebra_period: float
    vertebra_phase: float
    rib_knots: np.ndarray
    rib_rise: float
    rib_curve: float
    rib_side_offset: float
    clavicle_y: tuple[float, float]
    hilum_y: float
    vessel_phase: tuple[float, float, float, float]
    gastric_bubble: tuple[float, float, float] | None


@dataclass(frozen=True)
class _Exposure:
    """Random exposure parameters applied to the attenuation map."""

    gamma: float
    contrast: float
    brightness: float
    noise_sigma: float
    field: tuple[tuple[float, float, float, float], ...]


def _ramp(d: np.ndarray | float, width: float) -> np.ndarray:
    """Anti-aliased step: 0 for ``d <= -width/2``, 1 for ``d >= width/2``."""
    return np.clip(np.asarray(d, dtype=np.float32) / width + 0.5, 0.0, 1.0)


def _check_args(size: int, lesion_prob: float, max_lesions: int) -> None:
    """Raises ``ValueError`` for arguments ``generate_phantom`` cannot use."""
    if size < _MIN_SIZE:
        raise ValueError(f"size must be >= {_MIN_SIZE} pixels, got {size}.")
    if not 0.0 <= lesion_prob <= 1.0:
        raise ValueError(f"lesion_prob must be in [0, 1], got {lesion_prob}.")
    if max_lesions < 1:
        raise ValueError(f"max_lesions must be >= 1, got {max_lesions}.")


def _sample_geometry(rng: np.random.Generator) -> _Geometry:
    """Draws the per-image anatomy (sizes, asymmetries) and pose."""
    u = rng.uniform
    lung_width = u(0.68, 0.80)
    medial_left = u(0.08, 0.11)
    lung_height = u(0.92, 1.08)
    apex = -0.66 * lung_height + u(-0.03, 0.03)
    dome_right = 0.26 * lung_height + u(-0.04, 0.04)
    dome_left = dome_right + u(0.04, 0.10)  # right dome higher
    spacing = u(0.085, 0.10)
    growth = u(0.03, 0.07)
    first_rib = apex - u(0.08, 0.12)
    spacings = spacing * (1.0 + growth * np.arange(_RIB_COUNT + 1))
    knots = first_rib - spacings[0] + np.concatenate([[0.0], np.cumsum(spacings)])
    bubble = None
    if rng.random() < 0.6:
        bubble = (u(0.25, 0.4), dome_left + u(0.10, 0.16), u(0.06, 0.10))
    return _Geometry(
        angle=math.radians(u(-4.0, 4.0)),
        scale=u(0.90, 1.04),
        shift=(u(-0.04, 0.04), u(-0.03, 0.05)),
        body_half_width=u(0.86, 0.95),
        neck_half_width=u(0.18, 0.24),
        shoulder_y=u(-0.78, -0.70),
        apex_y=(apex, apex + u(-0.02, 0.03)),
        dome_y=(dome_right, dome_left),
        dome_depth=(u(0.16, 0.24), u(0.16, 0.24)),
        lung_width=(lung_width + u(-0.03, 0.03), lung_width + u(-0.03, 0.03)),
        medial_x=(u(0.08, 0.11), medial_left),
        heart_center=(u(0.09, 0.14), dome_left - u(0.10, 0.15)),
        heart_axes=(u(0.27, 0.33), u(0.19, 0.23)),
        heart_angle=math.radians(u(-32.0, -18.0)),
        knob_center=(medial_left, u(-0.36, -0.28)),
        knob_axes=(u(0.05, 0.07), u(0.07, 0.10)),
        spine_half_width=u(0.055, 0.07),
        vertebra_period=u(0.085, 0.10),
        vertebra_phase=u(0.0, 2 * math.pi),
        rib_knots=knots.astype(np.float32),
        rib_rise=u(0.40, 0.50),
        rib_curve=u(0.60, 0.75),
        rib_side_offset=u(-0.02, 0.02),
        clavicle_y=(u(-0.66, -0.58), u(-0.66, -0.58)),
        hilum_y=u(-0.12, -0.02),
        vessel_phase=(
            u(0, 2 * math.pi),
            u(0, 2 * math.pi),
            u(0, 2 * math.pi),
            u(0, 2 * math.pi),
        ),
        gastric_bubble=bubble,
    )


def _sample_exposure(rng: np.random.Generator) -> _Exposure:
    """Draws the exposure, low-frequency field and noise level."""
    u = rng.uniform
    field = tuple(
        (u(0.01, 0.04), u(-math.pi, math.pi), u(-math.pi, math.pi), u(0, 2 * math.pi))
        for _ in range(3)
    )
    return _Exposure(
        gamma=u(0.8, 1.25),
        contrast=u(0.85, 1.15),
        brightness=u(-0.06, 0.06),
        noise_sigma=u(0.006, 0.02),
        field=field,
    )


def _canonical_grid(size: int, geo: _Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Maps the pixel grid to canonical body coordinates through the random pose."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0
    dx = coords[None, :] - np.float32(geo.shift[0])
    dy = coords[:, None] - np.float32(geo.shift[1])
    c = np.float32(math.cos(geo.angle) / geo.scale)
    s = np.float32(math.sin(geo.angle) / geo.scale)
    return c * dx + s * dy, c * dy - s * dx


def _body(
    x: np.ndarray, y: np.ndarray, geo: _Geometry, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Returns the body's soft mask and its soft-tissue attenuation."""
    t = np.clip((y - (geo.shoulder_y - 0.22)) / 0.26, 0.0, 1.0)
    t = t * t * (3.0 - 2.0 * t)
    half_width = geo.neck_half_width + (geo.body_half_width - geo.neck_half_width) * t
    half_width = half_width - 0.06 * np.clip(y - 0.35, 0.0, None)
    ax = np.abs(x)
    inside = _ramp(half_width - ax, 1.5 * eps)
    chord = np.sqrt(np.clip(1.0 - np.square(ax / half_width), 0.0, 1.0))
    return inside, inside * (0.30 + 0.30 * chord)


def _lung(
    s: np.ndarray, y: np.ndarray, geo: _Geometry, side: int, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One lung field in side coordinates (``s`` grows laterally).

    Returns:
        The soft lung mask, a depth profile in [0, 1] (thin at the edges) and the
        height of the diaphragm line below this lung (for every ``s``).
    """
    top, dome, depth_cp = geo.apex_y[side], geo.dome_y[side], geo.dome_depth[side]
    lateral, medial = geo.lung_width[side], geo.medial_x[side]
    apex_s = medial + 0.32 * (lateral - medial)
    vertex_s = medial + 0.45 * (lateral - medial)
    t_lat = np.sqrt(np.clip((y - top) / 0.5, 0.0, 1.0))
    t_med = np.sqrt(np.clip((y - top) / 0.18, 0.0, 1.0))
    d_lat = apex_s + (lateral - apex_s) * t_lat - s
    d_med = s - (apex_s - (apex_s - medial) * t_med)
    q_lat = np.clip((s - vertex_s) / (lateral - vertex_s), 0.0, None)
    q_med = np.clip((vertex_s - s) / (vertex_s - medial), 0.0, None)
    diaphragm = dome + depth_cp * np.square(q_lat) + 0.25 * depth_cp * np.square(q_med)
    d_dia = diaphragm - y
    width = 1.5 * eps
    soft = _ramp(d_lat, width) * _ramp(d_med, width) * _ramp(d_dia, width)
    soft *= _ramp(y - top, width)
    depth = np.minimum(np.minimum(d_lat, d_med), d_dia)
    depth = np.sqrt(np.clip(depth / 0.14, 0.0, 1.0))
    # Overlying soft tissue: shoulder girdle at the apex, breasts at the base.
    depth *= 1.0 - 0.25 * np.clip((y - top - 0.55) / 0.45, 0.0, 1.0)
    depth *= 1.0 - 0.2 * np.clip((top + 0.25 - y) / 0.25, 0.0, 1.0)
    return soft, depth, diaphragm


def _ellipse(
    x: np.ndarray,
    y: np.ndarray,
    center: tuple[float, float],
    axes: tuple[float, float],
    angle: float,
    eps: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Soft mask and projected thickness (chord) of a rotated ellipse."""
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = x - center[0], y - center[1]
    r2 = np.square((c * dx + s * dy) / axes[0]) + np.square((c * dy - s * dx) / axes[1])
    r = np.sqrt(r2)
    soft = _ramp((1.0 - r) * min(axes), 1.5 * eps)
    return soft, np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))


def _spine(x: np.ndarray, y: np.ndarray, geo: _Geometry, eps: float) -> np.ndarray:
    """Vertebral column: a bright band with vertebral periodicity and discs."""
    half = geo.spine_half_width
    band = _ramp(half - np.abs(x), 1.5 * eps)
    cortex = 0.75 + 0.25 * np.square(x / half)
    wave = np.cos((2 * math.pi / geo.vertebra_period) * y + geo.vertebra_phase)
    disc = np.clip((wave - 0.8) / 0.2, 0.0, 1.0)
    return band * cortex * (0.065 + 0.015 * wave - 0.035 * disc)


def _ribs(
    x: np.ndarray, y: np.ndarray, geo: _Geometry, eps: float, body: np.ndarray
) -> np.ndarray:
    """Posterior ribs (arcs rising then falling laterally) and faint anterior ribs.

    Every rib follows the same curve ``y = y_k + g(s)``, so the rib index of a pixel
    is a monotone function of ``y - g(s)``; interpolating the rib knots (spacing
    growing downwards) gives a fractional rib phase for all ribs at once.
    """
    s = np.abs(x)
    g = -geo.rib_rise * s + geo.rib_curve * np.square(s)
    g = g + 2.0 * np.square(np.clip(s - 0.45, 0.0, None))
    u = y - g - np.float32(geo.rib_side_offset) * (x > 0)
    knots = geo.rib_knots
    index = np.arange(len(knots), dtype=np.float32) - 1.0
    phase = np.interp(u, knots, index).astype(np.float32)
    k = np.rint(phase)
    f = np.abs(phase - k)
    spacing = np.interp(k, index[:-1], np.diff(knots)).astype(np.float32)
    half = 0.21
    band = _ramp((half - f) * spacing, 2.0 * eps) * (0.7 + 0.3 * np.square(f / half))
    valid = (k >= 0) & (k <= len(knots) - 3)
    lateral = _ramp(s - 0.08, 0.04) * _ramp(geo.body_half_width - 0.04 - s, 0.06)
    posterior = band * valid * lateral
    # Anterior ribs: thin, faint bands running down towards the midline.
    v = y + 0.55 * np.square(np.clip(0.95 - s, 0.0, None)) - 0.25
    ant = np.cos((2 * math.pi / 0.19) * v)
    anterior = np.clip((ant - 0.55) / 0.45, 0.0, 1.0) * _ramp(s - 0.3, 0.1)
    anterior *= _ramp(0.35 - y, 0.2) * _ramp(y + 0.55, 0.1)
    return body * (0.075 * posterior + 0.02 * anterior)


def _clavicles(x: np.ndarray, y: np.ndarray, geo: _Geometry, eps: float) -> np.ndarray:
    """Clavicles: bright, slightly S-shaped near-horizontal bands at the top."""
    s = np.abs(x)
    cy = np.where(x < 0, geo.clavicle_y[0], geo.clavicle_y[1]).astype(np.float32)
    center = cy + 0.05 - 0.22 * s + 0.03 * np.sin(math.pi * s / 0.32)
    half = 0.02 + 0.02 * np.clip(0.4 - s, 0.0, None)
    d = np.abs(y - center)
    band = _ramp(half - d, 1.5 * eps) * (0.7 + 0.3 * np.square(d / half))
    return 0.12 * band * _ramp(s - 0.05, 0.02) * _ramp(0.64 - s, 0.04)


def _vessels(
    x: np.ndarray, y: np.ndarray, geo: _Geometry, lungs: np.ndarray
) -> np.ndarray:
    """Lung markings: branching-looking lines radiating from each hilum."""
    hx = np.where(x < 0, -0.17, 0.19).astype(np.float32)
    dx, dy = np.abs(x) - np.abs(hx), y - geo.hilum_y
    r = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx)
    p0, p1, p2, p3 = geo.vessel_phase
    w1 = np.cos(11.0 * theta + 2.5 * np.sin(4.0 * r + p0) + p1)
    w2 = np.cos(17.0 * theta + 3.0 * np.sin(7.0 * r + p2) + p3)
    w3 = np.cos(7.0 * theta + 2.0 * np.sin(3.0 * r + p3) + p0)
    lines = np.clip(
        (np.maximum(np.maximum(w1, 0.85 * w2), 0.9 * w3) - 0.6) / 0.4, 0.0, 1.0
    )
    fade = np.exp(-r / 0.3) * (1.0 - np.exp(-np.square(r / 0.12)))
    hilum = np.exp(-np.square(r / 0.07))
    return lungs * (0.09 * lines * fade + 0.10 * hilum)


def _anatomy(
    size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
    """Builds the lesion-free attenuation map.

    Returns:
        The attenuation map, the uint8 lung label mask, the per-side lung air
        attenuation (what lesions replacing air can fill) and the per-side soft
        lung masks stacked as (2, H, W).
    """
    geo = _sample_geometry(rng)
    x, y = _canonical_grid(size, geo)
    eps = 2.0 / (size * geo.scale)
    body, tissue = _body(x, y, geo, eps)
    heart, heart_chord = _ellipse(
        x, y, geo.heart_center, geo.heart_axes, geo.heart_angle, eps
    )
    knob, knob_chord = _ellipse(x, y, geo.knob_center, geo.knob_axes, 0.0, eps)
    outside_heart = (1.0 - heart) * (1.0 - knob)

    softs, airs = [], []
    diaphragm = np.zeros_like(x)
    for side, sign in ((_RIGHT, -1.0), (_LEFT, 1.0)):
        soft, depth, dia = _lung(sign * x, y, geo, side, eps)
        soft *= outside_heart
        softs.append(soft)
        airs.append(soft * depth)
        diaphragm = np.where(sign * x >= 0, dia, diaphragm)

    lungs = softs[0] + softs[1]
    atten = tissue
    atten += body * (0.09 * _ramp(0.2 - np.abs(x), 0.12))  # mediastinum
    atten += body * _spine(x, y, geo, eps)
    abdomen = _ramp(y - diaphragm, 3.0 * eps)
    atten += 0.04 * heart * (0.5 + 0.5 * heart_chord) * (1.0 - abdomen)
    atten += 0.05 * knob * knob_chord
    atten += body * 0.08 * abdomen
    trachea = _ramp(0.028 - np.abs(x - 0.01), 1.5 * eps) * _ramp(-0.22 - y, 0.06)
    atten -= 0.07 * trachea * body
    if geo.gastric_bubble is not None:
        bx, by, br = geo.gastric_bubble
        bubble, _ = _ellipse(x, y, (bx, by), (br, 0.7 * br), 0.0, eps)
        atten -= 0.12 * bubble * abdomen * body
    atten += _ribs(x, y, geo, eps, body)
    atten += body * _clavicles(x, y, geo, eps)
    atten += _vessels(x, y, geo, lungs)
    texture = _smooth_noise(rng, size, 6) + 0.6 * _smooth_noise(rng, size, 20)
    atten += 0.06 * texture * lungs

    air_coef = rng.uniform(0.34, 0.40)
    air = [np.float32(air_coef) * a for a in airs]
    atten -= air[0] + air[1]

    lung_mask = np.zeros((size, size), dtype=np.uint8)
    for label, soft in enumerate(softs, start=1):
        lung_mask[_largest_component(soft >= 0.5)] = label
    return atten.astype(np.float32), lung_mask, air, np.stack(softs)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Noise smooth over about ``size / cells`` pixels (std about 0.4).

    A coarse ``cells x cells`` grid of Gaussian values is upsampled separably with
    Gaussian interpolation weights (two small matrix products: fast).
    """
    coarse = rng.standard_normal((cells + 2, cells + 2)).astype(np.float32)
    position = (np.arange(size, dtype=np.float32) + 0.5) * (cells / size) + 0.5
    offsets = position[:, None] - np.arange(cells + 2, dtype=np.float32)[None, :]
    weights = np.exp(-0.5 * np.square(offsets / 0.7))
    weights /= weights.sum(axis=1, keepdims=True)
    return weights @ coarse @ weights.T


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """Keeps the largest 4-connected component of a boolean mask."""
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _window(
    center: tuple[int, int], radius: int, size: int
) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """Square window around ``(row, col)`` clipped to the image, with coordinates."""
    r0, r1 = max(center[0] - radius, 0), min(center[0] + radius + 1, size)
    c0, c1 = max(center[1] - radius, 0), min(center[1] + radius + 1, size)
    rows = np.arange(r0, r1, dtype=np.float32)[:, None]
    cols = np.arange(c0, c1, dtype=np.float32)[None, :]
    return slice(r0, r1), slice(c0, c1), rows, cols


def _pick_pixel(
    rng: np.random.Generator, candidates: np.ndarray
) -> tuple[int, int] | None:
    """Picks a random ``(row, col)`` among the True pixels of a mask."""
    flat = np.flatnonzero(candidates)
    if flat.size == 0:
        return None
    index = int(flat[rng.integers(flat.size)])
    return divmod(index, candidates.shape[1])


def _nodule(
    rng: np.random.Generator, lung: np.ndarray, size: int
) -> tuple[np.ndarray, tuple[slice, slice]] | None:
    """A round, well-defined, slightly lobulated dense blob (projected sphere)."""
    center = _pick_pixel(rng, lung)
    if center is None:
        return None
    radius = max(rng.uniform(0.012, 0.03) * size, 2.5)
    rs, cs, rows, cols = _window(center, int(radius * 1.2) + 2, size)
    dy, dx = rows - center[0], cols - center[1]
    theta = np.arctan2(dy, dx)
    lobes = 1.0 + rng.uniform(0.0, 0.08) * np.cos(3 * theta + rng.uniform(0, 6.3))
    r2 = (dx * dx + dy * dy) / np.square(radius * lobes)
    amplitude = rng.uniform(0.12, 0.24)
    return amplitude * np.sqrt(np.clip(1.0 - r2, 0.0, 1.0)), (rs, cs)


def _opacity(
    rng: np.random.Generator,
    air: np.ndarray,
    soft: np.ndarray,
    size: int,
) -> tuple[np.ndarray, tuple[slice, slice]] | None:
    """An ill-defined patchy region: thresholded sum of blurred blobs filling air."""
    center = _pick_pixel(rng, air > 0.6 * air.max())
    if center is None:
        return None
    extent = rng.uniform(0.05, 0.10) * size
    rs, cs, rows, cols = _window(center, int(1.6 * extent) + 2, size)
    field = np.zeros((rows.size, cols.size), dtype=np.float32)
    for _ in range(int(rng.integers(3, 7))):
        by, bx = np.asarray(center) + rng.normal(0.0, 0.4 * extent, size=2)
        sigma = rng.uniform(0.35, 0.6) * extent
        weight = rng.uniform(0.6, 1.0)
        field += weight * np.exp(
            -(np.square(rows - by) + np.square(cols - bx)) / (2 * sigma * sigma)
        )
    mottle = ndimage.gaussian_filter(
        rng.standard_normal(field.shape).astype(np.float32), 2.0
    )
    field *= 1.0 + 0.8 * mottle
    peak = float(field.max())
    patch = np.square(np.clip((field - 0.25 * peak) / (0.6 * peak), 0.0, 1.0))
    fill = rng.uniform(0.5, 0.8)
    contribution = patch * (fill * air[rs, cs] + 0.04 * soft[rs, cs])
    return contribution, (rs, cs)


def _effusion(
    rng: np.random.Generator,
    air: np.ndarray,
    soft: np.ndarray,
    lung: np.ndarray,
    side: int,
) -> tuple[np.ndarray, tuple[slice, slice]] | None:
    """Fluid in the bottom of one lung, with a meniscus rising laterally."""
    rows = np.flatnonzero(lung.any(axis=1))
    cols = np.flatnonzero(lung.any(axis=0))
    if rows.size < 4 or cols.size < 4:
        return None
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    height = r1 - r0
    level = r1 - rng.uniform(0.15, 0.35) * height
    meniscus = rng.uniform(0.08, 0.22) * height
    yy = np.arange(r0, r1, dtype=np.float32)[:, None]
    xx = np.arange(c0, c1, dtype=np.float32)[None, :]
    lateral = (xx - c0) / (c1 - c0)
    if side == _RIGHT:  # lateral is image left
        lateral = 1.0 - lateral
    top = level - meniscus * np.square(lateral)
    ramp = np.clip((yy - top) / (0.06 * height), 0.0, 1.0)
    rs, cs = slice(r0, r1), slice(c0, c1)
    fill = rng.uniform(0.75, 0.95)
    contribution = ramp * (fill * air[rs, cs] + 0.06 * soft[rs, cs])
    return contribution, (rs, cs)


def _lesions(
    rng: np.random.Generator,
    lung_mask: np.ndarray,
    airs: list[np.ndarray],
    softs: np.ndarray,
    lesion_prob: float,
    max_lesions: int,
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Draws the lesions; returns ``(class, mask, contribution)`` in drawing order.

    Each contribution is soft-thresholded, so the mask is exactly its support.
    A lesion is redrawn until at least ``_MIN_INSIDE_LUNG`` of its mask lies in its
    lung (after ``_MAX_TRIES`` it is clipped to the lung).
    """
    size = lung_mask.shape[0]
    has_lesion = rng.random() < lesion_prob
    count = int(rng.integers(1, max_lesions + 1))
    classes = rng.integers(0, len(LESION_CLASSES), size=count)
    sides = rng.integers(0, 2, size=count)
    if not has_lesion:
        return []
    effusion_sides: set[int] = set()
    plan = []
    for cls, side in zip(classes.tolist(), sides.tolist(), strict=True):
        if cls == _EFFUSION:
            if side in effusion_sides:
                side = 1 - side
            if side in effusion_sides:
                cls = _NODULE
            else:
                effusion_sides.add(side)
        plan.append((cls, side))
    plan.sort(key=lambda item: _DRAW_ORDER[item[0]])

    out = []
    for cls, side in plan:
        lung = lung_mask == side + 1
        if not lung.any():
            continue
        for attempt in range(_MAX_TRIES):
            if cls == _NODULE:
                drawn = _nodule(rng, lung, size)
            elif cls == _OPACITY:
                drawn = _opacity(rng, airs[side], softs[side], size)
            else:
                drawn = _effusion(rng, airs[side], softs[side], lung, side)
            if drawn is None:
                continue
            local, (rs, cs) = drawn
            local = np.maximum(local - _LESION_THRESHOLD, 0.0).astype(np.float32)
            if attempt == _MAX_TRIES - 1:
                local *= lung[rs, cs]
            support = local > 0
            inside = np.count_nonzero(support & lung[rs, cs])
            total = np.count_nonzero(support)
            if total and inside >= _MIN_INSIDE_LUNG * total:
                contribution = np.zeros(lung_mask.shape, dtype=np.float32)
                contribution[rs, cs] = local
                out.append((cls, contribution > 0, contribution))
                break
    return out


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
    seed: int, size: int = 256, lesion_prob: float = 0.5, max_lesions: int = 3
) -> Phantom:
    """Generates one synthetic chest radiograph (deterministic in its arguments).

    Args:
        seed: Non-negative seed; the same arguments give a bit-identical phantom.
        size: Side of the square image in pixels (>= 64).
        lesion_prob: Probability that the image has any lesion; then 1 to
            ``max_lesions`` lesions of random classes are drawn (a lesion that
            cannot be placed is dropped, which is rare).
        max_lesions: Maximum number of lesions (>= 1).

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
    anatomy_rng, lesion_rng, noise_rng = np.random.default_rng(seed).spawn(3)

    clean, lung_mask, airs, softs = _anatomy(size, anatomy_rng)
    exposure = _sample_exposure(noise_rng)
    noise = noise_rng.standard_normal((size, size), dtype=np.float32)
    field = _low_frequency_field(size, exposure)
    lesions = _lesions(lesion_rng, lung_mask, airs, softs, lesion_prob, max_lesions)

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


class PhantomDataset(Dataset):
    """A fixed, deterministic set of synthetic chest radiographs.

    Image ``i`` is ``generate_phantom(seed * 1_000_003 + i, ...)``; phantoms are
    generated on the fly (nothing is cached).

    Args:
        num_images: Number of images (>= 1).
        size: Side of the square images in pixels (>= 64).
        seed: Non-negative dataset seed.
        transform: Applied to each PIL image (mode ``L``).
        lesion_prob: Probability that an image has any lesion.
        max_lesions: Maximum number of lesions per image.

    Returns from ``__getitem__``: ``(transform(image) or image, image_labels)``
    with ``image_labels`` a float32 multi-hot tensor over :data:`LESION_CLASSES`.
    """

    def __init__(
        self,
        num_images: int = 256,
        size: int = 256,
        seed: int = 0,
        transform: Callable[[Image.Image], Any] | None = None,
        lesion_prob: float = 0.5,
        max_lesions: int = 3,
    ) -> None:
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}.")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}.")
        _check_args(size, lesion_prob, max_lesions)
        self.num_images = int(num_images)
        self.size = int(size)
        self.seed = int(seed)
        self.transform = transform
        self.lesion_prob = float(lesion_prob)
        self.max_lesions = int(max_lesions)

    def __len__(self) -> int:
        return self.num_images

    def _checked_index(self, index: int) -> int:
        """Returns ``index`` as a non-negative int, or raises ``IndexError``."""
        index = operator.index(index)
        if index < 0:
            index += self.num_images
        if not 0 <= index < self.num_images:
            raise IndexError(
                f"index out of range for PhantomDataset of {self.num_images} images."
            )
        return index

    def phantom(self, index: int) -> Phantom:
        """Returns the full phantom (image, masks, boxes) of image ``index``."""
        index = self._checked_index(index)
        return generate_phantom(
            self.seed * _SEED_STRIDE + index,
            size=self.size,
            lesion_prob=self.lesion_prob,
            max_lesions=self.max_lesions,
        )

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        phantom = self.phantom(index)
        image = phantom.to_pil()
        sample = self.transform(image) if self.transform else image
        return sample, torch.tensor(phantom.image_labels)
