"""Shared by the OpenMMLab tests: tools/train.py arguments and booby-trapped pickles."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
DET = REPO / "configs" / "mmdet"
SEG = REPO / "configs" / "mmseg"
CPU_LOADERS = [
    f"{loader}.{key}"
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader")
    for key in ("num_workers=0", "persistent_workers=False")
]


def cpu_options() -> list[str]:
    """CPU loaders, and a visualizer of its own: MMEngine keeps one instance per name
    per process, so a second run in this process would log into the first's folder."""
    return [*CPU_LOADERS, f"visualizer.name=vis_{uuid.uuid4().hex}"]


def train_args(
    config: Path, work: Path, data_root: Path, backbone: Path, *options: str
) -> list[str]:
    """tools/train.py arguments: config, work dir, data root, backbone file, options."""
    return [
        str(config),
        "--work-dir",
        str(work),
        "--data-root",
        str(data_root),
        "--cfg-options",
        f"model.backbone.init_cfg.checkpoint={backbone}",
        *options,
        *cpu_options(),
    ]


def scalars(work_dir: Path) -> list[dict]:
    """The run's ``vis_data/scalars.json`` lines."""
    (path,) = work_dir.glob("*/vis_data/scalars.json")
    return [json.loads(line) for line in path.read_text().splitlines()]


class Trap:
    """A booby trap: unpickling it runs ``exec``, which writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('the pickle ran')",))


def booby_trap(data: dict, path: Path, marker: Path) -> Path:
    """``data`` plus a :class:`Trap`, saved with ``torch.save``: a real checkpoint
    whose loading runs code unless the loader refuses ``builtins.exec``."""
    torch.save({"trap": Trap(marker), **data}, path)  # the trap pickled first
    return path
