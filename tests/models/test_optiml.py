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


def _spatial_spread(model: OPTiML, image: torch.Tensor) -> float:
    """Largest deviation of layer4's map from its spatial mean, in eval mode."""
    model.eval()
    with torch.no_grad():
        fmap = model.dense_features(image)
    return (fmap - fmap.mean(dim=(2, 3), keepdim=True)).abs().max().item()


def test_reflect_padding_keeps_position_out_of_the_map() -> None:
    # A constant image carries no content that varies with position: with zero
    # padding the borders still make layer4 vary across cells (a position code at
    # random init, issue 9); with reflect padding the map is constant.
    image = torch.full((1, 3, 160, 160), 0.7)
    small = dict(global_dim=32, global_hidden_dim=32, dense_dim=16, dense_hidden_dim=16)
    torch.manual_seed(0)
    zeros = OPTiML("resnet18", **small)
    torch.manual_seed(0)
    reflect = OPTiML("resnet18", padding_mode="reflect", **small)
    for (name, a), b in zip(
        zeros.state_dict().items(), reflect.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name  # same weights: only the padding differs
    assert _spatial_spread(zeros, image) > 0.1
    assert _spatial_spread(reflect, image) < 1e-4
    padded = [m for m in reflect.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert {m.padding_mode for m in padded if m.padding != (0, 0)} == {"reflect"}
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        OPTiML("resnet18", padding_mode="mirror", **small)


def test_exported_sidecar_records_the_padding_mode(tmp_path) -> None:
    from optiml_plugin.eval.backbone import load_backbone

    model = OPTiML("resnet18", global_dim=32, global_hidden_dim=32, dense_dim=16,
                   dense_hidden_dim=16, padding_mode="reflect")  # fmt: skip
    path, sidecar = export_backbone(model, tmp_path / "backbone.pth")
    assert json.loads(sidecar.read_text())["padding_mode"] == "reflect"
    model.eval()
    loaded = load_backbone(path).eval()  # padding from the sidecar
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.backbone(x))
        zero_padded = load_backbone(path, padding_mode="zeros").eval()(x)
    assert (zero_padded - model.backbone(x)).abs().max() > 1e-3
