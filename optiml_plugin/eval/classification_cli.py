"""Classification transfer of an exported backbone (``tools/eval_cls.py``): linear
probing (frozen) and full fine-tuning at label fractions, several seeds, mean
AUROC over classes and per class (torchmetrics), mean +- std over seeds.

    python tools/eval_cls.py --backbone runs/optiml/backbone.pth --data phantom
    python tools/eval_cls.py --random resnet18 --data tbx11k:../shared/data/tbx11k_tb_detection
    python tools/eval_cls.py --backbone backbone.pth --data nih:data/nih/train.csv,data/nih/test.csv \\
        --image-size 224 --modes linear finetune --fractions 0.01 0.1 1 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

from optiml_plugin.eval.backbone import (
    add_backbone_arguments,
    backbone_from_arguments,
    extract_features,
)
from optiml_plugin.eval.datasets import build_eval_data
from optiml_plugin.eval.finetune import finetune_classifier, predict_scores
from optiml_plugin.eval.label_fraction import label_fraction_indices
from optiml_plugin.eval.metrics import auroc_per_class
from optiml_plugin.eval.protocol import fraction_key, linear_probe_auroc, mean_std


def build_parser() -> argparse.ArgumentParser:
    """The tool's options."""
    p = argparse.ArgumentParser(
        prog="tools/eval_cls.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_backbone_arguments(p)
    p.add_argument(
        "--data",
        default="phantom",
        help="phantom, tbx11k:ROOT, shared:ROOT or nih:TRAIN.csv,TEST.csv",
    )
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--phantom-size", type=int, default=256)
    p.add_argument("--eval-train", type=int, default=384, help="phantoms")
    p.add_argument("--eval-test", type=int, default=192, help="phantoms")
    p.add_argument(
        "--modes", nargs="+", choices=("linear", "finetune"), default=["linear"]
    )
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--probe-epochs", type=int, default=100)
    p.add_argument(
        "--probe-optimizer",
        choices=("lbfgs", "adamw"),
        default="lbfgs",
        help="full-batch L-BFGS logistic regression, or AdamW mini-batches",
    )
    p.add_argument("--probe-lr", type=float, default=3e-3, help="AdamW only")
    p.add_argument("--finetune-epochs", type=int, default=10)
    p.add_argument("--finetune-lr", type=float, default=3e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    return p


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Runs the requested modes; returns per-seed and summarised AUROC."""
    data = build_eval_data(
        args.data, args.image_size, args.eval_train, args.eval_test, args.phantom_size
    )
    if data.cls_train is None:
        raise SystemExit(f"{args.data}: no classification labels")
    classes = list(data.classes)

    results: dict[str, Any] = {"data": data.description, "classes": classes}
    if "linear" in args.modes:
        torch.manual_seed(0)
        net = backbone_from_arguments(args)
        tr = extract_features(net, data.cls_train, keep_dense=False, device=args.device)
        te = extract_features(net, data.cls_test, keep_dense=False, device=args.device)
        per_seed = {
            seed: linear_probe_auroc(
                tr.pooled,
                tr.targets[0],
                te.pooled,
                te.targets[0],
                classes,
                args.fractions,
                seed,
                epochs=args.probe_epochs,
                lr=args.probe_lr,
                optimizer=args.probe_optimizer,
            )  # fmt: skip
            for seed in args.seeds
        }
        results["linear"] = _summarise(per_seed, args.fractions, classes)
    if "finetune" in args.modes:
        per_seed = {}
        for seed in args.seeds:
            torch.manual_seed(seed)
            net = backbone_from_arguments(args)
            per_seed[seed] = {}
            for fraction in args.fractions:
                idx = label_fraction_indices(len(data.cls_train), fraction, seed)
                model = finetune_classifier(
                    net, Subset(data.cls_train, idx.tolist()), len(classes),
                    epochs=args.finetune_epochs, lr=args.finetune_lr,
                    batch_size=args.batch_size, seed=seed, device=args.device,
                )  # fmt: skip
                scores, labels = predict_scores(
                    model, data.cls_test, device=args.device
                )
                per_seed[seed][fraction_key(fraction)] = {
                    **auroc_per_class(scores, labels, classes),
                    "num_train": len(idx),
                }
        results["finetune"] = _summarise(per_seed, args.fractions, classes)
    return results


def _summarise(
    per_seed: dict[int, dict[str, dict[str, float]]],
    fractions: list[float],
    classes: list[str],
) -> dict[str, Any]:
    out: dict[str, Any] = {"per_seed": per_seed}
    for fraction in fractions:
        key = fraction_key(fraction)
        runs = [r[key] for r in per_seed.values()]
        out[key] = {
            "mean": mean_std(r["mean"] for r in runs),
            **{c: mean_std(r[c] for r in runs) for c in classes},
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """Prints a table of mean AUROC +- std per mode and fraction."""
    args = build_parser().parse_args(argv)
    results = evaluate(args)
    print(f"{results['data']}; seeds {args.seeds}")
    for mode in args.modes:
        for fraction in args.fractions:
            s = results[mode][fraction_key(fraction)]["mean"]
            print(
                f"  {mode:9s} {fraction_key(fraction):>5s} labels: mean AUROC "
                f"{s['mean']:.3f} +- {s['std']:.3f} (n={s['n']})"
            )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(_json_safe(results), indent=1))
    return 0


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


if __name__ == "__main__":
    sys.exit(main())
