"""One frozen evaluation of the ``cpu-real`` preset in its own single-thread
process::

    python -m optiml_plugin.eval.real.worker NAME BACKBONE|random|none SEED CACHE OUT

``random`` evaluates a randomly initialised ResNet-18 (seeded by SEED), ``none``
the position-only probes. Writes OUT (tensors only) atomically.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    """Runs one evaluation."""
    p = argparse.ArgumentParser(prog="python -m optiml_plugin.eval.real.worker")
    p.add_argument("name")
    p.add_argument("backbone")
    p.add_argument("seed", type=int)
    p.add_argument("cache", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--bf16", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from optiml_plugin.eval.backbone import load_backbone
    from optiml_plugin.eval.real.data import load_all
    from optiml_plugin.eval.real.evaluate import evaluate_backbone

    data = load_all(Path(), args.cache)
    torch.manual_seed(args.seed)
    if args.backbone == "none":
        backbone = None
    elif args.backbone == "random":
        backbone = load_backbone(None, "resnet18")
    else:
        backbone = load_backbone(args.backbone)
    start = time.time()
    result = evaluate_backbone(
        backbone, data, args.seed, draws=args.draws, bf16=args.bf16
    )
    result["seconds"] = time.time() - start
    result["name"] = args.name
    tmp = args.out.with_suffix(".partial")
    torch.save(result, tmp)
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
