"""OPTiML pretraining from the command line (``optiml-pretrain`` / tools/pretrain.py).

Trains on a folder (or list file) of radiographs, or on the embedded phantom
generator, with PyTorch Lightning: one GPU, several GPUs or nodes (DDP), or the
CPU. Writes checkpoints every N steps (``--resume`` continues from the last one),
CSV and TensorBoard logs, and at the end the backbone as a tensor-only state dict
with torchvision names plus a JSON sidecar, and a figure of the transport plan.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path
from typing import Any

import yaml

from optiml_plugin.loss.optiml_loss import (
    CENTERINGS,
    CONTRAST_CELLS,
    COSTS,
    DENSE_STATISTICS,
    EPSILON_SCALES,
    TRANSPORTS,
    OPTiMLLoss,
)
from optiml_plugin.models.cvsim import CVSIM_MODES
from optiml_plugin.models.lightly_baseline import BASELINE_METHODS
from optiml_plugin.models.optiml import PADDING_MODES

DEFAULTS_HELP = "a YAML file of option defaults (keys are the long option names)"


# (flag, OPTiMLLoss argument, argparse options) of the loss's command-line options.
LOSS_OPTIONS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("--alpha", "alpha", {"type": float, "help": "OT term weight"}),
    ("--beta", "beta", {"type": float, "help": "variance weight"}),
    ("--eta", "eta", {"type": float, "help": "covariance weight"}),
    ("--epsilon", "epsilon", {"type": float, "help": "entropic regularisation"}),
    ("--sinkhorn-iters", "num_iters", {"type": int, "help": "Sinkhorn iterations"}),
    ("--transport", "transport", {"choices": TRANSPORTS, "help": "OT solver"}),
    ("--position-weight", "position_weight", {"type": float,
     "help": "weight of the grid-distance term in the training plan's cost"}),
    ("--global-weight", "global_weight", {"type": float,
     "help": "share of the global VICReg loss"}),
    ("--dense-statistics", "dense_statistics", {"choices": DENSE_STATISTICS,
     "help": "over what the dense var/cov are taken (see OPTiMLLoss)"}),
    ("--cost", "cost", {"choices": COSTS, "help": "transport cost"}),
    ("--center", "center", {"choices": CENTERINGS,
     "help": "what is subtracted from the tokens before the cost"}),
    ("--epsilon-scale", "epsilon_scale", {"choices": EPSILON_SCALES,
     "help": "epsilon in cost units, or relative to each image's cost range"}),
    ("--image-decorrelation", "image_decorrelation", {"type": float,
     "help": "weight of the cross-image correlation of the centred dense maps"}),
    ("--feature-matching", "feature_matching", {"type": float,
     "help": "weight (x alpha) of VICRegL's nearest-cell feature matching"}),
    ("--plan-contrast", "plan_contrast", {"type": float,
     "help": "weight (x alpha) of <T - T_features, C_features> (see OPTiMLLoss); "
     "default: 3 with the grid term, 0 with --position-weight 0"}),
    ("--plan-contrast-cells", "plan_contrast_cells", {"choices": CONTRAST_CELLS,
     "help": "cells the plan contrast counts: all, or those with a match "
     "inside the other view"}),
)  # fmt: skip


def _dest(flag: str) -> str:
    """The argparse attribute of a flag (``--sinkhorn-iters`` -> ``sinkhorn_iters``)."""
    return flag.removeprefix("--").replace("-", "_")


def _loss_default(name: str) -> Any:
    """The default of one ``OPTiMLLoss`` argument."""
    return inspect.signature(OPTiMLLoss).parameters[name].default


def build_parser() -> argparse.ArgumentParser:
    """Returns the command-line parser (also the schema of ``--config`` files)."""
    p = argparse.ArgumentParser(
        prog="optiml-pretrain",
        description="OPTiML self-supervised pretraining on chest radiographs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config", type=Path, help=DEFAULTS_HELP)
    d = p.add_argument_group("data")
    d.add_argument(
        "--data", default="phantom", help="'phantom', a folder of images or a .txt list"
    )
    d.add_argument(
        "--num-images", type=int, default=512, help="phantom images per epoch"
    )
    d.add_argument(
        "--phantom-size", type=int, default=256, help="phantom side in pixels"
    )
    d.add_argument(
        "--data-root", default=None, help="folder a .txt list's paths start from"
    )
    d.add_argument("--image-size", type=int, default=224, help="side of the views")
    d.add_argument("--crop-scale", type=float, nargs=2, default=(0.3, 1.0))
    d.add_argument("--degrees", type=float, default=180.0, help="maximum rotation")
    d.add_argument(
        "--hflip-prob", type=float, default=0.5, help="horizontal flip, per view"
    )
    d.add_argument("--num-local-views", type=int, default=0)
    d.add_argument("--num-workers", type=int, default=2)
    d.add_argument(
        "--on-error",
        choices=("skip", "raise"),
        default="skip",
        help="unreadable images",
    )
    m = p.add_argument_group("model")
    m.add_argument(
        "--method",
        choices=("optiml", *BASELINE_METHODS),
        default="optiml",
        help="OPTiML, or a Lightly baseline with the same backbone, data and budget",
    )
    m.add_argument("--backbone", default="resnet50")
    m.add_argument("--global-dim", type=int, default=2048)
    m.add_argument("--global-hidden-dim", type=int, default=2048)
    m.add_argument("--dense-dim", type=int, default=512)
    m.add_argument("--dense-hidden-dim", type=int, default=1024)
    m.add_argument("--cvsim", choices=CVSIM_MODES, default="global")
    m.add_argument("--cvsim-heads", type=int, default=8)
    m.add_argument(
        "--padding-mode",
        choices=PADDING_MODES,
        default="zeros",
        help="padding of the backbone's convolutions; 'reflect' gives the untrained "
        "map no position code (recorded in backbone.json for fine-tuning)",
    )
    lo = p.add_argument_group("loss")
    # Defaults come from OPTiMLLoss's signature: one place states them.
    for flag, name, kwargs in LOSS_OPTIONS:
        lo.add_argument(flag, default=_loss_default(name), **kwargs)
    lo.add_argument(
        "--vicregl-alpha",
        type=float,
        default=0.75,
        help="--method vicregl: global share of Lightly's VICRegLLoss",
    )
    dg = p.add_argument_group("diagnostics")
    dg.add_argument(
        "--diagnose-every",
        type=int,
        default=0,
        help="log positional-shortcut diagnostics every N steps (0: off)",
    )
    dg.add_argument(
        "--diagnose-data",
        default=None,
        help="held-out images (folder or .txt; default: held-out phantoms for "
        "--data phantom, else the first training images)",
    )
    dg.add_argument("--diagnose-pairs", type=int, default=32)
    dg.add_argument(
        "--diagnose-seed",
        type=int,
        default=0,
        help="seed of the held-out views; fixed, so that runs of different --seed "
        "are diagnosed on the same pairs",
    )
    o = p.add_argument_group("optimisation")
    o.add_argument("--optimizer", choices=("lars", "adamw"), default="lars")
    o.add_argument("--lr", type=float, default=0.2, help="base lr per 256 images")
    o.add_argument("--weight-decay", type=float, default=1e-6)
    o.add_argument("--warmup-epochs", type=float, default=10.0)
    o.add_argument("--epochs", type=int, default=300)
    o.add_argument(
        "--max-steps", type=int, default=-1, help="stop after this many steps"
    )
    o.add_argument("--batch-size", type=int, default=64, help="per device")
    t = p.add_argument_group("trainer")
    t.add_argument("--accelerator", default="auto")
    t.add_argument("--devices", default="auto")
    t.add_argument("--num-nodes", type=int, default=1)
    t.add_argument(
        "--strategy", default="auto", help="e.g. ddp; auto picks DDP for >1 device"
    )
    t.add_argument(
        "--precision", default="auto", help="auto: bf16/16-mixed on GPU, 32 on CPU"
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--out", type=Path, default=Path("runs/optiml"), help="work directory"
    )
    t.add_argument("--checkpoint-every", type=int, default=500, help="steps")
    t.add_argument("--log-every", type=int, default=10, help="steps")
    t.add_argument("--resume", default=None, help="'last' or a checkpoint path")
    t.add_argument(
        "--no-figure", action="store_true", help="skip the transport-plan figure"
    )
    t.add_argument(
        "--quiet", action="store_true", help="no progress bar and no model summary"
    )
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses arguments; a ``--config`` YAML supplies defaults that flags override.

    Raises:
        SystemExit: With a message naming any unknown key of the config file.
    """
    parser = build_parser()
    pre, _ = parser.parse_known_args(argv)
    if pre.config is not None:
        if not pre.config.is_file():
            parser.error(f"--config {pre.config}: file not found")
        values = yaml.safe_load(pre.config.read_text()) or {}
        if not isinstance(values, dict):
            parser.error(f"--config {pre.config}: expected a mapping of options")
        known = {a.dest for a in parser._actions}
        defaults = {}
        for key, value in values.items():
            dest = str(key).replace("-", "_")
            if dest not in known or dest == "config":
                parser.error(f"--config {pre.config}: unknown key {key!r}")
            defaults[dest] = value
        parser.set_defaults(**defaults)
    args = parser.parse_args(argv)
    args.out = Path(args.out)
    return args


