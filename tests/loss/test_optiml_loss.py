import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightly.loss.vicreg_loss import VICRegLoss, invariance_loss

from optiml_plugin import OPTiMLLoss

# The settings these tests were written for; each test names what it changes.
# The package's defaults are tested in test_defaults_*.
PLAIN = {"position_weight": 0.0, "dense_statistics": "tokens", "center": "none",
         "epsilon_scale": "absolute", "image_decorrelation": 0.0,
         "global_weight": 0.25, "plan_contrast": 0.0}  # fmt: skip


def _loss(*args: float, **kwargs: object) -> OPTiMLLoss:
    return OPTiMLLoss(*args, **{**PLAIN, **kwargs})


def test_defaults_are_the_measured_ones_and_need_the_grids() -> None:
    loss = OPTiMLLoss()
    assert (loss.dense_statistics, loss.center, loss.cost, loss.epsilon_scale) == (
        "residual",
        "double",
        "cosine",
        "relative",
    )
    assert loss.position_weight == 20.0 and loss.epsilon == 0.05
    assert loss.image_decorrelation == 25.0 and loss.global_weight == 0.9
    assert loss.feature_matching == 0.0
    # Plan contrast 3 with the grid term (screen 11), and none without it, so that
    # position_weight=0 alone still builds a loss that needs no grids.
    assert loss.plan_contrast == 3.0
    assert OPTiMLLoss(position_weight=0.0).plan_contrast == 0.0
    a, b = _dense(0), _dense(1)
    with pytest.raises(ValueError, match="needs grid_a and grid_b .*CVSIMTransform"):
        loss(a, b)
    grid = torch.rand(4, 9, 2, dtype=torch.float64)
    assert torch.isfinite(loss(a, b, grid_a=grid, grid_b=grid))


def _dense(seed: int, b: int = 4, n: int = 9, d: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, d, generator=g, dtype=torch.float64)


def test_symmetric_in_the_two_views() -> None:
    a, b = _dense(0), _dense(1)
    za, zb = (
        torch.randn(4, 6, dtype=torch.float64),
        torch.randn(4, 6, dtype=torch.float64),
    )
    loss = _loss(num_iters=5000)  # converged: the fixed point is symmetric
    assert torch.allclose(loss(a, b, za, zb), loss(b, a, zb, za), atol=1e-7)
    exact = _loss(transport="emd")
    assert torch.allclose(exact(a, b), exact(b, a), atol=1e-9)


def test_accepts_grid_layout_and_token_layout_alike() -> None:
    a, b = _dense(0, n=9), _dense(1, n=9)
    loss = _loss()
    assert torch.allclose(
        loss(a, b), loss(a.reshape(4, 3, 3, 8), b.reshape(4, 3, 3, 8))
    )


