"""Compatibility of MMEngine 0.10 with current torch: one shim, scoped to trusted paths.

torch >= 2.6 loads with ``weights_only=True`` by default. MMEngine's own training
checkpoints (``epoch_N.pth`` / ``iter_N.pth``) pickle ``HistoryBuffer``, numpy
scalars and ``getattr`` calls, so resuming a run fails with ``UnpicklingError``
(seen with mmengine 0.10.7 and torch 2.14.1; ``tests/mm/test_resume.py`` checks the
failure is real). Full unpickling can run code, so it is not switched on for the
process: :func:`trust_checkpoints` names the files or folders (a run's own
``work_dir``) whose checkpoints may be fully unpickled, and every other local file,
pretrained weights included, keeps torch's default.

The one numpy 2 incompatibility met (mmdet's ``CocoMetric`` with a list of IoU
thresholds) is worked around where it is used, by
:class:`optiml_plugin.mm.det.metrics.ThresholdCocoMetric`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from mmengine.runner.checkpoint import CheckpointLoader

_TRUSTED: set[Path] = set()


def trust_checkpoints(*paths: str | os.PathLike[str]) -> None:
    """Lets MMEngine fully unpickle checkpoints at (or under) ``paths``."""
    _TRUSTED.update(Path(p).expanduser().resolve() for p in paths)
    CheckpointLoader.register_scheme(prefixes="", loader=_load_from_local, force=True)


def is_trusted(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is one of, or lies under, the trusted paths."""
    path = Path(path).expanduser().resolve()
    return any(path == t or t in path.parents for t in _TRUSTED)


def _load_from_local(filename: str, map_location: Any) -> Any:
    path = Path(filename).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{filename} can not be found.")
    if is_trusted(path):
        return torch.load(path, map_location=map_location, weights_only=False)
    return torch.load(path, map_location=map_location)
