"""Random anatomy, pose and exposure parameters of a phantom, and its canonical grid."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optiml_plugin.data.phantom.params import _MIN_SIZE, _RIB_COUNT


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
