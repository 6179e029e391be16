from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from optiml_plugin.mm.backbone import (
    IMAGENET_NORM,
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


@pytest.mark.parametrize(
    "grey_norm", [dict(mean=[117.8], std=[57.6]), dict(mean=[0.0], std=[255.0])]
)
def test_one_channel_stem_equals_the_three_channel_network(
    r18_file: Path, grey_norm: dict
) -> None:
    """ImageNet statistics (unequal per channel), borders included: exact."""
    mean = torch.tensor(IMAGENET_NORM["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_NORM["std"]).view(1, 3, 1, 1)
    grey = torch.rand(2, 1, 48, 40) * 255
    one = _loaded(18, r18_file, in_channels=1, grey_norm=grey_norm).eval()
    three = _loaded(18, r18_file).eval()
    assert set(one.state_dict()) == set(three.state_dict())  # the file fits as is
    x1 = (grey - grey_norm["mean"][0]) / grey_norm["std"][0]
    x3 = (grey.expand(2, 3, 48, 40) - mean) / std
    with torch.no_grad():
        stem1 = one.conv1(x1 * one.grey_scale + one.grey_shift)
        stem3 = three.conv1(x3)
        # The summed-kernel stem this replaces was 11 % off in relative terms.
        summed = torch.nn.functional.conv2d(
            x1, three.conv1.weight.sum(1, keepdim=True), stride=2, padding=3
        )
        assert (summed - stem3).norm() / stem3.norm() > 0.05
        torch.testing.assert_close(stem1, stem3, rtol=1e-4, atol=1e-3)
        for a, b in zip(one(x1), three(x3), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)


def test_one_channel_needs_the_grey_statistics() -> None:
    with pytest.raises(ValueError, match="grey_norm"):
        OPTiMLResNet(depth=18, in_channels=1)
    net = OPTiMLResNet(depth=18, in_channels=1, grey_norm=dict(mean=[0], std=[1]))
    with pytest.raises(ValueError, match="got 3 input channels"):
        net(torch.zeros(1, 3, 32, 32))


def test_list_form_init_cfg_loads_strictly(tmp_path: Path, r18_file: Path) -> None:
    pretrained = dict(type="Pretrained", checkpoint=str(r18_file))
    net = OPTiMLResNet(depth=18, init_cfg=[pretrained])
    net.init_weights()
    saved = torch.load(r18_file, weights_only=True)
    torch.testing.assert_close(net.conv1.weight, saved["conv1.weight"], rtol=0, atol=0)
    # ...and strictly: a file that does not fit raises instead of a warning.
    seq = torch.nn.Sequential(*list(torchvision.models.resnet18().children())[:-1])
    torch.save(seq.state_dict(), tmp_path / "sequential.pth")
    bad = dict(pretrained, checkpoint=str(tmp_path / "sequential.pth"))
    net = OPTiMLResNet(
        depth=18, init_cfg=[dict(type="Constant", val=0, layer="Conv2d"), bad]
    )
    with pytest.raises(BackboneCheckpointError, match="missing keys"):
        net.init_weights()
    with pytest.raises(ValueError, match="2 'Pretrained' entries"):
        OPTiMLResNet(depth=18, init_cfg=[pretrained, pretrained])


def test_list_form_keeps_the_other_initialisers() -> None:
    net = OPTiMLResNet(
        depth=18, init_cfg=[dict(type="Constant", val=0.5, layer="Conv2d")]
    )
    net.init_weights()
    assert torch.all(net.layer1[0].conv1.weight == 0.5)


def test_missing_num_batches_tracked_is_accepted(
    tmp_path: Path, r18_file: Path
) -> None:
    state = torch.load(r18_file, weights_only=True)
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "no_nbt.pth"
    torch.save(state, path)
    reference = torchvision.models.resnet18()
    reference.fc = torch.nn.Identity()
    reference.load_state_dict(state, strict=True)  # what torch's strict load accepts
    net = _loaded(18, path)
    torch.testing.assert_close(net.bn1.running_var, state["bn1.running_var"])
    del state["bn1.running_var"]
    torch.save(state, path)
    with pytest.raises(
        BackboneCheckpointError, match="1 missing keys.*bn1.running_var"
    ):
        _loaded(18, path)


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


def test_padding_mode_comes_from_the_sidecar_and_contradictions_raise(
    tmp_path: Path,
) -> None:
    model = OPTiML("resnet18", global_dim=32, global_hidden_dim=32, dense_dim=16,
                   dense_hidden_dim=16, padding_mode="reflect")  # fmt: skip
    path, _ = export_backbone(model, tmp_path / "backbone.pth")
    net = _loaded(18, path).eval()
    assert net.padding_mode == "reflect"
    model.eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(net(x)[-1], model.dense_features(x))
    with pytest.raises(ValueError, match="records 'reflect'"):
        OPTiMLResNet(
            depth=18,
            padding_mode="zeros",
            init_cfg=dict(type="Pretrained", checkpoint=str(path)),
        )
    assert OPTiMLResNet(depth=18).padding_mode == "zeros"
