"""mmseg side: chest X-ray segmentation datasets and per-image Dice (imports mmseg)."""

import optiml_plugin.mm  # noqa: F401  (backbone and LoadChestXray)
from optiml_plugin.mm.seg.datasets import (
    ChestXrayLungDataset,
    PhantomSegDataset,
    SIIMPneumothoraxDataset,
)
from optiml_plugin.mm.seg.metrics import PerImageDiceMetric

__all__ = [
    "ChestXrayLungDataset",
    "PerImageDiceMetric",
    "PhantomSegDataset",
    "SIIMPneumothoraxDataset",
]
