"""Tests of optiml_plugin.ot against POT (https://pythonot.github.io)."""

from __future__ import annotations

import numpy as np
import ot as pot
import pytest
import torch

from optiml_plugin import ot

EPSILONS = [0.01, 0.05, 0.1, 0.5, 1.0]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _simplex(shape: tuple[int, ...], gen: torch.Generator, dtype=torch.float64):
    """Random non-uniform marginals, bounded away from zero, summing to one."""
    x = torch.rand(shape, generator=gen, dtype=dtype) + 0.2
    return x / x.sum(dim=-1, keepdim=True)


def _pot_plans(cost, a, b, epsilon, num_iters, stop_thr):
    """POT's sinkhorn_knopp, one problem at a time, in float64 NumPy."""
    return np.stack(
        [
            pot.sinkhorn(
                a[k].numpy(),
                b[k].numpy(),
                cost[k].numpy(),
                reg=epsilon,
                numItermax=num_iters,
                stopThr=stop_thr,
                warn=False,
            )
            for k in range(cost.shape[0])
        ]
    )


# --------------------------------------------------------------------------
# Agreement with POT
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["kernel", "log"])
@pytest.mark.parametrize("shape", [(5, 7), (12, 12)])
def test_converged_plan_matches_pot(method, shape):
    n, m = shape
    gen = _gen(n * 100 + m)
    cost = torch.rand(4, n, m, generator=gen, dtype=torch.float64)  # in [0, 1]
    a, b = _simplex((4, n), gen), _simplex((4, m), gen)
    a[0], b[0] = 1.0 / n, 1.0 / m  # one problem with uniform marginals
    for eps in EPSILONS:
        ref = _pot_plans(cost, a, b, eps, num_iters=5000, stop_thr=1e-10)
        plan = ot.sinkhorn(cost, eps, 5000, a, b, method=method, tol=1e-10)
        assert plan.dtype == torch.float64
        diff = np.abs(plan.numpy() - ref).max()
        assert diff < 1e-5, f"eps={eps}: max |T - T_pot| = {diff:.3g}"


@pytest.mark.parametrize("method", ["kernel", "log"])
def test_same_iterates_as_pot_after_few_iterations(method):
    """Same initialisation and update order as POT: equal plans after k iterations,
    also for costs whose rows are offset (the row-minimum shift must not change the
    iterates)."""
    gen = _gen(1)
    cost = torch.rand(3, 6, 9, generator=gen, dtype=torch.float64)
    cost = cost + 3.0 * torch.rand(3, 6, 1, generator=gen, dtype=torch.float64)
    a, b = _simplex((3, 6), gen), _simplex((3, 9), gen)
    for eps in (0.05, 0.5):
        for iters in (1, 2, 7):
            ref = _pot_plans(cost, a, b, eps, num_iters=iters, stop_thr=0.0)
            plan = ot.sinkhorn(cost, eps, iters, a, b, method=method)
            np.testing.assert_allclose(plan.numpy(), ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["kernel", "log"])
def test_zero_mass_entries(method):
    gen = _gen(2)
    cost = torch.rand(2, 6, 5, generator=gen, dtype=torch.float64)
    a, b = _simplex((2, 6), gen), _simplex((2, 5), gen)
    a[:, 1] = 0.0
    b[:, 3] = 0.0
    a, b = a / a.sum(-1, keepdim=True), b / b.sum(-1, keepdim=True)
    plan = ot.sinkhorn(cost, 0.05, 2000, a, b, method=method, tol=1e-12)
    assert torch.isfinite(plan).all()
    assert torch.equal(plan[:, 1, :], torch.zeros(2, 5))
    assert torch.equal(plan[:, :, 3], torch.zeros(2, 6))
    # The rest is the plan of the problem without those rows/columns (POT itself
    # gives NaN with zero entries in a).
    rows, cols = [0, 2, 3, 4, 5], [0, 1, 2, 4]
    sub = cost[:, rows][:, :, cols]
    ref = _pot_plans(sub, a[:, rows], b[:, cols], 0.05, 2000, stop_thr=1e-13)
    np.testing.assert_allclose(plan[:, rows][:, :, cols].numpy(), ref, atol=1e-9)


