"""The real evaluation sets of the ``cpu-real`` preset, decoded once at the
evaluation size and kept as ``uint8`` tensors (a few hundred MB).

- ``mcsz``: Montgomery + Shenzhen (``mcsz_lungseg``), its fixed train / test
  split: TB label and human lung mask;
- ``mcsz_crop``: the same images and masks through one fixed random crop each
  (seeded by the image's index), so that the lungs are no longer where a
  position prior expects them;
- ``nih``: the NIH ChestX-ray14 sample, pneumonia vs no finding, its
  patient-disjoint split;
- ``tbx``: TBX11K TB images, TBX11K's train / val split, with a (g, g) label per
  map cell: 1 when the cell's centre lies inside a TB box or a box's centre lies
  inside the cell (every box marks at least one cell);
- ``pairs``: two augmented views (the pretraining transform at the evaluation
  size) of each held-out image, with their cell grids, for the diagnostics.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from optiml_plugin.data.io import read_image
from optiml_plugin.transforms.cvsim_transform import CVSIMTransform

FOLDERS = ("mcsz_lungseg", "nih_cxr_sample", "tbx11k_tb_detection")
CROP_SCALE = (0.25, 0.6)
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def check_data_root(root: Path) -> None:
    """Raises FileNotFoundError naming what is missing under ``root``."""
    missing = [f for f in (*FOLDERS, "cxr_pool") if not (root / f).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{root}: missing {', '.join(missing)}; the cpu-real preset reads the "
            "shared chest X-ray folders (give their parent with --data-root)."
        )


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_held_out(root: Path, path: Path) -> Path:
    """Writes the held-out image list of the diagnostics: the test splits of
    mcsz_lungseg and nih_cxr_sample (never in ``cxr_pool``), root-relative."""
    lines = []
    for folder in ("mcsz_lungseg", "nih_cxr_sample"):
        rows = _rows(root / folder / "labels.csv")
        lines += [f"{folder}/images/{r['file_name']}" for r in rows if r["split"] == "test"]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _resize(x: Tensor, size: int, mode: str = "bilinear") -> Tensor:
    """(H, W) float in [0, 1] or labels -> (size, size)."""
    if mode == "nearest-exact":
        return F.interpolate(x[None, None].float(), size=(size, size), mode=mode)[0, 0]
    return F.interpolate(
        x[None, None], size=(size, size), mode="bilinear", antialias=True
    )[0, 0].clamp(0, 1)


def to_uint8(x: Tensor) -> Tensor:
    """[0, 1] floats -> uint8."""
    return (x * 255).round().to(torch.uint8)


def normalize(images: Tensor) -> Tensor:
    """(N, 1, H, W) uint8 -> (N, 3, H, W) float, ImageNet statistics (as pretraining)."""
    x = images.float().div(255).expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGE_MEAN)[None, :, None, None]
    std = torch.tensor(IMAGE_STD)[None, :, None, None]
    return (x - mean) / std


def fixed_crop(index: int, height: int, width: int) -> tuple[int, int, int, int]:
    """The (top, left, h, w) crop of image ``index``: a square of CROP_SCALE of
    the area at a random place, the same in every run."""
    rng = np.random.default_rng(10_000 + index)
    area = rng.uniform(*CROP_SCALE) * height * width
    side = int(min(height, width, round(area**0.5)))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    return top, left, side, side


def load_mcsz(root: Path, size: int) -> dict[str, dict[str, Tensor]]:
    """``mcsz`` and ``mcsz_crop`` train / test sets: images, ``tb``, ``mask``."""
    out: dict[str, dict[str, list]] = {}
    for i, row in enumerate(_rows(root / "mcsz_lungseg" / "labels.csv")):
        image = torch.from_numpy(
            read_image(root / "mcsz_lungseg" / "images" / row["file_name"])
        )
        mask_path = root / "mcsz_lungseg" / "masks" / row["mask_file"]
        with Image.open(mask_path) as m:
            mask = torch.from_numpy((np.asarray(m.convert("L")) > 0).astype(np.uint8))
        if mask.shape != image.shape:
            raise ValueError(
                f"{mask_path}: mask {tuple(mask.shape)} does not match its image "
                f"{tuple(image.shape)}."
            )
        top, left, h, w = fixed_crop(i, *image.shape)
        crops = {
            "mcsz": (image, mask),
            "mcsz_crop": (image[top : top + h, left : left + w], mask[top : top + h, left : left + w]),
        }  # fmt: skip
        for name, (img, msk) in crops.items():
            d = out.setdefault(
                f"{name}_{row['split']}", {"images": [], "tb": [], "mask": []}
            )
            d["images"].append(to_uint8(_resize(img, size)))
            d["mask"].append(_resize(msk, size, "nearest-exact").to(torch.uint8))
            d["tb"].append(int(row["tb"]))
    return {k: _stack(v) for k, v in out.items()}


def load_nih(root: Path, size: int) -> dict[str, dict[str, Tensor]]:
    """``nih`` train / test: images and ``pneumonia``."""
    out: dict[str, dict[str, list]] = {}
    for row in _rows(root / "nih_cxr_sample" / "labels.csv"):
        image = torch.from_numpy(
            read_image(root / "nih_cxr_sample" / "images" / row["file_name"])
        )
        d = out.setdefault(f"nih_{row['split']}", {"images": [], "pneumonia": []})
        d["images"].append(to_uint8(_resize(image, size)))
        d["pneumonia"].append(int(row["pneumonia"]))
    return {k: _stack(v) for k, v in out.items()}


def cell_labels(
    boxes: list[list[float]], width: float, height: float, grid: int
) -> Tensor:
    """(grid, grid) 0/1: a cell is positive when its centre lies inside a box
    (COCO ``[x, y, w, h]`` in pixels of a ``width x height`` image) or a box's
    centre lies inside it."""
    labels = torch.zeros(grid, grid, dtype=torch.uint8)
    centres = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
    cx, cy = centres * width, centres * height
    for x, y, w, h in boxes:
        inside_x = (cx >= x) & (cx <= x + w)
        inside_y = (cy >= y) & (cy <= y + h)
        labels |= (inside_y[:, None] & inside_x[None, :]).to(torch.uint8)
        col = min(grid - 1, int((x + w / 2) / width * grid))
        row = min(grid - 1, int((y + h / 2) / height * grid))
        labels[row, col] = 1
    return labels


def load_tbx(root: Path, size: int, grid: int) -> dict[str, dict[str, Tensor]]:
    """``tbx`` train / val sets: images and per-cell TB-box labels."""
    folder = root / "tbx11k_tb_detection"
    coco = json.loads((folder / "instances.json").read_text())
    boxes: dict[int, list] = {}
    for ann in coco["annotations"]:
        boxes.setdefault(ann["image_id"], []).append(ann["bbox"])
    split = {r["file_name"]: r["split"] for r in _rows(folder / "labels.csv")}
    out: dict[str, dict[str, list]] = {}
    for info in coco["images"]:
        name = info["file_name"]
        if name not in split:
            raise ValueError(f"{folder / 'labels.csv'}: no split for {name}.")
        image = torch.from_numpy(read_image(folder / "images" / name))
        h, w = image.shape
        if (w, h) != (info["width"], info["height"]):
            raise ValueError(
                f"{folder / 'images' / name}: {w}x{h}, instances.json says "
                f"{info['width']}x{info['height']}."
            )
        d = out.setdefault(f"tbx_{split[name]}", {"images": [], "cells": []})
        d["images"].append(to_uint8(_resize(image, size)))
        d["cells"].append(cell_labels(boxes.get(info["id"], []), w, h, grid))
    return {k: _stack(v) for k, v in out.items()}


def load_pairs(
    root: Path, size: int, grid: int, count: int, seed: int = 0
) -> dict[str, Tensor]:
    """Two views of each of ``count`` held-out images (mcsz and nih test splits,
    alternating), by the pretraining transform at ``size``, with their grids."""
    paths = {
        f: [root / f / "images" / r["file_name"] for r in _rows(root / f / "labels.csv") if r["split"] == "test"]
        for f in ("mcsz_lungseg", "nih_cxr_sample")
    }  # fmt: skip
    chosen = [p for pair in zip(*paths.values(), strict=False) for p in pair][:count]
    transform = CVSIMTransform(size=size, grid_size=grid)
    torch.manual_seed(seed)
    va, vb, ga, gb = [], [], [], []
    for path in chosen:
        a, b, grid_a, grid_b = transform(
            Image.fromarray(to_uint8(torch.from_numpy(read_image(path))).numpy())
        )
        va.append(a)
        vb.append(b)
        ga.append(grid_a)
        gb.append(grid_b)
    return {
        "view_a": torch.stack(va), "view_b": torch.stack(vb),
        "grid_a": torch.stack(ga), "grid_b": torch.stack(gb),
    }  # fmt: skip


def _stack(d: dict[str, list]) -> dict[str, Tensor]:
    out = {}
    for k, v in d.items():
        out[k] = (
            torch.stack(v)[:, None]
            if k == "images"
            else (torch.stack(v) if isinstance(v[0], Tensor) else torch.tensor(v))
        )
    return out


def load_all(root: Path, cache: Path, size: int = 224, pairs: int = 48) -> dict:
    """Every evaluation set; decoded once and kept in ``cache`` (tensors only)."""
    if cache.is_file():
        return torch.load(cache, weights_only=True)
    check_data_root(root)
    grid = size // 32
    data = {
        **load_mcsz(root, size),
        **load_nih(root, size),
        **load_tbx(root, size, grid),
        "pairs": load_pairs(root, size, grid, pairs),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".partial")
    torch.save(data, tmp)
    tmp.replace(cache)
    return data
