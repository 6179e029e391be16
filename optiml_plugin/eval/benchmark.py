"""The benchmark behind the README's Results: compute cost and representation
quality of OPTiML against Lightly's VICReg, VICRegL and Barlow Twins, in one run.

(a) Compute: the step time (and, on a GPU, peak memory) of every method's own
pretraining module at equal backbone, image size and batch, and the batched
Sinkhorn against a per-image loop of POT's solver, as ratios.

(b) Quality: each method is pretrained by the same command
(:func:`optiml_plugin.train.pretrain.run`) with the same backbone, data,
augmentations, step budget, optimiser and seed; each exported backbone (and a
randomly initialised one) is then evaluated frozen: linear-probe AUROC at label
fractions and a linear dense probe's Dice. Ablations of OPTiML (no CV-SIM, no
OT, exact OT, epsilon sweep) run with the same budget.

It writes ``report.md``, PNG figures and ``benchmark.json`` (every number) into
``--out``; :mod:`optiml_plugin.eval.report` renders the README's Results section
from that JSON.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from optiml_plugin.eval import figures
from optiml_plugin.eval.backbone import load_backbone
from optiml_plugin.eval.compute import sinkhorn_times, step_times
from optiml_plugin.eval.datasets import build_eval_data
from optiml_plugin.eval.evaluator import Evaluator
from optiml_plugin.eval.plan_check import plan_accuracy_and_figure
from optiml_plugin.eval.protocol import (
    fraction_key,
)
from optiml_plugin.eval.report import (
    render_readme_section,
    render_report,
    update_readme,
)
from optiml_plugin.eval.summary import compare, summarize
from optiml_plugin.eval.variants import (
    ABLATIONS,
    BASE_METHODS,
    POSITION,
    RANDOM,
    pretrain_argv,
    run_specs,
)

COMMAND = "python tools/benchmark.py"

# ``--preset paper``: the paper's protocol on GPUs, as option defaults that later
# options override. NIH ChestX-ray14 from ``tools/prepare_data.py nih --out
# data/nih``; pretraining as the authors' earlier recipe (configs/pretrain/
# nih_resnet50.yaml: ResNet-50, 224 px, batch 64 per GPU, LARS at 0.2 per 256
# images, 300 epochs) with DDP over every visible GPU and bf16; linear probes on
# the official test list at 1 / 10 / 100 % of the labels. Fine-tuned AUROC, the
# figure published anchors report, is ``tools/eval_cls.py --modes finetune`` on
# the exported backbones (README, "Benchmarks").
PAPER_PRESET = [
    "--data", "nih:data/nih", "--eval-data", "nih:data/nih/train.csv,data/nih/test.csv",
    "--backbone", "resnet50", "--image-size", "224", "--batch-size", "64",
    "--optimizer", "lars", "--lr", "0.2", "--weight-decay", "1e-6",
    "--warmup-epochs", "10", "--epochs", "300", "--max-steps", "-1",
    "--devices", "auto", "--precision", "bf16-mixed", "--num-workers", "8",
    "--seeds", "0", "1", "2", "--ablations", "--fractions", "0.01", "0.1", "1.0",
    "--out", "results/paper", "--work", "runs/paper",
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's options (defaults: the small CPU scale of the README)."""
    p = argparse.ArgumentParser(
        prog="tools/benchmark.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--preset",
        choices=("phantom", "cpu-real", "paper"),
        default="phantom",
        help="phantom: the no-download default below; cpu-real: real chest X-rays "
        "on a 2-core CPU (see optiml_plugin.eval.real.preset, own options); paper: "
        "the paper's protocol on GPUs (see PAPER_PRESET)",
    )
    p.add_argument("--out", type=Path, default=Path("results/benchmark"))
    p.add_argument(
        "--work",
        type=Path,
        default=Path("runs/benchmark"),
        help="pretraining runs (checkpoints are deleted after evaluation)",
    )
    d = p.add_argument_group("data")
    d.add_argument(
        "--data",
        default="phantom",
        help="'phantom', or 'shared:ROOT' (pretrain on the images of "
        "ROOT/covid_cxr_lungseg and ROOT/tbx11k_tb_detection, evaluate on their "
        "lung masks and TB labels), or a folder / .txt list of images",
    )
    d.add_argument(
        "--eval-data",
        default=None,
        help="evaluation sets (see optiml_plugin.eval.datasets.build_eval_data); "
        "default: phantom, or shared:ROOT with --data shared:ROOT",
    )
    d.add_argument("--num-images", type=int, default=512, help="pretraining phantoms")
    d.add_argument("--phantom-size", type=int, default=160)
    d.add_argument("--image-size", type=int, default=128)
    d.add_argument("--eval-train", type=int, default=384, help="probe phantoms")
    d.add_argument(
        "--eval-test",
        type=int,
        default=768,
        help="test phantoms (768: an AUROC standard error of about 0.02 per class)",
    )
    d.add_argument(
        "--lesion-scale",
        type=float,
        default=3.0,
        help="size factor of the evaluation phantoms' nodules and opacities (at 1, "
        "nodules of 2-4 px at 128 px are invisible to every backbone)",
    )
    d.add_argument("--num-workers", type=int, default=1)
    q = p.add_argument_group("quality")
    q.add_argument("--methods", nargs="+", default=list(BASE_METHODS))
    q.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    q.add_argument(
        "--ablations", nargs="*", default=list(ABLATIONS), choices=list(ABLATIONS)
    )
    q.add_argument("--ablation-seeds", type=int, nargs="+", default=[0])
    q.add_argument("--backbone", default="resnet18")
    q.add_argument("--max-steps", type=int, default=40, help="pretraining steps")
    q.add_argument("--batch-size", type=int, default=16)
    q.add_argument("--lr", type=float, default=0.01, help="base lr per 256 images")
    q.add_argument("--optimizer", choices=("adamw", "lars"), default="adamw")
    q.add_argument("--weight-decay", type=float, default=0.05)
    q.add_argument("--warmup-epochs", type=float, default=0.25)
    q.add_argument(
        "--epochs",
        type=int,
        default=1000,
        help="pretraining epochs (with --max-steps -1)",
    )
    q.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    q.add_argument("--probe-epochs", type=int, default=100)
    q.add_argument("--dense-probe-epochs", type=int, default=60)
    q.add_argument("--no-tsne", action="store_true")
    c = p.add_argument_group("compute")
    c.add_argument("--skip-compute", action="store_true")
    c.add_argument("--skip-quality", action="store_true", help="only the compute part")
    c.add_argument("--compute-backbone", default="resnet50")
    c.add_argument("--compute-image-size", type=int, default=224)
    c.add_argument("--compute-batch-size", type=int, default=16)
    c.add_argument("--compute-repeats", type=int, default=3)
    c.add_argument("--ot-batch", type=int, default=64)
    c.add_argument("--ot-cells", type=int, default=196)
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--devices",
        default="1",
        help="pretraining devices; other than 1, each run is a tools/pretrain.py "
        "process that Lightning's DDP launches over them",
    )
    p.add_argument("--precision", default="auto", help="pretraining precision")
    p.add_argument(
        "--readme",
        type=Path,
        default=None,
        help="also rewrite this README's '## Results' section from the JSON",
    )
    p.add_argument(
        "--render-only",
        type=Path,
        default=None,
        metavar="JSON",
        help="run nothing: re-render report.md (beside JSON) and --readme from JSON",
    )
    p.add_argument(
        "--note",
        default="",
        help="a remark recorded in the JSON and report (e.g. other jobs shared the CPU)",
    )
    return p


