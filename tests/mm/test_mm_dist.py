"""Two-process data-parallel training on the CPU (gloo) through tools/dist_train.sh.

Both ranks build the phantom dataset in the same empty folder at once (the write
lock's real use) and train a few iterations of the phantom lung config.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mm_helpers import REPO, SEG, cpu_options

from optiml_plugin.mm.checkpoint import load_mmengine_checkpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_training(tmp_path: Path, r18_file: Path) -> None:
    work = tmp_path / "work"
    data = tmp_path / "phantom"  # empty: both ranks write it at once
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PORT": str(_free_port()),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        "bash",
        str(REPO / "tools" / "dist_train.sh"),
        str(SEG / "optiml_fcn_lungs_phantom.py"),
        "2",
        "--work-dir",
        str(work),
        "--data-root",
        str(data),
        "--cfg-options",
        f"model.backbone.init_cfg.checkpoint={r18_file}",
        "train_cfg.max_iters=3",
        "train_cfg.val_interval=3",
        "default_hooks.checkpoint.interval=3",
        "default_hooks.logger.interval=1",
        "train_dataloader.batch_size=2",
        *cpu_options(),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    logs = "".join(p.read_text() for p in work.glob("*/*.log"))
    assert "Distributed training: True" in logs
    assert "GPU number: 2" in logs  # MMEngine's name for the world size
    assert "backend': 'gloo'" in logs and "type='CPUDistributedDataParallel'" in logs
    assert "Iter(train) [3/3]" in logs and "dice/dice_all" in logs
    assert load_mmengine_checkpoint(work / "iter_3.pth")["meta"]["iter"] == 3
    assert (data / "manifest.json").is_file()