def test_approaches_emd_as_epsilon_shrinks():
    gen = _gen(0)
    x = torch.rand(8, 1, generator=gen, dtype=torch.float64)
    y = torch.rand(1, 8, generator=gen, dtype=torch.float64)
    cost = (x - y) ** 2  # in [0, 1]
    exact = float(ot.transport_cost(ot.emd(cost), cost))
    exact_pot = float(pot.emd2([], [], cost.numpy()))
    assert exact == pytest.approx(exact_pot, abs=1e-12)
    costs = []
    for eps in (1.0, 0.1, 0.01, 0.003):
        plan = ot.sinkhorn(cost, eps, 10000, method="log", tol=1e-12)
        col_err = float((plan.sum(0) - 1.0 / 8).abs().sum())
        assert col_err < 1e-9, f"eps={eps} did not converge ({col_err:.2g})"
        costs.append(float(ot.transport_cost(plan, cost)))
    gaps = [c - exact for c in costs]
    assert all(g > -1e-12 for g in gaps), gaps  # feasible plans cost at least OT
    assert all(g1 < g0 for g0, g1 in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] < 0.02, gaps
    assert gaps[0] > 10 * gaps[-1], gaps  # the regularisation bias really shrinks


# --------------------------------------------------------------------------
# Marginals, stability, precision
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["auto", "kernel", "log"])
def test_marginals_hold_in_float32(method):
    gen = _gen(3)
    cost = 2.0 * torch.rand(4, 30, 40, generator=gen)
    a, b = _simplex((4, 30), gen, torch.float32), _simplex((4, 40), gen, torch.float32)
    plan = ot.sinkhorn(cost, 0.05, 500, a, b, method=method)
    assert plan.dtype == torch.float32 and plan.shape == (4, 30, 40)
    assert (plan >= 0).all()
    torch.testing.assert_close(plan.sum(2), a, rtol=0, atol=1e-4)
    torch.testing.assert_close(plan.sum(1), b, rtol=0, atol=1e-4)


@pytest.mark.parametrize("method", ["auto", "log"])
@pytest.mark.parametrize("eps", [0.1, 0.01, 3e-3, 1e-3])
def test_finite_in_float32_for_small_epsilon(method, eps):
    gen = _gen(4)
    cost = 2.0 * torch.rand(3, 49, 49, generator=gen)
    plan = ot.sinkhorn(cost, eps, 200, method=method)
    assert torch.isfinite(plan).all()
    torch.testing.assert_close(
        plan.sum(2), torch.full((3, 49), 1 / 49), atol=1e-5, rtol=0
    )