def test_shape_errors_are_value_errors() -> None:
    loss = _loss()
    a = _dense(0)
    with pytest.raises(ValueError, match="dense_a must have shape"):
        loss(a[0], a)
    with pytest.raises(ValueError, match="share batch size and dimension"):
        loss(a, _dense(1, d=6))
    with pytest.raises(ValueError, match="share batch size"):
        loss(a, _dense(1, b=3))
    with pytest.raises(ValueError, match="both global_a and global_b"):
        loss(a, a, torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"shape \(B, D\)"):
        loss(a, a, torch.randn(4, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match="global batch size"):
        loss(a, a, torch.randn(3, 5), torch.randn(3, 5))
    with pytest.raises(ValueError, match="needs grid_a and grid_b"):
        _loss(position_weight=1.0)(a, a)
    with pytest.raises(ValueError, match="N == M"):
        _loss(transport="identity")(a, _dense(1, n=4))
    with pytest.raises(ValueError, match="transport must be one of"):
        _loss(transport="greedy")


def test_batch_size_one_is_an_error() -> None:
    with pytest.raises(ValueError, match="batch size of at least 2"):
        _loss()(_dense(0, b=1), _dense(1, b=1))


def test_gradient_reaches_both_views() -> None:
    a = _dense(0).float().requires_grad_()
    b = _dense(1).float().requires_grad_()
    za = torch.randn(4, 6, requires_grad=True)
    zb = torch.randn(4, 6, requires_grad=True)
    _loss()(a, b, za, zb).backward()
    for t in (a, b, za, zb):
        assert (
            t.grad is not None
            and t.grad.abs().sum() > 0
            and torch.isfinite(t.grad).all()
        )


@pytest.mark.parametrize("value", [0.0, 3.0])
def test_zero_and_constant_features_stay_finite(value: float) -> None:
    a = torch.full((4, 9, 8), value, requires_grad=True)
    b = torch.full((4, 9, 8), value, requires_grad=True)
    za = torch.full((4, 6), value, requires_grad=True)
    zb = torch.full((4, 6), value, requires_grad=True)
    loss = _loss()(a, b, za, zb)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(a.grad).all() and torch.isfinite(za.grad).all()


def _np_var(x: np.ndarray, eps: float) -> float:
    std = np.sqrt(x.var(axis=0, ddof=1) + eps)
    return float(np.maximum(0.0, 1.0 - std).mean())


def _np_cov(x: np.ndarray) -> float:
    # x: (S, P, D); covariance over axis 0 (the samples) at each index of axis 1.
    b, _, d = x.shape
    xc = x - x.mean(axis=0)
    total = []
    for pos in range(x.shape[1]):
        c = xc[:, pos, :].T @ xc[:, pos, :] / (b - 1)
        off = c - np.diag(np.diag(c))
        total.append((off**2).sum() / d)
    return float(np.mean(total))


@pytest.mark.parametrize("stats", ["batch", "tokens"])
def test_hand_computed_small_case(stats: str) -> None:
    # Image 0: B's tokens are A's swapped -> the exact plan swaps them, OT cost 0.
    # Image 1: both A tokens are (1, 0); B's are at +-45 degrees -> each A token
    # sends half its mass to each, OT cost (1 - 1/sqrt2)/2 + (1 + 1/sqrt2)/2 = 1.
    r = 1 / math.sqrt(2)
    a = torch.tensor(
        [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]], dtype=torch.float64
    )
    b = torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[r, r], [-r, r]]], dtype=torch.float64)
    alpha, beta, eta, eps = 2.0, 3.0, 0.5, 1e-4
    loss = _loss(alpha, beta, eta, transport="emd", dense_statistics=stats, eps=eps)
    terms = loss.terms(a, b)
    assert terms["ot"].item() == pytest.approx(0.5, abs=1e-12)
    an, bn = a.numpy(), b.numpy()
    if stats == "tokens":  # statistics over each image's cells
        an, bn = an.transpose(1, 0, 2), bn.transpose(1, 0, 2)
    var = 0.5 * (_np_var(an, eps) + _np_var(bn, eps))
    cov = _np_cov(an) + _np_cov(bn)
    assert terms["dense_var"].item() == pytest.approx(var, abs=1e-12)
    assert terms["dense_cov"].item() == pytest.approx(cov, abs=1e-12)
    assert terms["loss"].item() == pytest.approx(
        alpha * 0.5 + beta * var + eta * cov, abs=1e-12
    )
    # Entropic OT approaches the exact value as epsilon shrinks.
    approx = _loss(
        alpha=alpha, beta=beta, eta=eta, epsilon=0.005, num_iters=2000, eps=eps
    )
    assert approx.terms(a, b)["ot"].item() == pytest.approx(0.5, abs=5e-3)


