"""Markdown report, README section and figure of the ``cpu-real`` preset, all
rendered from its ``benchmark.json``."""

from __future__ import annotations

from pathlib import Path

HEADING = "## Results on real chest X-rays"
ORDER = ("optiml", "vicreg", "vicregl", "barlowtwins", "random-init", "position-only")
DIAG = (
    ("position_share", "position share"),
    ("view_mean_share", "view-mean share"),
    ("same_index_rate_different", "same-index peak, different images"),
    ("ot_ratio", "OT same / different"),
    ("plan_accuracy", "plan accuracy"),
    ("same_index_accuracy", "same-index plan accuracy"),
)


def _ci(s: dict) -> str:
    return f"{s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"


def _diff(p: dict) -> str:
    return f"{p['diff']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}] {p['verdict']}"


def quality_table(results: dict) -> list[str]:
    """Each metric's mean over seeds with its bootstrap 95 % interval."""
    methods = [
        m for m in ORDER if any(m in e["methods"] for e in results["metrics"].values())
    ]
    lines = [
        "| metric | " + " | ".join(methods) + " |",
        "|---" * (len(methods) + 1) + "|",
    ]
    for e in results["metrics"].values():
        cells = [_ci(e["methods"][m]) if m in e["methods"] else "–" for m in methods]
        lines.append(f"| {e['label']} | " + " | ".join(cells) + " |")
    return lines


def paired_table(results: dict) -> list[str]:
    """OPTiML minus each baseline, paired by seed and test image."""
    others = [
        m
        for m in ORDER[1:]
        if any(m in e["paired"] for e in results["metrics"].values())
    ]
    lines = ["| metric | " + " | ".join(f"OPTiML − {m}" for m in others) + " |",
             "|---" * (len(others) + 1) + "|"]  # fmt: skip
    for e in results["metrics"].values():
        cells = [_diff(e["paired"][m]) if m in e["paired"] else "–" for m in others]
        lines.append(f"| {e['label']} | " + " | ".join(cells) + " |")
    return lines


def verdicts(results: dict) -> list[str]:
    """One line per baseline: where OPTiML is better, worse, not resolved."""
    lines = []
    for m in ORDER[1:]:
        groups: dict[str, list[str]] = {"better": [], "worse": [], "not resolved": []}
        for key, e in results["metrics"].items():
            if m in e["paired"]:
                groups[e["paired"][m]["verdict"]].append(key)
        if any(groups.values()):
            parts = [f"**{v}** on {', '.join(ks)}" for v, ks in groups.items() if ks]
            lines.append(f"- OPTiML vs {m}: " + "; ".join(parts) + ".")
    return lines


def diagnostics_table(results: dict) -> list[str]:
    """Backbone diagnostics (frozen layer4 tokens, held-out real pairs)."""
    lines = ["| backbone | " + " | ".join(label for _, label in DIAG) + " |",
             "|---" * (len(DIAG) + 1) + "|"]  # fmt: skip
    for m in ORDER:
        d = results["diagnostics"].get(m)
        if d:
            lines.append(
                f"| {m} | " + " | ".join(f"{d['mean'][k]:.3f}" for k, _ in DIAG) + " |"
            )
    return lines


def head_table(results: dict) -> list[str]:
    """OPTiML's own diagnostics (projected dense tokens) at step 0 and at the end."""
    rows = []
    for run in results.get("head_diagnostics", []):
        for h in (run["history"][0], run["history"][-1]):
            rows.append(f"| {run['seed']} | {h['step']} | " + " | ".join(f"{h[k]:.3f}" for k, _ in DIAG) + " |")  # fmt: skip
    if not rows:
        return []
    return ["| seed | step | " + " | ".join(label for _, label in DIAG) + " |",
            "|---" * (len(DIAG) + 2) + "|", *rows]  # fmt: skip


def finetune_table(results: dict) -> list[str]:
    """Faster R-CNN on TBX11K val, one seed."""
    if not results.get("finetune"):
        return []
    lines = [
        "| start | COCO mAP | mAP@0.5 | training loss, first / last logged | minutes |",
        "|---|---|---|---|---|",
    ]
    for r in results["finetune"]:
        loss = "n/a"
        if r.get("loss_first") is not None:
            loss = f"{r['loss_first']:.3f} / {r['loss_last']:.3f}"
        if r.get("diverged"):
            loss += " (diverged: a non-finite loss)"
        maps = [f"{v:.3f}" if v is not None else "n/a" for v in (r["mAP"], r["mAP_50"])]
        lines.append(f"| {r['name']} | {maps[0]} | {maps[1]} | {loss} | {r['seconds'] / 60:.1f} |")  # fmt: skip
    return lines


