"""The anatomy of a phantom's attenuation map: body, lungs, mediastinum, spine, ribs,
clavicles, vessels and diaphragm."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from optiml_plugin.data.phantom.geometry import (
    _canonical_grid,
    _Geometry,
    _ramp,
    _sample_geometry,
)
from optiml_plugin.data.phantom.params import _LEFT, _RIGHT


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
