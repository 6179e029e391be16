"""Diagnoses a trained OPTiML checkpoint on held-out radiographs (tools/diagnose.py).

    python tools/diagnose.py runs/demo/checkpoints/last.ckpt --data phantom --out runs/diag
    python tools/diagnose.py CKPT --data ../shared/data/mcsz_lungseg/images --out DIR

Writes ``diagnostics.json`` (see :mod:`optiml_plugin.diagnostics`; the gate's
verdict included) and ``transport_plan.png`` (the plan over the first pair, with
the figures and their trivial references in the title), and prints both.
The view settings (size, crop scale, rotation, flips) default to those in the
run's ``config.yaml`` beside its ``checkpoints/`` folder.

``--backbone-only`` diagnoses an exported ``backbone.pth`` of any method (OPTiML,
VICReg, VICRegL, ...) on its own layer4 tokens, with the default loss's plan and
the running batch-norm statistics
(:func:`optiml_plugin.eval.real.evaluate.backbone_diagnostics`), so that
backbones trained by different objectives are measured alike; ``random:ARCH``
diagnoses a randomly initialised one (seeded by ``--seed``).

``pixels:K`` diagnoses the trivial reference of raw pixel tokens (each cell's
pixels pooled to K x K; give the view settings on the command line);
``pixels:Km`` averages each cell's K x K values with their mirror image (the
reference for views flipped with respect to each other).
``--draws N --batch-size 48`` pools the figures over N draws of views, in
batches of 48 pairs (one draw of a few dozen pairs is a noisy measurement).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

from optiml_plugin.diagnostics import Gate, diagnose_pooled


def load_module(path: Path):  # noqa: ANN201
    """Loads an OPTiML Lightning checkpoint of tensors and plain values only."""
    from optiml_plugin.train.module import OPTiMLModule

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        return OPTiMLModule.load_from_checkpoint(
            path, map_location="cpu", weights_only=True
        ).eval()
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"{path}: not an OPTiML checkpoint readable as tensors and plain values ({err})") from err  # fmt: skip


def run_settings(path: Path) -> dict:
    """The run's resolved options (config.yaml beside checkpoints/), or {}."""
    config = path.parent.parent / "config.yaml"
    return yaml.safe_load(config.read_text()) if config.is_file() else {}


def view_settings(args: argparse.Namespace, saved: dict) -> argparse.Namespace:
    """The view transform's options: the command line's, else the run's."""
    return argparse.Namespace(
        image_size=args.image_size or saved.get("image_size", 224),
        crop_scale=args.crop_scale or saved.get("crop_scale", (0.3, 1.0)),
        degrees=saved.get("degrees", 10.0) if args.degrees is None else args.degrees,
        hflip_prob=saved.get("hflip_prob", 0.0) if args.hflip_prob is None else args.hflip_prob,
        num_local_views=0,
    )  # fmt: skip


def held_out_pairs(args: argparse.Namespace, saved: dict, draw: int = 0) -> tuple:
    """The fixed held-out view pairs (views and grids) the diagnostics use.

    Draw k uses the seed of the view draw plus k.
    """
    from optiml_plugin.train.diagnostics_callback import view_pairs
    from optiml_plugin.train.pretrain import build_transform, image_dataset

    data = image_dataset(
        args.data, build_transform(view_settings(args, saved)), args.pairs,
        saved.get("phantom_size", 256), saved.get("seed", 0) + 2_000_003, "skip",
        args.data_root,
    )  # fmt: skip
    # The run's own draw: --diagnose-seed (runs before it existed used --seed).
    seed = saved.get("diagnose_seed", saved.get("seed", 0))
    seed = seed if args.seed is None else args.seed
    return view_pairs(data, range(min(args.pairs, len(data))), seed=seed + draw)


def diagnose_backbone(args: argparse.Namespace) -> int:
    """``--backbone-only``: the diagnostics of a backbone's own layer4 tokens."""
    from optiml_plugin.eval.backbone import load_backbone
    from optiml_plugin.eval.real.evaluate import backbone_diagnostics

    source = str(args.checkpoint)
    if source.startswith("random:"):
        torch.manual_seed(args.seed or 0)
        backbone, saved = load_backbone(None, source.split(":", 1)[1]), {}
    else:
        if not args.checkpoint.is_file():
            raise FileNotFoundError(f"{args.checkpoint}: no such backbone file")
        backbone = load_backbone(args.checkpoint)
        config = args.checkpoint.parent / "config.yaml"
        saved = yaml.safe_load(config.read_text()) if config.is_file() else {}
    va, vb, ga, gb = held_out_pairs(args, saved)
    pairs = {"view_a": va, "view_b": vb, "grid_a": ga, "grid_b": gb}
    d = backbone_diagnostics(backbone, pairs)
    failures = Gate().failures(d)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"backbone": source, "data": args.data, "pairs": int(va.shape[0]),
              "diagnostics": d, "gate_failures": failures}  # fmt: skip
    (args.out / "diagnostics.json").write_text(json.dumps(report, indent=1))
    for key, value in d.items():
        print(f"{key:30s} {value:.4f}")
    print("gate: " + ("passed" if not failures else "; ".join(failures)))
    print(f"wrote {args.out / 'diagnostics.json'}")
    return 0