def test_identity_plan_reduces_to_vicreg_terms() -> None:
    # With cell i matched to cell i, the OT term is the mean cosine distance of
    # aligned cells = (D / 2) * VICReg's invariance (MSE) on L2-normalised tokens,
    # and the rest is exactly Lightly's VICReg variance and covariance terms.
    a, b = _dense(0), _dense(1)
    d = a.shape[-1]
    alpha, beta, eta = 25.0, 25.0, 1.0
    ours = _loss(alpha, beta, eta, transport="identity", dense_statistics="batch")(a, b)
    vicreg_var_cov = VICRegLoss(lambda_param=0.0, mu_param=beta, nu_param=eta)(a, b)
    inv = invariance_loss(F.normalize(a, dim=-1), F.normalize(b, dim=-1))
    assert ours.item() == pytest.approx(
        (alpha * d / 2 * inv + vicreg_var_cov).item(), rel=1e-10
    )


def test_global_part_is_lightly_vicreg() -> None:
    a, b = _dense(0), _dense(1)
    za, zb = (
        torch.randn(4, 6, dtype=torch.float64),
        torch.randn(4, 6, dtype=torch.float64),
    )
    loss = _loss(alpha=10.0, beta=5.0, eta=2.0, global_weight=0.4)
    terms = loss.terms(a, b, za, zb)
    ref = VICRegLoss(lambda_param=10.0, mu_param=5.0, nu_param=2.0)(za, zb)
    assert terms["global"].item() == pytest.approx(ref.item(), rel=1e-10)
    dense = 10.0 * terms["ot"] + 5.0 * terms["dense_var"] + 2.0 * terms["dense_cov"]
    assert terms["loss"].item() == pytest.approx(
        (0.6 * dense + 0.4 * ref).item(), rel=1e-10
    )


def test_ot_term_ignores_token_order_but_identity_does_not() -> None:
    a = _dense(0)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(0))
    b = a + 0.01 * _dense(1)
    ot = _loss(transport="emd")
    ident = _loss(transport="identity")
    assert ot.terms(a, b[:, perm])["ot"].item() == pytest.approx(
        ot.terms(a, b)["ot"].item(), abs=1e-9
    )
    assert ot.terms(a, b[:, perm])["ot"].item() < 1e-3
    assert ident.terms(a, b[:, perm])["ot"].item() > 0.1


def test_position_term_matches_cells_by_location() -> None:
    # Equal features everywhere: only the spatial term distinguishes the cells,
    # so the exact plan must pair each cell of A with B's cell at the same place.
    g = torch.stack(
        torch.meshgrid(torch.linspace(0, 1, 3), torch.linspace(0, 1, 3), indexing="xy"),
        -1,
    )
    grid_a = g.reshape(1, 9, 2).expand(2, 9, 2)
    perm = torch.tensor([4, 0, 8, 2, 6, 1, 3, 5, 7])
    grid_b = grid_a[:, perm]
    feats = torch.ones(2, 9, 4)
    loss = _loss(transport="emd", position_weight=1.0)
    plan, _ = loss.transport_plan(feats, feats, grid_a, grid_b)
    assert torch.equal(plan[0].argmax(dim=1), torch.argsort(perm))


def test_finite_under_bf16_autocast() -> None:
    a = _dense(0).float().requires_grad_()
    b = _dense(1).float().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = _loss(epsilon=1e-3)(a.bfloat16(), b.bfloat16())
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(a.grad).all()


def test_token_statistics_see_spatial_collapse_that_batch_statistics_miss() -> None:
    # Every cell of an image carries the same token, tokens differ between images:
    # the per-position batch statistics look healthy, the per-image token ones
    # report total collapse (std 0 -> hinge 1 - sqrt(eps)).
    per_image = 3.0 * _dense(0, b=8, n=1, d=8)
    a = per_image.expand(8, 9, 8)
    b = a + 0.0
    eps = 1e-4
    batch = _loss(dense_statistics="batch", eps=eps).terms(a, b)
    tokens = _loss(dense_statistics="tokens", eps=eps).terms(a, b)
    both = _loss(dense_statistics="both", eps=eps).terms(a, b)
    assert batch["dense_var"].item() < 0.2
    assert tokens["dense_var"].item() == pytest.approx(1 - math.sqrt(eps), abs=1e-9)
    assert tokens["dense_cov"].item() == pytest.approx(0.0, abs=1e-12)
    mean = 0.5 * (batch["dense_var"] + tokens["dense_var"])
    assert both["dense_var"].item() == pytest.approx(mean.item(), abs=1e-12)
    with pytest.raises(ValueError, match="dense_statistics"):
        _loss(dense_statistics="cells")


