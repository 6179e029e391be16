"""``tools/train.py`` and ``tools/test.py``: mmdet's command line for mmdet and mmseg.

The shape is mmdet's own (``config``, ``--work-dir``, ``--cfg-options``,
``--resume``, ``--amp``, ``--auto-scale-lr``, ``--launcher``); the config's
``default_scope`` (``mmdet`` or ``mmseg``, from its ``_base_``) decides the toolbox.
Additions: ``--data-root`` points the dataloaders and evaluators that read the
config's ``data_root`` at another folder; a ``--cfg-options`` key whose parent is
neither in the config nor one of MMEngine's runner settings is an error that names
it (MMEngine would silently add it); missing data is reported with the command that
makes it (:mod:`optiml_plugin.mm.data_check`); checkpoints are read as
:mod:`optiml_plugin.mm.checkpoint` says (only ``--resume`` and the checkpoint under
test as MMEngine checkpoints, everything else tensors only); and a launched run on
a machine without CUDA trains over ``gloo`` (:mod:`optiml_plugin.mm.dist`).
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
#: Top-level keys MMEngine's Runner reads (mmengine 0.10): ``--cfg-options`` may add
#: them, and anything below them, to a config that does not set them.
RUNNER_KEYS = frozenset(
    {
        "activation_checkpointing",
        "auto_scale_lr",
        "compile",
        "custom_hooks",
        "custom_imports",
        "data_preprocessor",
        "default_hooks",
        "default_scope",
        "efficient_conv_bn_eval",
        "env_cfg",
        "experiment_name",
        "find_unused_parameters",
        "launcher",
        "load_from",
        "log_level",
        "log_processor",
        "model_wrapper_cfg",
        "optim_wrapper",
        "param_scheduler",
        "randomness",
        "resume",
        "runner_type",
        "sync_bn",
        "test_cfg",
        "test_dataloader",
        "test_evaluator",
        "train_cfg",
        "train_dataloader",
        "val_cfg",
        "val_dataloader",
        "val_evaluator",
        "visualizer",
        "work_dir",
    }
)


class ConfigKeyError(KeyError):
    """A ``--cfg-options`` key that the config does not have."""

    def __str__(self) -> str:
        return str(self.args[0])


def check_cfg_options(cfg: Config, options: dict[str, Any], source: str) -> None:
    """Raises :class:`ConfigKeyError` if an option's parent path is not in ``cfg``.

    ``model.backbone.frozen_stages=2`` may add a new leaf under ``model.backbone``,
    and ``randomness.seed=0`` or ``custom_hooks=[]`` a runner setting the config
    does not have (:data:`RUNNER_KEYS`); ``model.bakbone.depth=18`` or
    ``trian_cfg.max_epochs=1`` name a key that does not exist and would be silently
    added by MMEngine.
    """
    for key in options:
        parts = key.split(".")
        if parts[0] in RUNNER_KEYS and parts[0] not in cfg:
            continue
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
    """Moves what reads the config's ``data_root`` to ``data_root``.

    Every dataset (wrappers included) and evaluator ``ann_file`` under the config's
    ``data_root`` follows; one with a root of its own (VinDr's test set) stays, so
    that a test set never silently becomes the training folder.
    """
    data_root = data_root.rstrip("/") + "/"
    old = cfg.get("data_root")
    for name in LOADERS:
        dataset = cfg.get(name, {}).get("dataset")
        while dataset is not None:
            if "data_root" in dataset and old in (None, dataset["data_root"]):
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
        "--data-root",
        help="dataset folder for the dataloaders and metrics that read the config's "
        "data_root",
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
    from optiml_plugin.mm.dist import prepare_cpu_distributed

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
    prepare_cpu_distributed(cfg)
    return cfg


def require_data(cfg: Config, args: argparse.Namespace, stage: str) -> None:
    """Exits naming the missing data and how to make it (see ``data_check``)."""
    from optiml_plugin.mm.data_check import MissingDataError, check_data

    if stage == "train":
        loaders = ["train_dataloader"]
        evaluators = []
        if cfg.get("val_cfg") and cfg.get("val_dataloader"):
            loaders.append("val_dataloader")
            evaluators.append("val_evaluator")
    else:
        loaders, evaluators = ["test_dataloader"], ["test_evaluator"]
    try:
        check_data(cfg, loaders, evaluators)
    except MissingDataError as err:
        raise SystemExit(f"error: missing data for {args.config}\n{err}") from None


def build_runner(cfg: Config):
    """MMEngine's runner (or the config's ``runner_type``)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    if "runner_type" not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def resume_file(cfg: Config, resume: str | None) -> str | None:
    """Sets ``cfg`` up for ``--resume [PATH]``; returns the checkpoint it resumes from.

    ``--resume`` alone (or ``resume=True`` in the config without ``load_from``)
    takes the work dir's latest checkpoint; ``--resume PATH`` that file. Only that
    file is then read as an MMEngine checkpoint. A config's ``resume=True`` with a
    ``load_from`` is refused: which file may hold more than tensors is said on the
    command line, not in a (possibly downloaded) config.
    """
    from mmengine.runner.checkpoint import find_latest_checkpoint

    if resume is None and cfg.get("resume"):
        if cfg.get("load_from"):
            raise SystemExit(
                f"error: the config sets resume=True with load_from={cfg.load_from}; "
                "name the checkpoint on the command line instead: "
                f"tools/train.py CONFIG --resume {cfg.load_from}"
            )
        resume = "auto"
    if resume is None:
        return None
    if resume == "auto":
        path = find_latest_checkpoint(cfg.work_dir)
    else:
        if not Path(resume).is_file():
            raise SystemExit(f"error: --resume: checkpoint not found: {resume}")
        path = resume
    cfg.resume, cfg.load_from = True, path
    return path


def train(argv: list[str] | None = None) -> None:
    """Entry point of ``tools/train.py``."""
    from optiml_plugin.mm.checkpoint import mmengine_checkpoints, register
    from optiml_plugin.mm.dist import finish_distributed

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
    resumed = resume_file(cfg, args.resume)
    require_data(cfg, args, "train")
    register()
    # Only the resume checkpoint is read as an MMEngine checkpoint; load_from,
    # init_cfg files and everything else tensors only.
    with mmengine_checkpoints(resumed):
        build_runner(cfg).train()
    finish_distributed()


def test(argv: list[str] | None = None) -> None:
    """Entry point of ``tools/test.py``."""
    from optiml_plugin.mm.checkpoint import mmengine_checkpoints, register
    from optiml_plugin.mm.dist import finish_distributed

    parser = common_parser("Evaluate a fine-tuned mmdet or mmseg checkpoint")
    parser.add_argument("checkpoint", help="checkpoint written by tools/train.py")
    parser.add_argument("--out", help="dump the metrics to this JSON file")
    args = parser.parse_args(argv)
    if not Path(args.checkpoint).is_file():
        raise SystemExit(f"checkpoint not found: {args.checkpoint}")
    cfg = load_config(args)
    cfg.load_from, cfg.resume = args.checkpoint, False
    require_data(cfg, args, "test")
    register()
    with mmengine_checkpoints(args.checkpoint):
        metrics = build_runner(cfg).test()
    finish_distributed()
    if args.out:
        import json

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(metrics, indent=2, default=float) + "\n")
