"""OPTiML backbones in OpenMMLab (needs the ``[mm]`` extra and a built mmcv).

Importing this package registers, in MMEngine's root registries (so that mmdet
and mmseg configs both find them by ``type``):

* ``OPTiMLResNet`` (``MODELS``): torchvision ResNet loading an exported OPTiML
  backbone strictly.
* ``LoadChestXray`` (``TRANSFORMS``): PNG / JPEG / DICOM radiograph loading.

mmdet datasets live in :mod:`optiml_plugin.mm.det`, mmseg datasets and metrics in
:mod:`optiml_plugin.mm.seg`; configs import the one they need through
``custom_imports``.
"""

from optiml_plugin.mm.backbone import (
    BackboneCheckpointError,
    OPTiMLResNet,
    read_backbone_state,
)
from optiml_plugin.mm.compat import trust_checkpoints
from optiml_plugin.mm.transforms import LoadChestXray

__all__ = [
    "BackboneCheckpointError",
    "LoadChestXray",
    "OPTiMLResNet",
    "read_backbone_state",
    "trust_checkpoints",
]
