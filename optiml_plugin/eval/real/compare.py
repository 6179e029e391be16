"""Two cpu-real benchmark runs of one method, paired by seed and test image.

Compares the frozen evaluations of ``--method`` in two ``--work`` folders of
``python tools/benchmark.py --preset cpu-real`` (e.g. before and after a change of
defaults), with the same paired bootstrap as the benchmark's method comparisons:

    python tools/compare_cpu_real.py runs/cpu_real runs/cpu_real_new \
        --names before after --data-root ../shared/data --out results/cmp.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from optiml_plugin.eval.real import stats
from optiml_plugin.eval.real.data import load_all
from optiml_plugin.eval.real.preset import METRICS, metric_views


def compare(
    before: Path, after: Path, method: str, seeds: list[int], data: dict, reps: int
) -> dict[str, dict]:
    """Per metric: each run's mean [interval] and after - before, paired."""
    raw = {
        name: [
            torch.load(work / "eval" / f"{method}_s{s}.pt", weights_only=True)
            for s in seeds
        ]
        for name, work in (("before", before), ("after", after))
    }
    out = {}
    for key, (label, *_rest) in METRICS.items():
        outs, metric, n = metric_views(raw, data, key)
        if set(outs) != {"before", "after"}:
            continue
        boot = stats.resamples(n, reps, seed=0)
        out[key] = {
            "label": label,
            "before": stats.summarize(outs["before"], metric, boot),
            "after": stats.summarize(outs["after"], metric, boot),
            "paired": stats.paired(outs["after"], outs["before"], metric, boot),
        }
    return out


def markdown(result: dict[str, dict], before: str, after: str) -> str:
    """The comparison as a markdown table."""

    def cell(s: dict) -> str:
        return f"{s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"

    rows = [
        f"| metric | {before} | {after} | {after} - {before} (paired) |",
        "|---|---|---|---|",
    ]
    for r in result.values():
        p = r["paired"]
        rows.append(
            f"| {r['label']} | {cell(r['before'])} | {cell(r['after'])} | "
            f"{p['diff']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}] {p['verdict']} |"
        )
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before", type=Path, help="--work folder of the first run")
    p.add_argument("after", type=Path, help="--work folder of the second run")
    p.add_argument("--method", default="optiml")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--eval-size", type=int, default=224)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument(
        "--names", nargs=2, default=None, help="column names (default: the folders)"
    )
    p.add_argument("--out", type=Path, default=None, help="markdown (and .json)")
    args = p.parse_args(argv)
    for work in (args.before, args.after):
        missing = [
            s for s in args.seeds
            if not (work / "eval" / f"{args.method}_s{s}.pt").is_file()
        ]  # fmt: skip
        if missing:
            p.error(f"{work}/eval: no {args.method} evaluation for seeds {missing}")
    cache = args.before / f"eval_data_{args.eval_size}.pt"
    data = load_all(args.data_root, cache, args.eval_size)
    result = compare(
        args.before, args.after, args.method, args.seeds, data, args.bootstrap
    )
    names = args.names or [str(args.before), str(args.after)]
    text = markdown(result, *names)
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = " ".join(
            [
                "python tools/compare_cpu_real.py",
                *map(shlex.quote, argv or sys.argv[1:]),
            ]
        )
        args.out.write_text(
            f"# {args.method}: {names[1]} against {names[0]}\n\nCommand: `{command}`. "
            f"Mean over seeds {args.seeds} [bootstrap 95 % interval over test "
            f"images, {args.bootstrap} resamples]; the difference is paired by seed "
            "and test image.\n\n" + text
        )
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    return 0
