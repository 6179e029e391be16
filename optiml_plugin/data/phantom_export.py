"""Phantom radiographs written to disk in the converters' layouts.

So that the OpenMMLab configs run end to end with no download, the phantom
generator's images, lesion boxes and masks are written in the same layout the
RSNA / SIIM converters produce (:mod:`optiml_plugin.data.converters`):

* ``images/<name>.png``: 8-bit radiographs.
* ``annotations/{train,val}.json``: COCO detection, one category per entry of
  :data:`~optiml_plugin.data.phantom.LESION_CLASSES`.
* ``lesions/<name>.png``: label map, ``0`` background, ``1`` any lesion (the
  SIIM-style binary task).
* ``lungs/<name>.png``: label map, ``0`` background, ``1`` lung.
* ``splits/{train,val}.txt``: image names, one per line.
* ``manifest.json``: the generation settings, written last; a folder whose
  manifest matches is reused as it is.

Several processes (the ranks of a distributed run) may ask for the same folder at
once: the check and the writing happen under an exclusive lock on
``<out>/.phantom.lock`` (``fcntl.flock``; on a local file system), so one process
writes and the others find its manifest, and each file is written under a
temporary name and renamed, so that no reader ever sees a half-written PNG.

:func:`ensure_phantom_dataset` is what the OpenMMLab datasets call: it keeps any
phantom set already in the folder unless settings are given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

try:
    import fcntl
except ImportError:  # not POSIX: no lock
    fcntl = None  # type: ignore[assignment]

from optiml_plugin.data.coco import build_coco, category_list, dumps, subset
from optiml_plugin.data.phantom import LESION_CLASSES, generate_phantom

SPLITS = ("train", "val")


def write_phantom_dataset(
    out: str | Path,
    num_images: int = 64,
    size: int = 256,
    seed: int = 0,
    val_fraction: float = 0.25,
    lesion_prob: float = 0.9,
) -> Path:
    """Writes (or reuses) a phantom detection / segmentation dataset.

    Args:
        out: Output folder.
        num_images: Number of radiographs.
        size: Side of each square image in pixels.
        seed: Phantom ``i`` is generated from seed ``seed + i``.
        val_fraction: Share of images (the last ones) in the ``val`` split.
        lesion_prob: Probability that a phantom has at least one lesion.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If ``num_images < 2`` or ``val_fraction`` leaves a split empty.
    """
    out = Path(out)
    num_val = int(round(num_images * val_fraction))
    if num_images < 2 or not 0 < num_val < num_images:
        raise ValueError(
            f"phantom dataset: num_images={num_images} with val_fraction="
            f"{val_fraction} leaves a split empty"
        )
    settings = {
        "num_images": num_images,
        "size": size,
        "seed": seed,
        "val_fraction": val_fraction,
        "lesion_prob": lesion_prob,
    }
    manifest = out / "manifest.json"
    with _write_lock(out):
        if manifest.is_file() and json.loads(manifest.read_text()) == settings:
            return out
        manifest.unlink(missing_ok=True)  # incomplete until written again
        _write(out, settings)
    return out


def _write(out: Path, settings: dict) -> None:
    num_images, size, seed = (settings[k] for k in ("num_images", "size", "seed"))
    lesion_prob = settings["lesion_prob"]
    num_val = int(round(num_images * settings["val_fraction"]))
    for sub in ("images", "lesions", "lungs", "splits", "annotations"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    images, boxes, names = [], {}, []
    for i in range(num_images):
        name = f"phantom_{seed + i:06d}"
        ph = generate_phantom(seed + i, size=size, lesion_prob=lesion_prob)
        _save_png(ph.image, out / "images" / f"{name}.png")
        _save_png(
            (ph.lesion_mask > 0).astype(np.uint8), out / "lesions" / f"{name}.png"
        )
        _save_png((ph.lung_mask > 0).astype(np.uint8), out / "lungs" / f"{name}.png")
        images.append(
            {
                "key": name,
                "file_name": f"images/{name}.png",
                "width": size,
                "height": size,
            }
        )
        boxes[name] = [
            {
                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                "category_id": int(label) + 1,
            }
            for (x1, y1, x2, y2), label in zip(ph.boxes, ph.box_labels, strict=True)
        ]
        names.append(name)
    coco = build_coco(images, boxes, category_list(list(LESION_CLASSES)))
    split_names = {"train": names[: num_images - num_val], "val": names[-num_val:]}
    for split in SPLITS:
        _save_text(
            "\n".join(split_names[split]) + "\n", out / "splits" / f"{split}.txt"
        )
        part = subset(coco, {f"images/{n}.png" for n in split_names[split]})
        _save_text(dumps(part), out / "annotations" / f"{split}.json")
    _save_text(json.dumps(settings, indent=2) + "\n", out / "manifest.json")


@contextmanager
def _write_lock(out: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``out/.phantom.lock`` (a no-op without fcntl)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".phantom.lock", "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _save_png(array: np.ndarray, path: Path) -> None:
    tmp = _temporary(path)
    Image.fromarray(array).save(tmp, format="PNG")
    os.replace(tmp, path)


def _save_text(text: str, path: Path) -> None:
    tmp = _temporary(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def ensure_phantom_dataset(out: str | Path, settings: dict | None = None) -> Path:
    """Writes a phantom set into ``out`` unless one is there.

    Args:
        out: The folder.
        settings: Keyword arguments of :func:`write_phantom_dataset`. ``None`` keeps
            an existing set whatever its settings, or writes the defaults.
    """
    out = Path(out)
    if settings is None and (out / "manifest.json").is_file():
        return out
    return write_phantom_dataset(out, **(settings or {}))
