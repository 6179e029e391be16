"""Logs OPTiML's positional-shortcut diagnostics during pretraining.

Before the first step (the untrained reference), every ``every`` steps and after
the last one, the callback runs
:func:`optiml_plugin.diagnostics.diagnose` on a fixed batch of held-out view
pairs and logs each figure as ``diag/<name>`` (CSV and TensorBoard), so a run
shows while it trains whether its tokens learn content or only cell positions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from optiml_plugin.diagnostics import Gate, diagnose


def view_pairs(
    dataset: Any, indices: Sequence[int], seed: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Draws one fixed pair of views per image; returns (view_a, view_b, grid_a, grid_b).

    ``dataset[i]`` must return ``([view_a, view_b, ..., grid_a, grid_b, ...], label)``
    (a ``CVSIMTransform`` dataset). The augmentations are drawn from a generator
    seeded with ``seed`` and the global RNG state is restored afterwards.
    """
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        samples = [dataset[i][0] for i in indices]
    finally:
        torch.random.set_rng_state(state)
    n = len(samples[0]) // 2
    views = [torch.stack([s[k] for s in samples]) for k in (0, 1)]
    grids = [torch.stack([s[n + k] for s in samples]) for k in (0, 1)]
    return views[0], views[1], grids[0], grids[1]


class DiagnosticsCallback(pl.Callback):
    """Runs the diagnostics on fixed held-out pairs every ``every`` steps.

    Args:
        pairs: ``(view_a, view_b, grid_a, grid_b)`` from :func:`view_pairs`.
        every: Interval in training steps (> 0).
        out: Optional JSON file for the whole history (written at the end).
        gate: Thresholds reported (not enforced) after the last step.
    """

    def __init__(
        self,
        pairs: tuple[Tensor, Tensor, Tensor, Tensor],
        every: int,
        out: Path | None = None,
        gate: Gate | None = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}.")
        self.pairs = pairs
        self.every = every
        self.out = out
        self.gate = gate or Gate()
        self.history: list[dict[str, float]] = []

    def measure(self, pl_module: Any) -> dict[str, float]:
        """Returns the diagnostics of the module's current state."""
        was_training = pl_module.training
        pl_module.eval()
        try:
            pairs = [t.to(pl_module.device) for t in self.pairs]
            return diagnose(pl_module.model, pl_module.criterion, *pairs)
        finally:
            pl_module.train(was_training)

    def _record(self, trainer: pl.Trainer, pl_module: Any, log: bool) -> None:
        step = trainer.global_step
        if self.history and self.history[-1]["step"] == step:
            return
        values = self.measure(pl_module)
        self.history.append({"step": step, **values})
        if log:  # straight to the loggers: no stale value at later log steps
            for logger in trainer.loggers:
                logger.log_metrics({f"diag/{k}": v for k, v in values.items()}, step)

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._record(trainer, pl_module, log=True)  # the untrained reference

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, *args: Any
    ) -> None:
        if trainer.global_step % self.every == 0:
            self._record(trainer, pl_module, log=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._record(trainer, pl_module, log=False)
        if self.out is not None and trainer.is_global_zero:
            last = self.history[-1]
            report = {
                "history": self.history,
                "final": last,
                "gate_failures": self.gate.failures(last),
            }
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.out.write_text(json.dumps(report, indent=1))