def test_plan_is_detached_so_the_cost_gradient_is_plan_over_batch() -> None:
    # d L_OT / d C must be T / B with T fixed (envelope theorem). A plan that kept
    # its graph would add dT/dC terms. Reference plan: POT's sinkhorn on the cost.
    import ot as pot

    a = _dense(0, b=3).requires_grad_()
    b = _dense(1, b=3)
    loss = _loss(epsilon=0.1, num_iters=200)
    loss.terms(a, b)["ot"].backward()
    cost = loss.cost_matrix(a, b).detach()
    assert loss.num_iters == 200
    warnings.simplefilter("ignore")  # POT warns that 200 iterations is no convergence
    plans = [
        torch.from_numpy(pot.sinkhorn(np.full(9, 1 / 9), np.full(9, 1 / 9), c.numpy(), 0.1, numItermax=200, stopThr=0))
        for c in cost
    ]  # fmt: skip
    a2 = a.detach().clone().requires_grad_()
    ref = (torch.stack(plans) * loss.cost_matrix(a2, b)).sum(dim=(1, 2)).mean()
    ref.backward()
    assert torch.allclose(a.grad, a2.grad, atol=1e-6)


def test_cost_is_float32_under_bf16_autocast() -> None:
    # The cost's docstring: float32 even when the tokens come from bf16 autocast.
    a, b = _dense(0).float(), _dense(1).float()
    loss = _loss()
    ref = loss.cost_matrix(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cost = loss.cost_matrix(a, b)
    assert cost.dtype == torch.float32
    assert torch.allclose(cost, ref, atol=1e-6)


def test_centring_removes_what_it_names() -> None:
    # Tokens = position code + image code + a common offset + small content.
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(1, 9, 8, generator=g, dtype=torch.float64)
    img = torch.randn(4, 1, 8, generator=g, dtype=torch.float64)
    content = 0.01 * torch.randn(4, 9, 8, generator=g, dtype=torch.float64)
    q = 5.0 + pos + img + content
    double = _loss(cost="l2", center="double").cost_tokens(q, q)[0]
    expected = content - content.mean(0, keepdim=True) - content.mean(1, keepdim=True)
    expected = expected + content.mean(dim=(0, 1), keepdim=True)
    assert torch.allclose(double, expected, atol=1e-12)
    view = _loss(cost="l2", center="view").cost_tokens(q, q)[0]
    assert torch.allclose(
        view.mean(dim=1), torch.zeros(4, 8, dtype=q.dtype), atol=1e-12
    )
    pos_c = _loss(cost="l2", center="position").cost_tokens(q, q)[0]
    assert torch.allclose(
        pos_c.mean(dim=0), torch.zeros(9, 8, dtype=q.dtype), atol=1e-12
    )
    batch = _loss(cost="l2", center="batch").cost_tokens(q, q)[0]
    assert torch.allclose(
        batch.mean(dim=(0, 1)), torch.zeros(8, dtype=q.dtype), atol=1e-12
    )


def test_common_offset_cannot_lower_a_centred_cost() -> None:
    # Adding c * e to every token drives 1 - cos towards 0 (the shortcut of the
    # review); centring over the batch takes the offset out of the cost.
    a, b = _dense(0), _dense(1)
    shift = torch.zeros(8, dtype=torch.float64)
    shift[0] = 100.0
    plain, centred = _loss(center="none"), _loss(center="batch")
    assert plain.terms(a + shift, b + shift)["ot"] < 0.05 * plain.terms(a, b)["ot"]
    assert torch.allclose(
        centred.terms(a + shift, b + shift)["ot"], centred.terms(a, b)["ot"]
    )


def test_l2_cost_is_mse_of_the_matched_tokens() -> None:
    a, b = _dense(0), _dense(1)
    loss = _loss(cost="l2", transport="identity")
    expected = (a - b).pow(2).mean()
    assert torch.allclose(loss.terms(a, b)["ot"], expected, atol=1e-12)


def test_relative_epsilon_makes_the_plan_scale_free() -> None:
    a, b = _dense(0), _dense(1)
    rel = _loss(cost="l2", epsilon_scale="relative", num_iters=300)
    absolute = _loss(cost="l2", epsilon_scale="absolute", num_iters=300)
    p1, _ = rel.transport_plan(a, b)
    p10, _ = rel.transport_plan(10 * a, 10 * b)
    assert torch.allclose(p1, p10, atol=1e-6)
    q1, _ = absolute.transport_plan(a, b)
    q10, _ = absolute.transport_plan(10 * a, 10 * b)
    assert not torch.allclose(q1, q10, atol=1e-3)


def test_features_only_plan_ignores_the_spatial_term() -> None:
    a, b = _dense(0), _dense(1)
    grid = torch.rand(4, 9, 2, dtype=torch.float64)
    loss = _loss(position_weight=10.0)
    with pytest.raises(ValueError, match="needs grid_a and grid_b"):
        loss.transport_plan(a, b)
    plain, _ = _loss().transport_plan(a, b)
    feats, _ = loss.transport_plan(a, b, features_only=True)
    spatial, _ = loss.transport_plan(a, b, grid, grid.flip(1))
    assert torch.allclose(plain, feats)
    assert not torch.allclose(plain, spatial, atol=1e-3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cost": "dot"}, "cost"),
        ({"center": "image"}, "center"),
        ({"epsilon_scale": "x"}, "epsilon_scale"),
    ],
)
def test_unknown_options_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _loss(**kwargs)


