"""tools/train.py and tools/test.py end to end on CPU: phantoms and real radiographs."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from mm_helpers import DET, SEG, cpu_options, scalars, train_args
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from optiml_plugin.data.coco import write_json
from optiml_plugin.mm.backbone import BackboneCheckpointError
from optiml_plugin.mm.checkpoint import load_mmengine_checkpoint
from optiml_plugin.mm.cli import test as run_test
from optiml_plugin.mm.cli import train as run_train

# A few iterations leave every score under mmdet's 0.05 cut; keep them all so that
# the metrics have detections to score.
ALL_SCORES = "model.test_cfg.rcnn.score_thr=0.0"


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_mmengine_checkpoint(path)["state_dict"]


def test_detection_on_phantoms_trains_evaluates_and_tests(
    tmp_path: Path, phantom_root: Path, r18_file: Path
) -> None:
    work = tmp_path / "det"
    run_train(
        train_args(
            DET / "optiml_fasterrcnn_rsna_phantom.py",
            work,
            phantom_root,
            r18_file,
            "train_cfg.max_epochs=1",
            "train_cfg.val_interval=1",
            "default_hooks.checkpoint.interval=1",
            "train_dataloader.batch_size=2",
            ALL_SCORES,
        )
    )
    ckpt = work / "epoch_1.pth"
    assert ckpt.is_file()
    # frozen_stages=1: the stem never trains, so it still equals the exported file,
    # proving the runner started from the pretrained weights.
    saved = torch.load(r18_file, weights_only=True)
    state = _state(ckpt)
    torch.testing.assert_close(
        state["backbone.conv1.weight"], saved["conv1.weight"], rtol=0, atol=0
    )
    assert not torch.equal(
        state["backbone.layer4.0.conv1.weight"], saved["layer4.0.conv1.weight"]
    )
    metrics = [s for s in scalars(work) if "coco/bbox_mAP" in s]
    assert metrics and -1 <= metrics[-1]["rsna/bbox_mAP"] <= 1
    losses = [s["loss"] for s in scalars(work) if "loss" in s]
    assert losses and all(torch.isfinite(torch.tensor(losses)))

    out = tmp_path / "test_metrics.json"
    run_test(
        [
            str(DET / "optiml_fasterrcnn_rsna_phantom.py"),
            str(ckpt),
            "--work-dir",
            str(tmp_path / "det_test"),
            "--data-root",
            str(phantom_root),
            "--out",
            str(out),
            "--cfg-options",
            ALL_SCORES,
            *cpu_options(),
        ]
    )
    result = json.loads(out.read_text())
    assert {"coco/bbox_mAP", "coco/bbox_mAP_50", "rsna/bbox_mAP"} <= set(result)
    assert result["coco/bbox_mAP_50"] == pytest.approx(metrics[-1]["coco/bbox_mAP_50"])


def test_mismatched_backbone_fails_the_run(
    tmp_path: Path, phantom_root: Path, r50_file: Path
) -> None:
    with pytest.raises(BackboneCheckpointError, match="missing keys"):
        run_train(
            train_args(
                DET / "optiml_fasterrcnn_rsna_phantom.py",
                tmp_path,
                phantom_root,
                r50_file,
            )
        )


def test_segmentation_on_phantom_lesions(
    tmp_path: Path, phantom_root: Path, r18_file: Path
) -> None:
    work = tmp_path / "seg"
    run_train(
        train_args(
            SEG / "optiml_upernet_siim_phantom.py",
            work,
            phantom_root,
            r18_file,
            "model.backbone.frozen_stages=0",
            "train_cfg.max_iters=2",
            "train_cfg.val_interval=2",
            "default_hooks.checkpoint.interval=2",
            "train_dataloader.batch_size=2",
        )
    )
    saved = torch.load(r18_file, weights_only=True)
    state = _state(work / "iter_2.pth")
    torch.testing.assert_close(
        state["backbone.conv1.weight"], saved["conv1.weight"], rtol=0, atol=0
    )
    assert not torch.equal(
        state["backbone.layer2.0.conv1.weight"], saved["layer2.0.conv1.weight"]
    )
    final = [s for s in scalars(work) if "dice/dice_all" in s][-1]
    assert 0 <= final["dice/dice_all"] <= 1 and 0 <= final["mDice"] <= 100
    assert final["dice/num_images"] == 2


@HOOKS.register_module(force=True)
class CrashAfterIter(Hook):
    """Simulates an interrupted run: raises once the given iteration is saved."""

    priority = "LOWEST"  # after CheckpointHook

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(
        self, runner, batch_idx, data_batch=None, outputs=None
    ) -> None:
        if runner.iter + 1 == self.at:
            raise KeyboardInterrupt(f"simulated interruption after iter {self.at}")


def test_interrupted_segmentation_run_resumes(
    tmp_path: Path, phantom_root: Path, r18_file: Path
) -> None:
    work = tmp_path / "lungs"
    args = train_args(
        SEG / "optiml_fcn_lungs_phantom.py",
        work,
        phantom_root,
        r18_file,
        "train_cfg.max_iters=4",
        "train_cfg.val_interval=100",
        "default_hooks.checkpoint.interval=1",
        "train_dataloader.batch_size=2",
    )
    with pytest.raises(KeyboardInterrupt):
        crash = tmp_path / "crash.py"
        crash.write_text(
            f"_base_ = {str(args[0])!r}\n"
            "custom_hooks = [dict(type='CrashAfterIter', at=2)]\n"
        )
        run_train([str(crash), *args[1:]])
    assert sorted(p.name for p in work.glob("iter_*.pth")) == [
        "iter_1.pth",
        "iter_2.pth",
    ]
    # The failure the compat shim exists for: torch's default weights_only load.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(work / "iter_2.pth")
    stamps = {p.name: os.stat(p).st_mtime_ns for p in work.glob("iter_*.pth")}

    run_train([*args, "--resume"])
    assert sorted(p.name for p in work.glob("iter_*.pth")) == [
        f"iter_{i}.pth" for i in range(1, 5)
    ]
    assert {p: os.stat(work / p).st_mtime_ns for p in stamps} == stamps  # not redone
    meta = load_mmengine_checkpoint(work / "iter_4.pth")["meta"]
    assert meta["iter"] == 4
    logs = "".join(p.read_text() for p in work.glob("*/*.log"))
    assert "resumed epoch: 0, iter: 2" in logs


def _tbx_as(tmp_path: Path, data: Path, classes: list[str] | None) -> Path:
    """TBX11K's COCO file in the converters' layout; classes=None merges to 'opacity'."""
    coco = json.loads((data / "tbx11k_tb_detection" / "instances.json").read_text())
    root = tmp_path / "tbx"
    (root / "annotations").mkdir(parents=True)
    (root / "images").symlink_to((data / "tbx11k_tb_detection" / "images").resolve())
    for image in coco["images"]:
        image["file_name"] = f"images/{image['file_name']}"
    if classes is None:
        for ann in coco["annotations"]:
            ann["category_id"] = 1
        coco["categories"] = [{"id": 1, "name": "opacity", "supercategory": "finding"}]
    for split in ("train", "val", "test"):
        write_json(coco, root / "annotations" / f"{split}.json")
    return root


def _small_real_det(
    config: Path, root: Path, work: Path, r18_file: Path, extra: list[str]
) -> None:
    run_train(
        train_args(
            config,
            work,
            root,
            r18_file,
            "model.backbone.depth=18",
            "model.neck.in_channels=[64,128,256,512]",
            "train_cfg.max_epochs=1",
            "train_dataloader.dataset.indices=4",
            "val_dataloader.dataset.indices=3",
            "train_dataloader.dataset.pipeline.2.scale=(256,256)",
            "val_dataloader.dataset.pipeline.1.scale=(256,256)",
            "train_dataloader.batch_size=2",
            ALL_SCORES,
            *extra,
        )
    )


def test_real_tb_boxes_through_the_rsna_and_vindr_configs(
    tmp_path: Path, shared_data: Path, r18_file: Path
) -> None:
    rsna_root = _tbx_as(tmp_path / "one", shared_data, None)
    _small_real_det(
        DET / "optiml_fasterrcnn_rsna.py", rsna_root, tmp_path / "rsna", r18_file, []
    )
    rsna = [s for s in scalars(tmp_path / "rsna") if "rsna/bbox_mAP" in s][-1]
    assert 0 <= rsna["coco/bbox_mAP_50"] <= 1

    classes = [
        c["name"]
        for c in json.loads(
            (shared_data / "tbx11k_tb_detection" / "instances.json").read_text()
        )["categories"]
    ]
    vindr_root = _tbx_as(tmp_path / "three", shared_data, classes)
    derived = tmp_path / "vindr_tbx.py"  # VinDr's recipe with TBX11K's 3 classes
    derived.write_text(
        f"_base_ = {str(DET / 'optiml_fasterrcnn_vindr.py')!r}\n"
        f"classes = {tuple(classes)!r}\n"
        "train_dataloader = dict(dataset=dict(metainfo=dict(classes=classes)))\n"
        "val_dataloader = dict(dataset=dict(metainfo=dict(classes=classes)))\n"
    )
    _small_real_det(
        derived,
        vindr_root,
        tmp_path / "vindr",
        r18_file,
        [
            "model.roi_head.bbox_head.num_classes=3",
        ],
    )
    vindr = [s for s in scalars(tmp_path / "vindr") if "vindr/bbox_mAP" in s][-1]
    assert 0 <= vindr["vindr/bbox_mAP"] <= 1
    assert (tmp_path / "vindr" / "epoch_1.pth").is_file()


def test_real_lung_masks_through_the_lungs_config(
    tmp_path: Path, shared_data: Path, r18_file: Path
) -> None:
    work = tmp_path / "lungs"
    run_train(
        train_args(
            SEG / "optiml_fcn_lungs.py",
            work,
            shared_data / "covid_cxr_lungseg",
            r18_file,
            "model.backbone.depth=18",
            "model.backbone.norm_cfg.type=BN",
            "model.decode_head.norm_cfg.type=BN",
            "model.auxiliary_head.norm_cfg.type=BN",
            "model.decode_head.in_channels=512",
            "model.decode_head.channels=64",
            "model.auxiliary_head.in_channels=256",
            "model.auxiliary_head.channels=32",
            "model.data_preprocessor.size=(256,256)",
            "train_dataloader.dataset.pipeline.2.scale=(256,256)",
            "train_dataloader.dataset.pipeline.3.crop_size=(256,256)",
            "val_dataloader.dataset.pipeline.1.scale=(256,256)",
            "val_dataloader.dataset.indices=4",
            "train_cfg.max_iters=2",
            "train_cfg.val_interval=2",
            "default_hooks.checkpoint.interval=2",
            "train_dataloader.batch_size=2",
        )
    )
    final = [s for s in scalars(work) if "dice/dice_all" in s][-1]
    assert final["dice/num_images"] == 4 and final["dice/num_positive"] == 4
    assert 0 <= final["dice/dice_all"] <= 1
    assert (work / "iter_2.pth").is_file()


def test_lung_dataset_splits_the_masked_images(shared_data: Path) -> None:
    from optiml_plugin.mm.seg import ChestXrayLungDataset

    root = shared_data / "covid_cxr_lungseg"
    prefix = dict(img_path="images", seg_map_path="masks")
    parts = {}
    for split in (None, "train", "val"):
        ds = ChestXrayLungDataset(
            data_root=str(root), data_prefix=prefix, split=split, pipeline=[]
        )
        parts[split] = {ds.get_data_info(i)["img_path"] for i in range(len(ds))}
    masks = {p.stem for p in (root / "masks").glob("*.png")}
    assert {Path(p).stem for p in parts[None]} == masks and len(masks) == 90
    assert (
        parts["train"] | parts["val"] == parts[None]
        and not parts["train"] & parts["val"]
    )
    assert 8 <= len(parts["val"]) <= 30