def pixel_spec(source: str) -> tuple[int, bool]:
    """``pixels:K`` or ``pixels:Km`` -> (K, mirror); ValueError if K is not >= 1."""
    spec = source.split(":", 1)[1]
    k = spec.removesuffix("m")
    if not k.isdigit() or int(k) < 1:
        raise ValueError(f"pixels:K or pixels:Km needs a whole number K >= 1, got {source}")  # fmt: skip
    return int(k), spec.endswith("m")


def diagnose_pixels(args: argparse.Namespace) -> int:
    """``pixels:K``: the trivial reference of raw pixel tokens (see PixelTokens);
    ``pixels:Km``: the same, each cell averaged with its mirror image.

    Two plans: the default loss's, and an L2 cost on the uncentred tokens (the
    better of the two for pixels on real radiographs).
    """
    from optiml_plugin.diagnostics import PixelTokens
    from optiml_plugin.loss import OPTiMLLoss

    k, mirror = pixel_spec(str(args.checkpoint))
    draws = [held_out_pairs(args, {}, d) for d in range(args.draws)]
    model = PixelTokens(k, stride=32, mirror=mirror)
    report: dict = {"source": str(args.checkpoint), "data": args.data,
                    "pairs": int(draws[0][0].shape[0]), "draws": args.draws,
                    "batch_size": args.batch_size}  # fmt: skip
    for name, loss in (
        ("default_plan", OPTiMLLoss()),
        ("l2_uncentred_plan", OPTiMLLoss(cost="l2", center="none")),
    ):
        d, _ = diagnose_pooled(model, loss, draws, batch_size=args.batch_size)
        report[name] = d
        margin = d["plan_accuracy"] - d["same_index_accuracy"]
        print(f"{name:18s} plan_accuracy {d['plan_accuracy']:.4f} same_index_accuracy "
              f"{d['same_index_accuracy']:.4f} (margin {margin:+.4f}) ot_ratio "
              f"{d['ot_ratio']:.4f} same_index_rate_different "
              f"{d['same_index_rate_different']:.4f}")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "diagnostics.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out / 'diagnostics.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="diagnose", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument(
        "--data", default="phantom", help="'phantom', a folder or a .txt list"
    )
    p.add_argument(
        "--data-root", default=None, help="folder a .txt list's paths start from"
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--pairs", type=int, default=32)
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the view draw; default: the run's --diagnose-seed, which "
        "reproduces the pairs it diagnosed during training (0 without a run config)",
    )
    p.add_argument(
        "--draws",
        type=int,
        default=1,
        help="draws of views of the same images (seeds SEED, SEED + 1, ...); the "
        "figures are pooled over all draws",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="pairs per diagnosis batch (batch-norm statistics, centring and the "
        "different-image pairs are within a batch); default: all pairs at once",
    )
    p.add_argument("--image-size", type=int)
    p.add_argument("--crop-scale", type=float, nargs=2)
    p.add_argument("--degrees", type=float)
    p.add_argument("--hflip-prob", type=float)
    p.add_argument(
        "--backbone-only",
        action="store_true",
        help="CHECKPOINT is an exported backbone.pth (or random:ARCH): diagnose "
        "its layer4 tokens",
    )
    args = p.parse_args(argv)
    if args.draws < 1:
        p.error(f"--draws must be >= 1, got {args.draws}")
    if args.backbone_only:
        if args.draws != 1 or args.batch_size is not None:
            p.error("--draws and --batch-size apply to checkpoints and pixels:K, "
                    "not to --backbone-only")  # fmt: skip
        return diagnose_backbone(args)
    if str(args.checkpoint).startswith("pixels:"):
        try:
            pixel_spec(str(args.checkpoint))
        except ValueError as err:
            p.error(str(err))
        return diagnose_pixels(args)
    from optiml_plugin.viz.transport_plan import denormalize, plot_transport_plan

    module = load_module(args.checkpoint)
    saved = run_settings(args.checkpoint)
    draws = [held_out_pairs(args, saved, k) for k in range(args.draws)]
    d, per_draw = diagnose_pooled(
        module.model, module.criterion, draws, batch_size=args.batch_size
    )
    failures = Gate().failures(d)
    args.out.mkdir(parents=True, exist_ok=True)
    pairs = draws[0]
    report = {"checkpoint": str(args.checkpoint), "data": args.data,
              "pairs": int(pairs[0].shape[0]), "draws": args.draws,
              "batch_size": args.batch_size, "diagnostics": d,
              "per_draw": per_draw, "gate_failures": failures}  # fmt: skip
    (args.out / "diagnostics.json").write_text(json.dumps(report, indent=1))
    va, vb, ga, gb = pairs
    with torch.no_grad():
        out = module.model(va[:1], vb[:1])
        plan, _ = module.criterion.transport_plan(out.dense_a, out.dense_b, features_only=True)  # fmt: skip
    title = (
        f"plan at true cell {d['plan_accuracy']:.0%} (same-index plan "
        f"{d['same_index_accuracy']:.0%}); different images: same-index peak "
        f"{d['same_index_rate_different']:.0%}, OT same/different {d['ot_ratio']:.2f}"
    )
    fig = plot_transport_plan(denormalize(va[0]), denormalize(vb[0]), plan[0], ga[0], gb[0], title=title)  # fmt: skip
    fig.savefig(args.out / "transport_plan.png", dpi=100)
    for key, value in d.items():
        print(f"{key:30s} {value:.4f}")
    print("gate: " + ("passed" if not failures else "; ".join(failures)))
    print(
        f"wrote {args.out / 'diagnostics.json'} and {args.out / 'transport_plan.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
