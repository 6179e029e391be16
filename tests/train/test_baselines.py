"""Lightly baselines in the pretraining command: same batches, Lightly's losses."""

import json
from pathlib import Path

import pytest
import torch
import torchvision
from lightly.loss import BarlowTwinsLoss, VICRegLoss

from optiml_plugin.eval.compute import synthetic_batch
from optiml_plugin.train.baseline_module import LightlyBaselineModule
from optiml_plugin.train.pretrain import build_module, main, parse_args

SMALL = {"backbone": "resnet18", "global_dim": 64, "global_hidden_dim": 64,
         "dense_dim": 32, "dense_hidden_dim": 32}  # fmt: skip
TINY = [
    "--data", "phantom", "--num-images", "16", "--phantom-size", "96",
    "--image-size", "64", "--backbone", "resnet18", "--global-dim", "64",
    "--global-hidden-dim", "64", "--dense-dim", "32", "--dense-hidden-dim", "32",
    "--cvsim-heads", "4", "--batch-size", "8", "--optimizer", "adamw",
    "--lr", "0.01", "--warmup-epochs", "0", "--num-workers", "0",
    "--log-every", "1", "--max-steps", "2", "--quiet",
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "loss"), [("vicreg", VICRegLoss()), ("barlowtwins", BarlowTwinsLoss())]
)
def test_global_baselines_use_lightlys_loss_on_the_two_views(method, loss) -> None:
    torch.manual_seed(0)
    module = LightlyBaselineModule(method, model=SMALL)
    batch = synthetic_batch(6, 64, torch.device("cpu"))
    module.train()
    got = module.step_terms(batch)["loss"]
    torch.manual_seed(0)
    module2 = LightlyBaselineModule(method, model=SMALL)
    z0, z1 = module2.model(batch[0][0])[0], module2.model(batch[0][1])[0]
    torch.testing.assert_close(got, loss(z0, z1))
    got.backward()
    assert module.model.backbone.conv1.weight.grad.abs().sum() > 0


def test_vicregl_caps_matches_at_the_grid_and_uses_local_features() -> None:
    torch.manual_seed(0)
    module = LightlyBaselineModule("vicregl", model=SMALL)
    batch = synthetic_batch(4, 64, torch.device("cpu"))  # 2 x 2 grid: 4 cells
    loss = module.step_terms(batch)["loss"]
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert module.criterion.num_matches == (4, 4)
    loss.backward()
    assert module.model.local_head.layers[0].weight.grad.abs().sum() > 0


def test_unknown_method_and_optimizer_are_errors() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--method", "simclr"])
    with pytest.raises(ValueError, match="method"):
        LightlyBaselineModule("simclr", model=SMALL)
    with pytest.raises(ValueError, match="optimizer"):
        LightlyBaselineModule("vicreg", model=SMALL, optimizer="sgd")


def test_method_option_builds_the_matching_module() -> None:
    assert type(build_module(parse_args(["--method", "vicreg", *TINY]))).__name__ == (
        "LightlyBaselineModule"
    )
    assert type(build_module(parse_args(TINY))).__name__ == "OPTiMLModule"


def test_pretrain_command_runs_a_baseline_and_exports_its_backbone(
    tmp_path: Path,
) -> None:
    out = tmp_path / "vicregl"
    assert main([*TINY, "--method", "vicregl", "--out", str(out)]) == 0
    state = torch.load(out / "backbone.pth", weights_only=True)
    result = torchvision.models.resnet18().load_state_dict(state, strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"]
    meta = json.loads((out / "backbone.json").read_text())
    assert meta["settings"]["method"] == "vicregl"
    assert not (out / "transport_plan.png").exists()  # an OPTiML figure only
