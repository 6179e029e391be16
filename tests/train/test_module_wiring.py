"""The training module's wiring: which view's context, which grids, which terms."""

import pytest
import torch

from optiml_plugin.models import OPTiML
from optiml_plugin.train.module import OPTiMLModule

MODEL = {"backbone": "resnet18", "global_dim": 32, "global_hidden_dim": 32,
         "dense_dim": 16, "dense_hidden_dim": 32, "cvsim_heads": 2}  # fmt: skip


def _batch(b: int = 3, size: int = 64) -> list:
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(b, 3, size, size, generator=g) for _ in range(2)]
    grids = [torch.rand(b, size // 32, size // 32, 2, generator=g) for _ in range(2)]
    return [views + grids, torch.zeros(b)]


def _randomise_cvsim(model: OPTiML) -> None:
    # CV-SIM starts as the identity (zero output layers); give it weights so that
    # what it reads shows in its output.
    g = torch.Generator().manual_seed(1)
    for p in model.cvsim.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.3


def test_each_view_is_infused_with_the_other_views_global() -> None:
    model = OPTiML(**MODEL)
    _randomise_cvsim(model)
    x_a, x_b = _batch()[0][:2]
    za, ua = model.embed(x_a)
    zb, ub = model.embed(x_b)
    ref = model.infuse(za, ua, zb, ub)
    other = model.infuse(za + 1.0, ua, zb, ub)  # change view a's own global
    assert torch.allclose(other.dense_a, ref.dense_a)  # q_a does not read z_a
    assert not torch.allclose(other.dense_b, ref.dense_b)  # q_b reads z_a
    other = model.infuse(za, ua, zb + 1.0, ub)
    assert not torch.allclose(other.dense_a, ref.dense_a)
    assert torch.allclose(other.dense_b, ref.dense_b)


def test_module_passes_each_views_own_grid_to_the_loss(monkeypatch) -> None:
    module = OPTiMLModule(model=MODEL, loss={"position_weight": 1.0})
    batch = _batch()
    seen = {}

    def spy(dense_a, dense_b, global_a, global_b, grid_a, grid_b):  # noqa: ANN001
        seen.update(grid_a=grid_a, grid_b=grid_b)
        return {"loss": dense_a.sum() * 0}

    monkeypatch.setattr(module.criterion, "terms", spy)
    module.step_terms(batch)
    assert seen["grid_a"] is batch[0][2] and seen["grid_b"] is batch[0][3]


def test_module_loss_is_the_weighted_sum_with_the_ot_term() -> None:
    # The OT term must be in the optimised loss, with weight alpha (scaled by the
    # dense share); with the other terms off the loss is exactly alpha * OT.
    module = OPTiMLModule(
        model=MODEL,
        loss={"beta": 0.0, "eta": 0.0, "global_weight": 0.0, "image_decorrelation": 0,
              "plan_contrast": 0.0},
    )  # fmt: skip
    terms = module.step_terms(_batch())
    assert terms["ot"].item() > 0
    assert terms["loss"].item() == pytest.approx(25.0 * terms["ot"].item(), rel=1e-6)
    full = OPTiMLModule(model=MODEL, loss={"global_weight": 0.5})
    t = full.step_terms(_batch())
    dense = 25.0 * t["ot"] + 25.0 * t["dense_var"] + 1.0 * t["dense_cov"]
    dense = dense + 25.0 * t["dense_xcorr"]  # the default image decorrelation
    dense = dense + 25.0 * 3.0 * t["dense_contrast"]  # the default plan contrast
    assert t["loss"].item() == pytest.approx(
        (0.5 * dense + 0.5 * t["global"]).item(), rel=1e-6
    )
