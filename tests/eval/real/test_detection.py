"""TBX11K's COCO split for the fine-tuning check, and its config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optiml_plugin.eval.real import detection


def _fixture(root: Path) -> Path:
    src = root / "tbx"
    (src / "images").mkdir(parents=True)
    coco = {
        "images": [{"id": i, "file_name": f"tb{i}.png", "width": 64, "height": 64} for i in (1, 2, 3)],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 3, "bbox": [2, 2, 5, 5], "area": 25, "iscrowd": 0},
            {"id": 3, "image_id": 3, "category_id": 2, "bbox": [3, 3, 5, 5], "area": 25, "iscrowd": 0},
        ],
        "categories": [{"id": k, "name": n} for k, n in ((1, "Active"), (2, "Obsolete"), (3, "Pulmonary"))],
    }  # fmt: skip
    (src / "instances.json").write_text(json.dumps(coco))
    (src / "labels.csv").write_text(
        "file_name,split\ntb1.png,train\ntb2.png,val\ntb3.png,train\n"
    )
    return src


def test_split_and_merged_category(tmp_path: Path) -> None:
    out = detection.write_tbx11k_coco(_fixture(tmp_path), tmp_path / "out")
    train = json.loads((out / "annotations" / "train.json").read_text())
    val = json.loads((out / "annotations" / "val.json").read_text())
    assert [i["file_name"] for i in train["images"]] == [
        "images/tb1.png",
        "images/tb3.png",
    ]
    assert [a["id"] for a in train["annotations"]] == [1, 3]
    assert [a["image_id"] for a in val["annotations"]] == [2]
    assert {a["category_id"] for a in train["annotations"] + val["annotations"]} == {1}
    assert train["categories"] == [
        {"id": 1, "name": "tuberculosis", "supercategory": "tb"}
    ]
    assert (out / "images").resolve() == (tmp_path / "tbx" / "images").resolve()


def test_image_without_split_is_named(tmp_path: Path) -> None:
    src = _fixture(tmp_path)
    (src / "labels.csv").write_text("file_name,split\ntb1.png,train\n")
    with pytest.raises(ValueError, match="no split for tb2.png"):
        detection.write_tbx11k_coco(src, tmp_path / "out")


def test_config_derives_from_the_recipe(tmp_path: Path) -> None:
    import argparse

    from mmengine.config import Config, DictAction

    path = tmp_path / "c.py"
    path.write_text(detection.finetune_config(Path("/x/b.pth"), 40, 2))
    cfg = Config.fromfile(path)
    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg-options", nargs="+", action=DictAction)
    options = parser.parse_args(["--cfg-options", *detection.finetune_options(320)])
    cfg.merge_from_dict(options.cfg_options)
    assert cfg.model.backbone.init_cfg.checkpoint == "/x/b.pth"
    assert (
        cfg.model.backbone.depth == 18 and cfg.model.roi_head.bbox_head.num_classes == 1
    )
    assert cfg.train_cfg == {
        "type": "IterBasedTrainLoop",
        "max_iters": 40,
        "val_interval": 40,
    }
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.train_dataloader.dataset.pipeline[2].scale == (320, 320)
    assert cfg.val_evaluator.ann_file.endswith("annotations/val.json")
    assert cfg.test_dataloader.dataset.ann_file == "annotations/val.json"
    assert cfg.param_scheduler[1].end == 40
    # clipped, as mmdet's fine-tuning recipes (a VICReg backbone diverged without it)
    assert cfg.optim_wrapper.clip_grad.max_norm == 35
    assert cfg.optim_wrapper.optimizer.lr == 0.01


def _fake_training(lines: list[dict]):  # noqa: ANN202
    """A stand-in for tools/train.py that only writes MMEngine's scalars.json."""

    def run(argv: list[str], **kwargs: object) -> object:
        work = Path(argv[argv.index("--work-dir") + 1])
        (work / "20260101_000000" / "vis_data").mkdir(parents=True)
        text = "\n".join(json.dumps(x) for x in lines)
        (work / "20260101_000000" / "vis_data" / "scalars.json").write_text(text)
        return type("Done", (), {"returncode": 0})()

    return run


def test_a_diverged_fine_tuning_is_reported_not_fatal(
    tmp_path: Path, monkeypatch
) -> None:  # noqa: ANN001
    monkeypatch.setattr(detection.subprocess, "run", _fake_training([{"loss": 1.2}, {"loss": float("nan")}]))  # fmt: skip
    r = detection.finetune("vicreg", tmp_path / "b.pth", tmp_path, tmp_path / "ft")
    assert r["diverged"] and r["mAP"] is None and r["loss_first"] == 1.2
    assert json.loads((tmp_path / "ft" / "vicreg" / "done.json").read_text()) == r


def test_a_finite_run_without_metrics_is_an_error(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(detection.subprocess, "run", _fake_training([{"loss": 1.2}]))
    with pytest.raises(RuntimeError, match="no validation metrics"):
        detection.finetune("optiml", tmp_path / "b.pth", tmp_path, tmp_path / "ft")


def test_metrics_of_a_finished_run(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    lines = [
        {"loss": 1.0},
        {"loss": 0.5},
        {"coco/bbox_mAP": 0.1, "coco/bbox_mAP_50": 0.3},
    ]
    monkeypatch.setattr(detection.subprocess, "run", _fake_training(lines))
    r = detection.finetune(
        "optiml", tmp_path / "b.pth", tmp_path, tmp_path / "ft", iters=7
    )
    assert (r["mAP"], r["mAP_50"], r["diverged"], r["loss_last"], r["iters"]) == (
        0.1,
        0.3,
        False,
        0.5,
        7,
    )
    assert "max_iters=7" in (tmp_path / "ft" / "optiml" / "config.py").read_text()
