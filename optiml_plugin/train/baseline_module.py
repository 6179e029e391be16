"""Lightning module for Lightly's VICReg, VICRegL and Barlow Twins baselines.

It takes the same batches as :class:`~optiml_plugin.train.module.OPTiMLModule`
(``CVSIMTransform`` views and cell grids) and shares its optimiser and schedule
(:class:`~optiml_plugin.train.ssl_module.SSLPretrainModule`), so the pretraining
command runs OPTiML and the baselines on the same data, augmentations, backbone,
budget and seed. The losses are Lightly's own (``VICRegLoss``, ``VICRegLLoss``,
``BarlowTwinsLoss``) with their default weights.
"""

from __future__ import annotations

from typing import Any

from lightly.loss import BarlowTwinsLoss, VICRegLLoss, VICRegLoss
from torch import Tensor

from optiml_plugin.models.lightly_baseline import LightlyBaselineModel
from optiml_plugin.train.ssl_module import SSLPretrainModule


class LightlyBaselineModule(SSLPretrainModule):
    """Pretrains a :class:`LightlyBaselineModel` with its Lightly loss.

    VICReg and Barlow Twins use the pairs OPTiML uses (the two global views, and
    every local view with both global views; mean over pairs). VICRegL gets all
    views and grids at once, as Lightly's ``VICRegLLoss`` expects.

    Args:
        method: ``"vicreg"``, ``"vicregl"`` or ``"barlowtwins"``.
        model: Keyword arguments of :class:`LightlyBaselineModel` (but ``method``).
        loss: Keyword arguments of the Lightly loss (e.g. ``alpha`` of VICRegL,
            ``lambda_param`` of Barlow Twins). VICRegL's ``num_matches`` defaults
            to Lightly's (20, 4), capped at the number of cells of a view.
        optimizer: ``"lars"`` or ``"adamw"``.
        lr: Base learning rate per 256 images.
        weight_decay: Weight decay (not applied to biases and norm layers).
        warmup_epochs: Linear warm-up length in epochs.
        batch_size: Per-device batch size, for the learning-rate scaling.
    """

    def __init__(
        self,
        method: str = "vicreg",
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
        self.model = LightlyBaselineModel(method, **(model or {}))
        self.method = method
        loss = dict(loss or {})
        if method == "vicreg":
            self.criterion: Any = VICRegLoss(**loss)
        elif method == "barlowtwins":
            self.criterion = BarlowTwinsLoss(**loss)
        else:
            self.criterion = VICRegLLoss(**loss)
        self._vicregl_matches = tuple(loss.get("num_matches", (20, 4)))

    def setup(self, stage: str) -> None:
        """Gathers embeddings across processes for the batch statistics under DDP."""
        if self.trainer is not None and self.trainer.world_size > 1:
            self.criterion.gather_distributed = True

    def step_terms(self, batch: Any) -> dict[str, Tensor]:
        """Returns ``{"loss": ...}`` for one batch of views and grids."""
        views_and_grids = batch[0]
        n = len(views_and_grids) // 2
        if n < 2:
            raise ValueError(f"a batch needs at least two views, got {n}")
        views, grids = views_and_grids[:n], views_and_grids[n:]
        outputs = [self.model(v) for v in views]
        if self.method == "vicregl":
            cells = min(grid.shape[1] * grid.shape[2] for grid in grids)
            self.criterion.num_matches = tuple(
                min(m, cells) for m in self._vicregl_matches
            )
            loss = self.criterion(
                global_view_features=outputs[:2],
                global_view_grids=grids[:2],
                local_view_features=outputs[2:] or None,
                local_view_grids=grids[2:] or None,
            )
            return {"loss": loss.reshape(())}
        pairs = [(0, 1)] + [(i, g) for i in range(2, n) for g in (0, 1)]
        loss = sum(self.criterion(outputs[i][0], outputs[j][0]) for i, j in pairs)
        return {"loss": loss / len(pairs)}
