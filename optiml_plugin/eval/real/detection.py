"""Faster R-CNN fine-tuning on TBX11K's boxes (the ``cpu-real`` preset's
transfer check): the same short CPU schedule for every starting backbone,
through ``tools/train.py configs/mmdet/optiml_fasterrcnn_tbx11k.py``."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "configs" / "mmdet" / "optiml_fasterrcnn_tbx11k.py"


def write_tbx11k_coco(source: Path, out: Path) -> Path:
    """Writes ``out/annotations/{train,val}.json`` (one category, ``tuberculosis``;
    file names ``images/...``) and links ``out/images`` to ``source/images``.

    Args:
        source: A ``tbx11k_tb_detection`` folder (``instances.json``, ``labels.csv``
            with a ``split`` column, ``images/``).
        out: The data root of the detection config.

    Raises:
        ValueError: An image of ``instances.json`` has no split in ``labels.csv``.
    """
    coco = json.loads((source / "instances.json").read_text())
    with open(source / "labels.csv", newline="") as f:
        split = {r["file_name"]: r["split"] for r in csv.DictReader(f)}
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    link = out / "images"
    if not link.exists():
        link.symlink_to((source / "images").resolve())
    for part in ("train", "val"):
        images = []
        for image in coco["images"]:
            if image["file_name"] not in split:
                raise ValueError(
                    f"{source / 'labels.csv'}: no split for {image['file_name']}."
                )
            if split[image["file_name"]] == part:
                images.append({**image, "file_name": f"images/{image['file_name']}"})
        ids = {i["id"] for i in images}
        anns = [
            {**a, "category_id": 1} for a in coco["annotations"] if a["image_id"] in ids
        ]
        doc = {
            "images": images,
            "annotations": anns,
            "categories": [{"id": 1, "name": "tuberculosis", "supercategory": "tb"}],
        }
        (out / "annotations" / f"{part}.json").write_text(json.dumps(doc))
    return out


def finetune_config(backbone: Path, iters: int, batch: int) -> str:
    """A config deriving from the TBX11K recipe: ResNet-18 FPN from ``backbone``,
    ``iters`` iterations of ``batch`` images (warm-up, cosine), fewer proposals
    and sampled RoIs than COCO (RoIAlign dominates a CPU step) and one validation
    at the end. The image scale and the loaders are :func:`finetune_options`."""
    warm = max(1, iters // 10)
    return f"""_base_ = {str(CONFIG)!r}
model = dict(
    backbone=dict(depth=18, init_cfg=dict(checkpoint={str(backbone)!r})),
    neck=dict(in_channels=[64, 128, 256, 512]),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128)),
    ),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)),
)
train_dataloader = dict(batch_size={batch})
train_cfg = dict(_delete_=True, type="IterBasedTrainLoop", max_iters={iters}, val_interval={iters})
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end={warm}),
    dict(type="CosineAnnealingLR", by_epoch=False, begin={warm}, end={iters}, T_max={iters - warm}),
]
optim_wrapper = dict(optimizer=dict(lr=0.01))
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval={iters}, max_keep_ckpts=1, save_best=None),
)
log_processor = dict(by_epoch=False)
"""


def finetune_options(scale: int) -> list[str]:
    """``--cfg-options``: the image scale of every pipeline and CPU loaders."""
    loaders = ("train_dataloader", "val_dataloader", "test_dataloader")
    return [
        f"train_dataloader.dataset.pipeline.2.scale=({scale},{scale})",
        f"val_dataloader.dataset.pipeline.1.scale=({scale},{scale})",
        f"test_dataloader.dataset.pipeline.1.scale=({scale},{scale})",
        *[
            f"{n}.{k}"
            for n in loaders
            for k in ("num_workers=0", "persistent_workers=False")
        ],
    ]


def finetune(
    name: str,
    backbone: Path,
    data_root: Path,
    work: Path,
    iters: int = 150,
    scale: int = 384,
    batch: int = 4,
) -> dict:
    """Fine-tunes one backbone (single-thread subprocess) or reuses a finished
    run; returns COCO mAP and mAP@0.5 on TBX11K val and the wall time.

    Raises:
        RuntimeError: Training failed (its log is named).
    """
    out = work / name
    done = out / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    out.mkdir(parents=True, exist_ok=True)
    config = out / "config.py"
    config.write_text(finetune_config(backbone.resolve(), iters, batch))
    argv = [
        sys.executable, str(ROOT / "tools" / "train.py"), str(config),
        "--work-dir", str(out), "--data-root", str(data_root),
        "--cfg-options", *finetune_options(scale),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = out / "train.log"
    start = time.time()
    with open(log, "w") as f:
        proc = subprocess.run(
            argv, env=env, stdout=f, stderr=subprocess.STDOUT, check=False
        )
    if proc.returncode != 0:
        raise RuntimeError(f"fine-tuning {name} failed; see {log}")
    scalars = [
        json.loads(line)
        for path in out.glob("*/vis_data/scalars.json")
        for line in path.read_text().splitlines()
    ]
    losses = [s["loss"] for s in scalars if "loss" in s]
    diverged = not all(math.isfinite(v) for v in losses)
    final = [s for s in scalars if "coco/bbox_mAP" in s]
    if not final and not diverged:
        raise RuntimeError(f"fine-tuning {name}: no validation metrics; see {log}")
    # A diverged run (non-finite loss) may have no metrics: it is reported as such.
    metrics = final[-1] if final else {}
    record = {
        "name": name,
        "backbone": str(backbone),
        "iters": iters,
        "scale": scale,
        "batch": batch,
        "mAP": metrics.get("coco/bbox_mAP"),
        "mAP_50": metrics.get("coco/bbox_mAP_50"),
        "diverged": diverged,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "seconds": time.time() - start,
    }
    done.write_text(json.dumps(record, indent=1))
    return record