def test_auto_is_stable_at_the_kernel_threshold():
    """Largest range/epsilon auto still sends to the kernel path, adversarial costs."""
    gen = _gen(5)
    n = 32
    eps = 2.0 / ot.KERNEL_MAX_RANGE[torch.float32]
    block = torch.ones(n, n)
    block[: n // 2, : n // 2] = 0.0
    block[n // 2 :, n // 2 :] = 0.0
    costs = torch.stack(
        [
            2.0 * torch.rand(n, n, generator=gen),
            2.0 * (1.0 - torch.eye(n)),  # only the diagonal is cheap
            2.0 * block,  # two clusters
            2.0 * (torch.rand(n, n, generator=gen) > 0.9).float(),  # sparse 0/2
            torch.linspace(0, 2, n)[:, None].expand(n, n).contiguous(),  # flat rows
        ]
    )
    assert ot.choose_method(costs, eps) == "kernel"
    plan = ot.sinkhorn(costs, eps, 300)
    ref = ot.sinkhorn(costs, eps, 300, method="log")
    assert torch.isfinite(plan).all()
    torch.testing.assert_close(plan, ref, atol=1e-6, rtol=1e-3)


def test_bfloat16_under_autocast_gives_float32():
    gen = _gen(6)
    cost = 2.0 * torch.rand(4, 49, 49, generator=gen)
    cost_bf16 = cost.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plan = ot.sinkhorn(cost_bf16, 0.05, 100)
        plan_log = ot.sinkhorn(cost_bf16, 0.05, 100, method="log")
    assert plan.dtype == torch.float32 and plan_log.dtype == torch.float32
    assert torch.isfinite(plan).all() and torch.isfinite(plan_log).all()
    # Computed in float32, not in bfloat16: same as the upcast cost without autocast.
    ref = ot.sinkhorn(cost_bf16.float(), 0.05, 100)
    torch.testing.assert_close(plan, ref, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(plan_log, ref, rtol=1e-4, atol=1e-8)
    # Close to the plan of the unrounded float32 cost (bf16 rounds the cost by up to
    # 2**-8 relative, i.e. up to ~0.16 in cost / epsilon).
    full = ot.sinkhorn(cost, 0.05, 100)
    assert (plan - full).abs().sum(dim=(1, 2)).max() < 0.02
    rel = (ot.transport_cost(plan, cost) / ot.transport_cost(full, cost) - 1).abs()
    assert rel.max() < 2e-3


def test_float16_and_float64_dtypes():
    gen = _gen(7)
    cost = torch.rand(2, 10, 12, generator=gen, dtype=torch.float64)
    assert ot.sinkhorn(cost, 0.1, 20).dtype == torch.float64
    assert ot.sinkhorn(cost.half(), 0.1, 20).dtype == torch.float32
    assert ot.sinkhorn(cost.half(), 0.1, 20, method="log").dtype == torch.float32


# --------------------------------------------------------------------------
# Method choice
# --------------------------------------------------------------------------


def test_choose_method():
    gen = _gen(8)
    cost = 2.0 * torch.rand(4, 49, 49, generator=gen)  # like 1 - cosine
    assert ot.choose_method(cost, 0.05) == "kernel"
    assert ot.choose_method(cost, 1e-3) == "log"
    assert ot.choose_method(cost[0], 0.05) == "kernel"
    # The float64 threshold is larger: 2 / 0.01 = 200 is fine in float64 only.
    assert ot.choose_method(cost, 0.01) == "log"
    assert ot.choose_method(cost.double(), 0.01) == "kernel"
    # A row-wise offset does not matter (the kernel is built on C - min_j C).
    assert ot.choose_method(cost + 100 * torch.rand(4, 49, 1, generator=gen), 0.05) == (
        "kernel"
    )


def test_auto_runs_the_chosen_method():
    gen = _gen(9)
    cost = 2.0 * torch.rand(2, 20, 20, generator=gen)
    for eps, expected in ((0.05, "kernel"), (1e-3, "log")):
        auto = ot.sinkhorn(cost, eps, 30)
        chosen = ot.sinkhorn(cost, eps, 30, method=expected)
        assert torch.equal(auto, chosen), eps


def test_forced_kernel_warns_and_auto_falls_back(monkeypatch):
    # The row minima all lie in column 0: columns 1.. of exp(-C'/eps) underflow.
    cost = torch.full((1, 6, 6), 2.0)
    cost[:, :, 0] = 0.0
    with pytest.warns(RuntimeWarning, match="non-finite"):
        bad = ot.sinkhorn(cost, 1e-3, 10, method="kernel")
    assert not torch.isfinite(bad).all()
    # Make auto pick the kernel anyway: it must notice and redo it in the log domain.
    monkeypatch.setitem(ot.KERNEL_MAX_RANGE, torch.float32, float("inf"))
    assert ot.choose_method(cost, 1e-3) == "kernel"
    plan = ot.sinkhorn(cost, 1e-3, 10)
    assert torch.equal(plan, ot.sinkhorn(cost, 1e-3, 10, method="log"))
    assert torch.isfinite(plan).all()


# --------------------------------------------------------------------------
# Batching, shapes, early stopping, gradients
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["kernel", "log"])
def test_batched_equals_per_problem(method):
    gen = _gen(10)
    cost = torch.rand(5, 9, 11, generator=gen, dtype=torch.float64)
    cost[2] *= 10.0  # very different scales in one batch
    cost[3] += 5.0
    a, b = _simplex((5, 9), gen), _simplex((5, 11), gen)
    batched = ot.sinkhorn(cost, 0.1, 50, a, b, method=method)
    for k in range(5):
        single = ot.sinkhorn(cost[k], 0.1, 50, a[k], b[k], method=method)
        torch.testing.assert_close(batched[k], single, rtol=1e-10, atol=1e-14)
    # Shared (N,) / (M,) marginals are broadcast over the batch.
    shared = ot.sinkhorn(cost, 0.1, 50, a[0], b[0], method=method)
    expanded = ot.sinkhorn(cost, 0.1, 50, a[:1].expand(5, 9), b[:1].expand(5, 11))
    torch.testing.assert_close(shared, expanded, rtol=1e-10, atol=1e-14)


def test_two_dimensional_input():
    gen = _gen(11)
    cost = torch.rand(7, 5, generator=gen)
    a, b = _simplex((7,), gen, torch.float32), _simplex((5,), gen, torch.float32)
    for method in ot.METHODS:
        plan = ot.sinkhorn(cost, 0.1, 50, a, b, method=method)
        assert plan.shape == (7, 5)
        batched = ot.sinkhorn(cost[None], 0.1, 50, a[None], b[None], method=method)
        torch.testing.assert_close(plan, batched[0])
    assert ot.emd(cost).shape == (7, 5)
    assert ot.transport_cost(plan, cost).shape == ()


def test_empty_batch():
    assert ot.sinkhorn(torch.rand(0, 3, 4), 0.1).shape == (0, 3, 4)


def test_input_is_not_modified():
    gen = _gen(12)
    for dtype in (torch.float32, torch.float64):
        cost = torch.rand(2, 8, 8, generator=gen, dtype=dtype)
        before = cost.clone()
        for method in ot.METHODS:
            ot.sinkhorn(cost, 0.1, 5, method=method)
        assert torch.equal(cost, before)


@pytest.mark.parametrize("method", ot.METHODS)
def test_no_host_synchronisation_off_the_cpu_without_tol(method):
    # A meta tensor has no values: any host read (.item(), bool(), float())
    # raises, so this passes only if nothing in the solver waits for the device.
    cost = torch.rand(3, 7, 5, device="meta")
    a = torch.full((7,), 1 / 7, device="meta")
    plan = ot.sinkhorn(cost, 0.05, 20, method=method, a=a)
    assert plan.shape == (3, 7, 5) and plan.dtype == torch.float32
    # The early-stop check is a host read, and so is the CPU's finite check.
    with pytest.raises(RuntimeError, match="meta"):
        ot.sinkhorn(cost, 0.05, 20, method=method, tol=1e-3)


def test_auto_uses_the_log_domain_off_the_cpu(monkeypatch):
    calls = []
    real = ot._sinkhorn_log
    monkeypatch.setattr(ot, "_sinkhorn_log", lambda *a: calls.append(1) or real(*a))
    ot.sinkhorn(torch.rand(2, 4, 4, device="meta"), 0.05, 3)
    assert calls == [1]
    ot.sinkhorn(torch.rand(2, 4, 4), 0.05, 3)  # CPU, small range: kernel
    assert calls == [1]


@pytest.mark.parametrize("method", ["kernel", "log"])
def test_tol_stops_early_at_a_multiple_of_ten(method):
    gen = _gen(13)
    cost = torch.rand(3, 10, 10, generator=gen, dtype=torch.float64)
    tol = 1e-6
    plan = ot.sinkhorn(cost, 0.05, 1000, method=method, tol=tol)

    def col_err(p):
        return float((p.sum(1) - 0.1).abs().sum(-1).max())

    assert col_err(plan) < tol
    # It stopped after the first multiple of 10 iterations whose error is < tol.
    for k in range(10, 1000, 10):
        ref = ot.sinkhorn(cost, 0.05, k, method=method)
        if col_err(ref) < tol:
            break
    assert 10 < k < 1000
    torch.testing.assert_close(plan, ref, rtol=0, atol=0)
    assert col_err(ot.sinkhorn(cost, 0.05, k - 10, method=method)) >= tol
    # tol=0 never stops early.
    full = ot.sinkhorn(cost, 0.05, 200, method=method)
    assert torch.equal(ot.sinkhorn(cost, 0.05, 200, method=method, tol=0.0), full)


@pytest.mark.parametrize("method", ["kernel", "log"])
def test_not_detached(method):
    gen = _gen(14)
    cost = torch.rand(2, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    plan = ot.sinkhorn(cost, 0.5, 10, method=method)
    assert plan.requires_grad
    plan.pow(2).sum().backward()
    assert cost.grad is not None and torch.isfinite(cost.grad).all()
    with torch.no_grad():
        detached = ot.sinkhorn(cost, 0.5, 10, method=method)
    assert not detached.requires_grad
    torch.testing.assert_close(plan.detach(), detached)


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def _bad_calls():
    c = torch.rand(2, 3, 4)
    nan_cost = c.clone()
    nan_cost[1, 2, 3] = float("nan")
    inf_cost = c.clone()
    inf_cost[0, 0, 0] = float("inf")
    u3, u4 = torch.full((3,), 1 / 3), torch.full((4,), 1 / 4)
    return [
        (dict(cost=torch.rand(3)), r"cost must have shape .*got shape \(3,\)"),
        (dict(cost=torch.rand(1, 2, 3, 4)), r"cost .*got shape \(1, 2, 3, 4\)"),
        (dict(cost=torch.rand(2, 0, 4)), r"N >= 1 .*\(2, 0, 4\)"),
        (dict(cost=nan_cost), r"cost must be finite, got 1 NaN/inf"),
        (dict(cost=inf_cost), r"cost must be finite"),
        (dict(cost=c, epsilon=0.0), r"epsilon must be .*> 0, got 0\.0"),
        (dict(cost=c, epsilon=-1), r"epsilon .*got -1"),
        (dict(cost=c, epsilon=float("nan")), r"epsilon .*got nan"),
        (dict(cost=c, num_iters=0), r"num_iters must be an integer >= 1, got 0"),
        (dict(cost=c, num_iters=2.5), r"num_iters .*got 2\.5"),
        (dict(cost=c, method="sinkhorn"), r"method must be one of .*'sinkhorn'"),
        (dict(cost=c, tol=-1.0), r"tol .*got -1\.0"),
        (dict(cost=c, a=torch.full((4,), 0.25)), r"a must have shape .*\(3,\).*\(4,\)"),
        (dict(cost=c, a=torch.full((3, 3), 1 / 3)), r"a must have shape .*\(3, 3\)"),
        (dict(cost=c[0], b=torch.full((2, 4), 0.25)), r"b must have shape \(M,\)"),
        (dict(cost=c, a=torch.tensor([0.5, 0.6, -0.1])), r"a must be non-negative"),
        (dict(cost=c, b=torch.full((4,), 0.3)), r"b must sum to 1 .*got a sum of 1\.2"),
        (
            dict(cost=c, a=torch.stack([u3, 2 * u3])),
            r"a must sum to 1 .*got a sum of 2 \(problem 1\)",
        ),
        (
            dict(cost=c, b=torch.tensor([0.5, float("nan"), 0.5, 0])),
            r"b must be finite",
        ),
        (dict(cost=c, a=u3, b=u4, epsilon=float("inf")), r"epsilon"),
    ]


@pytest.mark.parametrize(("kwargs", "match"), _bad_calls())
def test_validation_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ot.sinkhorn(**kwargs)


def test_validation_errors_other_functions():
    with pytest.raises(TypeError, match="cost must be a torch.Tensor"):
        ot.sinkhorn(np.ones((3, 3)))
    with pytest.raises(ValueError, match="epsilon"):
        ot.choose_method(torch.rand(3, 3), 0)
    with pytest.raises(ValueError, match=r"a must sum to 1"):
        ot.emd(torch.rand(3, 3), a=torch.ones(3))
    with pytest.raises(ValueError, match=r"plan \(2, 3, 3\) and cost \(2, 3, 4\)"):
        ot.transport_cost(torch.rand(2, 3, 3), torch.rand(2, 3, 4))


# --------------------------------------------------------------------------
# Exact reference and transport cost
# --------------------------------------------------------------------------


def test_emd_matches_pot():
    gen = _gen(15)
    cost = torch.rand(3, 6, 8, generator=gen, dtype=torch.float64)
    a, b = _simplex((3, 6), gen), _simplex((3, 8), gen)
    plan = ot.emd(cost, a, b)
    for k in range(3):
        ref = pot.emd(a[k].numpy(), b[k].numpy(), cost[k].numpy())
        np.testing.assert_allclose(plan[k].numpy(), ref, atol=1e-12)
    cost32 = cost.float()
    plan32 = ot.emd(cost32)
    assert plan32.dtype == torch.float32 and plan32.device == cost32.device
    uniform = pot.emd([], [], cost[1].numpy())
    np.testing.assert_allclose(plan32[1].numpy(), uniform, atol=1e-7)


def test_emd_accepts_marginals_within_the_sum_tolerance():
    # POT's network simplex insists on sums equal to ~1e-6; sinkhorn's validation
    # accepts 1e-5, so emd renormalises.
    cost = torch.rand(4, 4, generator=_gen(18))
    a = torch.full((4,), 0.25 * (1 + 8e-6))
    plan = ot.emd(cost, a=a)
    torch.testing.assert_close(plan.sum(1), torch.full((4,), 0.25))


def test_emd_is_a_scaled_permutation_for_uniform_square_problems():
    gen = _gen(16)
    n = 10
    cost = torch.rand(2, n, n, generator=gen)
    plan = ot.emd(cost)
    for k in range(2):
        perm = plan[k] * n
        assert torch.equal(perm, perm.round())  # entries are exactly 0 or 1/n
        assert ((perm == 0) | (perm == 1)).all()
        assert torch.equal(perm.sum(0), torch.ones(n))
        assert torch.equal(perm.sum(1), torch.ones(n))
        # Optimal: no cheaper assignment among all pairwise swaps (2-opt check).
        cols = perm.argmax(1)
        c = cost[k]
        base = c[torch.arange(n), cols]
        for i in range(n):
            for j in range(i + 1, n):
                swapped = c[i, cols[j]] + c[j, cols[i]]
                assert swapped >= base[i] + base[j] - 1e-6


def test_transport_cost():
    gen = _gen(17)
    plan = torch.rand(3, 4, 5, generator=gen)
    cost = torch.rand(3, 4, 5, generator=gen, requires_grad=True)
    value = ot.transport_cost(plan, cost)
    assert value.shape == (3,)
    expected = torch.stack([(plan[k] * cost[k]).sum() for k in range(3)])
    torch.testing.assert_close(value, expected)
    value.sum().backward()
    torch.testing.assert_close(cost.grad, plan)  # gradient wrt cost is the plan
