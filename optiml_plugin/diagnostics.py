"""Does OPTiML's transport problem see what a radiograph shows, or only where a
cell sits in its view? Diagnostics of the dense tokens and the plan.

A dense self-supervised objective has a trivial solution that chance-level
comparisons do not reveal: tokens that encode only the index of their cell. Two
views of one radiograph then match cell i to cell i whatever they show, the OT
cost falls, and the plan is the same-index plan in disguise. Each figure below
is measured on held-out view pairs and has a trivial reference next to it:

- ``position_share``: share of the token variance explained by the cell index
  alone (between-index sum of squares over the total, both views of every image
  pooled). 1 for a pure position code.
- ``view_mean_share``: share explained by each view's mean token. 1 when the
  tokens are constant within a view (only image identity is left).
- ``common_offset``: |mean token| / spread (root-mean-square distance from the
  mean): a shift shared by every token, to which a cosine cost is blind.
- ``interaction_share``: of the variance left after removing the cell-index and
  view means (what ``center="double"`` leaves, the part the loss aligns), the
  share of its leading view x (cell, dimension) component. 1 when the tokens
  are one image-level scalar times a pattern over the cells, e.g. a position
  code whose sign or size depends on the image: centring does not remove it,
  ``position_share`` does not see it (the signs cancel in the cell means), and
  it makes the plan between two different images peak at the same index.
- ``same_index_rate_different``: plan rows peaking at the same index, for views
  of two *different* images (view A of image k with view B of image k + 1).
- ``ot_same`` / ``ot_different``: mean OT cost <T, C> of same-image pairs and of
  different-image pairs; ``ot_ratio`` = same / different (1: the cost cannot
  tell a view's partner from another radiograph).
- ``plan_accuracy``: share of cells (inside the other view) whose plan row peaks
  at the true cell, from the transform's grids; ``same_index_accuracy``: the same
  measure for the same-index plan (cell i to cell i, no model) on the same pairs.
- ``plan_accuracy_different`` / ``same_index_accuracy_different``: the same two
  measures for the different-image pairs, the "true" cell being the one at the
  nearest position in *image* coordinates (the grids), as if the two radiographs
  were aligned. Chest radiographs roughly are, so tokens that encode anatomy can
  make the plan between two different images peak at the same index whenever
  their views were cropped alike; these two tell that apart from a code of the
  index: a plan above the same-index plan here follows where a cell sits in the
  image, not in the view.
- ``plan_entropy``: entropy of the plan relative to the uniform plan's (1 =
  uniform; log N / log NM for a permutation).
- The same-image pairs split by the views' orientation (not gated): with
  independent flips half of the pairs are mirrored with respect to each other,
  and there the same index is the *mirrored* cell (true for few cells), so
  those pairs lift ``plan_accuracy`` over ``same_index_accuracy`` for any plan
  that does not peak at the same index. ``flipped_share``: share of pairs whose
  grids have opposite orientation (:func:`orientation`);
  ``plan_accuracy_same_orientation`` / ``same_index_accuracy_same_orientation``
  and ``plan_accuracy_flipped`` / ``same_index_accuracy_flipped``: the two
  accuracies on each part; ``same_index_rate_flipped``: rows of the mirrored
  pairs that peak at the same index anyway (a code of the index, or content
  that mirrored anatomy matches). NaN when a batch has no pair of the kind.
- ``same_index_rate_far`` / ``plan_accuracy_far``: on the same-orientation
  pairs, the rows whose same-index cell lies at least 1.5 cells (of the other
  view) from the true position, where neither the mirror nor content shared
  with a neighbouring cell can send the peak to the same index: the share of
  them peaking at the same index, and at the true cell. A code of the index
  shows here even when the other figures pass (raw pixel blocks: 0.04 and
  0.23 on real radiographs). ``far_rows_per_pair``: how many such rows a pair
  has on average (the pooling weight).

Tokens are the dense embeddings after CV-SIM, L2-normalised (the cosine cost's
view of them), *before* any centring the loss applies, so centring cannot hide a
position code from these figures. Plans use the features alone (no spatial term).
Batch-norm layers normalise with the held-out batch's own statistics, as in the
training step that the diagnostics describe (``batch_norm="batch"``, the running
statistics are left untouched); ``"running"`` uses the running statistics (eval
mode). Early in training the two differ: after 100 steps on real radiographs the
running statistics made two views of one image look *less* alike than views of
two different images (OT ratio 1.24), the batch statistics did not (0.85).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from optiml_plugin import ot
from optiml_plugin.loss import OPTiMLLoss
from optiml_plugin.loss.optiml_loss import inside_other_view
from optiml_plugin.models import OPTiML

KEYS = (
    "position_share",
    "view_mean_share",
    "common_offset",
    "interaction_share",
    "same_index_rate_different",
    "ot_same",
    "ot_different",
    "ot_ratio",
    "plan_accuracy",
    "same_index_accuracy",
    "plan_accuracy_different",
    "same_index_accuracy_different",
    "plan_entropy",
    "flipped_share",
    "plan_accuracy_same_orientation",
    "same_index_accuracy_same_orientation",
    "plan_accuracy_flipped",
    "same_index_accuracy_flipped",
    "same_index_rate_flipped",
    "far_rows_per_pair",
    "same_index_rate_far",
    "plan_accuracy_far",
)
FLIPPED = tuple(k for k in KEYS if k.endswith("_flipped"))
FAR = ("same_index_rate_far", "plan_accuracy_far")
SAME_ORIENTATION = tuple(k for k in KEYS if k.endswith("_same_orientation"))


@dataclass(frozen=True)
class Gate:
    """Thresholds a run must meet to count as learning content, not position."""

    max_same_index_rate_different: float = 0.5
    max_ot_ratio: float = 0.8
    max_position_share: float = 0.7
    max_view_mean_share: float = 0.7
    min_accuracy_margin: float = 0.05

    def failures(self, d: dict[str, float]) -> list[str]:
        """Returns a line for each threshold the diagnostics ``d`` miss."""
        checks = [
            ("same_index_rate_different", "<", self.max_same_index_rate_different),
            ("ot_ratio", "<", self.max_ot_ratio),
            ("position_share", "<", self.max_position_share),
            ("view_mean_share", "<", self.max_view_mean_share),
        ]
        out = [
            f"{key} = {d[key]:.3f}, needs {op} {limit}"
            for key, op, limit in checks
            if not d[key] < limit
        ]
        margin = d["plan_accuracy"] - d["same_index_accuracy"]
        if not margin >= self.min_accuracy_margin:
            out.append(
                f"plan_accuracy - same_index_accuracy = {margin:.3f}, needs >= "
                f"{self.min_accuracy_margin}"
            )
        return out


def variance_shares(tokens: Tensor) -> tuple[float, float, float]:
    """Position share, view-mean share and common offset of tokens (V, N, D).

    V views (of different images or not), N cells each. Sums of squares are
    taken about the grand mean and summed over the dimensions.
    """
    x = tokens.double()
    grand = x.mean(dim=(0, 1))
    total = (x - grand).pow(2).sum()
    by_index = (x.mean(dim=0) - grand).pow(2).sum() * x.shape[0]
    by_view = (x.mean(dim=1) - grand).pow(2).sum() * x.shape[1]
    spread = (total / (x.shape[0] * x.shape[1])).sqrt()
    if total <= 0:
        return math.nan, math.nan, math.inf
    return (
        float(by_index / total),
        float(by_view / total),
        float(grand.norm() / spread),
    )


def interaction_share(tokens: Tensor) -> float:
    """Share of the doubly centred variance of tokens (V, N, D) in its leading
    view x (cell, dimension) component (see the module docstring).

    The tokens minus their cell-index means and view means (plus the grand
    mean), as a V x (N D) matrix: its largest squared singular value over the
    sum of all of them. Near 1 / min(V - 1, N D) for independent noise.
    """
    x = tokens.double()
    r = x - x.mean(dim=0, keepdim=True) - x.mean(dim=1, keepdim=True)
    r = r + x.mean(dim=(0, 1), keepdim=True)
    s = torch.linalg.svdvals(r.reshape(r.shape[0], -1)).pow(2)
    total = s.sum()
    return float(s[0] / total) if total > 0 else math.nan


def match_rates(plan: Tensor, grid_a: Tensor, grid_b: Tensor) -> Tensor:
    """Per pair, share of A's cells (inside B) whose row peaks at the true cell.

    plan (B, N, M), grids (B, N, 2) / (B, M, 2) or (B, g, g, 2). The true cell is
    the one of B nearest in the original image; a cell of A counts when that
    distance is under one cell of B. NaN for a pair with no such cell.
    """
    b = plan.shape[0]
    pa, pb = grid_a.reshape(b, -1, 2).float(), grid_b.reshape(b, -1, 2).float()
    nearest = torch.cdist(pa, pb).argmin(dim=2)
    inside = inside_other_view(pa, pb)
    hit = (plan.argmax(dim=2) == nearest) & inside
    count = inside.sum(dim=1)
    rate = hit.sum(dim=1).double() / count.clamp(min=1)
    return torch.where(count > 0, rate, torch.full_like(rate, math.nan))


def orientation(grid: Tensor) -> Tensor:
    """+1 or -1 per view: the sign of the determinant of the map from cell
    (column, row) to image (x, y) that the grid (B, g, g, 2), g >= 2, records.
    A horizontal or vertical flip changes it, a rotation or a crop does not."""
    g = grid.double()
    d_col = (g[:, :, 1:] - g[:, :, :-1]).mean(dim=(1, 2))
    d_row = (g[:, 1:] - g[:, :-1]).mean(dim=(1, 2))
    return torch.sign(d_col[:, 0] * d_row[:, 1] - d_col[:, 1] * d_row[:, 0])


def _mean_over(values: Tensor, pairs: Tensor) -> float:
    """Mean of the per-pair values over the selected pairs (NaN-aware); NaN if none."""
    chosen = values[pairs]
    return float(chosen.nanmean()) if chosen.numel() else math.nan


def far_rows(grid_a: Tensor, grid_b: Tensor) -> tuple[Tensor, Tensor]:
    """Rows of A's cells inside B whose same-index cell of B lies at least 1.5
    cells of B from the true position, (B, N) bool; and the true cells (B, N)."""
    b = grid_a.shape[0]
    pa, pb = grid_a.reshape(b, -1, 2).float(), grid_b.reshape(b, -1, 2).float()
    cell = torch.cdist(pb, pb).topk(2, dim=2, largest=False).values[..., 1]
    offset = (pa - pb).norm(dim=2) / cell.median(dim=1).values[:, None]
    nearest = torch.cdist(pa, pb).argmin(dim=2)
    return inside_other_view(pa, pb) & (offset >= 1.5), nearest


def plan_entropy(plan: Tensor) -> Tensor:
    """Entropy of each plan (B, N, M) over log(N M), the uniform plan's."""
    p = plan.double().clamp(min=1e-300)
    h = -(plan.double() * p.log()).sum(dim=(1, 2))
    return h / math.log(plan.shape[1] * plan.shape[2])


