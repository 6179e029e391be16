"""OPTiML backbones in OpenMMLab (needs the ``[mm]`` extra and a built mmcv).

Importing this package registers, in MMEngine's root registries (so that mmdet
and mmseg configs both find them by ``type``):

* ``OPTiMLResNet`` (``MODELS``): torchvision ResNet loading an exported OPTiML
  backbone strictly.
* ``LoadChestXray`` (``TRANSFORMS``): PNG / JPEG / DICOM radiograph loading.
* ``CPUDistributedDataParallel`` (``MODEL_WRAPPERS``): DDP over ``gloo`` on CPUs.

It also makes :func:`optiml_plugin.mm.checkpoint.load_local` MMEngine's loader for
local checkpoint files: tensors only, unless a run names a file as an MMEngine
checkpoint (see that module for the trust model).

mmdet datasets live in :mod:`optiml_plugin.mm.det`, mmseg datasets and metrics in
:mod:`optiml_plugin.mm.seg`; configs import the one they need through
``custom_imports``.
"""

from optiml_plugin.mm import checkpoint
from optiml_plugin.mm.backbone import (
    BackboneCheckpointError,
    OPTiMLResNet,
    read_backbone_state,
)
from optiml_plugin.mm.checkpoint import (
    UnsafeCheckpointError,
    load_mmengine_checkpoint,
    load_tensors,
    mmengine_checkpoints,
)
from optiml_plugin.mm.dist import CPUDistributedDataParallel
from optiml_plugin.mm.transforms import LoadChestXray

checkpoint.register()

__all__ = [
    "BackboneCheckpointError",
    "CPUDistributedDataParallel",
    "LoadChestXray",
    "OPTiMLResNet",
    "UnsafeCheckpointError",
    "load_mmengine_checkpoint",
    "load_tensors",
    "mmengine_checkpoints",
    "read_backbone_state",
]
