"""optiml-plugin: OPTiML self-supervised pretraining for chest radiographs.

OPTiML [0] aligns the dense features of two views of a radiograph with an entropic
optimal-transport plan, regularised by VICReg's variance and covariance terms,
after a cross-viewpoint semantics infusion module (CV-SIM).

- [0] Singh, Gorade, Mishra. OPTiML: Dense Semantic Invariance Using Optimal
  Transport for Self-Supervised Medical Image Representation. arXiv 2404.11868.
"""

from optiml_plugin.loss import OPTiMLLoss
from optiml_plugin.models import (
    CVSIM,
    OPTiML,
    OPTiMLDenseProjectionHead,
    OPTiMLOutput,
    OPTiMLProjectionHead,
)
from optiml_plugin.transforms import CVSIMTransform

__version__ = "0.1.0"

__all__ = [
    "CVSIM",
    "CVSIMTransform",
    "OPTiML",
    "OPTiMLDenseProjectionHead",
    "OPTiMLLoss",
    "OPTiMLOutput",
    "OPTiMLProjectionHead",
    "__version__",
]
