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
