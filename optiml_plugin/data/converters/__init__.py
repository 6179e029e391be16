"""Converters from the public chest X-ray datasets' original layout.

One module per dataset (:mod:`.nih`, :mod:`.rsna`, :mod:`.siim`, :mod:`.vindr`),
each with a ``convert(...) -> dict`` returning the manifest it also writes to
``<out>/manifest.json``. The helpers here are shared by all four:

* :class:`Report` collects counts and skipped inputs (file + reason); with
  ``strict=True`` the first problem raises :class:`ConversionError` instead.
* Paths written into tables and COCO files are relative to the output folder
  (POSIX separators), so an output folder and its inputs can move together.
* Splits are by group (patient), seeded with ``random.Random(seed)`` over the
  sorted group names, so they are reproducible and no group is in two splits.
* ``manifest.json`` holds counts, skipped files with reasons, the options and
  the sha256 of every output file; nothing time- or machine-dependent, so
  re-running on the same input gives byte-identical outputs.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optiml_plugin.data.coco import write_json
from optiml_plugin.data.io import (
    ImageReadError,
    read_image,
    resize_image,
    write_png,
)


class ConversionError(RuntimeError):
    """A converter cannot go on (bad input, or a problem under ``strict``)."""


@dataclass
class Report:
    """Counts and skipped inputs of one conversion."""

    strict: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def add(self, key: str, n: int = 1) -> None:
        """Adds ``n`` to the count ``key``."""
        self.counts[key] = self.counts.get(key, 0) + n

    def skip(self, item: str | Path, reason: str, strict: bool = True) -> None:
        """Records a skipped input, or raises ``ConversionError`` when strict.

        ``strict=False`` records it even in strict mode (an expected gap, e.g.
        an image listed in no split, rather than a missing or corrupt file).
        """
        if self.strict and strict:
            raise ConversionError(f"{item}: {reason} (--strict)")
        self.skipped.append({"item": str(item), "reason": reason})


def index_files(
    root: str | Path,
    extensions: Iterable[str],
    by: str = "stem",
    exclude: str | Path | None = None,
) -> dict:
    """Maps file stems (or names, ``by="name"``) to paths, searching ``root`` recursively.

    Files under ``exclude`` (the output folder, when it lies inside ``root``)
    are ignored.

    Raises:
        ConversionError: ``root`` is not a folder, or two files share a key.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConversionError(f"{root}: images folder not found")
    extensions = tuple(e.lower() for e in extensions)
    index: dict[str, Path] = {}
    skip = Path(exclude).resolve() if exclude is not None else None
    for path in sorted(root.rglob("*")):
        if skip is not None and path.resolve().is_relative_to(skip):
            continue
        if path.suffix.lower() in extensions and path.is_file():
            key = path.stem if by == "stem" else path.name
            if key in index:
                raise ConversionError(f"{key}: found twice ({index[key]}, {path})")
            index[key] = path
    return index


def load_image(report: Report, key: str, path: Path | None) -> np.ndarray | None:
    """Reads an image referenced by an annotation file; reports and returns None if it cannot."""
    if path is None:
        report.skip(key, "image file missing")
        return None
    try:
        return read_image(path)
    except ImageReadError as err:
        report.skip(key, f"unreadable image: {err}")
        return None


def relative(path: str | Path, out: str | Path) -> str:
    """``path`` relative to ``out`` with POSIX separators."""
    return Path(os.path.relpath(Path(path).resolve(), Path(out).resolve())).as_posix()


def resized_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    """The (width, height) whose longest side is ``size`` (unchanged if ``size`` is None)."""
    if not size:
        return width, height
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def scale_box(bbox: list[float], sx: float, sy: float) -> list[float]:
    """Scales a COCO [x, y, w, h] box by (sx, sy)."""
    x, y, w, h = bbox
    return [x * sx, y * sy, w * sx, h * sy]


def save_copy(
    image: np.ndarray, path: Path, resize: int | None, bits: int = 16
) -> tuple[int, int, float, float]:
    """Writes an image as PNG, down-scaled so its longest side is ``resize`` if given.

    Returns:
        (width, height, sx, sy): the written size and the scale factors for
        coordinates.
    """
    height, width = image.shape
    new_w, new_h = resized_size(width, height, resize)
    if (new_w, new_h) != (width, height):
        image = resize_image(image, (new_w, new_h))
    write_png(image, path, bits=bits)
    return new_w, new_h, new_w / width, new_h / height


def assign_splits(
    groups: dict[str, str], fractions: dict[str, float], seed: int
) -> dict[str, str]:
    """Assigns items to splits by group (e.g. patient), seeded and reproducible.

    Args:
        groups: Item -> group; all items of a group go to the same split.
        fractions: Split name -> fraction of groups, e.g. ``{"val": 0.1}``;
            the remaining groups go to ``"train"``.
        seed: Seed of ``random.Random`` shuffling the sorted group names.

    Returns:
        Item -> split name.
    """
    names = sorted(set(groups.values()))
    random.Random(seed).shuffle(names)
    split_of: dict[str, str] = {}
    start = 0
    for split, fraction in sorted(fractions.items()):
        n = round(fraction * len(names))
        for name in names[start : start + n]:
            split_of[name] = split
        start += n
    for name in names[start:]:
        split_of[name] = "train"
    return {item: split_of[group] for item, group in groups.items()}


def nested_subsets(
    items: list[str], percents: Iterable[float], seed: int
) -> dict[float, list[str]]:
    """Nested label-fraction subsets: each is a prefix of one seeded shuffle.

    A subset of p % holds ``ceil(p / 100 * len(items))`` items (at least one
    when there are items), so smaller subsets are inside larger ones.
    """
    order = sorted(items)
    random.Random(seed).shuffle(order)
    out = {}
    for p in percents:
        n = min(len(order), max(1 if order else 0, math.ceil(p / 100 * len(order))))
        out[p] = sorted(order[:n])
    return out


def write_lines(lines: Iterable[str], path: Path) -> Path:
    """Writes one item per line (final newline), folders created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{line}\n" for line in lines)
    path.write_text(text)
    return path


def sha256(path: Path) -> str:
    """The sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def finish(
    out: Path,
    dataset: str,
    report: Report,
    options: dict[str, Any],
    outputs: Iterable[Path],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes ``manifest.json``, prints the counts and returns the manifest."""
    manifest = {
        "dataset": dataset,
        "counts": dict(sorted(report.counts.items())),
        "skipped": sorted(report.skipped, key=lambda d: (d["item"], d["reason"])),
        "options": options,
        "outputs": {relative(p, out): sha256(p) for p in sorted(set(outputs))},
    }
    manifest["counts"]["skipped"] = len(report.skipped)
    manifest.update(extra or {})
    write_json(manifest, out / "manifest.json")
    counts = ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
    print(f"{dataset}: {counts} -> {out}")
    for item in manifest["skipped"][:20]:
        print(f"  skipped {item['item']}: {item['reason']}")
    if len(manifest["skipped"]) > 20:
        print(f"  ... {len(manifest['skipped']) - 20} more in manifest.json")
    return manifest