@contextmanager
def batch_statistics(model: torch.nn.Module) -> Iterator[None]:
    """Batch-norm layers use each batch's statistics and leave their running
    statistics unchanged (train mode with momentum 0); restored on exit."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]  # fmt: skip
    saved = [(m.training, m.momentum, m.num_batches_tracked) for m in norms]
    for m in norms:
        m.train()
        m.momentum = 0.0
        if m.num_batches_tracked is not None:
            m.num_batches_tracked = m.num_batches_tracked.clone()
    try:
        yield
    finally:
        for m, (training, momentum, tracked) in zip(norms, saved, strict=True):
            m.train(training)
            m.momentum = momentum
            m.num_batches_tracked = tracked


@torch.no_grad()
def diagnose(
    model: OPTiML,
    criterion: OPTiMLLoss,
    view_a: Tensor,
    view_b: Tensor,
    grid_a: Tensor,
    grid_b: Tensor,
    batch_norm: str = "batch",
) -> dict[str, float]:
    """Returns the diagnostics (see the module docstring) of a batch of pairs.

    Args:
        model: The OPTiML model (put in eval mode by the caller).
        criterion: The loss whose cost and plan are diagnosed.
        view_a: First views, (B, C, H, W), B >= 2 different images.
        view_b: Second views of the same images, in the same order.
        grid_a: Cell positions of the first views, (B, g, g, 2).
        grid_b: Cell positions of the second views.
        batch_norm: ``"batch"`` (default) or ``"running"`` statistics (see the
            module docstring).
    """
    if view_a.shape[0] < 2:
        raise ValueError("diagnose needs at least two images (different-image pairs).")
    if batch_norm not in ("batch", "running"):
        raise ValueError(
            f"batch_norm must be 'batch' or 'running', got {batch_norm!r}."
        )
    if batch_norm == "batch":
        with batch_statistics(model):
            za, ua = model.embed(view_a)
            zb, ub = model.embed(view_b)
    else:
        za, ua = model.embed(view_a)
        zb, ub = model.embed(view_b)
    same = model.infuse(za, ua, zb, ub)
    roll = (1, 0)  # image k's view A against image k + 1's view B
    diff = model.infuse(za, ua, zb.roll(*roll), ub.roll(*roll))

    def plan_and_cost(qa: Tensor, qb: Tensor) -> tuple[Tensor, Tensor]:
        plan, cost = criterion.transport_plan(qa, qb, features_only=True)
        return plan, ot.transport_cost(plan, cost)

    plan_s, cost_s = plan_and_cost(same.dense_a, same.dense_b)
    plan_d, cost_d = plan_and_cost(diff.dense_a, diff.dense_b)
    b = plan_s.shape[0]
    tokens = torch.cat([same.dense_a, same.dense_b]).reshape(2 * b, -1, ua.shape[-1])
    position, view_mean, offset = variance_shares(F.normalize(tokens.float(), dim=-1))
    n = plan_d.shape[1]
    same_index = plan_d.argmax(dim=2) == torch.arange(n, device=plan_d.device)
    eye = torch.eye(n, device=plan_s.device).expand(b, n, n)
    grid_b_diff = grid_b.roll(*roll)  # the grids of the views in ``diff``
    flipped = orientation(grid_a) != orientation(grid_b)
    plan_rate, eye_rate = match_rates(plan_s, grid_a, grid_b), match_rates(eye, grid_a, grid_b)  # fmt: skip
    peak = plan_s.argmax(dim=2)
    peak_same = (peak == torch.arange(n, device=peak.device)).double()
    far, nearest = far_rows(grid_a, grid_b)
    far &= ~flipped[:, None]  # in mirrored pairs the same index is the mirror image
    rows = int(far.sum())
    peak_true = peak == nearest
    return {
        "position_share": position,
        "view_mean_share": view_mean,
        "common_offset": offset,
        "interaction_share": interaction_share(F.normalize(tokens.float(), dim=-1)),
        "same_index_rate_different": float(same_index.float().mean()),
        "ot_same": float(cost_s.mean()),
        "ot_different": float(cost_d.mean()),
        "ot_ratio": float(cost_s.mean() / cost_d.mean().clamp(min=1e-12)),
        "plan_accuracy": float(plan_rate.nanmean()),
        "same_index_accuracy": float(eye_rate.nanmean()),
        "plan_accuracy_different": float(
            match_rates(plan_d, grid_a, grid_b_diff).nanmean()
        ),
        "same_index_accuracy_different": float(
            match_rates(eye, grid_a, grid_b_diff).nanmean()
        ),
        "plan_entropy": float(plan_entropy(plan_s).mean()),
        "flipped_share": float(flipped.double().mean()),
        "plan_accuracy_same_orientation": _mean_over(plan_rate, ~flipped),
        "same_index_accuracy_same_orientation": _mean_over(eye_rate, ~flipped),
        "plan_accuracy_flipped": _mean_over(plan_rate, flipped),
        "same_index_accuracy_flipped": _mean_over(eye_rate, flipped),
        "same_index_rate_flipped": _mean_over(peak_same.mean(dim=1), flipped),
        "far_rows_per_pair": rows / b,
        "same_index_rate_far": float(peak_same[far].sum()) / rows if rows else math.nan,
        "plan_accuracy_far": float(peak_true[far].sum()) / rows if rows else math.nan,
    }


def diagnose_pooled(
    model: OPTiML,
    criterion: OPTiMLLoss,
    draws: Sequence[tuple[Tensor, Tensor, Tensor, Tensor]],
    batch_size: int | None = None,
    batch_norm: str = "batch",
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Diagnoses several draws of held-out pairs, in batches; pools the figures.

    One draw of a few dozen pairs is a noisy measurement: on real radiographs
    the same checkpoint's OT ratio ranged 0.81-0.96 over three draws of views of
    the same 48 images (README, "Measuring the gate on more pairs"). This averages over more
    pairs and draws while each :func:`diagnose` call keeps a training-sized batch
    (batch-norm statistics, the per-position centring and the different-image
    pairs are all within a batch).

    Args:
        model: The OPTiML model (put in eval mode by the caller).
        criterion: The loss whose cost and plan are diagnosed.
        draws: One ``(view_a, view_b, grid_a, grid_b)`` per draw of views.
        batch_size: Pairs per :func:`diagnose` call: each draw is split into
            ``n // batch_size`` nearly equal batches (so each has at least
            ``batch_size`` pairs); ``None``: one batch per draw.
        batch_norm: As in :func:`diagnose`.

    Returns:
        The pooled figures, and each draw's own. Each figure is the mean over
        the batches weighted by their number of pairs, except ``ot_ratio``,
        which is the pooled ``ot_same`` over the pooled ``ot_different``.
    """
    if not draws:
        raise ValueError("diagnose_pooled needs at least one draw of pairs.")
    if batch_size is not None and batch_size < 2:
        raise ValueError(f"batch_size must be >= 2, got {batch_size}.")
    per_draw: list[tuple[int, dict[str, float]]] = []
    for pairs in draws:
        n = pairs[0].shape[0]
        chunks = 1 if batch_size is None else max(1, n // batch_size)
        parts = zip(*(t.tensor_split(chunks) for t in pairs), strict=True)
        results = [(p[0].shape[0], diagnose(model, criterion, *p, batch_norm)) for p in parts]  # fmt: skip
        per_draw.append((n, _pool(results)))
    return _pool(per_draw), [d for _, d in per_draw]


def _pool(results: list[tuple[int, dict[str, float]]]) -> dict[str, float]:
    """Means weighted by the number of pairs (of the kind, for the figures of
    flipped or same-orientation pairs; NaN parts left out); the OT ratio of the
    pooled costs."""

    def weight(key: str, n: int, d: dict[str, float]) -> float:
        if key in FLIPPED:
            return n * d["flipped_share"]
        if key in SAME_ORIENTATION:
            return n * (1 - d["flipped_share"])
        if key in FAR:
            return n * d["far_rows_per_pair"]
        return n

    out = {}
    for key in results[0][1]:
        parts = [(weight(key, n, d), d[key]) for n, d in results]
        parts = [(w, v) for w, v in parts if w > 0 and not math.isnan(v)]
        total = sum(w for w, _ in parts)
        out[key] = sum(w * v for w, v in parts) / total if total > 0 else math.nan
    out["ot_ratio"] = out["ot_same"] / max(out["ot_different"], 1e-12)
    return out


class PixelTokens(torch.nn.Module):
    """A trivial reference for the diagnostics: each cell's token is its own pixels.

    The view is cut into the cells of a network of the given stride (a 160 px
    view into 5 x 5 cells for stride 32) and each cell's token is its first
    channel average-pooled to ``k`` x ``k`` values. Features that find the
    corresponding cell no better than these have learned nothing a pixel
    comparison does not give. It has the two methods :func:`diagnose` calls.

    Args:
        k: Pooled pixels per cell side (token dimension ``k * k``).
        stride: Pixels per cell side.
        mirror: Average each cell's k x k values with their left-right mirror,
            so that a cell and its mirror image get the same token: the pixel
            reference for views flipped with respect to each other.
    """

    def __init__(self, k: int = 4, stride: int = 32, mirror: bool = False) -> None:
        super().__init__()
        self.k, self.stride, self.mirror = k, stride, mirror

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (mean token, tokens (B, g, g, k * k))."""
        b, g = x.shape[0], x.shape[-1] // self.stride
        if g < 1 or x.shape[-2] != x.shape[-1]:
            raise ValueError(f"PixelTokens needs square views of at least {self.stride} px, got {tuple(x.shape)}.")  # fmt: skip
        p = F.adaptive_avg_pool2d(x[:, :1].float(), g * self.k)
        p = p.reshape(b, g, self.k, g, self.k).permute(0, 1, 3, 2, 4)
        if self.mirror:
            p = (p + p.flip(-1)) / 2
        tokens = p.reshape(b, g, g, self.k * self.k)
        return tokens.mean(dim=(1, 2)), tokens

    def infuse(self, za: Tensor, ua: Tensor, zb: Tensor, ub: Tensor) -> _Pair:
        """No cross-view context: the tokens as they are."""
        return _Pair(ua, ub)


class _Pair:
    def __init__(self, dense_a: Tensor, dense_b: Tensor) -> None:
        self.dense_a, self.dense_b = dense_a, dense_b
