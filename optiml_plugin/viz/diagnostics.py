"""Figure of the positional-shortcut diagnostics over a pretraining run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from optiml_plugin.diagnostics import Gate  # noqa: E402


def diagnostics_figure(
    history: list[dict[str, float]], path: str | Path, gate: Gate | None = None
) -> Path:
    """Draws each diagnostic against the training step, with its reference.

    Four panels: the plan's accuracy next to the same-index plan's; the share of
    rows peaking at the same index for two different images; the OT cost ratio
    same / different image; the variance shares of cell index and view mean. The
    gate's thresholds are dashed.
    """
    gate = gate or Gate()
    steps = [h["step"] for h in history]

    def series(key: str) -> list[float]:
        return [h[key] for h in history]

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    ax = axes[0]
    ax.plot(steps, series("plan_accuracy"), "o-", label="plan at true cell")
    ax.plot(steps, series("same_index_accuracy"), "s--", label="same-index plan")
    ax.set_title("finds the true cell?")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(steps, series("same_index_rate_different"), "o-", color="C3")
    ax.axhline(gate.max_same_index_rate_different, ls=":", color="k")
    ax.set_title("two different images:\npeak at the same index")
    ax = axes[2]
    ax.plot(steps, series("ot_ratio"), "o-", color="C2")
    ax.axhline(gate.max_ot_ratio, ls=":", color="k")
    ax.set_title("OT cost, same / different image")
    ax = axes[3]
    ax.plot(steps, series("position_share"), "o-", label="cell index")
    ax.plot(steps, series("view_mean_share"), "s-", label="view mean")
    if all("interaction_share" in h for h in history):
        ax.plot(steps, series("interaction_share"), "^-", label="image x cell pattern")
    ax.axhline(gate.max_position_share, ls=":", color="k")
    ax.set_title("share of token variance")
    ax.legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in (axes[0], axes[1], axes[3]):
        ax.set_ylim(-0.02, 1.02)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
