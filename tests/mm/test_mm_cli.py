from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from optiml_plugin.mm.cli import (
    ConfigKeyError,
    check_cfg_options,
    load_config,
    set_data_root,
)

REPO = Path(__file__).resolve().parents[2]

RSNA = REPO / "configs" / "mmdet" / "optiml_fasterrcnn_rsna.py"


def test_unknown_option_key_is_named_with_a_suggestion() -> None:
    cfg = Config.fromfile(RSNA)
    check_cfg_options(
        cfg, {"model.backbone.frozen_stages": 2, "train_cfg.max_epochs": 1}, "x"
    )
    check_cfg_options(cfg, {"train_dataloader.dataset.pipeline.2.scale": (64, 64)}, "x")
    with pytest.raises(ConfigKeyError, match="'trian_cfg'.*did you mean 'train_cfg'"):
        check_cfg_options(cfg, {"trian_cfg.max_epochs": 1}, "x")
    with pytest.raises(ConfigKeyError, match="model.bakbone"):
        check_cfg_options(cfg, {"model.bakbone.depth": 18}, "x")
    with pytest.raises(ConfigKeyError, match="out of range"):
        check_cfg_options(cfg, {"train_dataloader.dataset.pipeline.9.scale": 1}, "x")


def test_load_config_exits_naming_the_key(capsys) -> None:
    from argparse import Namespace

    args = Namespace(
        config=str(RSNA),
        launcher="none",
        cfg_options={"trian_cfg.x": 1},
        data_root=None,
        work_dir=None,
        local_rank=0,
    )
    with pytest.raises(SystemExit, match="trian_cfg"):
        load_config(args)


def test_data_root_reaches_every_loader_and_metric(tmp_path: Path) -> None:
    cfg = Config.fromfile(RSNA)
    set_data_root(cfg, str(tmp_path))
    for name in ("train_dataloader", "val_dataloader", "test_dataloader"):
        assert cfg[name].dataset.data_root == f"{tmp_path}/"
    assert cfg.val_evaluator[0].ann_file == f"{tmp_path}/annotations/val.json"
    assert cfg.test_evaluator[1].ann_file == f"{tmp_path}/annotations/test.json"


def test_runner_settings_the_config_lacks_are_accepted() -> None:
    from argparse import Namespace

    options = {
        "randomness.seed": 0,
        "model_wrapper_cfg.find_unused_parameters": True,
        "custom_hooks": [],
        "env_cfg.dist_cfg.backend": "gloo",
    }
    cfg = Config.fromfile(RSNA)
    assert "randomness" not in cfg and "model_wrapper_cfg" not in cfg
    check_cfg_options(cfg, options, "x")
    args = Namespace(
        config=str(RSNA),
        launcher="none",
        cfg_options=options,
        data_root=None,
        work_dir=None,
        local_rank=0,
    )
    cfg = load_config(args)
    assert cfg.randomness.seed == 0 and cfg.model_wrapper_cfg.find_unused_parameters
    assert cfg.custom_hooks == []
    with pytest.raises(ConfigKeyError, match="'randomnes'.*did you mean 'randomness'"):
        check_cfg_options(cfg, {"randomnes.seed": 0}, "x")


def test_data_root_leaves_a_separate_test_root_alone(tmp_path: Path) -> None:
    cfg = Config.fromfile(REPO / "configs" / "mmdet" / "optiml_fasterrcnn_vindr.py")
    set_data_root(cfg, str(tmp_path))
    assert cfg.train_dataloader.dataset.data_root == f"{tmp_path}/"
    assert cfg.val_evaluator[1].ann_file == f"{tmp_path}/annotations/val.json"
    assert cfg.test_dataloader.dataset.data_root == "data/vindr_test/"


def test_missing_data_names_the_converter(tmp_path: Path) -> None:
    from optiml_plugin.mm.cli import train

    with pytest.raises(SystemExit) as err:
        train([str(RSNA), "--data-root", str(tmp_path / "nowhere")])
    msg = str(err.value)
    assert f"{tmp_path}/nowhere" in msg
    assert "python tools/prepare_data.py rsna" in msg and "--data-root" in msg


def test_missing_data_from_the_command_line_is_short(tmp_path: Path) -> None:
    """The issue's case: the RSNA config without data/rsna, from another folder."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "train.py"), str(RSNA)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "data/rsna" in out and "tools/prepare_data.py rsna" in out
    assert "Traceback" not in out and len(out.splitlines()) < 15, out


def test_dist_train_without_arguments_prints_usage() -> None:
    proc = subprocess.run(
        ["bash", str(REPO / "tools" / "dist_train.sh")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "usage: bash tools/dist_train.sh CONFIG NPROC" in proc.stderr
    assert "unbound variable" not in proc.stderr
