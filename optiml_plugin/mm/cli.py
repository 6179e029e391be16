"""``tools/train.py`` and ``tools/test.py``: mmdet's command line for mmdet and mmseg.

The shape is mmdet's own (``config``, ``--work-dir``, ``--cfg-options``,
``--resume``, ``--amp``, ``--auto-scale-lr``, ``--launcher``); the config's
``default_scope`` (``mmdet`` or ``mmseg``, from its ``_base_``) decides the toolbox.
Two additions: ``--data-root`` points every dataloader and evaluator at another
folder, and a ``--cfg-options`` key whose parent does not exist in the config is an
error that names it (MMEngine would silently add it).
"""

from __future__ import annotations

import argparse
import difflib
import os
from pathlib import Path
from typing import Any

from mmengine.config import Config, DictAction

LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
EVALUATORS = ("val_evaluator", "test_evaluator")


class ConfigKeyError(KeyError):
    """A ``--cfg-options`` key that the config does not have."""

    def __str__(self) -> str:
        return str(self.args[0])


def check_cfg_options(cfg: Config, options: dict[str, Any], source: str) -> None:
    """Raises :class:`ConfigKeyError` if an option's parent path is not in ``cfg``.

    ``model.backbone.frozen_stages=2`` may add a new leaf under ``model.backbone``;
    ``model.bakbone.depth=18`` or ``trian_cfg.max_epochs=1`` name a key that does not
    exist and would be silently added by MMEngine.
    """
    for key in options:
        parts = key.split(".")
        node: Any = cfg
        for depth, part in enumerate(parts[:-1] if len(parts) > 1 else parts):
            here = ".".join(parts[: depth + 1])
            if isinstance(node, (list, tuple)) and part.isdigit():
                if int(part) >= len(node):
                    raise ConfigKeyError(
                        f"{source}: {here} is out of range ({len(node)} items)"
                    )
                node = node[int(part)]
                continue
            if not hasattr(node, "keys") or part not in node:
                choices = list(node.keys()) if hasattr(node, "keys") else []
                close = difflib.get_close_matches(part, choices, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigKeyError(f"{source}: unknown config key {here!r}{hint}")
            node = node[part]


def set_data_root(cfg: Config, data_root: str) -> None:
    """Points all dataloaders' datasets and evaluators' ``ann_file`` at ``data_root``."""
    data_root = data_root.rstrip("/") + "/"
    old = cfg.get("data_root")
    for name in LOADERS:
        dataset = cfg.get(name, {}).get("dataset")
        while dataset is not None:
            if "data_root" in dataset:
                dataset["data_root"] = data_root
            dataset = dataset.get("dataset")  # wrappers, e.g. RepeatDataset
    for name in EVALUATORS:
        evaluators = cfg.get(name)
        for ev in evaluators if isinstance(evaluators, list) else [evaluators]:
            ann = ev.get("ann_file") if ev else None
            if ann and old and ann.startswith(old):
                ev["ann_file"] = data_root + ann[len(old) :]
    cfg.data_root = data_root


def common_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "config", help="config file (configs/mmdet/... or configs/mmseg/...)"
    )
    parser.add_argument("--work-dir", help="where logs and checkpoints go")
    parser.add_argument(
        "--data-root", help="dataset folder for every dataloader and metric"
    )
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        help="override config settings, key=value (e.g. train_cfg.max_epochs=1)",
    )
    parser.add_argument(
        "--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none"
    )
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    return parser


def load_config(args: argparse.Namespace) -> Config:
    """Reads the config and applies the shared options."""
    if not Path(args.config).is_file():
        raise SystemExit(f"config not found: {args.config}")
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        try:
            check_cfg_options(cfg, args.cfg_options, "--cfg-options")
        except ConfigKeyError as err:
            raise SystemExit(f"error: {err} (config {args.config})") from None
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root:
        set_data_root(cfg, args.data_root)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = os.path.join("./work_dirs", Path(args.config).stem)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return cfg


def build_runner(cfg: Config):
    """MMEngine's runner (or the config's ``runner_type``)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    if "runner_type" not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def train(argv: list[str] | None = None) -> None:
    """Entry point of ``tools/train.py``."""
    from optiml_plugin.mm.compat import trust_checkpoints

    parser = common_parser("Fine-tune an OPTiML backbone with an mmdet or mmseg config")
    parser.add_argument("--amp", action="store_true", help="mixed precision training")
    parser.add_argument(
        "--auto-scale-lr", action="store_true", help="scale the lr with the total batch"
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        type=str,
        const="auto",
        help="resume from the given checkpoint, or (no value) from the latest one "
        "in the work dir",
    )
    args = parser.parse_args(argv)
    cfg = load_config(args)
    if args.amp:
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.loss_scale = "dynamic"
    if args.auto_scale_lr:
        if "auto_scale_lr" not in cfg or "base_batch_size" not in cfg.auto_scale_lr:
            raise SystemExit(f"{args.config} has no auto_scale_lr.base_batch_size")
        cfg.auto_scale_lr.enable = True
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    # The run's own checkpoints (and an explicit --resume file) are MMEngine
    # pickles; see optiml_plugin.mm.compat for why and how this is scoped.
    trust_checkpoints(cfg.work_dir, *([cfg.load_from] if cfg.get("load_from") else []))
    build_runner(cfg).train()


def test(argv: list[str] | None = None) -> None:
    """Entry point of ``tools/test.py``."""
    from optiml_plugin.mm.compat import trust_checkpoints

    parser = common_parser("Evaluate a fine-tuned mmdet or mmseg checkpoint")
    parser.add_argument("checkpoint", help="checkpoint written by tools/train.py")
    parser.add_argument("--out", help="dump the metrics to this JSON file")
    args = parser.parse_args(argv)
    if not Path(args.checkpoint).is_file():
        raise SystemExit(f"checkpoint not found: {args.checkpoint}")
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    trust_checkpoints(args.checkpoint)
    metrics = build_runner(cfg).test()
    if args.out:
        import json

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(metrics, indent=2, default=float) + "\n")
