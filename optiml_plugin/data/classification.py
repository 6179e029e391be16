"""Multi-label classification dataset over the NIH tables (``train.csv`` ...)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from optiml_plugin.data.converters.nih import FINDINGS
from optiml_plugin.data.io import read_image


class ChestXrayClassificationDataset(Dataset):
    """Images and multi-hot labels of the 14 findings from a converter table.

    Args:
        table_csv: A table written by the NIH converter (``image, path,
            patient`` and one 0/1 column per finding); relative ``path`` values
            are resolved against the table's folder.
        transform: Applied to each image, a float32 (H, W) array in [0, 1]
            (see :func:`optiml_plugin.data.io.read_image`).
        split_file: Optional list of image names (e.g. ``splits/train_1pct.txt``)
            restricting the rows.

    Returns from ``__getitem__``: ``(transform(image), labels)`` with
    ``labels`` a float32 tensor of shape (14,), in the order of ``FINDINGS``.
    """

    classes = FINDINGS

    def __init__(
        self,
        table_csv: str | Path,
        transform: Callable[[np.ndarray], Any] | None = None,
        split_file: str | Path | None = None,
    ) -> None:
        table_csv = Path(table_csv)
        keep = None
        if split_file is not None:
            keep = set(Path(split_file).read_text().split())
        self.samples: list[tuple[Path, torch.Tensor]] = []
        with open(table_csv, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("path", *FINDINGS) if c not in reader.fieldnames]
            if missing:
                raise ValueError(f"{table_csv}: missing columns {missing}")
            for row in reader:
                if keep is not None and row["image"] not in keep:
                    continue
                path = Path(row["path"])
                if not path.is_absolute():
                    path = table_csv.parent / path
                labels = torch.tensor([float(row[c]) for c in FINDINGS])
                self.samples.append((path, labels))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        path, labels = self.samples[index]
        image = read_image(path)
        return (self.transform(image) if self.transform else image), labels.clone()