def image_dataset(
    source: str,
    transform: Any,
    num_images: int,
    phantom_size: int,
    seed: int,
    on_error: str = "skip",
    root: str | None = None,
) -> Any:
    """``num_images`` phantoms drawn with ``seed`` when ``source`` is ``"phantom"``,
    else the radiographs of a folder or ``.txt`` list (see ``ImageFolderDataset``)."""
    from optiml_plugin.data.folder import ImageFolderDataset
    from optiml_plugin.data.phantom import PhantomDataset

    if source == "phantom":
        return PhantomDataset(
            num_images=num_images, size=phantom_size, seed=seed, transform=transform
        )
    return ImageFolderDataset(source, transform=transform, on_error=on_error, root=root)


def build_dataset(args: argparse.Namespace) -> Any:
    """Returns the training dataset with the CV-SIM transform."""
    return image_dataset(
        args.data, build_transform(args), args.num_images, args.phantom_size,
        args.seed, args.on_error, args.data_root,
    )  # fmt: skip


def build_transform(args: argparse.Namespace, n_local_views: int | None = None) -> Any:
    """Returns the CV-SIM transform the options describe."""
    from optiml_plugin.transforms import CVSIMTransform

    return CVSIMTransform(
        size=args.image_size,
        global_scale=tuple(args.crop_scale),
        degrees=args.degrees,
        hf_prob=args.hflip_prob,
        n_local_views=args.num_local_views if n_local_views is None else n_local_views,
    )


