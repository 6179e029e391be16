from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from optiml_plugin.mm.backbone import (
    BackboneCheckpointError,
    OPTiMLResNet,
    read_backbone_state,
)
from optiml_plugin.models import OPTiML
from optiml_plugin.train.export import export_backbone


def _loaded(depth: int, path: Path, **kwargs) -> OPTiMLResNet:
    net = OPTiMLResNet(
        depth=depth, init_cfg=dict(type="Pretrained", checkpoint=str(path)), **kwargs
    )
    net.init_weights()
    return net


def test_loads_every_tensor_of_the_exported_file(r18_file: Path) -> None:
    net = _loaded(18, r18_file)
    saved = torch.load(r18_file, weights_only=True)
    own = net.state_dict()
    assert set(own) == set(saved)  # zero missing, zero unexpected
    for key, value in saved.items():
        torch.testing.assert_close(own[key], value, rtol=0, atol=0, msg=key)


def test_features_match_torchvision_resnet(r50_file: Path) -> None:
    net = _loaded(50, r50_file).eval()
    ref = torchvision.models.resnet50()
    ref.load_state_dict(torch.load(r50_file, weights_only=True), strict=False)
    ref.eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        outs = net(x)
        y = ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))
        expected = []
        for layer in (ref.layer1, ref.layer2, ref.layer3, ref.layer4):
            y = layer(y)
            expected.append(y)
    assert (
        [o.shape[1] for o in outs] == list(net.out_channels) == [256, 512, 1024, 2048]
    )
    for got, want in zip(outs, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_loads_a_backbone_exported_from_an_optiml_model(tmp_path: Path) -> None:
    model = OPTiML(
        backbone="resnet18",
        global_dim=32,
        global_hidden_dim=32,
        dense_dim=16,
        dense_hidden_dim=16,
    )
    path, _ = export_backbone(model, tmp_path / "backbone.pth")
    net = _loaded(18, path)
    torch.testing.assert_close(net.conv1.weight, model.backbone.conv1.weight)
    torch.testing.assert_close(
        net.layer4[1].bn2.running_var, model.backbone.layer4[1].bn2.running_var
    )


def test_lightly_sequential_numbering_raises_listing_keys(
    tmp_path: Path, r18_file: Path
) -> None:
    # Lightly's examples wrap the ResNet in nn.Sequential: keys 0.weight, 4.0.conv1...
    seq = torch.nn.Sequential(*list(torchvision.models.resnet18().children())[:-1])
    path = tmp_path / "sequential.pth"
    torch.save(seq.state_dict(), path)
    with pytest.raises(BackboneCheckpointError) as err:
        _loaded(18, path)
    msg = str(err.value)
    assert "sequential.pth" in msg
    assert "missing keys" in msg and "conv1.weight" in msg
    assert "unexpected keys" in msg and "0.weight" in msg


def test_wrong_depth_raises(r18_file: Path) -> None:
    with pytest.raises(
        BackboneCheckpointError, match=r"OPTiMLResNet\(depth=50\).*missing keys"
    ):
        _loaded(50, r18_file)


def test_shape_mismatch_raises(tmp_path: Path, r18_file: Path) -> None:
    state = torch.load(r18_file, weights_only=True)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(
        BackboneCheckpointError, match="shape mismatch.*layer1.0.conv1.weight"
    ):
        _loaded(18, path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        _loaded(18, tmp_path / "nope.pth")


def test_lightning_checkpoint_with_prefix(tmp_path: Path, r18_file: Path) -> None:
    state = torch.load(r18_file, weights_only=True)
    wrapped = {"state_dict": {f"model.backbone.{k}": v for k, v in state.items()}}
    wrapped["state_dict"]["model.dense_head.weight"] = torch.zeros(3)
    path = tmp_path / "lightning.ckpt"
    torch.save(wrapped, path)
    assert set(read_backbone_state(path, "model.backbone.")) == set(state)
    net = OPTiMLResNet(
        depth=18,
        init_cfg=dict(
            type="Pretrained", checkpoint=str(path), prefix="model.backbone."
        ),
    )
    net.init_weights()
    torch.testing.assert_close(net.conv1.weight, state["conv1.weight"])


def test_one_channel_input_sums_the_pretrained_stem(r18_file: Path) -> None:
    net = _loaded(18, r18_file, in_channels=1)
    stem = torch.load(r18_file, weights_only=True)["conv1.weight"]
    torch.testing.assert_close(net.conv1.weight, stem.sum(1, keepdim=True))
    grey = torch.rand(1, 1, 64, 64)
    ref = _loaded(18, r18_file).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            net.eval()(grey)[-1], ref(grey.expand(1, 3, 64, 64))[-1]
        )


def test_frozen_stages_and_norm_eval() -> None:
    net = OPTiMLResNet(depth=18, frozen_stages=1, norm_eval=True).train()
    assert (
        not net.conv1.weight.requires_grad
        and not net.layer1[0].conv1.weight.requires_grad
    )
    assert net.layer2[0].conv1.weight.requires_grad
    assert not net.layer3[0].bn1.training and not net.bn1.training


def test_dilations_give_output_stride_8() -> None:
    net = OPTiMLResNet(depth=18, dilations=(False, True, True), out_indices=(3,))
    (out,) = net(torch.randn(1, 3, 64, 64))
    assert out.shape[-2:] == (8, 8)


def test_dilation_matches_torchvision_for_bottlenecks(r50_file: Path) -> None:
    net = _loaded(50, r50_file, dilations=(False, True, True)).eval()
    ref = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True])
    ref.load_state_dict(torch.load(r50_file, weights_only=True), strict=False)
    ref.fc = torch.nn.Identity()
    ref.avgpool = torch.nn.Identity()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        got = net(x)[-1]
        want = ref.eval()(x).reshape(got.shape)
    assert got.shape[-2:] == (8, 8)
    torch.testing.assert_close(got, want)


def test_registered_for_mmdet_and_mmseg() -> None:
    from mmdet.registry import MODELS as DET
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS as SEG

    for scope, registry in (("mmdet", DET), ("mmseg", SEG)):
        with DefaultScope.overwrite_default_scope(scope):
            net = registry.build(
                dict(type="OPTiMLResNet", depth=18, out_indices=(1, 3))
            )
        assert isinstance(net, OPTiMLResNet) and net.out_channels == (128, 512)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": 42}, "depth 42"),
        ({"in_channels": 2}, "in_channels"),
        ({"out_indices": (4,)}, "out_indices"),
        ({"norm_cfg": {"type": "GN"}}, "GN"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OPTiMLResNet(**kwargs)
