"""Training-step time of OPTiML vs Lightly's VICReg and VICRegL, and batched Sinkhorn
vs a per-image loop of POT's solver, measured side by side in one run.

    python tools/benchmark_loss.py                       # ResNet-50, 224 px, batch 16
    python tools/benchmark_loss.py --backbone resnet18 --image-size 128 --batch-size 32

Prints median times and ratios; ``--json FILE`` also writes them.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import ot as pot
import torch
from lightly.loss import VICRegLLoss, VICRegLoss
from lightly.models.modules.heads import (
    VicRegLLocalProjectionHead,
    VICRegProjectionHead,
)
from torch import nn

from optiml_plugin import OPTiML, OPTiMLLoss
from optiml_plugin.models.optiml import resnet_backbone, resnet_dense_features
from optiml_plugin.ot import sinkhorn


def _timed(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _interleaved(
    steps: dict[str, Callable[[], None]], warmup: int, repeats: int
) -> dict[str, float]:
    """Median ms per function, timed round-robin so that drift hits all alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(_timed(step, 0, 1))
    return {name: statistics.median(t) for name, t in times.items()}


class LightlyDense(nn.Module):
    """Backbone + Lightly's VICReg global head (+ VICRegL's local head)."""

    def __init__(
        self, backbone: str, global_dim: int, dense_dim: int, dense_hidden: int
    ) -> None:
        super().__init__()
        self.backbone, width = resnet_backbone(backbone)
        self.head = VICRegProjectionHead(width, global_dim, global_dim, num_layers=3)
        self.local_head = VicRegLLocalProjectionHead(width, dense_hidden, dense_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = resnet_dense_features(self.backbone, x)
        return self.head(fmap.mean(dim=(2, 3))), self.local_head(
            fmap.permute(0, 2, 3, 1)
        )


def step_times(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Median ms of one optimiser step (two views, forward, loss, backward, SGD)."""
    torch.manual_seed(0)
    b, s = args.batch_size, args.image_size
    g = s // 32
    x0, x1 = (
        torch.randn(b, 3, s, s, device=device),
        torch.randn(b, 3, s, s, device=device),
    )
    cells = (torch.arange(g, dtype=torch.float32) + 0.5) / g
    grid = torch.stack(torch.meshgrid(cells, cells, indexing="xy"), -1)
    g0 = grid.expand(b, g, g, 2).to(device)
    g1 = (grid * 0.9 + 0.05).expand(b, g, g, 2).to(device)
    dims = {"global_dim": args.global_dim, "dense_dim": args.dense_dim}

    optiml = OPTiML(
        args.backbone,
        global_hidden_dim=args.global_dim,
        dense_hidden_dim=args.dense_hidden,
        **dims,
    ).to(device)
    optiml_loss = OPTiMLLoss()
    lightly_model = LightlyDense(
        args.backbone, args.global_dim, args.dense_dim, args.dense_hidden
    ).to(device)
    vicreg_loss, vicregl_loss = VICRegLoss(), VICRegLLoss()
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp)

    def make_step(
        model: nn.Module, compute: Callable[[], torch.Tensor]
    ) -> Callable[[], None]:
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def step() -> None:
            with amp:
                loss = compute()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    def vicreg() -> torch.Tensor:
        return vicreg_loss(lightly_model(x0)[0], lightly_model(x1)[0])

    def vicregl() -> torch.Tensor:
        return vicregl_loss([lightly_model(x0), lightly_model(x1)], [g0, g1])

    def optiml_step() -> torch.Tensor:
        out = optiml(x0, x1)
        return optiml_loss(out.dense_a, out.dense_b, out.global_a, out.global_b, g0, g1)

    steps = {
        "vicreg": make_step(lightly_model, vicreg),
        "vicregl": make_step(lightly_model, vicregl),
        "optiml": make_step(optiml, optiml_step),
    }
    results = _interleaved(steps, args.warmup, args.repeats)
    if device.type == "cuda":
        for name, step in steps.items():
            torch.cuda.reset_peak_memory_stats()
            step()
            results[f"{name}_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return results


def sinkhorn_times(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Median ms: batched Sinkhorn (kernel, log) vs a loop of POT's ot.sinkhorn."""
    torch.manual_seed(0)
    b, n, iters, eps = args.ot_batch, args.ot_cells, args.ot_iters, 0.05
    cost = 2 * torch.rand(b, n, n, device=device)
    a = torch.full((n,), 1.0 / n, device=device)

    def pot_loop() -> None:
        for k in range(b):
            pot.sinkhorn(a, a, cost[k], eps, numItermax=iters, stopThr=0.0, warn=False)

    return {
        "sinkhorn_kernel": _timed(
            lambda: sinkhorn(cost, eps, iters, method="kernel"), 2, args.repeats
        ),
        "sinkhorn_log": _timed(
            lambda: sinkhorn(cost, eps, iters, method="log"), 2, args.repeats
        ),
        "pot_loop": _timed(pot_loop, 1, args.repeats),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--global-dim", type=int, default=2048)
    p.add_argument("--dense-dim", type=int, default=512)
    p.add_argument("--dense-hidden", type=int, default=1024)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--ot-batch", type=int, default=64)
    p.add_argument("--ot-cells", type=int, default=196)
    p.add_argument("--ot-iters", type=int, default=100)
    p.add_argument("--amp", action="store_true", help="bf16 autocast for the steps")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--skip-steps", action="store_true", help="only the Sinkhorn part")
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu"
    )
    print(
        f"device: {where}, torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    results: dict[str, float] = {}
    if not args.skip_steps:
        results.update(step_times(args, device))
        print(
            f"\ntraining step, {args.backbone} {args.image_size}px batch {args.batch_size} "
            f"(median of {args.repeats}):"
        )
        for name in ("vicreg", "vicregl", "optiml"):
            print(
                f"  {name:8s} {results[name]:9.1f} ms   x{results[name] / results['vicreg']:.3f} of VICReg"
            )
        results["optiml_over_vicreg"] = results["optiml"] / results["vicreg"]
        results["optiml_over_vicregl"] = results["optiml"] / results["vicregl"]
    results.update(sinkhorn_times(args, device))
    print(
        f"\nSinkhorn, B={args.ot_batch} N=M={args.ot_cells} {args.ot_iters} iters float32 "
        f"(median of {args.repeats}):"
    )
    for name in ("sinkhorn_kernel", "sinkhorn_log", "pot_loop"):
        print(
            f"  {name:16s} {results[name]:9.1f} ms   POT loop / this = x{results['pot_loop'] / results[name]:.2f}"
        )
    results["speedup_kernel_vs_pot_loop"] = (
        results["pot_loop"] / results["sinkhorn_kernel"]
    )
    results["speedup_log_vs_pot_loop"] = results["pot_loop"] / results["sinkhorn_log"]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"args": vars(args), "device": where, "results": results}, f, indent=2
            )
    return results


if __name__ == "__main__":
    main()