def test_residual_statistics_reward_neither_position_nor_image_codes() -> None:
    # Token statistics are satisfied by a code of the cell's position, batch
    # statistics by a code of the image; residual statistics by neither.
    g = torch.Generator().manual_seed(0)
    pos = 3 * torch.randn(1, 9, 8, generator=g, dtype=torch.float64).expand(6, 9, 8)
    img = 3 * torch.randn(6, 1, 8, generator=g, dtype=torch.float64).expand(6, 9, 8)
    content = 3 * torch.randn(6, 9, 8, generator=g, dtype=torch.float64)
    eps = 1e-4
    worst = 1 - math.sqrt(eps)

    def var(stats: str, q: torch.Tensor) -> float:
        return _loss(dense_statistics=stats, eps=eps).terms(q, q)["dense_var"].item()

    assert var("tokens", pos) < 0.05 and var("batch", pos) == pytest.approx(worst)
    assert var("batch", img) < 0.05 and var("tokens", img) == pytest.approx(worst)
    assert var("both", pos + img) < 0.05
    assert var("residual", pos + img) == pytest.approx(worst)
    assert var("residual", pos + img + content) < 0.05
    # Residual statistics equal Lightly's terms on the double-centred tokens.
    q = pos + img + content
    r = (
        q
        - q.mean(0, keepdim=True)
        - q.mean(1, keepdim=True)
        + q.mean((0, 1), keepdim=True)
    )
    flat = r.reshape(-1, 8)
    terms = _loss(dense_statistics="residual", eps=eps).terms(q, q)
    from lightly.loss.vicreg_loss import covariance_loss, variance_loss

    assert terms["dense_var"].item() == pytest.approx(variance_loss(flat, eps).item())
    assert terms["dense_cov"].item() == pytest.approx(2 * covariance_loss(flat).item())