def build_diagnostics(args: argparse.Namespace) -> Any:
    """Returns the diagnostics callback on fixed held-out pairs (``--diagnose-*``)."""
    from optiml_plugin.train.diagnostics_callback import (
        DiagnosticsCallback,
        view_pairs,
    )

    data = image_dataset(
        args.diagnose_data or args.data, build_transform(args, n_local_views=0),
        args.diagnose_pairs, args.phantom_size,
        args.seed + 1_000_003,  # phantoms disjoint from the training ones
        args.on_error, args.data_root,
    )  # fmt: skip
    n = min(args.diagnose_pairs, len(data))
    pairs = view_pairs(data, range(n), seed=args.diagnose_seed)
    return DiagnosticsCallback(
        pairs, args.diagnose_every, out=args.out / "diagnostics.json"
    )


def build_module(args: argparse.Namespace) -> Any:
    """Returns the Lightning module for the parsed arguments (``--method``)."""
    from optiml_plugin.train.baseline_module import LightlyBaselineModule
    from optiml_plugin.train.module import OPTiMLModule

    model = {
        "backbone": args.backbone,
        "global_dim": args.global_dim,
        "global_hidden_dim": args.global_hidden_dim,
        "dense_dim": args.dense_dim,
        "dense_hidden_dim": args.dense_hidden_dim,
        "padding_mode": args.padding_mode,
    }
    optimisation = {
        "optimizer": args.optimizer,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "warmup_epochs": args.warmup_epochs,
        "batch_size": args.batch_size,
    }
    if args.method != "optiml":
        return LightlyBaselineModule(
            method=args.method,
            model=model,
            loss={"alpha": args.vicregl_alpha} if args.method == "vicregl" else {},
            **optimisation,
        )
    return OPTiMLModule(
        model={**model, "cvsim_mode": args.cvsim, "cvsim_heads": args.cvsim_heads},
        loss={name: getattr(args, _dest(flag)) for flag, name, _ in LOSS_OPTIONS},
        **optimisation,
    )


def resolve_precision(precision: str, accelerator: str) -> str:
    """Maps ``auto`` to bf16-mixed / 16-mixed on a GPU and 32-true elsewhere."""
    import torch

    if precision != "auto":
        return precision
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def resolve_resume(resume: str | None, out: Path) -> str | None:
    """Returns the checkpoint to resume from (``last`` means out/checkpoints/last.ckpt)."""
    if resume is None:
        return None
    path = out / "checkpoints" / "last.ckpt" if resume == "last" else Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"--resume {resume}: no checkpoint at {path}")
    return str(path)


