"""Labelled evaluation data: classification (image, labels) and segmentation
(image, mask) sets for the transfer and dense probes.

- phantoms (:mod:`optiml_plugin.data.phantom`): image labels over
  ``LESION_CLASSES`` and a (background, lung, lesion) mask, from seeds disjoint
  from any pretraining set;
- ``covid_cxr_lungseg`` (a folder with ``images/``, ``masks/``, ``labels.csv``):
  lung masks, split by patient;
- ``tbx11k_tb_detection`` (``images/``, ``labels.csv``): multi-label active /
  latent tuberculosis, split by TBX11K's own train / val column;
- NIH ChestX-ray14 tables written by ``tools/prepare_data.py nih``.

Masks use 255 for pixels to ignore.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from optiml_plugin.data.classification import ChestXrayClassificationDataset
from optiml_plugin.data.io import read_image
from optiml_plugin.data.phantom import LESION_CLASSES, PhantomDataset
from optiml_plugin.eval.transform import EvalTransform, resize_mask

IGNORE_INDEX = 255
PHANTOM_SEG_CLASSES = ("background", "lung", "lesion")
LUNG_SEG_CLASSES = ("background", "lung")
TB_CLASSES = ("active_tb", "latent_tb")
# Phantom seeds of the evaluation sets; pretraining uses small seeds (0, 1, 2, ...).
PHANTOM_TRAIN_SEED = 1000
PHANTOM_TEST_SEED = 2000


class PhantomEvalDataset(Dataset):
    """Phantoms as ``(image, labels, mask)`` for both probes.

    Args:
        num_images: Number of phantoms.
        size: Side of the generated phantoms.
        image_size: Side of the evaluation images and masks.
        seed: Dataset seed (see :class:`PhantomDataset`).
        lesion_prob: Probability that a phantom has any lesion.
        lesion_scale: Size factor of nodules and opacities.

    ``labels`` is the float multi-hot over ``LESION_CLASSES``; ``mask`` is
    (image_size, image_size) int64: 0 background, 1 lung, 2 lesion.
    """

    classes = LESION_CLASSES
    seg_classes = PHANTOM_SEG_CLASSES

    def __init__(
        self,
        num_images: int,
        size: int = 256,
        image_size: int = 224,
        seed: int = PHANTOM_TRAIN_SEED,
        lesion_prob: float = 0.5,
        lesion_scale: float = 1.0,
    ) -> None:
        self.phantoms = PhantomDataset(
            num_images=num_images,
            size=size,
            seed=seed,
            lesion_prob=lesion_prob,
            lesion_scale=lesion_scale,
        )
        self.transform = EvalTransform(image_size)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.phantoms)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        p = self.phantoms.phantom(index)
        mask = np.where(p.lesion_mask > 0, 2, (p.lung_mask > 0).astype(np.uint8))
        return (
            self.transform(p.image),
            torch.from_numpy(p.image_labels),
            resize_mask(mask, self.image_size),
        )


class LungSegmentationDataset(Dataset):
    """``covid_cxr_lungseg``-style folder as ``(image, mask)``; only masked images.

    Args:
        root: Folder with ``images/``, ``masks/`` (0 background, 1 lung, 255
            ignore) and ``labels.csv`` (``file_name``, ``has_mask``, ``patientid``).
        split: ``"train"``, ``"test"`` or ``"all"``.
        image_size: Side of the evaluation images and masks.
        test_fraction: Share of the patients in the test split.
        split_seed: Seed of the patient split.
    """

    seg_classes = LUNG_SEG_CLASSES

    def __init__(
        self,
        root: str | Path,
        split: str = "all",
        image_size: int = 224,
        test_fraction: float = 0.3,
        split_seed: int = 0,
    ) -> None:
        root = Path(root)
        with open(root / "labels.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["has_mask"] in ("1", "True")]
        if not rows:
            raise FileNotFoundError(f"{root}: no masked images in labels.csv")
        patients = sorted({r["patientid"] for r in rows})
        random.Random(split_seed).shuffle(patients)
        test = set(patients[: max(1, round(test_fraction * len(patients)))])
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be train, test or all, got {split!r}.")
        keep = {
            "all": rows,
            "test": [r for r in rows if r["patientid"] in test],
            "train": [r for r in rows if r["patientid"] not in test],
        }[split]
        self.files = [
            (root / "images" / r["file_name"], root / "masks" / r["file_name"])
            for r in keep
        ]
        self.transform = EvalTransform(image_size)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image_path, mask_path = self.files[index]
        with Image.open(mask_path) as m:
            mask = np.asarray(m.convert("L"))
        return self.transform(read_image(image_path)), resize_mask(
            mask, self.image_size
        )


class TBClassificationDataset(Dataset):
    """``tbx11k_tb_detection``-style folder as ``(image, labels)`` over
    :data:`TB_CLASSES` (multi-label: an image may show both).

    Args:
        root: Folder with ``images/`` and ``labels.csv`` (``file_name``,
            ``active_tb``, ``latent_tb``, ``tbx11k_split``).
        split: ``"train"`` (TBX11K train), ``"test"`` (TBX11K val) or ``"all"``.
        image_size: Side of the evaluation images.
    """

    classes = TB_CLASSES

    def __init__(
        self, root: str | Path, split: str = "all", image_size: int = 224
    ) -> None:
        root = Path(root)
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be train, test or all, got {split!r}.")
        wanted = {"train": ("train",), "test": ("val",), "all": ("train", "val")}
        with open(root / "labels.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["tbx11k_split"] in wanted[split]]
        self.samples = [
            (
                root / "images" / r["file_name"],
                torch.tensor([float(r[c]) for c in TB_CLASSES]),
            )
            for r in rows
        ]
        self.transform = EvalTransform(image_size)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        path, labels = self.samples[index]
        return self.transform(read_image(path)), labels.clone()


@dataclass
class EvalData:
    """Train / test sets of the two probes (None where a source has no such task)."""

    cls_train: Dataset | None = None
    cls_test: Dataset | None = None
    classes: tuple[str, ...] = ()
    seg_train: Dataset | None = None
    seg_test: Dataset | None = None
    seg_classes: tuple[str, ...] = ()
    description: str = ""


def build_eval_data(
    source: str,
    image_size: int = 224,
    num_train: int = 384,
    num_test: int = 192,
    phantom_size: int = 256,
    lesion_scale: float = 1.0,
) -> EvalData:
    """Returns the evaluation sets named by ``source``.

    Args:
        source: ``phantom``; ``covid:ROOT`` (lung masks); ``tbx11k:ROOT`` (TB
            labels); ``shared:ROOT`` (both, from ``ROOT/covid_cxr_lungseg`` and
            ``ROOT/tbx11k_tb_detection``); ``nih:TRAIN.csv,TEST.csv`` (tables of
            the NIH converter).
        image_size: Side of the evaluation images.
        num_train: Phantom training images of the probes.
        num_test: Phantom test images.
        phantom_size: Side of the generated phantoms.
        lesion_scale: Size factor of the phantoms' nodules and opacities.
    """
    kind, _, arg = source.partition(":")
    if kind == "phantom":
        train = PhantomEvalDataset(
            num_train, phantom_size, image_size, PHANTOM_TRAIN_SEED,
            lesion_scale=lesion_scale,
        )  # fmt: skip
        test = PhantomEvalDataset(
            num_test, phantom_size, image_size, PHANTOM_TEST_SEED,
            lesion_scale=lesion_scale,
        )  # fmt: skip
        return EvalData(
            train, test, LESION_CLASSES, train, test, PHANTOM_SEG_CLASSES,
            f"phantoms ({num_train} train / {num_test} test, {phantom_size} px, "
            f"lesion scale {lesion_scale:g})",
        )  # fmt: skip
    if kind in ("covid", "tbx11k", "shared") and not arg:
        raise ValueError(f"{source}: give the folder, e.g. {kind}:/path")
    data = EvalData()
    if kind in ("tbx11k", "shared"):
        root = Path(arg) / "tbx11k_tb_detection" if kind == "shared" else Path(arg)
        data.cls_train = TBClassificationDataset(root, "train", image_size)
        data.cls_test = TBClassificationDataset(root, "test", image_size)
        data.classes = TB_CLASSES
        data.description += f"TB labels from {root} (TBX11K train / val split)"
    if kind in ("covid", "shared"):
        root = Path(arg) / "covid_cxr_lungseg" if kind == "shared" else Path(arg)
        data.seg_train = LungSegmentationDataset(root, "train", image_size)
        data.seg_test = LungSegmentationDataset(root, "test", image_size)
        data.seg_classes = LUNG_SEG_CLASSES
        sep = "; " if data.description else ""
        data.description += f"{sep}lung masks from {root} (70/30 split by patient)"
    if kind == "nih":
        train_csv, _, test_csv = arg.partition(",")
        if not test_csv:
            raise ValueError(f"{source}: give nih:TRAIN.csv,TEST.csv")
        transform = EvalTransform(image_size)
        data.cls_train = ChestXrayClassificationDataset(train_csv, transform)
        data.cls_test = ChestXrayClassificationDataset(test_csv, transform)
        data.classes = tuple(ChestXrayClassificationDataset.classes)
        data.description = f"NIH ChestX-ray14 tables {train_csv}, {test_csv}"
    if not data.description:
        raise ValueError(
            f"unknown evaluation data {source!r}: phantom, covid:ROOT, tbx11k:ROOT, "
            "shared:ROOT or nih:TRAIN.csv,TEST.csv"
        )
    return data


def materialize(dataset: Dataset) -> TensorDataset:
    """Reads every item once and keeps the stacked tensors in memory (for data
    that several backbones are evaluated on)."""
    items = [dataset[i] for i in range(len(dataset))]
    return TensorDataset(*(torch.stack(parts) for parts in zip(*items, strict=True)))
