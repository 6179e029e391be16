"""Markdown from the benchmark's JSON: ``report.md`` and the README's Results
section. Every number in their tables is a value of the JSON, formatted by
:func:`fmt` (see :func:`json_number_strings`)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optiml_plugin.eval.variants import ABLATION_NOTES, POSITION, RANDOM

RESULTS_HEADING = "## Results"
ANCHORS_HEADING = "### Published anchors (not ours)"
README_INSERT_BEFORE = "## The method as implemented"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")

# Published full-scale numbers (ResNet-50), quoted from the DiRA paper, not
# measured here.
PUBLISHED_ANCHORS = (
    ("random init", "80.31", ""),
    ("ImageNet supervised", "81.70", "67.93"),
    ("MoCo-v2", "about 80.4", ""),
    ("Barlow Twins", "about 80.5", ""),
    ("DiRA (MoCo-v2)", "81.12", ""),
    ("DiRA (Barlow Twins)", "", "69.87"),
)


def fmt(value: float | int | None, digits: int = 3) -> str:
    """A number as the tables print it (``n/a`` for missing or NaN)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:.{digits}f}"


def pm(stats: dict[str, Any] | None) -> str:
    """``mean ± std`` of a :func:`~optiml_plugin.eval.protocol.mean_std` dict."""
    if not stats or not stats.get("n"):
        return "n/a"
    if stats["n"] == 1:
        return fmt(stats["mean"])
    return f"{fmt(stats['mean'])} ± {fmt(stats['std'])}"


def _numbers(x: Any) -> Iterator[float | int]:
    if isinstance(x, bool):
        return
    if isinstance(x, (int, float)):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _numbers(v)
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _numbers(v)


def json_number_strings(results: dict[str, Any]) -> set[str]:
    """Every numeric value of the JSON as the tables may print it (ints as they
    are; floats with 0 to 3 decimals)."""
    out: set[str] = set()
    for v in _numbers(results):
        if isinstance(v, int):
            out.add(str(v))
        elif math.isfinite(v):
            out.update(f"{v:.{d}f}" for d in range(4))
    return out


def table_numbers(markdown: str, skip_after: str | None = ANCHORS_HEADING) -> list[str]:
    """The numbers in the value cells (all but the first column) of the markdown
    tables, header rows excluded, up to ``skip_after``."""
    if skip_after and skip_after in markdown:
        markdown = markdown[: markdown.index(skip_after)]
    found: list[str] = []
    lines = markdown.splitlines()
    for k, line in enumerate(lines):
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        is_header = k + 1 < len(lines) and set(lines[k + 1].strip()) <= set("|-: ")
        if is_header:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for cell in cells[1:]:
            found += NUMBER.findall(cell)
    return found


def _setup_lines(r: dict[str, Any]) -> list[str]:
    s, hw, ev = r["settings"], r["meta"]["hardware"], r["eval_data"]
    gpu = hw["gpu"] or "no GPU"
    seeds = ", ".join(map(str, s["seeds"]))
    ab_seeds = ", ".join(map(str, s["ablation_seeds"]))
    data = s["data"]
    if data == "phantom":
        data = f"{s['num_images']} synthetic phantoms of {s['phantom_size']} px"
    lines = [
        f"- **Scale**: each method pretrains a {s['backbone']} for {s['max_steps']} "
        f"steps of batch {s['batch_size']} (two {s['image_size']} px views per image, "
        f"the CV-SIM transform for every method) on {data}; AdamW, base lr "
        f"{s['lr']} per 256 images, the same options and seed for every method. "
        f"Evaluation: {ev['description']}, frozen features.",
        f"- **Seeds**: {seeds} (ablations: {ab_seeds}); the label-fraction subsets "
        "and probes use the run's seed. Values are mean ± sample std over seeds.",
        f"- **Hardware**: {hw['cpu']}, {hw['cpu_cores']} cores, {hw['torch_threads']} "
        f"torch threads, {gpu}; torch {hw['torch']}.",
        f"- **Wall time**: {fmt(r['meta']['wall_s'] / 60, 1)} min in all.",
        f"- **Command**: `{r['meta']['command']}`",
    ]
    if r["meta"].get("note"):
        lines.append(f"- **Note**: {r['meta']['note']}")
    return lines