def loss_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(step, loss) pairs from a run's ``logs/metrics.csv``."""
    path = run_dir / "logs" / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    return [(int(r["step"]), float(r["train/loss"])) for r in rows]


def pretrain_data(args: argparse.Namespace, work: Path) -> str:
    """The ``--data`` of pretraining; ``shared:ROOT`` becomes a list file of the
    images of its two data sets."""
    kind, _, root = args.data.partition(":")
    if kind == "nih":
        return nih_train_list(Path(root), work)
    if kind != "shared":
        return args.data
    images = []
    for sub in ("covid_cxr_lungseg", "tbx11k_tb_detection"):
        images += sorted((Path(root) / sub / "images").glob("*.png"))
    if not images:
        raise FileNotFoundError(f"{root}: no images under */images/")
    listing = work / "pretrain_images.txt"
    listing.write_text("".join(f"{p.resolve()}\n" for p in images))
    return str(listing)


def nih_train_list(root: Path, work: Path) -> str:
    """A list file of the NIH training images (``ROOT/train.csv`` of
    ``tools/prepare_data.py nih``): pretraining never sees val or test images."""
    table = root / "train.csv"
    if not table.is_file():
        raise FileNotFoundError(
            f"{table}: not found; convert NIH ChestX-ray14 first: python "
            f"tools/prepare_data.py nih ... --out {root}"
        )
    with open(table, newline="") as f:
        paths = [(root / r["path"]).resolve() for r in csv.DictReader(f)]
    work.mkdir(parents=True, exist_ok=True)
    listing = work / "pretrain_images.txt"
    listing.write_text("".join(f"{p}\n" for p in paths))
    return str(listing)


