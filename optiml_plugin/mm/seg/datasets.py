"""Chest X-ray segmentation datasets for mmseg.

Layout (what ``tools/prepare_data.py siim`` writes, and what
``../shared/data/covid_cxr_lungseg`` already is): ``images/<name>.png`` (or DICOM),
``masks/<name>.png`` label maps (``0`` background, ``1`` foreground, ``255``
ignore), and optionally ``splits/<split>.txt`` listing names. Pair them with
``LoadChestXray`` in the pipeline.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path
from typing import Any

from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from optiml_plugin.data.phantom_export import ensure_phantom_dataset


@DATASETS.register_module()
class SIIMPneumothoraxDataset(BaseSegDataset):
    """SIIM-ACR Pneumothorax: background / pneumothorax."""

    METAINFO = {
        "classes": ("background", "pneumothorax"),
        "palette": [[0, 0, 0], [220, 20, 60]],
    }

    def __init__(
        self, img_suffix: str = ".png", seg_map_suffix: str = ".png", **kwargs: Any
    ):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)


@DATASETS.register_module()
class ChestXrayLungDataset(BaseSegDataset):
    """Lung fields: background / lung.

    Without ``ann_file``, every image in ``data_prefix.img_path`` that has a mask is
    used (images without one are counted in the log, not loaded), and ``split``
    picks a stable subset by a hash of the name.

    Args:
        split: ``None`` (all), ``'train'`` or ``'val'``; only without ``ann_file``.
        val_fraction: Share of names that hash into ``'val'``.
        **kwargs: :class:`mmseg.datasets.BaseSegDataset` arguments.
    """

    METAINFO = {
        "classes": ("background", "lung"),
        "palette": [[0, 0, 0], [0, 130, 200]],
    }

    def __init__(
        self,
        img_suffix: str = ".png",
        seg_map_suffix: str = ".png",
        split: str | None = None,
        val_fraction: float = 0.2,
        **kwargs: Any,
    ) -> None:
        if split not in (None, "train", "val"):
            raise ValueError(
                f"ChestXrayLungDataset: split must be None, 'train' or 'val', got {split!r}"
            )
        self.split = split
        self.val_fraction = val_fraction
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

    def load_data_list(self) -> list[dict[str, Any]]:
        data_list = super().load_data_list()
        if self.ann_file:
            return data_list
        with_mask = [d for d in data_list if Path(d["seg_map_path"]).is_file()]
        if len(with_mask) < len(data_list):
            print_log(
                f"ChestXrayLungDataset: {len(data_list) - len(with_mask)} of "
                f"{len(data_list)} images in {self.data_prefix['img_path']} have no mask "
                "and are not used",
                logger="current",
                level=logging.INFO,
            )
        if self.split is None:
            return with_mask
        threshold = int(self.val_fraction * 1000)
        want_val = self.split == "val"
        return [
            d
            for d in with_mask
            if (zlib.crc32(Path(d["img_path"]).stem.encode()) % 1000 < threshold)
            == want_val
        ]


@DATASETS.register_module()
class PhantomSegDataset(BaseSegDataset):
    """Phantom radiographs with lesion or lung masks (class 1, "foreground").

    Args:
        target: ``'lesions'`` (background / lesion, the SIIM-like task) or
            ``'lungs'``.
        phantom: Keyword arguments of
            :func:`~optiml_plugin.data.phantom_export.write_phantom_dataset`; the
            files are written under ``data_root`` unless a matching set is there.
            ``None`` keeps any phantom set found there, or writes the defaults.
        **kwargs: :class:`mmseg.datasets.BaseSegDataset` arguments; ``ann_file``
            ``'splits/train.txt'`` or ``'splits/val.txt'`` picks the split.
    """

    METAINFO = {
        "classes": ("background", "foreground"),
        "palette": [[0, 0, 0], [220, 20, 60]],
    }

    def __init__(
        self,
        target: str = "lesions",
        phantom: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if target not in ("lesions", "lungs"):
            raise ValueError(
                f"PhantomSegDataset: target must be 'lesions' or 'lungs', got {target!r}"
            )
        data_root = kwargs.get("data_root")
        if not data_root:
            raise ValueError(
                "PhantomSegDataset needs data_root (where to write phantoms)"
            )
        ensure_phantom_dataset(Path(data_root), phantom)
        kwargs.setdefault("data_prefix", {"img_path": "images", "seg_map_path": target})
        super().__init__(img_suffix=".png", seg_map_suffix=".png", **kwargs)
