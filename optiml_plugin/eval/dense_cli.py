"""Dense evaluation of an exported backbone without OpenMMLab
(``tools/eval_dense.py``): a linear 1x1 probe on the frozen final map,
upsampled, giving Dice per class (torchmetrics), mean +- std over seeds.

    python tools/eval_dense.py --backbone runs/optiml/backbone.pth --data phantom
    python tools/eval_dense.py --random resnet18 --data covid:../shared/data/covid_cxr_lungseg
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from optiml_plugin.eval.backbone import (
    add_backbone_arguments,
    backbone_from_arguments,
    extract_features,
)
from optiml_plugin.eval.datasets import build_eval_data
from optiml_plugin.eval.protocol import dense_probe_dice, mean_std


def build_parser() -> argparse.ArgumentParser:
    """The tool's options."""
    p = argparse.ArgumentParser(
        prog="tools/eval_dense.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_backbone_arguments(p)
    p.add_argument(
        "--data", default="phantom", help="phantom, covid:ROOT or shared:ROOT"
    )
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--phantom-size", type=int, default=256)
    p.add_argument("--eval-train", type=int, default=384, help="phantoms")
    p.add_argument("--eval-test", type=int, default=192, help="phantoms")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    return p


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Trains the probe once per seed on frozen maps; returns Dice per seed and
    summarised."""
    data = build_eval_data(
        args.data, args.image_size, args.eval_train, args.eval_test, args.phantom_size
    )
    if data.seg_train is None:
        raise SystemExit(f"{args.data}: no segmentation masks")
    torch.manual_seed(0)
    net = backbone_from_arguments(args)
    tr = extract_features(net, data.seg_train, device=args.device)
    te = extract_features(net, data.seg_test, device=args.device)
    classes = list(data.seg_classes)
    per_seed = {
        seed: dense_probe_dice(
            tr.dense,
            tr.targets[-1],
            te.dense,
            te.targets[-1],
            classes,
            seed,
            epochs=args.epochs,
        )  # fmt: skip
        for seed in args.seeds
    }
    keys = list(next(iter(per_seed.values())))
    return {
        "data": data.description,
        "classes": classes,
        "per_seed": per_seed,
        **{k: mean_std(r[k] for r in per_seed.values()) for k in keys},
    }


def main(argv: list[str] | None = None) -> int:
    """Prints Dice +- std per class."""
    args = build_parser().parse_args(argv)
    results = evaluate(args)
    print(f"{results['data']}; seeds {args.seeds}")
    for key in ["mean", *results["classes"][1:]]:
        s = results[key]
        print(f"  Dice {key:10s} {s['mean']:.3f} +- {s['std']:.3f} (n={s['n']})")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