def run(args: argparse.Namespace) -> dict[str, Path]:
    """Trains, exports the backbone and draws the figure; returns the output paths."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
    from torch.utils.data import DataLoader

    from optiml_plugin.train.export import export_backbone

    pl.seed_everything(args.seed, workers=True)
    ckpt_path = resolve_resume(args.resume, args.out)
    dataset = build_dataset(args)
    if len(dataset) < args.batch_size:
        raise ValueError(
            f"{args.data}: {len(dataset)} images is fewer than --batch-size {args.batch_size}"
        )
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.num_workers,
        persistent_workers=args.num_workers > 0,
        pin_memory=True,
    )
    module = build_module(args)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
    }
    (args.out / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    checkpoint = ModelCheckpoint(
        dirpath=args.out / "checkpoints",
        filename="step={step}",
        auto_insert_metric_name=False,
        every_n_train_steps=args.checkpoint_every,
        save_top_k=-1,
        save_last=True,
    )
    callbacks: list[Any] = [checkpoint, LearningRateMonitor(logging_interval="step")]
    diagnostics = None
    if args.diagnose_every > 0 and args.method == "optiml":
        diagnostics = build_diagnostics(args)
        callbacks.append(diagnostics)
    loggers = [
        CSVLogger(args.out, name="logs", version=""),
        TensorBoardLogger(args.out, name="logs", version="", default_hp_metric=False),
    ]
    trainer = pl.Trainer(
        accelerator=args.accelerator,
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy=args.strategy,
        precision=resolve_precision(args.precision, args.accelerator),
        max_epochs=args.epochs,
        max_steps=args.max_steps,
        log_every_n_steps=args.log_every,
        callbacks=callbacks,
        logger=loggers,
        default_root_dir=args.out,
        enable_progress_bar=not args.quiet,
        enable_model_summary=not args.quiet,
    )
    trainer.fit(module, loader, ckpt_path=ckpt_path)
    trainer.save_checkpoint(args.out / "checkpoints" / "last.ckpt")
    paths = {
        "checkpoint": args.out / "checkpoints" / "last.ckpt",
        "logs": args.out / "logs",
    }
    if trainer.is_global_zero:
        settings["global_step"] = trainer.global_step
        backbone, sidecar = export_backbone(
            module.model, args.out / "backbone.pth", settings
        )
        paths.update(backbone=backbone, backbone_settings=sidecar)
        if not args.no_figure and args.method == "optiml":
            from optiml_plugin.viz.transport_plan import transport_plan_figure

            fig_path = args.out / "transport_plan.png"
            final = diagnostics.history[-1] if diagnostics is not None else None
            transport_plan_figure(module, args, fig_path, final)
            paths["figure"] = fig_path
        if diagnostics is not None:
            from optiml_plugin.viz.diagnostics import diagnostics_figure

            paths["diagnostics"] = args.out / "diagnostics.json"
            paths["diagnostics_figure"] = diagnostics_figure(
                diagnostics.history, args.out / "diagnostics.png"
            )
            print_diagnostics(diagnostics.history[-1], diagnostics.gate)
    return paths


def print_diagnostics(d: dict[str, float], gate: Any) -> None:
    """Prints the last diagnostics next to their trivial references and the gate."""
    print(
        f"\nDiagnostics at step {d['step']} (held-out pairs; see README):\n"
        f"  plan peaks at the true cell   {d['plan_accuracy']:.3f}  "
        f"(same-index plan: {d['same_index_accuracy']:.3f})\n"
        f"  different images, peak at the same index  "
        f"{d['same_index_rate_different']:.3f}\n"
        f"  OT cost same / different image  {d['ot_same']:.4f} / "
        f"{d['ot_different']:.4f} (ratio {d['ot_ratio']:.3f})\n"
        f"  variance share of cell index {d['position_share']:.3f}, of view mean "
        f"{d['view_mean_share']:.3f}; plan entropy {d['plan_entropy']:.3f} of uniform"
    )
    failures = gate.failures(d)
    print("  gate: " + ("passed" if not failures else "; ".join(failures)))


def main(argv: list[str] | None = None) -> int:
    """Entry point: parses arguments, trains, prints where the outputs are."""
    args = parse_args(argv)
    paths = run(args)
    method = "OPTiML" if args.method == "optiml" else args.method
    print(f"\n{method} pretraining finished. Outputs:")
    for name, path in paths.items():
        print(f"  {name:18s} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
