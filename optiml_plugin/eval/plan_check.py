"""Does a trained OPTiML run's transport plan find corresponding cells? Plan
accuracy on held-out view pairs, and the overlay figure on a radiograph."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch

from optiml_plugin.data.io import read_image
from optiml_plugin.data.phantom import generate_phantom
from optiml_plugin.eval.datasets import PHANTOM_TEST_SEED
from optiml_plugin.train.module import OPTiMLModule
from optiml_plugin.transforms import CVSIMTransform
from optiml_plugin.viz.transport_plan import (
    denormalize,
    match_accuracy,
    plot_transport_plan,
)


def plan_accuracy_and_figure(
    run_dir: Path,
    args: argparse.Namespace,
    figure_path: Path | None,
    seed: int,
) -> tuple[float, float]:
    """Share of cells whose plan row peaks at the true cell, on 32 held-out phantom
    view pairs, for a trained OPTiML run; draws the overlay figure if asked.

    Returns:
        The plan's accuracy and, on the same pairs, that of the same-index plan
        (cell i of view A to cell i of view B, no model): the level that features
        encoding only where a cell sits in its view would reach.
    """
    module = OPTiMLModule.load_from_checkpoint(
        run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    ).eval()
    transform = CVSIMTransform(size=args.image_size)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    pairs = []
    for i in range(32):
        image = generate_phantom(
            PHANTOM_TEST_SEED * 1_000_003 + 50_000 + i, size=args.phantom_size
        ).image
        pairs.append(transform(image)[:4])
    overlay_image = figure_image(args)
    overlay = transform(overlay_image)[:4] if figure_path is not None else None
    torch.random.set_rng_state(state)
    va, vb, ga, gb = (torch.stack(t) for t in zip(*pairs, strict=True))
    with torch.no_grad():
        out = module.model(va, vb)
        plan, _ = module.criterion.transport_plan(
            out.dense_a, out.dense_b, features_only=True
        )
    accuracy = _mean_accuracy(plan, ga, gb)
    same_index = torch.eye(plan.shape[1]).expand_as(plan)
    identity = _mean_accuracy(same_index, ga, gb)
    if overlay is not None and figure_path is not None:
        a, b, g_a, g_b = overlay
        with torch.no_grad():
            o = module.model(a[None], b[None])
            p, _ = module.criterion.transport_plan(
                o.dense_a, o.dense_b, features_only=True
            )
        acc = match_accuracy(p[0], g_a, g_b)
        fig = plot_transport_plan(
            denormalize(a), denormalize(b), p[0], g_a, g_b,
            title=f"OPTiML plan (seed {seed}, {args.max_steps} steps): peaks at the "
            f"true cell for {acc:.0%} of cells here, {accuracy:.0%} over 32 pairs "
            f"(same-index plan {identity:.0%}); + = true cell",
        )  # fmt: skip
        figure_path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(figure_path, dpi=100)
        plt.close(fig)
    return accuracy, identity


def _mean_accuracy(plan: torch.Tensor, ga: torch.Tensor, gb: torch.Tensor) -> float:
    accs = [match_accuracy(plan[i], ga[i], gb[i]) for i in range(plan.shape[0])]
    accs = [a for a in accs if not math.isnan(a)]
    return sum(accs) / len(accs) if accs else math.nan


def figure_image(args: argparse.Namespace) -> Any:
    """The radiograph of the transport-plan overlay: a real one from the evaluation
    data when there is one, else a held-out phantom with lesions."""
    eval_source = args.eval_data or ""
    kind, _, root = eval_source.partition(":")
    if kind in ("shared", "covid"):
        base = Path(root) / "covid_cxr_lungseg" if kind == "shared" else Path(root)
        images = sorted((base / "images").glob("*.png"))
        if images:
            return read_image(images[0])
    return generate_phantom(20_000, size=args.phantom_size, lesion_prob=1.0).image