def _quality_table(r: dict[str, Any], names: list[str]) -> list[str]:
    fractions = [f"{f * 100:g}%" for f in r["settings"]["fractions"]]
    seg = r["eval_data"]["seg_classes"][1:]
    summary = r["summary"]
    has_plan = any("plan_accuracy" in summary.get(n, {}) for n in names)
    head = ["method", *[f"AUROC {f}" for f in fractions]]
    seg_keys = (["mean", *seg] if len(seg) > 1 else list(seg)) if seg else []
    head += ["Dice (mean)" if k == "mean" else f"Dice {k}" for k in seg_keys]
    if has_plan:
        head += ["plan at true cell", "same-index plan"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        s = summary.get(name)
        if s is None:
            continue
        row = [f"{name} ({len(s['seeds'])})"]
        if "linear" in s:
            row += [pm(s["linear"].get(f)) for f in fractions]
        else:
            row += ["n/a"] * len(fractions)
        row += [pm(s.get("dense", {}).get(k)) for k in seg_keys]
        if has_plan:
            row += [pm(s.get("plan_accuracy")), pm(s.get("plan_same_index"))]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _verdict_lines(r: dict[str, Any]) -> list[str]:
    comp = r.get("comparison", {})
    if not comp:
        return ["No OPTiML run to compare."]
    lines = []
    for base in ("vicreg", "vicregl", "barlowtwins", RANDOM, POSITION):
        rows = comp.get(base)
        if not rows:
            continue
        better = [m for m, v in rows.items() if v["verdict"] == "better"]
        worse = [m for m, v in rows.items() if v["verdict"] == "worse"]
        within = [m for m, v in rows.items() if v["verdict"] == "within spread"]
        parts = []
        if better:
            parts.append("better beyond the seed spread on " + ", ".join(better))
        if worse:
            parts.append("worse beyond the seed spread on " + ", ".join(worse))
        if within:
            parts.append("not different beyond the seed spread on " + ", ".join(within))
        lines.append(f"- OPTiML vs {base}: " + "; ".join(parts) + ".")
    plan = r.get("summary", {}).get("optiml", {})
    if plan.get("plan_accuracy") and plan.get("plan_same_index"):
        a, b = plan["plan_accuracy"], plan["plan_same_index"]
        beyond = a["mean"] - b["mean"] > a["std"] + b["std"]
        lines.append(
            f"- OPTiML's plan peaks at the true cell for {fmt(a['mean'])} of cells, the "
            f"same-index plan for {fmt(b['mean'])} on the same pairs: the learned plan "
            + ("is above" if beyond else "is not above")
            + " that position-only level beyond the seed spread."
        )
    all_better = all(
        v["verdict"] == "better"
        for base in ("vicreg", "vicregl")
        for v in comp.get(base, {}).values()
    )
    target = (
        "**met**"
        if all_better and comp.get("vicreg") and comp.get("vicregl")
        else "**not met**"
    )
    lines.append(
        f"- The target (OPTiML above VICReg and VICRegL on every metric, by more "
        f"than the seeds' spread) is {target} at this scale. The rule: a difference "
        "of the means counts when it exceeds the sum of the two standard deviations."
    )
    return lines


def _compute_lines(r: dict[str, Any]) -> list[str]:
    c = r.get("compute")
    if not c:
        return ["Compute part skipped (`--skip-compute`)."]
    steps = c["steps"]
    gpu = any(v.get("peak_mib") is not None for v in steps.values())
    head = "| training step | ms | ratio to VICReg |" + (" peak MiB |" if gpu else "")
    lines = [
        f"{c['backbone']}, {c['image_size']} px, batch {c['batch_size']} per view, "
        f"median of {c['repeats']} steps timed round-robin (each method's own "
        "pretraining module: forward of two views, loss, backward, SGD step)"
        + ("" if gpu else "; peak memory is measured on a GPU only")
        + ":",
        "",
        head,
        "|---|---|---|" + ("---|" if gpu else ""),
    ]
    for name in ("vicreg", "vicregl", "barlowtwins", "optiml"):
        if name in steps:
            v = steps[name]
            row = f"| {name} | {fmt(v['ms'], 0)} | {fmt(v['ratio_to_vicreg'])} |"
            if gpu:
                row += f" {fmt(v['peak_mib'], 0)} |"
            lines.append(row)
    o = c["sinkhorn"]
    lines += [
        "",
        f"Sinkhorn, B = {o['batch']}, N = M = {o['cells']}, {o['iters']} iterations, "
        f"epsilon {o['epsilon']}, float32:",
        "",
        "| solver | ms | speed-up over the POT loop |",
        "|---|---|---|",
        f"| batched, kernel space | {fmt(o['sinkhorn_kernel'], 1)} | {fmt(o['speedup_kernel'], 1)} |",
        f"| batched, log domain | {fmt(o['sinkhorn_log'], 1)} | {fmt(o['speedup_log'], 1)} |",
        f"| loop of POT's ot.sinkhorn | {fmt(o['pot_loop'], 1)} | 1 |",
    ]
    return lines


def _ablation_lines(r: dict[str, Any]) -> list[str]:
    names = [n for n in ABLATION_NOTES if n in r["summary"]]
    if not names:
        return ["No ablations run."]
    lines = _quality_table(r, ["optiml", *names])
    lines.append("")
    lines += [f"- `{n}`: {ABLATION_NOTES[n]}" for n in names]
    return lines


def _figure_lines(r: dict[str, Any], prefix: str) -> list[str]:
    captions = {
        "loss_curves": "training loss of every run",
        "auroc_vs_fraction": "linear-probe AUROC against the label fraction",
        "transport_plan": "OPTiML's transport plan over two views of a radiograph",
        "tsne": "t-SNE of frozen test features (first seed)",
    }
    return [
        f"- [{captions.get(k, k)}]({prefix}{v})"
        for k, v in r.get("figures", {}).items()
    ]


def _rule_notes(r: dict[str, Any]) -> str:
    """The notes that apply to this JSON's runs (older JSON files predate them)."""
    notes = ""
    if any(run["name"] == POSITION for run in r.get("runs", [])):
        notes += (
            "; position-only: the dense probe given a one-hot cell index and no "
            "image (the Dice of position alone)"
        )
    if any(
        "too_few_labels" in v
        for run in r.get("runs", [])
        for v in run.get("linear", {}).values()
    ):
        notes += (
            "; AUROC: a class needs at least 5 positive and 5 negative training "
            "images at a fraction, otherwise it is left out (n/a when no class has)"
        )
    return notes


def _main_names(r: dict[str, Any]) -> list[str]:
    order = [RANDOM, POSITION, "vicreg", "vicregl", "barlowtwins", "optiml"]
    return [n for n in order if n in r["summary"]]


def render_report(r: dict[str, Any]) -> str:
    """The benchmark's ``report.md``."""
    lines = ["# OPTiML benchmark report", "", *_setup_lines(r), ""]
    if not r.get("summary"):
        lines += ["## Compute", "", *_compute_lines(r)]
        return "\n".join(lines) + "\n"
    lines += ["## Quality (frozen backbone)", ""]
    lines += _quality_table(r, _main_names(r))
    lines += [
        "",
        "Rows: method (number of seeds). AUROC: linear probe, mean over classes, at "
        "each label fraction of the probe's training set. Dice: linear 1x1 probe on "
        "the final dense map, upsampled; per class and their mean. Plan at true "
        "cell: share of cells whose transport-plan row peaks at the true cell on 32 "
        "held-out phantom view pairs (OPTiML runs only; chance is one over the cells of a view). "
        "Same-index plan: the same measure for the plan that sends cell i of view A to "
        "cell i of view B, on the same pairs, with no model: a plan at or below it has "
        "learned no correspondence beyond where a cell sits in its view"
        + _rule_notes(r)
        + ".",
        "",
        "### OPTiML against the baselines",
        "",
        *_verdict_lines(r),
        "",
        "## Ablations of OPTiML",
        "",
        *_ablation_lines(r),
        "",
        "## Compute",
        "",
        *_compute_lines(r),
        "",
        "## Figures",
        "",
    ]
    for k, v in r.get("figures", {}).items():
        lines += [f"![{k}]({v})", ""]
    lines += [
        "## Per run",
        "",
        "| run | seed | pretrain s | first loss | last loss |",
        "|---|---|---|---|---|",
    ]
    for run in r["runs"]:
        lines.append(
            f"| {run['name']} | {run['seed']} | {fmt(run.get('pretrain_s'), 0)} | "
            f"{fmt(run.get('loss_first'))} | {fmt(run.get('loss_last'))} |"
        )
    return "\n".join(lines) + "\n"


def _ratio_sentence(r: dict[str, Any]) -> str:
    c = r.get("compute")
    if not c or "optiml" not in c["steps"]:
        return "OPTiML's step time relative to VICReg was not measured in this run."
    ratio = c["steps"]["optiml"]["ratio_to_vicreg"]
    where = r["meta"]["hardware"]["gpu"] or "this CPU"
    return (
        f"On {where}, OPTiML's training step took {fmt(ratio)} x VICReg's at "
        f"{c['backbone']} / {c['image_size']} px (table above); the GPU ratio is "
        "still to be measured."
    )


def render_readme_section(r: dict[str, Any], json_path: str) -> str:
    """The README's ``## Results`` section, from the benchmark JSON at ``json_path``
    (a path relative to the README, also used for the figure links)."""
    folder = str(Path(json_path).parent) + "/"
    lines = [
        RESULTS_HEADING,
        "",
        f"<!-- Generated from {json_path} by `python tools/benchmark.py --render-only "
        f"{json_path} --readme README.md`; edit the generator, not this text. -->",
        "",
        "A small-scale run of `tools/benchmark.py` on this project's CPU: Lightly's "
        "VICReg, VICRegL and Barlow Twins and OPTiML pretrained by the same code as "
        "`optiml-pretrain --method ...`, under identical conditions, then probed frozen. "
        f"Full report: [{folder}report.md]({folder}report.md); every number: "
        f"[{json_path}]({json_path}).",
        "",
        *_setup_lines(r),
        "",
        *_quality_table(r, _main_names(r)),
        "",
        "Method (seeds); AUROC: linear probe, mean over classes, at each label "
        "fraction; Dice: linear dense probe; plan at true cell: share of cells whose "
        "plan row peaks at the true cell (32 held-out phantom view pairs; OPTiML only); "
        "same-index plan: the same measure for cell i of one view sent to cell i of "
        "the other, no model (the level a plan reaches from position within the view "
        "alone)" + _rule_notes(r) + ".",
        "",
        *_verdict_lines(r),
        "",
        "Ablations (OPTiML's own options, same budget):",
        "",
        *_ablation_lines(r),
        "",
        "Compute:",
        "",
        *_compute_lines(r),
        "",
        "Figures: " + "; ".join(x[2:] for x in _figure_lines(r, folder)) + ".",
        "",
        "What this scale can and cannot say: a few dozen steps on small images show "
        "whether the methods run under identical conditions and how far apart they "
        "start; they do not reproduce the paper's claims, which need the "
        "full-scale runs below.",
        "",
        "### Paper scale (GPU; not run here)",
        "",
        "```bash",
        "python tools/prepare_data.py nih --entries Data_Entry_2017.csv \\",
        "    --train-val-list train_val_list.txt --test-list test_list.txt --images NIH/ --out data/nih",
        "for m in optiml vicreg vicregl barlowtwins; do",
        "  optiml-pretrain --config configs/pretrain/nih_resnet50.yaml --data data/nih/images \\",
        "      --method $m --seed 0 --out runs/nih/$m",
        "  python tools/eval_cls.py --backbone runs/nih/$m/backbone.pth \\",
        "      --data nih:data/nih/train.csv,data/nih/test.csv --image-size 224 \\",
        "      --modes linear finetune --fractions 0.01 0.1 1 --seeds 0 1 2 --out runs/nih/$m/cls.json",
        "done",
        "python tools/benchmark.py --skip-quality --compute-batch-size 64 --out runs/nih/compute  # GPU step time and memory",
        "```",
        "",
        "Expected cost, estimated, not measured (no GPU was lent to this work): "
        "a ResNet-50 training step on two 224 px views costs about 2 x 3 x 4.1 = 25 "
        "GFLOP per image, so 300 epochs over NIH's 86,524 train/val images are about "
        "6.4e17 FLOP, i.e. roughly 3.5 h on one GPU sustaining 50 TFLOP/s in bf16 "
        "(scale by your GPU's achieved rate). Memory at batch 64 per GPU (128 views): "
        "below about 16 GB, by ResNet-50's usual mixed-precision training footprint "
        "(batch 256 fits a 32 GB GPU); the OT plans add 64 x 49 x 49 floats. "
        + _ratio_sentence(r),
        "",
        ANCHORS_HEADING,
        "",
        "ResNet-50, full scale, quoted from the DiRA paper (Haghighi et al., CVPR "
        "2022) as the issue lists them; not measured by this project:",
        "",
        "| initialisation | NIH ChestX-ray14 fine-tune mean AUROC (%) | SIIM-ACR Dice (%) |",
        "|---|---|---|",
        *[f"| {n} | {a or '-'} | {d or '-'} |" for n, a, d in PUBLISHED_ANCHORS],
    ]
    return "\n".join(lines) + "\n"


def update_readme(
    readme: str | Path,
    section: str,
    heading: str = RESULTS_HEADING,
    insert_before: str = README_INSERT_BEFORE,
) -> Path:
    """Replaces the README's ``heading`` section (up to the next ``## `` heading)
    with ``section``, or inserts it before ``insert_before``."""
    readme = Path(readme)
    text = readme.read_text()
    if heading + "\n" in text:
        start = text.index(heading + "\n")
        nxt = text.find("\n## ", start + len(heading))
        end = len(text) if nxt < 0 else nxt + 1
        text = text[:start] + section + ("\n" if nxt >= 0 else "") + text[end:]
    elif insert_before in text:
        at = text.index(insert_before)
        text = text[:at] + section + "\n" + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    readme.write_text(text)
    return readme


def readme_section(readme: str | Path) -> str:
    """The current ``## Results`` section of a README ("" when there is none)."""
    text = Path(readme).read_text()
    if RESULTS_HEADING + "\n" not in text:
        return ""
    start = text.index(RESULTS_HEADING + "\n")
    nxt = text.find("\n## ", start + len(RESULTS_HEADING))
    return text[start : (len(text) if nxt < 0 else nxt + 1)]
