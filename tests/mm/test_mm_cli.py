from __future__ import annotations

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
