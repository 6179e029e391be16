"""Lesions inside the lung fields: nodules, opacities and effusions, with exact masks."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from optiml_plugin.data.phantom.params import (
    _DRAW_ORDER,
    _EFFUSION,
    _LESION_THRESHOLD,
    _MAX_TRIES,
    _MIN_INSIDE_LUNG,
    _NODULE,
    _OPACITY,
    _RIGHT,
    LESION_CLASSES,
)


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
    rng: np.random.Generator, lung: np.ndarray, size: int, scale: float = 1.0
) -> tuple[np.ndarray, tuple[slice, slice]] | None:
    """A round, well-defined, slightly lobulated dense blob (projected sphere);
    radius 1.2-3 % of the image side times ``scale``."""
    center = _pick_pixel(rng, lung)
    if center is None:
        return None
    radius = max(rng.uniform(0.012, 0.03) * scale * size, 2.5)
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
    scale: float = 1.0,
) -> tuple[np.ndarray, tuple[slice, slice]] | None:
    """An ill-defined patchy region: thresholded sum of blurred blobs filling air;
    extent 5-10 % of the image side times ``scale``."""
    center = _pick_pixel(rng, air > 0.6 * air.max())
    if center is None:
        return None
    extent = rng.uniform(0.05, 0.10) * scale * size
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
    lesion_scale: float = 1.0,
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Draws the lesions; returns ``(class, mask, contribution)`` in drawing order.

    ``lesion_scale`` multiplies the size of nodules and opacities (effusions
    already span a lung's base).

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
                drawn = _nodule(rng, lung, size, lesion_scale)
            elif cls == _OPACITY:
                drawn = _opacity(rng, airs[side], softs[side], size, lesion_scale)
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
