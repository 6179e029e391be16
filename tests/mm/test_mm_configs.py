"""Every shipped config builds, and its backbone starts from the exported file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").glob("mm*/optiml_*.py"))


def test_all_configs_found() -> None:
    names = {c.name for c in CONFIGS}
    for want in (
        "optiml_fasterrcnn_rsna.py",
        "optiml_fasterrcnn_vindr.py",
        "optiml_upernet_siim.py",
        "optiml_fcn_lungs.py",
    ):
        assert want in names
        assert want.replace(".py", "_phantom.py") in names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_config_builds_and_loads_the_pretrained_backbone(
    config: Path, r18_file: Path, r50_file: Path
) -> None:
    cfg = Config.fromfile(config)
    backbone = cfg.model.backbone
    assert backbone.type == "OPTiMLResNet"
    assert backbone.init_cfg.type == "Pretrained"
    path = r18_file if backbone.depth == 18 else r50_file
    backbone.init_cfg.checkpoint = str(path)
    scope = cfg.default_scope
    assert scope in ("mmdet", "mmseg")
    if scope == "mmdet":
        from mmdet.registry import MODELS

        import optiml_plugin.mm.det  # noqa: F401
    else:
        from mmseg.registry import MODELS

        import optiml_plugin.mm.seg  # noqa: F401
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    model.init_weights()
    saved = torch.load(path, weights_only=True)
    state = model.backbone.state_dict()
    assert set(state) == set(saved)
    torch.testing.assert_close(
        model.backbone.conv1.weight, saved["conv1.weight"], rtol=0, atol=0
    )
    torch.testing.assert_close(
        state["layer4.1.bn2.running_mean"], saved["layer4.1.bn2.running_mean"]
    )


@pytest.mark.parametrize(
    "config", [c for c in CONFIGS if c.parent.name == "mmseg"], ids=lambda p: p.stem
)
def test_iteration_schedule_decays_by_the_last_iteration(config: Path) -> None:
    """The LR MMEngine sets at the last iteration is within 2 % of ``eta_min``."""
    from mmengine.registry import PARAM_SCHEDULERS

    cfg = Config.fromfile(config)
    max_iters = cfg.train_cfg.max_iters
    base = cfg.optim_wrapper.optimizer.lr
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    schedulers = [
        PARAM_SCHEDULERS.build(dict(s, optimizer=optimizer))
        for s in cfg.param_scheduler
    ]
    for _ in range(max_iters - 1):  # the LR of iteration i is set after i steps
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    last = optimizer.param_groups[0]["lr"]
    floor = min(s.get("eta_min", 0.0) for s in cfg.param_scheduler)
    assert last <= floor + 0.02 * (base - floor), (config.name, last / base)


def test_vindr_selects_and_tests_on_its_headline_metric() -> None:
    cfg = Config.fromfile(REPO / "configs" / "mmdet" / "optiml_fasterrcnn_vindr.py")
    assert cfg.default_hooks.checkpoint.save_best == "vindr/bbox_mAP"
    assert [m.iou_thrs for m in cfg.val_evaluator if m.prefix == "vindr"] == [[0.4]]
    val = f"{cfg.val_dataloader.dataset.data_root}{cfg.val_dataloader.dataset.ann_file}"
    test = (
        f"{cfg.test_dataloader.dataset.data_root}{cfg.test_dataloader.dataset.ann_file}"
    )
    assert test != val and "val" not in test
    assert {m.ann_file for m in cfg.test_evaluator} == {test}
    phantom = Config.fromfile(
        REPO / "configs" / "mmdet" / "optiml_fasterrcnn_vindr_phantom.py"
    )
    assert phantom.default_hooks.checkpoint.save_best == "vindr/bbox_mAP"