def hardware() -> dict[str, Any]:
    """What ran the benchmark."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def run_benchmark(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Runs everything and returns the results (also written as JSON and report)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.eval_data is None:
        args.eval_data = args.data if args.data.startswith("shared:") else "phantom"
    start = time.perf_counter()
    out, work = args.out, args.work
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    results: dict[str, Any] = {
        "meta": {
            "command": " ".join([COMMAND, *map(shlex.quote, argv)]).strip(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
            "hardware": hardware(),
            "note": args.note,
        },
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
        },
    }
    base_argv = pretrain_argv(args, pretrain_data(args, work))
    results["settings"]["pretrain_options"] = base_argv

    # (a) compute
    if not args.skip_compute:
        t0 = time.perf_counter()
        compute_argv = [
            *base_argv,
            "--backbone", args.compute_backbone,
            "--image-size", str(args.compute_image_size),
            "--batch-size", str(args.compute_batch_size),
        ]  # fmt: skip
        if args.compute_backbone not in ("resnet18", "resnet34"):
            compute_argv += ["--global-dim", "2048", "--global-hidden-dim", "2048",
                             "--dense-dim", "512", "--dense-hidden-dim", "1024"]  # fmt: skip
        steps = step_times(
            compute_argv, repeats=args.compute_repeats, device=args.device
        )
        for m in steps:
            steps[m]["ratio_to_vicreg"] = steps[m]["ms"] / steps["vicreg"]["ms"]
        ot_times = sinkhorn_times(
            args.ot_batch, args.ot_cells, 100, 0.05, args.compute_repeats, args.device
        )
        ot_times["speedup_kernel"] = ot_times["pot_loop"] / ot_times["sinkhorn_kernel"]
        ot_times["speedup_log"] = ot_times["pot_loop"] / ot_times["sinkhorn_log"]
        results["compute"] = {
            "backbone": args.compute_backbone,
            "image_size": args.compute_image_size,
            "batch_size": args.compute_batch_size,
            "repeats": args.compute_repeats,
            "steps": steps,
            "sinkhorn": {
                "batch": args.ot_batch,
                "cells": args.ot_cells,
                "iters": 100,
                "epsilon": 0.05,
                **ot_times,
            },
            "seconds": time.perf_counter() - t0,
        }
        print(f"compute part done in {results['compute']['seconds']:.0f} s", flush=True)

    results["eval_data"] = {"description": "", "classes": [], "seg_classes": []}
    results["runs"], results["summary"], results["figures"] = [], {}, {}
    if not args.skip_quality:
        results.update(quality(args, base_argv, fig_dir))
    results["meta"]["wall_s"] = time.perf_counter() - start
    results["meta"]["finished"] = datetime.datetime.now(
        datetime.timezone.utc
    ).isoformat(timespec="seconds")
    results = _clean(results)
    (out / "benchmark.json").write_text(json.dumps(results, indent=1))
    (out / "report.md").write_text(render_report(results))
    return results


def quality(args: argparse.Namespace, base_argv: list[str], fig_dir: Path) -> dict:
    """Pretrains every run, evaluates it, draws the figures; returns the results'
    ``eval_data``, ``runs``, ``summary``, ``comparison`` and ``figures``."""
    from optiml_plugin.train.pretrain import parse_args as pretrain_parse
    from optiml_plugin.train.pretrain import run as pretrain_run

    out, work = args.out, args.work
    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    data = build_eval_data(
        args.eval_data, args.image_size, args.eval_train, args.eval_test,
        args.phantom_size, args.lesion_scale,
    )  # fmt: skip
    evaluator = Evaluator(data, args)
    results["eval_data"] = {
        "description": data.description,
        "classes": list(data.classes),
        "seg_classes": list(data.seg_classes),
        "sizes": {
            k: len(getattr(evaluator, k))
            for k in ("cls_train", "cls_test", "seg_train", "seg_test")
            if getattr(evaluator, k) is not None
        },
        "seconds": time.perf_counter() - t0,
    }
    runs: list[dict[str, Any]] = []
    pooled: dict[str, Any] = {}
    curves: dict[str, list] = {}
    for seed in args.seeds:
        torch.manual_seed(seed)
        t1 = time.perf_counter()
        backbone = load_backbone(None, args.backbone)
        result, feats = evaluator.evaluate(backbone, seed)
        runs.append({"name": RANDOM, "method": RANDOM, "seed": seed,
                     "eval_s": time.perf_counter() - t1, **result})  # fmt: skip
        if seed == args.seeds[0] and feats is not None:
            pooled[RANDOM] = feats
        position = evaluator.evaluate_position(seed, grid=args.image_size // 32)
        if position:
            runs.append({"name": POSITION, "method": POSITION, "seed": seed, **position})  # fmt: skip
    for spec in run_specs(args):
        name, seed = spec["name"], spec["seed"]
        run_dir = work / f"{name}_s{seed}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        pargs = pretrain_parse(
            [*base_argv, "--method", spec["method"], *spec["extra"],
             "--seed", str(seed), "--out", str(run_dir)]
        )  # fmt: skip
        t1 = time.perf_counter()
        if str(args.devices) == "1":
            pretrain_run(pargs)
        else:  # DDP relaunches the script it runs: let that be tools/pretrain.py
            run_argv = [*base_argv, "--method", spec["method"], *spec["extra"],
                        "--seed", str(seed), "--out", str(run_dir)]  # fmt: skip
            subprocess.run(
                [sys.executable, str(Path(__file__).resolve().parents[2] / "tools" / "pretrain.py"), *run_argv],
                check=True,
            )  # fmt: skip
        pretrain_s = time.perf_counter() - t1
        t1 = time.perf_counter()
        backbone = load_backbone(run_dir / "backbone.pth")
        result, feats = evaluator.evaluate(backbone, seed)
        record = {
            "name": name, "method": spec["method"], "options": spec["extra"],
            "seed": seed, "pretrain_s": pretrain_s, "steps": args.max_steps,
            "eval_s": time.perf_counter() - t1, **result,
        }  # fmt: skip
        curve = loss_curve(run_dir)
        record["loss_first"] = curve[0][1] if curve else None
        record["loss_last"] = curve[-1][1] if curve else None
        curves.setdefault(name, []).append(curve)
        if spec["method"] == "optiml":
            figure = None
            if name == "optiml" and seed == args.seeds[0]:
                figure = fig_dir / "transport_plan.png"
            record["plan_accuracy"], record["plan_same_index"] = (
                plan_accuracy_and_figure(run_dir, args, figure, seed)
            )
        record["loss_curve"] = curve
        runs.append(record)
        if seed == args.seeds[0] and feats is not None and name in args.methods:
            pooled[name] = feats
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        print(
            f"{name} seed {seed}: pretrain {pretrain_s:.0f} s, "
            + json.dumps({k: record.get(k) for k in ("linear", "dense")}, default=_r3)[
                :300
            ],
            flush=True,
        )
    fractions = [fraction_key(f) for f in args.fractions]
    results["runs"] = runs
    results["summary"] = summarize(runs, fractions)
    results["comparison"] = compare(results["summary"], fractions)
    results["quality_seconds"] = time.perf_counter() - t0

    # figures
    figs = {}
    if curves:
        figs["loss_curves"] = figures.loss_curves_figure(
            curves, fig_dir / "loss_curves.png"
        )
    lin = {
        n: s["linear"]
        for n, s in results["summary"].items()
        if "linear" in s and (n in args.methods or n == RANDOM)
    }
    if lin:
        figs["auroc_vs_fraction"] = figures.auroc_fraction_figure(
            lin, fractions, fig_dir / "auroc_vs_fraction.png",
            title=f"linear probe, {args.backbone}, {len(args.seeds)} seeds",
        )  # fmt: skip
    if (fig_dir / "transport_plan.png").is_file():
        figs["transport_plan"] = fig_dir / "transport_plan.png"
    if pooled and not args.no_tsne:
        labels = next(iter(pooled.values()))[1]
        figs["tsne"] = figures.tsne_figure(
            {k: v[0] for k, v in pooled.items()}, labels, data.classes,
            fig_dir / "tsne.png",
        )  # fmt: skip
    results["figures"] = {k: str(Path(v).relative_to(out)) for k, v in figs.items()}
    return results


def _r3(x: Any) -> Any:
    return round(x, 3) if isinstance(x, float) else str(x)


def _clean(x: Any) -> Any:
    """JSON-safe: NaN and infinities become None, tuples lists, paths strings."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Path):
        return str(x)
    return x


