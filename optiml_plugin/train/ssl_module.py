"""Shared Lightning plumbing of every pretraining method: logging and optimisers.

OPTiML and the Lightly baselines (VICReg, VICRegL, Barlow Twins) subclass
:class:`SSLPretrainModule`, so that a comparison between them differs only in the
model and the loss: the optimiser, the learning-rate scaling, the warm-up and the
cosine schedule are this one piece of code.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from lightly.models.utils import get_weight_decay_parameters
from lightly.utils.lars import LARS
from lightly.utils.scheduler import CosineWarmupScheduler
from torch import Tensor

OPTIMIZERS = ("lars", "adamw")


class SSLPretrainModule(pl.LightningModule):
    """Base of the pretraining modules: subclasses set ``self.model`` and
    implement :meth:`step_terms`.

    A subclass calls ``self.save_hyperparameters()`` in its ``__init__``; the
    hyperparameters must include ``optimizer``, ``lr``, ``weight_decay``,
    ``warmup_epochs`` and ``batch_size`` (see :meth:`check_optimizer`).
    """

    model: torch.nn.Module

    @staticmethod
    def check_optimizer(optimizer: str) -> None:
        """Raises ``ValueError`` for an unknown optimiser name."""
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be 'lars' or 'adamw', got {optimizer!r}.")

    def step_terms(self, batch: Any) -> dict[str, Tensor]:
        """Returns ``{"loss": ..., other logged terms}`` for one batch."""
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        terms = self.step_terms(batch)
        batch_size = batch[0][0].shape[0]
        self.log(
            "train/loss",
            terms["loss"],
            prog_bar=True,
            batch_size=batch_size,
            sync_dist=True,
        )
        others = {f"train/{k}": v for k, v in terms.items() if k != "loss"}
        if others:
            self.log_dict(others, batch_size=batch_size, sync_dist=True)
        return terms["loss"]

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        world = self.trainer.world_size if self.trainer is not None else 1
        lr = hp.lr * hp.batch_size * world / 256
        decay, no_decay = get_weight_decay_parameters([self.model])
        groups = [
            {"name": "decay", "params": decay, "weight_decay": hp.weight_decay},
            {"name": "no_decay", "params": no_decay, "weight_decay": 0.0},
        ]
        if hp.optimizer == "lars":
            optimizer = LARS(groups, lr=lr, momentum=0.9)
        else:
            optimizer = torch.optim.AdamW(groups, lr=lr)
        # estimated_stepping_batches sets up the data, after which the number of
        # batches per epoch is known.
        total = max(1, int(self.trainer.estimated_stepping_batches))
        per_epoch = self.trainer.num_training_batches
        if not math.isfinite(per_epoch):  # max_steps alone skips the data set-up
            self.trainer.fit_loop.setup_data()
            per_epoch = self.trainer.num_training_batches
        if not math.isfinite(per_epoch):  # data of unknown length
            per_epoch = total
        per_epoch = max(1, int(per_epoch) // self.trainer.accumulate_grad_batches)
        warmup = min(int(hp.warmup_epochs * per_epoch), total - 1)
        scheduler = CosineWarmupScheduler(
            optimizer, warmup_epochs=warmup, max_epochs=total
        )
        return [optimizer], [{"scheduler": scheduler, "interval": "step"}]
