"""COCO-format chest X-ray detection datasets for mmdet.

They read what ``tools/prepare_data.py rsna|vindr`` writes (``images/*.png`` or
DICOMs, ``annotations/{train,val,test}.json``) and differ from mmdet's
``CocoDataset`` only in their class names; pair them with ``LoadChestXray`` in the
pipeline. ``PhantomLesionDataset`` first writes the embedded phantom radiographs in
that layout (:func:`optiml_plugin.data.phantom_export.write_phantom_dataset`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from optiml_plugin.data.converters.rsna import CATEGORIES as RSNA_CLASSES
from optiml_plugin.data.converters.vindr import CLASSES as VINDR_CLASSES
from optiml_plugin.data.phantom import LESION_CLASSES
from optiml_plugin.data.phantom_export import ensure_phantom_dataset


def _palette(n: int) -> list[tuple[int, int, int]]:
    base = [(220, 20, 60), (0, 130, 200), (60, 180, 75), (245, 130, 48), (145, 30, 180)]
    return [base[i % len(base)] for i in range(n)]


@DATASETS.register_module()
class RSNAPneumoniaDataset(CocoDataset):
    """RSNA Pneumonia Detection Challenge: one class, lung opacity."""

    METAINFO = {"classes": RSNA_CLASSES, "palette": _palette(len(RSNA_CLASSES))}


@DATASETS.register_module()
class VinDrCXRDataset(CocoDataset):
    """VinDr-CXR: the 14 local findings (radiologists' boxes fused by the converter)."""

    METAINFO = {"classes": VINDR_CLASSES, "palette": _palette(len(VINDR_CLASSES))}


@DATASETS.register_module()
class PhantomLesionDataset(CocoDataset):
    """Phantom radiographs with lesion boxes (nodule, opacity, effusion).

    Args:
        phantom: Keyword arguments of
            :func:`~optiml_plugin.data.phantom_export.write_phantom_dataset`
            (``num_images``, ``size``, ``seed``, ``val_fraction``); the files are
            written under ``data_root`` unless a matching set is already there.
            ``None`` (the configs' choice) keeps any phantom set found there, or
            writes the defaults (64 images of 256 px, seed 0).
        **kwargs: :class:`mmdet.datasets.CocoDataset` arguments.
    """

    METAINFO = {"classes": LESION_CLASSES, "palette": _palette(len(LESION_CLASSES))}

    def __init__(
        self, *args: Any, phantom: dict[str, Any] | None = None, **kwargs: Any
    ):
        data_root = kwargs.get("data_root")
        if not data_root:
            raise ValueError(
                "PhantomLesionDataset needs data_root (where to write phantoms)"
            )
        ensure_phantom_dataset(Path(data_root), phantom)
        super().__init__(*args, **kwargs)