def _preset(argv: list[str]) -> str:
    """The ``--preset`` value of ``argv`` ("phantom" when absent)."""
    for i, a in enumerate(argv):
        if a == "--preset" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--preset="):
            return a.split("=", 1)[1]
    return "phantom"


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; ``--readme README.md`` also rewrites its Results section."""
    argv = list(sys.argv[1:] if argv is None else argv)
    preset = _preset(argv)
    if preset == "cpu-real":
        from optiml_plugin.eval.real.preset import main as real_main

        return real_main(argv)
    if preset == "paper":
        argv = [*PAPER_PRESET, *argv]
    args = build_parser().parse_args(argv)
    if args.render_only is not None:
        json_path = args.render_only
        results = json.loads(json_path.read_text())
        (json_path.parent / "report.md").write_text(render_report(results))
        print(f"rendered {json_path.parent / 'report.md'}")
    else:
        json_path = args.out / "benchmark.json"
        results = run_benchmark(args, argv)
        wall = results["meta"]["wall_s"]
        print(
            f"\nbenchmark finished in {wall:.0f} s: {args.out / 'report.md'}, "
            f"{json_path}"
        )
    if args.readme is not None:
        rel = os.path.relpath(json_path.resolve(), args.readme.resolve().parent)
        update_readme(args.readme, render_readme_section(results, rel))
        print(f"updated the Results section of {args.readme}")
    return 0
