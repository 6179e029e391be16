"""PyTorch Lightning module for OPTiML pretraining."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from optiml_plugin.loss import OPTiMLLoss
from optiml_plugin.models import OPTiML
from optiml_plugin.train.ssl_module import SSLPretrainModule


class OPTiMLModule(SSLPretrainModule):
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
        self.check_optimizer(optimizer)
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
