"""Pretraining runs of the ``cpu-real`` preset, scheduled as parallel
single-thread processes (on a 2-core machine two of them do about twice the work
of one two-thread process).

A run whose ``done.json`` exists is reused, so an interrupted benchmark resumes
where it stopped; ``done.json`` records the run's own wall time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class PretrainSetting:
    """The one pretraining setting shared by every method (the equal budget).

    Attributes:
        data_root: The ``shared/data`` folder (``cxr_pool/pool.txt`` lives there).
        image_size: Side of the views.
        batch_size: Images per step.
        steps: Optimiser steps.
        lr: AdamW base learning rate per 256 images.
        held_out: Image list of the diagnostics logged during OPTiML runs.
        precision: Lightning precision (``bf16-mixed`` halves a CPU step where
            the CPU has AMX; see :func:`cpu_precision`).
        extra: Further ``tools/pretrain.py`` options.
    """

    data_root: Path
    image_size: int = 160
    batch_size: int = 32
    steps: int = 250
    lr: float = 0.01
    held_out: Path | None = None
    precision: str = "32-true"
    extra: tuple[str, ...] = field(default_factory=tuple)

    def argv(self, method: str, seed: int, out: Path) -> list[str]:
        """``tools/pretrain.py`` options of one run."""
        argv = [
            "--data", str(self.data_root / "cxr_pool" / "pool.txt"),
            "--data-root", str(self.data_root),
            "--image-size", str(self.image_size), "--backbone", "resnet18",
            "--global-dim", "512", "--global-hidden-dim", "512",
            "--dense-dim", "128", "--dense-hidden-dim", "256", "--cvsim-heads", "4",
            "--batch-size", str(self.batch_size), "--optimizer", "adamw",
            "--lr", str(self.lr), "--weight-decay", "0.05",
            "--warmup-epochs", "0.25", "--epochs", "1000",
            "--max-steps", str(self.steps), "--num-workers", "1",
            "--checkpoint-every", str(10**9), "--log-every", "10",
            "--accelerator", "cpu", "--devices", "1", "--no-figure", "--quiet",
            "--precision", self.precision,
            "--method", method, "--seed", str(seed), "--out", str(out),
            *self.extra,
        ]  # fmt: skip
        if method == "optiml" and self.held_out is not None:
            argv += ["--diagnose-every", str(self.steps), "--diagnose-data",
                     str(self.held_out), "--diagnose-pairs", "48"]  # fmt: skip
        return argv


def cpu_precision() -> str:
    """``bf16-mixed`` on a CPU with AMX bf16 units (measured here: a ResNet-18
    step at 160 px is 2.2-2.4 times faster than float32), else ``32-true``."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "32-true"
    return "bf16-mixed" if " amx_bf16" in info else "32-true"


def run_dir(work: Path, method: str, seed: int) -> Path:
    """Where one run writes."""
    return work / f"{method}_s{seed}"


def pretrain_one(setting: PretrainSetting, method: str, seed: int, work: Path) -> dict:
    """Runs (or reuses) one pretraining; returns its ``done.json`` record.

    Raises:
        RuntimeError: The run failed (its log is named).
    """
    out = run_dir(work, method, seed)
    done = out / "done.json"
    argv = setting.argv(method, seed, out)
    if done.is_file():
        record = json.loads(done.read_text())
        if record["argv"] != argv:
            raise RuntimeError(
                f"{out} was pretrained with other options; delete it or choose "
                f"another --work.\n  found:    {record['argv']}\n  expected: {argv}"
            )
        return record
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".log")
    start = time.time()
    with open(log, "w") as f:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "pretrain.py"), *argv],
            env=env, stdout=f, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    if proc.returncode != 0 or not (out / "backbone.pth").is_file():
        raise RuntimeError(f"pretraining {method} seed {seed} failed; see {log}")
    record = {
        "method": method,
        "seed": seed,
        "seconds": time.time() - start,
        "argv": argv,
        "backbone": str(out / "backbone.pth"),
    }
    done.write_text(json.dumps(record, indent=1))
    return record


def pretrain_all(
    setting: PretrainSetting,
    methods: list[str],
    seeds: list[int],
    work: Path,
    jobs: int = 2,
) -> list[dict]:
    """Runs every (method, seed) with ``jobs`` single-thread processes at a time,
    seed-major so that a cut-short benchmark has whole seeds."""
    specs = [(m, s) for s in seeds for m in methods]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(pretrain_one, setting, m, s, work) for m, s in specs]
        records = []
        for (m, s), fut in zip(specs, futures, strict=True):
            record = fut.result()
            print(f"pretrained {m} seed {s} in {record['seconds']:.0f} s", flush=True)
            records.append(record)
    return records