def test_relative_epsilon_is_scaled_by_the_feature_cost_alone() -> None:
    # With the grid term on, epsilon is relative to the feature cost's mean row
    # range, not to the whole cost's (which the grid term would dominate).
    from optiml_plugin import ot

    a, b = _dense(0), _dense(1)
    grid_a = torch.rand(4, 9, 2, dtype=torch.float64)
    grid_b = torch.rand(4, 9, 2, dtype=torch.float64)
    loss = _loss(epsilon_scale="relative", position_weight=20.0)
    plan, cost = loss.transport_plan(a, b, grid_a, grid_b)
    feats = loss.cost_matrix(a, b, features_only=True)
    scale = (feats.amax(2) - feats.amin(2)).mean(1)[:, None, None]
    assert torch.allclose(plan, ot.sinkhorn(cost / scale, 0.05, 100), atol=1e-10)
    whole = (cost.amax(2) - cost.amin(2)).mean(1)[:, None, None]
    assert not torch.allclose(plan, ot.sinkhorn(cost / whole, 0.05, 100), atol=1e-3)


@pytest.mark.parametrize("epsilon_scale", ["absolute", "relative"])
def test_transport_plan_reads_nothing_back_from_the_device(epsilon_scale: str) -> None:
    # On a meta tensor every host read raises: the plan (centring, cost, relative
    # epsilon, Sinkhorn) must be computed without synchronising.
    qa = torch.randn(4, 9, 16, device="meta", requires_grad=True)
    qb = torch.randn(4, 9, 16, device="meta", requires_grad=True)
    grid = torch.rand(4, 9, 2, device="meta")
    loss = OPTiMLLoss(epsilon_scale=epsilon_scale)
    plan, cost = loss.transport_plan(qa, qb, grid, grid)
    assert plan.shape == cost.shape == (4, 9, 9)
    assert not plan.requires_grad and cost.requires_grad


def test_residual_batch_statistics_are_per_position_on_the_residual() -> None:
    # Hand-computed reference: double-centre, then at each cell position the
    # VICReg variance and covariance over the batch (VICRegL's local terms),
    # averaged over positions.
    g = torch.Generator().manual_seed(1)
    q = torch.randn(6, 9, 8, generator=g, dtype=torch.float64) * 2
    r = (
        q
        - q.mean(0, keepdim=True)
        - q.mean(1, keepdim=True)
        + q.mean((0, 1), keepdim=True)
    )
    std = (r.var(dim=0) + 1e-4).sqrt()  # (9, 8): per position and dimension
    var_ref = torch.relu(1 - std).mean()
    covs = []
    for n in range(9):
        c = torch.cov(r[:, n].T)
        covs.append((c - torch.diag(torch.diag(c))).pow(2).sum() / 8)
    cov_ref = 2 * torch.stack(covs).mean()
    terms = _loss(dense_statistics="residual-batch", eps=1e-4).terms(q, q)
    assert terms["dense_var"].item() == pytest.approx(var_ref.item())
    assert terms["dense_cov"].item() == pytest.approx(cov_ref.item())


def test_image_decorrelation_sees_an_image_scaled_cell_pattern() -> None:
    g = torch.Generator().manual_seed(2)
    scale = torch.randn(8, 1, 1, generator=g, dtype=torch.float64)
    pattern = torch.randn(1, 9, 4, generator=g, dtype=torch.float64)
    content = torch.randn(8, 9, 4, generator=g, dtype=torch.float64)

    def xcorr(q: torch.Tensor) -> float:
        loss = _loss(image_decorrelation=3.0)
        return loss.terms(q, q)["dense_xcorr"].item()

    # Hand computation: double-centre, flatten each image, mean squared cosine
    # over ordered pairs of different images.
    r = content - content.mean(0, keepdim=True) - content.mean(1, keepdim=True)
    r = (r + content.mean((0, 1), keepdim=True)).reshape(8, -1)
    cos = F.normalize(r, dim=1) @ F.normalize(r, dim=1).T
    ref = (cos.pow(2).sum() - cos.diagonal().pow(2).sum()) / (8 * 7)
    assert xcorr(content) == pytest.approx(ref.item())
    # A pure image-scalar x cell-pattern code is fully correlated across images,
    # and centring does not hide it (it is not additive).
    assert xcorr(scale * pattern) == pytest.approx(1.0)
    assert xcorr(scale * pattern + 0.1 * content) > 0.9 > 0.2 > xcorr(content)
    # The term enters the dense loss with its weight (PLAIN turns it off).
    on = _loss(image_decorrelation=3.0).terms(content, content)
    off = _loss().terms(content, content)
    assert "dense_xcorr" not in off
    assert (on["loss"] - off["loss"]).item() == pytest.approx(
        3.0 * on["dense_xcorr"].item()
    )


