"""PyTorch Lightning module for OPTiML pretraining."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from lightly.models.utils import get_weight_decay_parameters
from lightly.utils.lars import LARS
from lightly.utils.scheduler import CosineWarmupScheduler
from torch import Tensor

from optiml_plugin.loss import OPTiMLLoss
from optiml_plugin.models import OPTiML


class OPTiMLModule(pl.LightningModule):
    """Pretrains an :class:`OPTiML` model with :class:`OPTiMLLoss`.

    A batch is ``([view_1, ..., view_n, grid_1, ..., grid_n], labels)`` as made by
    ``CVSIMTransform`` and a default collate. The two global views (the first two)
    form one pair; every further (local) view is paired with both global views;
    the loss is the mean over pairs.

    Args:
        model: Keyword arguments of :class:`OPTiML`.
        loss: Keyword arguments of :class:`OPTiMLLoss`.
        optimizer: ``"lars"`` (the authors' choice) or ``"adamw"``.
        lr: Base learning rate per 256 images (scaled by the global batch size).
        weight_decay: Weight decay (not applied to biases and norm layers).
        warmup_epochs: Linear warm-up length in epochs (fractions allowed).
        batch_size: Per-device batch size, for the learning-rate scaling.
    """

    def __init__(
        self,
        model: dict[str, Any] | None = None,
        loss: dict[str, Any] | None = None,
        optimizer: str = "lars",
        lr: float = 0.2,
        weight_decay: float = 1e-6,
        warmup_epochs: float = 10.0,
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        if optimizer not in ("lars", "adamw"):
            raise ValueError(f"optimizer must be 'lars' or 'adamw', got {optimizer!r}.")
        self.save_hyperparameters()
        self.model = OPTiML(**(model or {}))
        self.criterion = OPTiMLLoss(**(loss or {}))

    def setup(self, stage: str) -> None:
        """Gathers embeddings across processes for the batch statistics under DDP."""
        if self.trainer is not None and self.trainer.world_size > 1:
            self.criterion.gather_distributed = True
            self.criterion.global_loss.gather_distributed = True

    def step_terms(self, batch: Any) -> dict[str, Tensor]:
        """Returns the loss terms, averaged over view pairs, for one batch."""
        views_and_grids = batch[0]
        n = len(views_and_grids) // 2
        if n < 2:
            raise ValueError(f"a batch needs at least two views, got {n}")
        views, grids = views_and_grids[:n], views_and_grids[n:]
        embedded = [self.model.embed(v) for v in views]
        pairs = [(0, 1)] + [(i, g) for i in range(2, n) for g in (0, 1)]
        total: dict[str, Tensor] = {}
        for i, j in pairs:
            out = self.model.infuse(*embedded[i], *embedded[j])
            terms = self.criterion.terms(
                out.dense_a, out.dense_b, out.global_a, out.global_b, grids[i], grids[j]
            )
            for key, value in terms.items():
                total[key] = total.get(key, 0.0) + value / len(pairs)
        return total

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
