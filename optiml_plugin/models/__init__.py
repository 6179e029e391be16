"""OPTiML model components."""

from optiml_plugin.models.cvsim import CVSIM
from optiml_plugin.models.heads import OPTiMLDenseProjectionHead, OPTiMLProjectionHead
from optiml_plugin.models.optiml import OPTiML, OPTiMLOutput, resnet_backbone

__all__ = [
    "CVSIM",
    "OPTiML",
    "OPTiMLDenseProjectionHead",
    "OPTiMLOutput",
    "OPTiMLProjectionHead",
    "resnet_backbone",
]
