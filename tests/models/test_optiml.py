import json

import pytest
import torch
import torchvision

from optiml_plugin import OPTiML
from optiml_plugin.train.export import export_backbone


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_backbone_keeps_torchvision_names(name: str) -> None:
    model = OPTiML(
        name,
        global_dim=64,
        global_hidden_dim=64,
        dense_dim=32,
        dense_hidden_dim=32,
        cvsim_heads=4,
    )
    reference = getattr(torchvision.models, name)()
    ref_keys = {k for k in reference.state_dict() if not k.startswith("fc.")}
    assert set(model.backbone.state_dict()) == ref_keys


def test_shapes_of_global_and_dense_embeddings() -> None:
    model = OPTiML(
        "resnet18",
        global_dim=48,
        global_hidden_dim=64,
        dense_dim=32,
        dense_hidden_dim=32,
        cvsim_heads=4,
    )
    out = model(torch.randn(2, 3, 96, 96), torch.randn(2, 3, 64, 64))
    assert out.global_a.shape == (2, 48) and out.global_b.shape == (2, 48)
    assert out.dense_a.shape == (2, 3, 3, 32) and out.dense_b.shape == (2, 2, 2, 32)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_exported_backbone_loads_into_torchvision_strictly_except_fc(
    name: str, tmp_path
) -> None:
    model = OPTiML(
        name,
        global_dim=32,
        global_hidden_dim=32,
        dense_dim=16,
        dense_hidden_dim=16,
        cvsim_heads=4,
    )
    path, sidecar = export_backbone(model, tmp_path / "backbone.pth", {"note": "test"})
    state = torch.load(path, weights_only=True)
    target = getattr(torchvision.models, name)()
    result = target.load_state_dict(state, strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"]
    assert result.unexpected_keys == []
    assert torch.equal(target.conv1.weight, model.backbone.conv1.weight)
    target.fc = torch.nn.Identity()
    target.load_state_dict(state, strict=True)
    assert json.loads(sidecar.read_text())["architecture"] == name


def test_custom_backbone_needs_feature_dim() -> None:
    conv = torch.nn.Conv2d(3, 8, 4, stride=4)
    with pytest.raises(ValueError, match="feature_dim"):
        OPTiML(conv)
    model = OPTiML(
        conv,
        feature_dim=8,
        global_dim=8,
        global_hidden_dim=8,
        dense_dim=8,
        dense_hidden_dim=8,
        cvsim_heads=2,
    )
    assert model(
        torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    ).dense_a.shape == (2, 4, 4, 8)
    with pytest.raises(ValueError, match="backbone must be one of"):
        OPTiML("vgg11")
