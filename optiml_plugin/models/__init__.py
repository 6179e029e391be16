"""OPTiML model components."""

from optiml_plugin.models.cvsim import CVSIM
from optiml_plugin.models.heads import OPTiMLDenseProjectionHead, OPTiMLProjectionHead
from optiml_plugin.models.optiml import (
    PADDING_MODES,
    OPTiML,
    OPTiMLOutput,
    resnet_backbone,
    set_padding_mode,
)

__all__ = [
    "PADDING_MODES",
    "CVSIM",
    "OPTiML",
    "OPTiMLDenseProjectionHead",
    "OPTiMLOutput",
    "OPTiMLProjectionHead",
    "resnet_backbone",
    "set_padding_mode",
]