def body(results: dict, figure: str | None) -> list[str]:
    """The report's content below its heading."""
    meta, s = results["meta"], results["settings"]
    st = meta["stage_seconds"]
    lines = [
        f"Command: `{meta['command']}` on {meta['hardware']['cpu']} "
        f"({meta['hardware']['cpu_cores']} cores), {meta['started']} to {meta['finished']}.",
        f"Wall time {meta['wall_s'] / 60:.1f} min in this invocation (pretraining "
        f"{st['pretrain'] / 60:.1f}, data {st['data'] / 60:.1f}, evaluation and "
        f"fine-tuning {st['evaluate_and_finetune'] / 60:.1f} min, {s['jobs']} "
        f"single-thread processes at a time, precision {meta['precision']}); the "
        f"pretraining runs themselves took {meta['pretrain_run_seconds'] / 60:.1f} "
        "process-minutes.",
    ]
    if meta.get("note"):
        lines.append(f"Note: {meta['note']}")
    lines += [
        "",
        f"Pretraining: ResNet-18 on `cxr_pool` (1679 radiographs), {s['image_size']} px "
        f"views, batch {s['batch_size']}, {s['steps']} steps, AdamW (lr 0.01 per 256, "
        f"warm-up 0.25 epoch, cosine), seeds {s['seeds']}; the same setting for every "
        "method, OPTiML with the package defaults. Frozen evaluation at "
        f"{s['eval_size']} px (7x7 maps). Values: mean over seeds [bootstrap 95 % "
        f"interval over test images, {s['bootstrap']} resamples]. Position-only: the "
        "same probe given only a one-hot cell index (no image content).",
        "",
        *quality_table(results),
        "",
        "Paired differences (same seed, same test images; verdict from the interval; "
        "no correction for the number of comparisons: with 5 % per interval, about "
        "one in twenty of these would exclude 0 by chance alone):",
        "",
        *paired_table(results),
        "",
        *verdicts(results),
        "",
    ]
    if figure:
        lines += [f"![paired differences]({figure})", ""]
    lines += [
        "Diagnostics of each backbone's frozen layer4 tokens on 48 held-out real "
        "view pairs (plan from the default loss's feature cost; mean over seeds):",
        "",
        *diagnostics_table(results),
        "",
    ]
    head = head_table(results)
    if head:
        lines += [
            "OPTiML's own projected dense tokens (the pretraining diagnostics):",
            "",
            *head,
            "",
        ]
    ft = finetune_table(results)
    if ft:
        r0 = results["finetune"][0]
        lines += [
            f"Fine-tuning: Faster R-CNN (ResNet-18 FPN) on TBX11K train (296 images, "
            f"boxes merged into one TB class), {r0['iters']} iterations of batch "
            f"{r0['batch']} at {r0['scale']} px, evaluated on TBX11K val (104 images); "
            "seed 0 backbones, one fine-tuning run each (no interval):",
            "",
            *ft,
            "",
        ]
    return lines


def render_report(results: dict) -> str:
    """``report.md`` (beside ``benchmark.json``)."""
    fig = results.get("figure")
    return "\n".join(["# cpu-real benchmark", "", *body(results, fig)]) + "\n"


def update_readme(readme: Path, results: dict, json_rel: str) -> None:
    """Replaces (or inserts before ``## Results``) the README's real-data section."""
    fig = results.get("figure")
    fig_rel = str(Path(json_rel).parent / fig) if fig else None
    section = (
        "\n".join([HEADING, "", f"From `{json_rel}`.", "", *body(results, fig_rel)])
        + "\n"
    )
    from optiml_plugin.eval.report import RESULTS_HEADING
    from optiml_plugin.eval.report import update_readme as replace_section

    replace_section(readme, section, HEADING, RESULTS_HEADING + "\n")


def render_figure(results: dict, path: Path) -> str:
    """Forest plot of OPTiML minus each baseline, per metric; returns its name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = results["metrics"]
    others = [m for m in ORDER[1:] if any(m in e["paired"] for e in metrics.values())]
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(2.3 * len(metrics), 3.2), sharey=True
    )
    for ax, (key, e) in zip(axes, metrics.items(), strict=True):
        for i, m in enumerate(others):
            p = e["paired"].get(m)
            if p is None:
                continue
            color = {"better": "tab:green", "worse": "tab:red"}.get(
                p["verdict"], "tab:gray"
            )
            ax.errorbar(p["diff"], i, xerr=[[p["diff"] - p["low"]], [p["high"] - p["diff"]]],
                        fmt="o", color=color, capsize=3)  # fmt: skip
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(key.replace("_", " "), fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_yticks(range(len(others)), [f"− {m}" for m in others], fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(
        "OPTiML minus baseline (95 % bootstrap interval; green better, red worse)",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name
