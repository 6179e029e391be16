"""mmdet side: chest X-ray detection datasets (imports mmdet)."""

import optiml_plugin.mm  # noqa: F401  (backbone and LoadChestXray)
from optiml_plugin.mm.det.datasets import (
    PhantomLesionDataset,
    RSNAPneumoniaDataset,
    VinDrCXRDataset,
)
from optiml_plugin.mm.det.metrics import RSNAPneumoniaMetric, ThresholdCocoMetric

__all__ = [
    "PhantomLesionDataset",
    "RSNAPneumoniaDataset",
    "RSNAPneumoniaMetric",
    "ThresholdCocoMetric",
    "VinDrCXRDataset",
]
