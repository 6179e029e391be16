"""What the benchmark pretrains: the methods, OPTiML's ablations, and the
pretraining options they share (the equal budget)."""

from __future__ import annotations

import argparse
from typing import Any

BASE_METHODS = ("optiml", "vicreg", "vicregl", "barlowtwins")


RANDOM = "random-init"

# The dense probe given only a one-hot cell index (no image content): the Dice
# that position alone reaches.
POSITION = "position-only"


ABLATIONS: dict[str, list[str]] = {
    "optiml-no-cvsim": ["--cvsim", "none"],
    "optiml-no-ot": ["--transport", "identity"],
    "optiml-exact-ot": ["--transport", "emd"],
    "optiml-eps0.02": ["--epsilon", "0.02"],
    "optiml-eps0.2": ["--epsilon", "0.2"],
}


ABLATION_NOTES = {
    "optiml-no-cvsim": "CV-SIM off (`--cvsim none`)",
    "optiml-no-ot": "no OT: cell i matched to cell i (`--transport identity`), "
    "a VICReg-style dense invariance",
    "optiml-exact-ot": "exact OT, network simplex (`--transport emd`)",
    "optiml-eps0.02": "Sinkhorn epsilon 0.02 (default 0.05)",
    "optiml-eps0.2": "Sinkhorn epsilon 0.2",
}


def pretrain_argv(args: argparse.Namespace, data: str) -> list[str]:
    """Options shared by every pretraining run (the equal budget)."""
    small = args.backbone in ("resnet18", "resnet34")
    dims = (512, 512, 128, 256) if small else (2048, 2048, 512, 1024)
    return [
        "--data", data, "--num-images", str(args.num_images),
        "--phantom-size", str(args.phantom_size), "--image-size", str(args.image_size),
        "--backbone", args.backbone, "--global-dim", str(dims[0]),
        "--global-hidden-dim", str(dims[1]), "--dense-dim", str(dims[2]),
        "--dense-hidden-dim", str(dims[3]), "--cvsim-heads", "4",
        "--batch-size", str(args.batch_size), "--optimizer", args.optimizer,
        "--lr", str(args.lr), "--weight-decay", str(args.weight_decay),
        "--warmup-epochs", str(args.warmup_epochs), "--epochs", str(args.epochs),
        "--max-steps", str(args.max_steps), "--num-workers", str(args.num_workers),
        "--checkpoint-every", str(10**9), "--log-every", "2", "--accelerator",
        "gpu" if str(args.device).startswith("cuda") else "cpu",
        "--devices", str(args.devices), "--precision", args.precision,
        "--no-figure", "--quiet",
    ]  # fmt: skip


def run_specs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (name, method, extra options, seed) to pretrain, in run order."""
    specs = []
    for seed in args.seeds:
        for method in args.methods:
            specs.append({"name": method, "method": method, "extra": [], "seed": seed})
    for seed in args.ablation_seeds:
        for name in args.ablations:
            specs.append(
                {
                    "name": name,
                    "method": "optiml",
                    "extra": ABLATIONS[name],
                    "seed": seed,
                }
            )
    return specs
