"""``python tools/benchmark.py --preset cpu-real``: OPTiML against VICReg, VICRegL,
Barlow Twins and random init on real chest X-rays, on a 2-core CPU in about 90
minutes.

Stages, each reused when an earlier run finished it (so an interrupted
benchmark resumes): (1) pretraining on ``cxr_pool`` at 160 px, every method with
one shared setting, as parallel single-thread processes; (2) the evaluation sets
decoded once at 224 px; (3) frozen evaluation of every backbone and of the
position-only probes (:mod:`.evaluate`), in parallel; (4) Faster R-CNN
fine-tuning on TBX11K from the OPTiML, VICReg and random-init backbones of the
first seed; (5) paired bootstrap intervals (:mod:`.stats`). Writes
``benchmark.json``, ``report.md`` and a figure to ``--out``; ``--readme``
rewrites the README's real-data results section from that JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optiml_plugin.eval.real import stats
from optiml_plugin.eval.real.runs import (
    PretrainSetting,
    cpu_precision,
    pretrain_all,
    run_dir,
)

METHODS = ("optiml", "vicreg", "vicregl", "barlowtwins")
RANDOM = "random-init"
POSITION = "position-only"
FINETUNED = ("optiml", "vicreg", RANDOM)
# metric key -> (label, kind, data set, label key)
METRICS = {
    "lung_dice": ("lung Dice, mcsz test (linear probe on 7x7 maps)", "seg", "mcsz", "mask"),
    "lung_dice_crop": ("lung Dice, fixed random crops of mcsz test", "seg", "mcsz_crop", "mask"),
    "tb_cell_auroc": ("TBX11K cell inside a TB box, AUROC (val)", "cells", "tbx_val", "cells"),
    "tb_auroc_10": ("TB vs normal AUROC, mcsz, 10 % labels (5 draws)", "cls", "tb", "0.1"),
    "tb_auroc_100": ("TB vs normal AUROC, mcsz, 100 % labels", "cls", "tb", "1"),
    "pneumonia_auroc_10": ("pneumonia vs no finding AUROC, NIH, 10 % labels (5 draws)", "cls", "pneumonia", "0.1"),
    "pneumonia_auroc_100": ("pneumonia vs no finding AUROC, NIH, 100 % labels", "cls", "pneumonia", "1"),
}  # fmt: skip
CLS_DATA = {"tb": ("mcsz_test", "tb"), "pneumonia": ("nih_test", "pneumonia")}


def build_parser() -> argparse.ArgumentParser:
    """Options of the cpu-real preset."""
    p = argparse.ArgumentParser(
        prog="tools/benchmark.py --preset cpu-real",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--preset", choices=("cpu-real",), default="cpu-real")
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path("results/cpu_real"))
    p.add_argument("--work", type=Path, default=Path("runs/cpu_real"))
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=250, help="pretraining steps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-size", type=int, default=160, help="pretraining views")
    p.add_argument("--eval-size", type=int, default=224)
    p.add_argument("--draws", type=int, default=5, help="label-subset draws at 10 %%")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--finetune-iters", type=int, default=100)
    p.add_argument("--finetune-scale", type=int, default=320)
    p.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "bf16-mixed", "32-true"),
        help="pretraining precision, and bfloat16 feature extraction with "
        "bf16-mixed; auto: bf16-mixed where the CPU has AMX",
    )
    p.add_argument("--skip-finetune", action="store_true")
    p.add_argument(
        "--jobs", type=int, default=2, help="parallel single-thread processes"
    )
    p.add_argument(
        "--readme",
        type=Path,
        default=None,
        help="also rewrite this README's real-data results section from the JSON",
    )
    p.add_argument(
        "--render-only",
        type=Path,
        default=None,
        metavar="JSON",
        help="run nothing: re-render report.md and the figure (beside JSON) and "
        "--readme from JSON",
    )
    p.add_argument("--note", default="")
    return p


def _subprocess(argv: list[str], log: Path, what: str) -> None:
    """Runs ``argv`` single-threaded, output to ``log``; raises naming the log."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log, "w") as f:
        proc = subprocess.run(
            argv, env=env, stdout=f, stderr=subprocess.STDOUT, check=False
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed; see {log}")


def eval_jobs(args: argparse.Namespace, cache: Path, bf16: bool) -> list[tuple]:
    """(method, seed, output, argv) of every frozen evaluation."""
    folder = args.work / "eval"
    jobs = []
    for seed in args.seeds:
        for m in [*args.methods, RANDOM, POSITION]:
            source = {RANDOM: "random", POSITION: "none"}.get(m)
            if source is None:
                source = str(run_dir(args.work / "pretrain", m, seed) / "backbone.pth")
            out = folder / f"{m}_s{seed}.pt"
            argv = [sys.executable, "-m", "optiml_plugin.eval.real.worker", m, source,
                    str(seed), str(cache), str(out), "--draws", str(args.draws),
                    *(["--bf16"] if bf16 else [])]  # fmt: skip
            jobs.append((m, seed, out, argv))
    return jobs


def evaluate_and_finetune(
    args: argparse.Namespace, cache: Path, bf16: bool
) -> tuple[dict[str, list[dict]], list[dict]]:
    """Frozen evaluations and fine-tunings, ``args.jobs`` single-thread processes
    at a time (fine-tunings first: they are the longest); finished ones are reused."""
    (args.work / "eval").mkdir(parents=True, exist_ok=True)
    jobs = eval_jobs(args, cache, bf16)
    with ThreadPoolExecutor(args.jobs) as pool:
        tuned = [] if args.skip_finetune else [pool.submit(finetune_one, args, m, p) for m, p in finetune_sources(args)]  # fmt: skip
        pending = []
        for m, seed, out, argv in jobs:
            if not out.is_file():
                log = out.with_suffix(".log")
                pending.append(pool.submit(_subprocess, argv, log, f"evaluating {m} seed {seed}"))  # fmt: skip
        for f in pending:
            f.result()
        finetuned = [f.result() for f in tuned]
    raw: dict[str, list[dict]] = {}
    for m, _, out, _ in jobs:
        raw.setdefault(m, []).append(torch.load(out, weights_only=True))
    return raw, finetuned


def metric_views(raw: dict[str, list[dict]], data: dict, key: str):  # noqa: ANN201
    """(per-method outputs as numpy, metric function, number of test images)."""
    _, kind, where, sub = METRICS[key]
    if kind == "seg":
        outs = {m: [{k: v.numpy() for k, v in r["seg"][where].items()} for r in rs]
                for m, rs in raw.items()}  # fmt: skip
        n = len(next(iter(outs.values()))[0]["inter"])
        return outs, stats.dice_metric, n
    if kind == "cells":
        outs = {m: [r["cells"].numpy() for r in rs] for m, rs in raw.items()}
        labels = data[where]["cells"].numpy()
        return outs, stats.cells_auroc_metric(labels), labels.shape[0]
    outs = {
        m: [r["cls"][where][sub].numpy() for r in rs]
        for m, rs in raw.items()
        if rs[0]["cls"]
    }  # fmt: skip (position-only has no classification)
    split, label = CLS_DATA[where]
    labels = data[split][label].numpy()
    return outs, stats.draws_auroc_metric(labels), labels.shape[0]


def compare_all(args: argparse.Namespace, raw: dict, data: dict) -> dict[str, Any]:
    """Every metric: each method's mean with its interval, and OPTiML minus each
    other method, paired by seed and test image."""
    out: dict[str, Any] = {}
    for key, (label, *_rest) in METRICS.items():
        outs, metric, n = metric_views(raw, data, key)
        boot = stats.resamples(n, args.bootstrap, seed=0)
        entry: dict[str, Any] = {
            "label": label,
            "test_images": n,
            "methods": {},
            "paired": {},
        }
        for m, o in outs.items():
            entry["methods"][m] = stats.summarize(o, metric, boot)
        if "optiml" in outs:
            for m, o in outs.items():
                if m != "optiml":
                    entry["paired"][m] = stats.paired(outs["optiml"], o, metric, boot)
        out[key] = entry
        print(f"{key}: " + ", ".join(f"{m} {s['mean']:.3f}" for m, s in entry["methods"].items()), flush=True)  # fmt: skip
    return out


def diagnostics(raw: dict) -> dict[str, Any]:
    """Backbone diagnostics per method: per seed and mean."""
    out = {}
    for m, rs in raw.items():
        ds = [r["diagnostics"] for r in rs if r.get("diagnostics")]
        if ds:
            out[m] = {
                "per_seed": ds,
                "mean": {k: float(np.mean([d[k] for d in ds])) for k in ds[0]},
            }
    return out


def head_diagnostics(args: argparse.Namespace) -> list[dict]:
    """OPTiML's own diagnostics (dense head tokens) logged during pretraining."""
    out = []
    for seed in args.seeds:
        path = run_dir(args.work / "pretrain", "optiml", seed) / "diagnostics.json"
        if path.is_file():
            out.append(
                {"seed": seed, "history": json.loads(path.read_text())["history"]}
            )
    return out


def finetune_sources(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(name, backbone file) of FINETUNED's first-seed backbones (random init
    written to a file, seeded like its frozen evaluation)."""
    from optiml_plugin.eval.backbone import load_backbone

    seed = args.seeds[0]
    out = []
    for m in FINETUNED:
        if m == RANDOM:
            path = args.work / "finetune" / f"random_s{seed}.pth"
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.manual_seed(seed)
                torch.save(load_backbone(None, "resnet18").state_dict(), path)
        elif m in args.methods:
            path = run_dir(args.work / "pretrain", m, seed) / "backbone.pth"
        else:
            continue
        out.append((m, path))
    return out


def finetune_one(args: argparse.Namespace, name: str, backbone: Path) -> dict:
    """Faster R-CNN on TBX11K from one backbone (see :mod:`.detection`)."""
    from optiml_plugin.eval.real.detection import finetune, write_tbx11k_coco

    root = write_tbx11k_coco(
        args.data_root / "tbx11k_tb_detection", args.work / "tbx11k"
    )
    return finetune(name, backbone, root, args.work / "finetune", args.finetune_iters,
                    args.finetune_scale)  # fmt: skip


def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """All stages; returns (and writes) the results."""
    from optiml_plugin.eval.real.data import check_data_root, load_all, write_held_out

    check_data_root(args.data_root)
    start = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    held_out = args.work / "held_out.txt"
    write_held_out(args.data_root, held_out)
    precision = cpu_precision() if args.precision == "auto" else args.precision
    setting = PretrainSetting(
        data_root=args.data_root.resolve(), image_size=args.image_size,
        batch_size=args.batch_size, steps=args.steps, held_out=held_out,
        precision=precision,
    )  # fmt: skip
    t = time.time()
    records = pretrain_all(
        setting, args.methods, args.seeds, args.work / "pretrain", args.jobs
    )
    seconds["pretrain"] = time.time() - t
    t = time.time()
    cache = args.work / f"eval_data_{args.eval_size}.pt"
    data = load_all(args.data_root, cache, args.eval_size)
    seconds["data"] = time.time() - t
    t = time.time()
    raw, tuned = evaluate_and_finetune(args, cache, bf16=precision == "bf16-mixed")
    seconds["evaluate_and_finetune"] = time.time() - t
    t = time.time()
    results = {
        "meta": {
            "command": " ".join(["python tools/benchmark.py", *map(shlex.quote, argv)]),
            "started": _now(start),
            "note": args.note,
            "hardware": _hardware(),
            "precision": precision,
        },
        "settings": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
        },
        "pretrain": {
            "argv_seed0_optiml": setting.argv("optiml", args.seeds[0], Path("OUT")),
            "runs": records,
        },  # fmt: skip
        "metrics": compare_all(args, raw, data),
        "diagnostics": diagnostics(raw),
        "head_diagnostics": head_diagnostics(args),
        "finetune": tuned,
        "eval_seconds": {m: [r["seconds"] for r in rs] for m, rs in raw.items()},
    }
    seconds["stats"] = time.time() - t
    results["meta"]["stage_seconds"] = seconds
    results["meta"]["wall_s"] = time.time() - start
    results["meta"]["pretrain_run_seconds"] = sum(r["seconds"] for r in records)
    results["meta"]["finished"] = _now(time.time())
    from optiml_plugin.eval.real.report import render_figure, render_report

    results["figure"] = render_figure(results, args.out / "paired_differences.png")
    (args.out / "benchmark.json").write_text(json.dumps(results, indent=1))
    (args.out / "report.md").write_text(render_report(results))
    return results


def _now(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")  # fmt: skip


def _hardware() -> dict[str, Any]:
    from optiml_plugin.eval.benchmark import hardware

    return hardware()


def main(argv: list[str] | None = None) -> int:
    """Runs the preset (or, with ``--render-only JSON``, only re-renders)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from optiml_plugin.eval.real.report import (
        render_figure,
        render_report,
        update_readme,
    )

    if args.render_only is not None:
        json_path = args.render_only
        results = json.loads(json_path.read_text())
        results["figure"] = render_figure(
            results, json_path.parent / "paired_differences.png"
        )
        (json_path.parent / "report.md").write_text(render_report(results))
        print(f"rendered {json_path.parent / 'report.md'}")
    else:
        json_path = args.out / "benchmark.json"
        with work_lock(args.work):
            results = run(args, argv)
        print(f"\ncpu-real benchmark finished in {results['meta']['wall_s']:.0f} s: "
              f"{args.out / 'report.md'}")  # fmt: skip
    if args.readme is not None:
        rel = os.path.relpath(json_path.resolve(), args.readme.resolve().parent)
        update_readme(args.readme, results, rel)
        print(f"updated {args.readme}")
    return 0


@contextlib.contextmanager
def work_lock(work: Path) -> Iterator[None]:
    """Holds ``work/.lock``: a second benchmark on the same folder would write
    into the runs of the first.

    Raises:
        RuntimeError: Another process holds the lock.
    """
    import fcntl

    work.mkdir(parents=True, exist_ok=True)
    with open(work / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"{work} is in use by another cpu-real benchmark; wait for it or "
                "give another --work."
            ) from None
        yield
