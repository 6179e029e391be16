"""Exported backbones load back exactly; frozen features are what the ResNet gives."""

from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from optiml_plugin import OPTiML
from optiml_plugin.eval.backbone import extract_features, load_backbone
from optiml_plugin.models.optiml import resnet_dense_features
from optiml_plugin.train.export import export_backbone


def test_exported_backbone_round_trips(tmp_path: Path) -> None:
    model = OPTiML("resnet18", global_dim=32, global_hidden_dim=32, dense_dim=16,
                   dense_hidden_dim=16, cvsim_heads=2)  # fmt: skip
    path, _ = export_backbone(model, tmp_path / "b.pth")
    loaded = load_backbone(path)  # architecture from the sidecar
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    with pytest.raises(ValueError, match="not a resnet50 backbone"):
        load_backbone(path, "resnet50")
    (tmp_path / "b.json").unlink()
    with pytest.raises(ValueError, match="architecture"):
        load_backbone(path)


def test_features_are_the_frozen_maps_in_eval_mode() -> None:
    torch.manual_seed(0)
    net = load_backbone(None, "resnet18")
    x = torch.randn(5, 3, 64, 64)
    labels = torch.arange(5)
    before = net.bn1.running_mean.clone()
    feats = extract_features(net, TensorDataset(x, labels), batch_size=2)
    assert torch.equal(net.bn1.running_mean, before)  # no statistics updated
    assert net.training  # mode restored
    with torch.no_grad():
        ref = resnet_dense_features(net.eval(), x)
    torch.testing.assert_close(feats.dense, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(feats.pooled, ref.mean(dim=(2, 3)), rtol=1e-4, atol=1e-5)
    assert torch.equal(feats.targets[0], labels)
