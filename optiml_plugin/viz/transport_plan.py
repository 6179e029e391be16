"""Figure of a learned transport plan drawn over the two radiograph views.

For a few cells of view A, the figure shades the cells of view B that receive
most of their transport mass, joins each cell to the cell where its row peaks,
and marks with a '+' where that piece of anatomy really is in view B (from the
transform's grids), so the picture shows whether the plan found it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import ConnectionPatch, Rectangle  # noqa: E402
from torch import Tensor  # noqa: E402

COLORS = ("#e41a1c", "#377eb8", "#4daf4a", "#ff7f00", "#984ea3", "#ffff33")


def match_accuracy(plan: Tensor, grid_a: Tensor, grid_b: Tensor) -> float:
    """Share of A's cells whose plan row peaks at their true cell in B.

    The true cell is the one of B whose original-image position is nearest to A's
    cell. Only cells of A that lie inside view B (nearest distance under one cell
    of B) are counted. Returns NaN when none is.

    Args:
        plan: (N, M) plan for one image pair.
        grid_a: (g_a, g_a, 2) or (N, 2) positions of A's cells in the original image.
        grid_b: (g_b, g_b, 2) or (M, 2) positions of B's cells.
    """
    pa, pb = grid_a.reshape(-1, 2).float(), grid_b.reshape(-1, 2).float()
    dist = torch.cdist(pa, pb)
    nearest = dist.argmin(dim=1)
    cell = torch.cdist(pb, pb).topk(2, largest=False).values[:, 1].median()
    inside = dist.min(dim=1).values < cell
    if not bool(inside.any()):
        return float("nan")
    peak = plan.reshape(pa.shape[0], -1).argmax(dim=1)
    return float((peak == nearest)[inside].float().mean())


def plot_transport_plan(
    image_a: np.ndarray,
    image_b: np.ndarray,
    plan: Tensor,
    grid_a: Tensor | None = None,
    grid_b: Tensor | None = None,
    cells: list[int] | None = None,
    title: str | None = None,
) -> plt.Figure:
    """Draws where the transport mass of a few cells of view A lands on view B.

    Args:
        image_a: View A as an (H, W) array.
        image_b: View B as an (H, W) array.
        plan: (N, M) plan, N = g_a^2 cells of A, M = g_b^2 cells of B (row-major).
        grid_a: Positions of A's cells in the original image (for the '+' marks).
        grid_b: Positions of B's cells.
        cells: Indices of A's cells to draw (default: four spread over the view).
        title: Figure title.
    """
    plan = plan.detach().float().cpu()
    n, m = plan.shape
    ga, gb = int(round(n**0.5)), int(round(m**0.5))
    if ga * ga != n or gb * gb != m:
        raise ValueError(f"plan {tuple(plan.shape)} is not square grid x square grid")
    if cells is None:
        q = max(1, ga // 4)
        cells = [
            q * ga + q,
            q * ga + ga - 1 - q,
            (ga - 1 - q) * ga + q,
            (ga - 1 - q) * ga + ga - 1 - q,
        ]
        cells = list(dict.fromkeys(cells))
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(10, 5.4))
    for ax, img, name in ((ax_a, image_a, "view A"), (ax_b, image_b, "view B")):
        ax.imshow(img, cmap="gray")
        ax.set_title(name)
        ax.set_axis_off()
    ha, wa = image_a.shape[:2]
    hb, wb = image_b.shape[:2]
    sa, sb = (wa / ga, ha / ga), (wb / gb, hb / gb)
    truth = None
    if grid_a is not None and grid_b is not None:
        truth = torch.cdist(
            grid_a.reshape(-1, 2).float(), grid_b.reshape(-1, 2).float()
        )
    for k, i in enumerate(cells):
        color = COLORS[k % len(COLORS)]
        ra, ca = divmod(i, ga)
        ax_a.add_patch(
            Rectangle(
                (ca * sa[0], ra * sa[1]), sa[0], sa[1], fill=False, ec=color, lw=2.5
            )
        )
        # Shade by the row's contrast: a plan at moderate epsilon is smooth, and
        # what matters is where its mass concentrates.
        row = plan[i] - plan[i].min()
        row = row / row.max().clamp_min(1e-12)
        for j in torch.nonzero(row > 0.5).flatten().tolist():
            rb, cb = divmod(j, gb)
            ax_b.add_patch(
                Rectangle(
                    (cb * sb[0], rb * sb[1]),
                    sb[0],
                    sb[1],
                    color=color,
                    alpha=0.6 * float(row[j]),
                    lw=0,
                )
            )
        rp, cp = divmod(int(plan[i].argmax()), gb)
        cx, cy = (cp + 0.5) * sb[0], (rp + 0.5) * sb[1]
        src = ((ca + 0.5) * sa[0], (ra + 0.5) * sa[1])
        fig.add_artist(
            ConnectionPatch(
                src,
                (cx, cy),
                "data",
                "data",
                axesA=ax_a,
                axesB=ax_b,
                color=color,
                lw=1.5,
            )
        )
        if truth is not None and float(truth[i].min()) < max(sb) * 2:
            rt, ct = divmod(int(truth[i].argmin()), gb)
            ax_b.plot(
                (ct + 0.5) * sb[0],
                (rt + 0.5) * sb[1],
                "+",
                color=color,
                ms=16,
                mew=3,
                mec="white",
            )
            ax_b.plot(
                (ct + 0.5) * sb[0], (rt + 0.5) * sb[1], "+", color=color, ms=13, mew=2
            )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def denormalize(view: Tensor) -> np.ndarray:
    """Maps a normalised view (C, H, W) back to a displayable (H, W) array."""
    x = view[0].float()
    return ((x - x.min()) / (x.max() - x.min()).clamp_min(1e-8)).cpu().numpy()


@torch.no_grad()
def transport_plan_figure(
    module: Any,
    args: argparse.Namespace,
    path: str | Path,
    diagnostics: dict[str, float] | None = None,
) -> Path:
    """Draws the plan of a trained OPTiML module on a held-out phantom pair.

    The plan comes from the features alone (no spatial term). The title gives the
    share of cells whose plan row peaks at the true cell next to the same-index
    plan's share on the same pair and, when ``diagnostics`` (see
    :mod:`optiml_plugin.diagnostics`) are given, the held-out figures with the
    different-image control.
    """
    from optiml_plugin.data.phantom import generate_phantom
    from optiml_plugin.transforms import CVSIMTransform

    phantom = generate_phantom(
        seed=10_000 + args.seed, size=args.phantom_size, lesion_prob=1.0
    )
    transform = CVSIMTransform(
        size=args.image_size,
        global_scale=tuple(args.crop_scale),
        degrees=getattr(args, "degrees", 10.0),
        hf_prob=getattr(args, "hflip_prob", 0.0),
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(args.seed)
    views_grids = transform(phantom.image)
    torch.random.set_rng_state(state)
    view_a, view_b, grid_a, grid_b = views_grids[:4]
    model = module.model
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = model(view_a[None].to(device), view_b[None].to(device))
    plan, _ = module.criterion.transport_plan(
        out.dense_a, out.dense_b, features_only=True
    )
    model.train(was_training)
    n = plan.shape[-1]
    acc = match_accuracy(plan[0], grid_a, grid_b)
    same = match_accuracy(torch.eye(n), grid_a, grid_b)
    title = (
        f"OPTiML plan after {module.global_step} steps, this pair: peaks at the true "
        f"cell for {acc:.0%} of cells, same-index plan {same:.0%}; + = true cell"
    )
    if diagnostics:
        d = diagnostics
        title += (
            f"\nheld-out pairs: plan {d['plan_accuracy']:.0%} vs same-index "
            f"{d['same_index_accuracy']:.0%}; two different images: peak at the "
            f"same index {d['same_index_rate_different']:.0%}, OT same/different "
            f"{d['ot_ratio']:.2f}"
        )
    fig = plot_transport_plan(
        denormalize(view_a), denormalize(view_b), plan[0], grid_a, grid_b, title=title
    )
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
