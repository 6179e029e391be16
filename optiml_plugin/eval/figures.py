"""Figures of the benchmark report: loss curves, AUROC against the label
fraction, and a t-SNE map of frozen embeddings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402


def loss_curves_figure(
    curves: Mapping[str, Sequence[Sequence[tuple[int, float]]]], path: str | Path
) -> Path:
    """One panel per method: the logged training loss against the step, one line
    per seed (methods have different loss scales, so panels do not share y).

    Args:
        curves: ``{method: [[(step, loss), ...] per seed]}``.
        path: Output PNG.
    """
    names = list(curves)
    cols = min(4, max(1, len(names)))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False
    )
    for ax, name in zip(axes.flat, names, strict=False):
        for k, curve in enumerate(curves[name]):
            if curve:
                steps, losses = zip(*curve, strict=True)
                ax.plot(steps, losses, lw=1.2, label=f"seed {k}")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
    for ax in list(axes.flat)[len(names) :]:
        ax.set_axis_off()
    fig.tight_layout()
    return _save(fig, path)


def auroc_fraction_figure(
    summary: Mapping[str, Mapping[str, Mapping[str, float]]],
    fractions: Sequence[str],
    path: str | Path,
    title: str = "linear probe",
) -> Path:
    """Mean AUROC +- std over seeds against the label fraction, one line per method.

    Args:
        summary: ``{method: {fraction_key: {"mean": ..., "std": ...}}}``.
        fractions: The fraction keys in order (``"1%"``, ``"10%"``, ...).
        path: Output PNG.
        title: Plot title.
    """
    fig, ax = plt.subplots(figsize=(5.5, 4))
    x = np.arange(len(fractions))
    width = 0.06
    for k, (name, by_fraction) in enumerate(summary.items()):
        mean = [by_fraction[f]["mean"] for f in fractions]
        std = [by_fraction[f]["std"] for f in fractions]
        offset = (k - (len(summary) - 1) / 2) * width
        ax.errorbar(x + offset, mean, yerr=std, marker="o", capsize=3, label=name)
    ax.set_xticks(x, fractions)
    ax.set_xlabel("labelled training images")
    ax.set_ylabel("mean AUROC (mean +- std over seeds)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def tsne_figure(
    embeddings: Mapping[str, Tensor],
    labels: Tensor,
    label_names: Sequence[str],
    path: str | Path,
    seed: int = 0,
) -> Path:
    """t-SNE (scikit-learn) of each method's pooled test features, coloured by
    the first positive label (or "none").

    Args:
        embeddings: ``{method: (N, C) features}`` of the same N images.
        labels: (N, K) 0/1 labels.
        label_names: The K label names.
        path: Output PNG.
        seed: t-SNE's random state.
    """
    from sklearn.manifold import TSNE

    lab = labels.numpy() > 0.5
    group = np.where(lab.any(axis=1), lab.argmax(axis=1) + 1, 0)
    names = ["none", *label_names]
    cols = min(3, len(embeddings))
    rows = (len(embeddings) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.6 * rows), squeeze=False)
    for ax, (name, feats) in zip(axes.flat, embeddings.items(), strict=False):
        x = feats.float().numpy()
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
        perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
        points = TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed
        ).fit_transform(x)
        for g in np.unique(group):
            sel = group == g
            ax.scatter(points[sel, 0], points[sel, 1], s=8, label=names[g])
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(embeddings) :]:
        ax.set_axis_off()
    axes.flat[0].legend(fontsize=7, markerscale=1.5)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
