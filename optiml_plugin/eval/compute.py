"""Compute cost of the pretraining methods, measured side by side: the step time
and peak memory of each method's own Lightning module at equal backbone, image
size and batch, and the batched Sinkhorn against a per-image loop of POT."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import ot as pot
import torch

from optiml_plugin.ot import sinkhorn
from optiml_plugin.train.pretrain import build_module, parse_args

METHODS = ("vicreg", "vicregl", "barlowtwins", "optiml")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_once(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return (time.perf_counter() - start) * 1000


def synthetic_batch(
    batch_size: int, image_size: int, device: torch.device, seed: int = 0
) -> list:
    """A batch shaped like the CV-SIM transform's: ``[[v0, v1, g0, g1], labels]``."""
    generator = torch.Generator().manual_seed(seed)
    g = max(1, image_size // 32)
    views = [
        torch.randn(batch_size, 3, image_size, image_size, generator=generator)
        for _ in range(2)
    ]
    cells = (torch.arange(g, dtype=torch.float32) + 0.5) / g
    grid = torch.stack(torch.meshgrid(cells, cells, indexing="xy"), -1)
    grids = [
        grid.expand(batch_size, g, g, 2),
        (grid * 0.9 + 0.05).expand(batch_size, g, g, 2),
    ]
    return [[t.to(device) for t in views + grids], torch.zeros(batch_size)]


def step_times(
    pretrain_argv: Sequence[str],
    methods: Sequence[str] = METHODS,
    warmup: int = 1,
    repeats: int = 3,
    device: str | torch.device = "cpu",
    amp: bool = False,
) -> dict[str, dict[str, float | None]]:
    """Median ms of one optimiser step (two views, forward, loss, backward, SGD
    step) of each method's pretraining module, timed round-robin so that drift
    hits all alike, and the peak memory of one step on a GPU (None on the CPU).

    Args:
        pretrain_argv: Pretraining options fixing backbone, heads, image size and
            batch size (``--method`` is set per method).
        methods: Methods to time.
        warmup: Untimed steps per method first.
        repeats: Timed steps per method (the median is reported).
        device: Where to run.
        amp: bf16 autocast.

    Returns:
        ``{method: {"ms": median, "ms_all": [...], "peak_mib": ... or None}}``.
    """
    device = torch.device(device)
    torch.manual_seed(0)
    args = parse_args(list(pretrain_argv))
    batch = synthetic_batch(args.batch_size, args.image_size, device)
    steps: dict[str, Callable[[], None]] = {}
    modules = {}
    for method in methods:
        args.method = method
        module = build_module(args).to(device).train()
        optimizer = torch.optim.SGD(module.parameters(), lr=1e-4, momentum=0.9)
        modules[method] = module

        def step(module=module, optimizer=optimizer) -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = module.step_terms(batch)["loss"]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        steps[method] = step
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {m: [] for m in steps}
    for _ in range(repeats):
        for method, step in steps.items():
            times[method].append(_time_once(step, device))
    out: dict[str, dict] = {}
    for method, step in steps.items():
        peak = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            step()
            peak = torch.cuda.max_memory_allocated(device) / 2**20
        out[method] = {
            "ms": statistics.median(times[method]),
            "ms_all": times[method],
            "peak_mib": peak,
        }
    return out


def sinkhorn_times(
    batch: int = 64,
    cells: int = 196,
    iters: int = 100,
    epsilon: float = 0.05,
    repeats: int = 3,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Median ms of the batched Sinkhorn (kernel and log domain) and of a loop of
    POT's ``ot.sinkhorn`` over the images, on the same random costs."""
    device = torch.device(device)
    generator = torch.Generator().manual_seed(0)
    cost = (2 * torch.rand(batch, cells, cells, generator=generator)).to(device)
    a = torch.full((cells,), 1.0 / cells, device=device)

    def pot_loop() -> None:
        for k in range(batch):
            pot.sinkhorn(
                a, a, cost[k], epsilon, numItermax=iters, stopThr=0.0, warn=False
            )

    fns = {
        "sinkhorn_kernel": lambda: sinkhorn(cost, epsilon, iters, method="kernel"),
        "sinkhorn_log": lambda: sinkhorn(cost, epsilon, iters, method="log"),
        "pot_loop": pot_loop,
    }
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_time_once(fn, device))
    return {name: statistics.median(t) for name, t in times.items()}
