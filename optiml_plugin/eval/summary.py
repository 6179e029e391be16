"""Mean +- std over seeds of every run's metrics, and OPTiML against each
baseline with the seed spread as the yardstick."""

from __future__ import annotations

from typing import Any

from optiml_plugin.eval.protocol import mean_std
from optiml_plugin.eval.variants import POSITION, RANDOM


def summarize(runs: list[dict[str, Any]], fractions: list[str]) -> dict[str, Any]:
    """Mean +- std over seeds per run name: AUROC per fraction, Dice (mean and per
    class), plan accuracy, final loss and pretraining time."""
    names = list(dict.fromkeys(r["name"] for r in runs))
    summary: dict[str, Any] = {}
    for name in names:
        group = [r for r in runs if r["name"] == name]
        s: dict[str, Any] = {"seeds": [r["seed"] for r in group]}
        if all("linear" in r for r in group):
            s["linear"] = {
                f: mean_std(r["linear"][f]["mean"] for r in group) for f in fractions
            }
        if all("dense" in r for r in group):
            keys = list(group[0]["dense"])
            s["dense"] = {k: mean_std(r["dense"][k] for r in group) for k in keys}
        for key in ("plan_accuracy", "plan_same_index"):
            if all(r.get(key) is not None for r in group):
                s[key] = mean_std(r[key] for r in group)
        if all(r.get("pretrain_s") is not None for r in group):
            s["pretrain_s"] = mean_std(r["pretrain_s"] for r in group)
        summary[name] = s
    return summary


def compare(
    summary: dict[str, Any], fractions: list[str], ours: str = "optiml"
) -> dict[str, Any]:
    """OPTiML against each baseline on each metric: the difference of the means,
    the spread (sum of the two standard deviations over seeds) and a verdict:
    ``better`` / ``worse`` when the difference exceeds the spread, else
    ``within spread``."""
    if ours not in summary:
        return {}
    metrics = [("linear", f) for f in fractions] + [("dense", "mean")]
    out: dict[str, Any] = {}
    for base in ("vicreg", "vicregl", "barlowtwins", RANDOM, POSITION):
        if base not in summary:
            continue
        rows = {}
        for group, key in metrics:
            a = summary[ours].get(group, {}).get(key)
            b = summary[base].get(group, {}).get(key)
            if not a or not b or not a["n"] or not b["n"]:
                continue
            diff = a["mean"] - b["mean"]
            spread = a["std"] + b["std"]
            if diff > spread:
                verdict = "better"
            elif diff < -spread:
                verdict = "worse"
            else:
                verdict = "within spread"
            label = f"AUROC {key}" if group == "linear" else "Dice"
            rows[label] = {"diff": diff, "spread": spread, "verdict": verdict}
        out[base] = rows
    return out