def test_feature_matching_is_the_nearest_cells_feature_cost() -> None:
    a, b = _dense(3), _dense(4)
    grid_a, grid_b = (
        torch.rand(4, 9, 2, dtype=torch.float64),
        torch.rand(4, 9, 2, dtype=torch.float64),
    )
    kwargs = {"center": "double", "position_weight": 20.0}
    on = _loss(feature_matching=0.5, **kwargs).terms(a, b, grid_a=grid_a, grid_b=grid_b)
    off = _loss(**kwargs).terms(a, b, grid_a=grid_a, grid_b=grid_b)
    # Hand computation: double-centre, cosine cost without the grid term, nearest
    # cell of the other view for every cell of both views.
    ra = a - a.mean(0, keepdim=True) - a.mean(1, keepdim=True) + a.mean((0, 1))
    rb = b - b.mean(0, keepdim=True) - b.mean(1, keepdim=True) + b.mean((0, 1))
    ref = []
    for k in range(4):
        c = torch.tensor(
            [[1 - F.cosine_similarity(x, y, dim=0) for y in rb[k]] for x in ra[k]]
        )
        ref.append(0.5 * (c.min(1).values.mean() + c.min(0).values.mean()))
    assert on["dense_nn"].item() == pytest.approx(torch.stack(ref).mean().item())
    assert "dense_nn" not in off
    assert (on["loss"] - off["loss"]).item() == pytest.approx(
        25.0 * 0.5 * on["dense_nn"].item()
    )
    assert on["ot"].item() == pytest.approx(off["ot"].item())


def _pot_plan_difference(feats: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """T - T_f from POT's sinkhorn (epsilon 0.1 relative to each image's mean row
    range of the feature cost, 300 iterations), for 9 x 9 costs."""
    import ot as pot

    u = np.full(9, 1 / 9)
    warnings.simplefilter("ignore")  # POT warns that 300 iterations is no convergence
    diffs = []
    for f, c in zip(feats, full, strict=True):
        scale = (f.amax(1) - f.amin(1)).mean().item()
        t = pot.sinkhorn(u, u, (c / scale).numpy(), 0.1, numItermax=300, stopThr=0)
        t_f = pot.sinkhorn(u, u, (f / scale).numpy(), 0.1, numItermax=300, stopThr=0)
        diffs.append(torch.from_numpy(t - t_f))
    return torch.stack(diffs)


def test_plan_contrast_is_the_training_plan_minus_the_feature_plan() -> None:
    # <T - T_f, C_f> with both plans fixed: T from the cost with the grid term,
    # T_f from the feature cost alone, each divided by the image's mean row range
    # of the feature cost (relative epsilon). Reference plans: POT's sinkhorn.

    a = _dense(0, b=3).requires_grad_()
    b = _dense(1, b=3)
    grid_a = torch.rand(3, 9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))  # fmt: skip
    grid_b = grid_a.flip(1)
    kwargs = {"center": "double", "position_weight": 20.0, "epsilon": 0.1,
              "num_iters": 300, "epsilon_scale": "relative"}  # fmt: skip
    loss = _loss(plan_contrast=0.5, **kwargs)
    terms = loss.terms(a, b, grid_a=grid_a, grid_b=grid_b)
    off = _loss(**kwargs).terms(a, b, grid_a=grid_a, grid_b=grid_b)
    assert "dense_contrast" not in off
    feats = loss.cost_matrix(a, b, features_only=True).detach()
    diff = _pot_plan_difference(feats, loss.cost_matrix(a, b, grid_a, grid_b).detach())
    # The grids make the two plans differ, so the term is not trivially zero.
    assert diff.abs().sum(dim=(1, 2)).min() > 0.1
    value = (diff * feats).sum(dim=(1, 2)).mean()
    assert terms["dense_contrast"].item() == pytest.approx(value.item(), abs=1e-6)
    assert (terms["loss"] - off["loss"]).item() == pytest.approx(
        25.0 * 0.5 * value.item(), abs=1e-5
    )
    # Both plans without gradient: d term / d C_f = (T - T_f) / B.
    terms["dense_contrast"].backward()
    a2 = a.detach().clone().requires_grad_()
    (diff * loss.cost_matrix(a2, b, features_only=True)).sum(
        dim=(1, 2)
    ).mean().backward()
    assert torch.allclose(a.grad, a2.grad, atol=1e-6)
    with pytest.raises(ValueError, match="plan_contrast .*position_weight > 0"):
        _loss(plan_contrast=1.0, position_weight=0.0)


