"""Constants of the phantom generator: lesion classes, drawing order, thresholds."""

from __future__ import annotations

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
