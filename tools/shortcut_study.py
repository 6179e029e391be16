"""Which OPTiML settings learn content rather than cell positions? Pretrains
each variant on real radiographs and reports the diagnostics against the gate.

    python tools/shortcut_study.py --variants old-default default --seeds 0 1 2 \\
        --steps 300 --jobs 2 --out runs/shortcut_study

Each run is ``tools/pretrain.py`` (ResNet-18, 160 px, batch 16, AdamW with the
benchmark's settings) on ``cxr_pool/pool.txt`` with ``--diagnose-every``; the
held-out pairs come from the test splits of ``mcsz_lungseg`` and
``nih_cxr_sample`` (never in the pool). Runs go in parallel as single-thread
processes (on a 2-core machine two of them do twice the work of one two-thread
process). After each run its last checkpoint is diagnosed again on more pairs
(``--final-pairs`` images x ``--final-draws`` draws of views, in batches of
``--pairs``; the row "N pooled"): one draw of 48 pairs is a noisy measurement.
The held-out views are the same for every seed (``--diagnose-seed 0``). Writes
``study.json`` and ``study.md`` (the README's table) to --out.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from optiml_plugin.diagnostics import Gate
from optiml_plugin.eval.real.data import write_held_out

ROOT = Path(__file__).resolve().parents[1]

# Flags on top of the package's defaults; "old-default" restores the settings the
# positional-shortcut review measured (token statistics, no centring, absolute
# epsilon, no flips); "previous-default" the defaults from 5cfc7fd to 05a110a
# (centred, before the cross-image decorrelation term); "upright-default" those
# of screens 6-10 (rotations up to 10 degrees, no plan contrast).
UPRIGHT = ["--degrees", "10", "--plan-contrast", "0"]
PREVIOUS = ["--image-decorrelation", "0", "--global-weight", "0.25", *UPRIGHT]
VARIANTS: dict[str, list[str]] = {
    "default": [],
    "upright-default": UPRIGHT,
    "previous-default": PREVIOUS,
    "old-default": [
        "--dense-statistics", "tokens", "--center", "none", "--epsilon-scale",
        "absolute", "--hflip-prob", "0", "--crop-scale", "0.3", "1.0",
        "--position-weight", "0", *PREVIOUS,
    ],
}  # fmt: skip

SHOWN = (
    "same_index_rate_different",
    "ot_ratio",
    "position_share",
    "view_mean_share",
    "plan_accuracy",
    "same_index_accuracy",
    "plan_entropy",
    "interaction_share",
)


def run_one(args: argparse.Namespace, name: str, extra: list[str], seed: int) -> dict:
    out = args.out / f"{name}_seed{seed}"
    argv = [
        sys.executable, str(ROOT / "tools" / "pretrain.py"),
        "--data", str(args.data_root / "cxr_pool" / "pool.txt"),
        "--data-root", str(args.data_root), "--image-size", "160",
        "--backbone", "resnet18", "--global-dim", "512", "--global-hidden-dim", "512",
        "--dense-dim", "128", "--dense-hidden-dim", "256", "--cvsim-heads", "4",
        "--batch-size", "16", "--optimizer", "adamw", "--lr", str(args.lr),
        "--weight-decay", "0.05", "--warmup-epochs", "0.25", "--epochs", "1000",
        "--max-steps", str(args.steps), "--num-workers", "1",
        "--checkpoint-every", str(10**9), "--log-every", "10",
        "--accelerator", "cpu", "--devices", "1", "--no-figure", "--quiet",
        "--diagnose-every", str(args.every), "--diagnose-data", str(args.held_out),
        "--diagnose-pairs", str(args.pairs), "--seed", str(seed), "--out", str(out),
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.time()
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        proc = subprocess.run(argv, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} seed {seed} failed; see {log}")
    report = json.loads((out / "diagnostics.json").read_text())
    result = {
        "name": name,
        "seed": seed,
        "seconds": time.time() - start,
        "config": yaml.safe_load((out / "config.yaml").read_text()),
        "history": report["history"],
    }
    if args.final_draws > 0:
        result["pooled"] = pooled_diagnosis(args, out, env)
    return result


def pooled_diagnosis(args: argparse.Namespace, run: Path, env: dict) -> dict:
    """The last checkpoint on --final-pairs held-out images x --final-draws draws
    of views (seeds 0, 1, ...), in batches of --pairs; written to RUN/pooled."""
    argv = [
        sys.executable, str(ROOT / "tools" / "diagnose.py"),
        str(run / "checkpoints" / "last.ckpt"), "--data", str(args.held_out),
        "--data-root", str(args.data_root), "--pairs", str(args.final_pairs),
        "--batch-size", str(args.pairs), "--draws", str(args.final_draws),
        "--seed", "0", "--out", str(run / "pooled"),
    ]  # fmt: skip
    with open(run.with_suffix(".pooled.log"), "w") as f:
        subprocess.run(argv, env=env, stdout=f, stderr=subprocess.STDOUT, check=True)
    return json.loads((run / "pooled" / "diagnostics.json").read_text())["diagnostics"]


def at_step(history: list[dict], step: int) -> dict | None:
    """The diagnostics recorded at ``step``, or None."""
    found = [h for h in history if h["step"] == step]
    return found[-1] if found else None


def csv_history(run: Path) -> list[dict]:
    """The ``diag/*`` rows of a run's metrics.csv (also for a run cut short)."""
    rows = []
    with open(run / "logs" / "metrics.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r.get("diag/position_share"):
                rows.append({"step": int(r["step"]), **{k[5:]: float(v) for k, v in r.items() if k.startswith("diag/")}})  # fmt: skip
    return rows


def settings(config: dict | None) -> str:
    """The options that the study varies, from a run's config.yaml."""
    if not config:
        return ""
    flip = config.get("hflip_prob", 0.0)
    return (
        f"{config.get('dense_statistics')} / {config.get('center', 'none')} / "
        f"{config.get('cost', 'cosine')} / {config.get('epsilon_scale', 'absolute')} / "
        f"{config.get('position_weight', 0.0):g} / {flip:g} / {config.get('lr'):g} / "
        f"{config.get('epsilon', 0.05):g} / {config.get('cvsim', 'global')} / "
        f"{config.get('global_weight', 0.25):g} / {config.get('beta', 25.0):g} / "
        f"{config.get('eta', 1.0):g} / {config.get('crop_scale', (0.3, 1.0))[0]:g} / "
        f"{config.get('batch_size', 16)} / {config.get('precision', '32-true')} / "
        f"{config.get('image_decorrelation', 0.0):g} / "
        f"{config.get('feature_matching', 0.0):g} / "
        f"{config.get('plan_contrast', 0.0):g} / "
        f"{config.get('plan_contrast_cells', 'all')}"
    )


def table(results: list[dict], steps: list[int], gate: Gate) -> str:
    """Markdown: mean (min-max over seeds) of each figure, and the gate's verdict."""
    head = (
        "| variant | statistics / centring / cost / epsilon scale / grid weight / flip / "
        "lr / epsilon / CV-SIM / global weight / beta / eta / min crop / batch / "
        "precision / image decorrelation / feature matching / plan contrast / "
        "contrast cells "
        "| step | seeds | " + " | ".join(SHOWN) + " | gate |"
    )
    rows = [head, "|" + "---|" * (len(SHOWN) + 5)]
    names = list(dict.fromkeys(r["name"] for r in results))
    for name in names:
        runs = [r for r in results if r["name"] == name]
        for step in steps:
            d = [x for x in (at_step(r["history"], step) for r in runs) if x]
            if not d:
                continue
            rows.append(row(name, runs, str(step), d, gate))
        pooled = [r["pooled"] for r in runs if r.get("pooled")]
        if pooled:
            last = runs[0]["config"]["max_steps"]
            rows.append(row(name, runs, f"{last} pooled", pooled, gate))
    return "\n".join(rows)


def row(name: str, runs: list[dict], step: str, d: list[dict], gate: Gate) -> str:
    """One table row: mean (min-max over seeds) of each figure, the gate's verdict."""
    cells = []
    for key in SHOWN:
        v = [x[key] for x in d if key in x]
        if not v:
            cells.append("–")
            continue
        m = sum(v) / len(v)
        cells.append(
            f"{m:.3f}" if len(v) == 1 else f"{m:.3f} ({min(v):.2f}-{max(v):.2f})"
        )
    passed = sum(not gate.failures(x) for x in d)
    met = "/".join(str(5 - len(gate.failures(x))) for x in d)
    return (
        f"| {name} | {settings(runs[0].get('config'))} | {step} | {len(d)} | "
        + " | ".join(cells)
        + f" | {passed}/{len(d)} pass ({met} of 5) |"
    )


def collect(args: argparse.Namespace) -> int:
    """Tabulates finished runs of several study folders into --out."""
    results = []
    for folder in args.collect:
        for run in sorted(folder.glob("*_seed*/config.yaml")):
            run = run.parent
            name, _, seed = run.name.rpartition("_seed")
            report = run / "diagnostics.json"
            rediag = run / (args.diagnosis or "rediag") / "diagnostics.json"
            config = yaml.safe_load((run / "config.yaml").read_text())
            if args.diagnosis and not rediag.is_file():
                print(f"skipped {run}: no {rediag}")
                continue
            if rediag.is_file():  # the last checkpoint, diagnosed by tools/diagnose.py
                final = json.loads(rediag.read_text())["diagnostics"]
                history = [{"step": config["max_steps"], **final}]
            elif report.is_file():
                history = json.loads(report.read_text())["history"]
            else:
                history = csv_history(run)
            pooled = run / "pooled" / "diagnostics.json"
            if history:
                results.append({
                    "name": name, "seed": int(seed), "study": str(folder),
                    "config": config,
                    "history": history,
                    "pooled": json.loads(pooled.read_text())["diagnostics"]
                    if pooled.is_file() else None,
                })  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    md = table(results, args.report_steps, Gate())
    (args.out / "study.json").write_text(json.dumps({"runs": results}, indent=1))
    (args.out / "study.md").write_text(md + "\n")
    print(md)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=["old-default", "default"])
    p.add_argument(
        "--extra",
        nargs="*",
        default=[],
        help="NAME='--flag value ...' variants defined on the command line",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--report-steps", type=int, nargs="+", default=[100, 300])
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--pairs", type=int, default=48)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument(
        "--final-draws",
        type=int,
        default=3,
        help="after each run, diagnose its last checkpoint on this many draws of "
        "views of --final-pairs held-out images (RUN/pooled; 0: off)",
    )
    p.add_argument("--final-pairs", type=int, default=288)
    p.add_argument(
        "--diagnosis",
        default=None,
        help="with --collect: tabulate only each run's RUN/NAME/diagnostics.json "
        "(tools/diagnose.py --out RUN/NAME, e.g. pooled over draws), at the run's "
        "last step; default: RUN/rediag if present, else the run's own log",
    )
    p.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=Path("runs/shortcut_study"))
    p.add_argument(
        "--collect",
        nargs="+",
        type=Path,
        help="only tabulate finished runs: study folders whose NAME_seedN/ hold "
        "diagnostics.json and config.yaml",
    )
    args = p.parse_args(argv)
    if args.collect:
        return collect(args)
    pool = args.data_root / "cxr_pool" / "pool.txt"
    if not pool.is_file():
        p.error(f"{pool} not found: the study needs ../shared/data (see README)")
    variants = dict(VARIANTS)
    for item in args.extra:
        name, _, flags = item.partition("=")
        variants[name] = flags.split()
    args.out.mkdir(parents=True, exist_ok=True)
    args.held_out = write_held_out(args.data_root, args.out / "held_out.txt")
    jobs = [(n, variants[n], s) for s in args.seeds for n in args.variants]
    start = time.time()
    with ThreadPoolExecutor(args.jobs) as pool_exec:
        results = list(pool_exec.map(lambda j: run_one(args, *j), jobs))
    gate = Gate()
    md = table(results, args.report_steps, gate)
    summary = {
        "command": " ".join(
            ["python tools/shortcut_study.py", *(argv or sys.argv[1:])]
        ),
        "variants": {n: variants[n] for n in args.variants},
        "wall_seconds": time.time() - start,
        "gate": gate.__dict__,
        "runs": results,
    }
    (args.out / "study.json").write_text(json.dumps(summary, indent=1))
    (args.out / "study.md").write_text(md + "\n")
    print(md)
    print(f"\n{len(jobs)} runs in {(time.time() - start) / 60:.1f} min; {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