def _half_overlapping_grids(b: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    # 3 x 3 cells 0.2 apart; view B starts 0.45 right of view A, so only A's
    # right column (x = 0.5) and B's left column (x = 0.55) lie in the other view.
    cells = torch.tensor([0.1, 0.3, 0.5], dtype=torch.float64)
    yy, xx = torch.meshgrid(cells, cells, indexing="ij")
    grid_a = torch.stack([xx, yy], -1).reshape(1, 9, 2).expand(b, 9, 2)
    return grid_a, grid_a + torch.tensor([0.45, 0.0], dtype=torch.float64)


def test_inside_other_view_of_half_overlapping_views() -> None:
    from optiml_plugin.loss.optiml_loss import inside_other_view

    grid_a, grid_b = _half_overlapping_grids()
    right = torch.tensor([False, False, True] * 3)
    assert torch.equal(inside_other_view(grid_a, grid_b), right.expand(3, 9))
    assert torch.equal(inside_other_view(grid_b, grid_a), right.flip(0).expand(3, 9))
    assert inside_other_view(grid_a, grid_a).all()


def test_plan_contrast_on_overlap_counts_only_cells_with_a_true_match() -> None:
    # Rows of A's cells inside B and columns of B's cells inside A, each weighted
    # by one half, of <T - T_f, C_f>; T_f and T as in the test above (POT).

    a, b = _dense(0, b=3).requires_grad_(), _dense(1, b=3)
    grid_a, grid_b = _half_overlapping_grids()
    kwargs = {"center": "double", "position_weight": 20.0, "epsilon": 0.1,
              "num_iters": 300, "epsilon_scale": "relative", "plan_contrast": 0.5}  # fmt: skip
    overlap = _loss(plan_contrast_cells="overlap", **kwargs)
    terms = overlap.terms(a, b, grid_a=grid_a, grid_b=grid_b)
    every = _loss(**kwargs).terms(a, b, grid_a=grid_a, grid_b=grid_b)
    feats = overlap.cost_matrix(a, b, features_only=True).detach()
    full = overlap.cost_matrix(a, b, grid_a, grid_b).detach()
    right = torch.tensor([0.0, 0.0, 1.0] * 3, dtype=torch.float64)
    mask = 0.5 * (right[:, None] + right.flip(0)[None, :])
    value = (_pot_plan_difference(feats, full) * mask * feats).sum(dim=(1, 2)).mean()
    assert terms["dense_contrast"].item() == pytest.approx(value.item(), abs=1e-6)
    # Leaving out the cells without a match changes the term.
    assert abs(every["dense_contrast"].item() - value.item()) > 1e-3
    with pytest.raises(ValueError, match="plan_contrast_cells"):
        _loss(plan_contrast_cells="some")
