"""``tools/benchmark.py --preset paper`` smoke-tested on a tiny NIH ChestX-ray14
in its original layout (converted by tools/prepare_data.py nih), every GPU-scale
setting overridden except those under test."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from optiml_plugin.data.prepare import main as prepare
from optiml_plugin.eval.benchmark import PAPER_PRESET, main

HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
    "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n"
)


def _nih(tmp_path: Path) -> Path:
    """16 patients, 2 images each; patients 13-16 are the official test list."""
    images = tmp_path / "src" / "images_001" / "images"
    images.mkdir(parents=True)
    rows, train_val, test = [], [], []
    rng = np.random.default_rng(0)
    for p in range(1, 17):
        for k in range(2):
            name = f"{p:08d}_{k:03d}.png"
            label = "Effusion" if (p + k) % 2 else "No Finding"
            rows.append(f"{name},{label},{k},{p},50,M,PA,64,64,0.1,0.1\n")
            (test if p > 12 else train_val).append(name)
            Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(images / name)  # fmt: skip
    src = tmp_path / "src"
    (src / "Data_Entry_2017.csv").write_text(HEADER + "".join(rows))
    (src / "train_val_list.txt").write_text("\n".join(train_val) + "\n")
    (src / "test_list.txt").write_text("\n".join(test) + "\n")
    out = tmp_path / "nih"
    assert prepare(["nih", "--entries", str(src / "Data_Entry_2017.csv"),
                    "--train-val-list", str(src / "train_val_list.txt"),
                    "--test-list", str(src / "test_list.txt"),
                    "--images", str(src), "--out", str(out)]) == 0  # fmt: skip
    return out


def test_paper_preset_on_a_tiny_nih(tmp_path: Path) -> None:
    nih = _nih(tmp_path)
    out, work = tmp_path / "out", tmp_path / "work"
    argv = [
        "--preset", "paper", "--data", f"nih:{nih}",
        "--eval-data", f"nih:{nih}/train.csv,{nih}/test.csv",
        "--backbone", "resnet18", "--image-size", "64", "--batch-size", "4",
        "--max-steps", "2", "--devices", "1", "--precision", "32-true",
        "--num-workers", "0", "--seeds", "0", "--methods", "optiml",
        "--skip-compute", "--fractions", "1.0", "--device", "cpu", "--no-tsne",
        "--probe-epochs", "5", "--dense-probe-epochs", "2",
        "--out", str(out), "--work", str(work),
    ]  # fmt: skip
    assert main(argv) == 0
    r = json.loads((out / "benchmark.json").read_text())
    s = r["settings"]
    # the preset's settings that were not overridden
    assert (s["optimizer"], s["lr"], s["weight_decay"], s["epochs"]) == (
        "lars",
        0.2,
        1e-6,
        300,
    )
    assert s["ablations"] == [] and s["backbone"] == "resnet18"
    assert "--precision" in s["pretrain_options"] and "lars" in s["pretrain_options"]
    # pretraining read the training table's images only, never the test list's
    listed = {Path(p).name for p in (work / "pretrain_images.txt").read_text().split()}
    with open(nih / "train.csv", newline="") as f:
        train = {Path(row["path"]).name for row in csv.DictReader(f)}
    assert listed == train and not any(
        n.startswith(("00000013", "00000016")) for n in listed
    )
    run = next(x for x in r["runs"] if x["name"] == "optiml")
    assert run["linear"]["100%"]["Effusion"] is not None
    assert PAPER_PRESET[PAPER_PRESET.index("--backbone") + 1] == "resnet50"
