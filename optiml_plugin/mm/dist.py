"""Data-parallel training on CPUs (``gloo``), for ``tools/dist_train.sh`` without GPUs.

MMEngine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and wraps the model
with ``device_ids=[LOCAL_RANK]``; both fail on a machine without CUDA. When the
launcher is not ``none`` and CUDA is not available, :func:`prepare_cpu_distributed`
starts the ``gloo`` process group itself (MMEngine then skips its own) and swaps
MMEngine's default wrapper for :class:`CPUDistributedDataParallel`.
"""

from __future__ import annotations

import datetime
from typing import Any

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """MMEngine's DDP wrapper for a module on the CPU (no ``device_ids``)."""

    def __init__(self, module: torch.nn.Module, **kwargs: Any) -> None:
        kwargs.pop("device_ids", None)
        kwargs.pop("output_device", None)
        super().__init__(module=module, **kwargs)


def prepare_cpu_distributed(cfg: Config) -> bool:
    """Starts a ``gloo`` process group for a launched run on a machine without CUDA.

    Returns:
        Whether it did (``False`` without a launcher or with CUDA available).

    Raises:
        SystemExit: If the config asks for SyncBN, which needs GPUs.
    """
    if cfg.get("launcher", "none") == "none" or torch.cuda.is_available():
        return False
    if _uses_sync_bn(cfg.get("model", {})):
        raise SystemExit(
            "error: distributed training on CPUs cannot use SyncBN; set the "
            "norm_cfg types to BN (e.g. --cfg-options model.backbone.norm_cfg.type=BN)"
        )
    env_cfg = cfg.setdefault("env_cfg", {})
    dist_cfg = env_cfg.setdefault("dist_cfg", {})
    dist_cfg["backend"] = "gloo"  # what the run uses, and what its log says
    if not torch_dist.is_initialized():
        timeout = dist_cfg.get("timeout", 1800)
        torch_dist.init_process_group(
            backend="gloo", timeout=datetime.timedelta(seconds=timeout)
        )
    wrapper = dict(cfg.get("model_wrapper_cfg") or {})
    if wrapper.get("type", "MMDistributedDataParallel") == "MMDistributedDataParallel":
        wrapper["type"] = "CPUDistributedDataParallel"
        wrapper.setdefault("broadcast_buffers", False)
        wrapper.setdefault(
            "find_unused_parameters", cfg.get("find_unused_parameters", False)
        )
    cfg.model_wrapper_cfg = wrapper
    return True


def _uses_sync_bn(node: Any) -> bool:
    if isinstance(node, dict):
        if node.get("type") in ("SyncBN", "MMSyncBN"):
            return True
        return any(_uses_sync_bn(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_uses_sync_bn(v) for v in node)
    return False


def finish_distributed() -> None:
    """After a successful run: wait for every rank, then close the process group.

    Without it, the first rank to exit can tear down gloo's connections while
    another is still saving or logging.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
