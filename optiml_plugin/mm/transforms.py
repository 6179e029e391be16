"""Loading chest radiographs (PNG 8/16-bit, JPEG, DICOM) in MMEngine pipelines.

``LoadChestXray`` replaces ``LoadImageFromFile`` in mmdet / mmseg pipelines. It
reads through :func:`optiml_plugin.data.io.read_image`, which applies DICOM
photometric interpretation, modality and VOI LUTs, and returns the radiograph as
grey replicated to three channels, the input OPTiML was pretrained on (one channel
on request). It is registered in MMEngine's root ``TRANSFORMS``, which mmcv, mmdet
and mmseg all look up.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from mmengine.registry import TRANSFORMS

from optiml_plugin.data.io import ImageReadError, read_image


@TRANSFORMS.register_module()
class LoadChestXray(BaseTransform):
    """Reads ``results['img_path']`` into ``results['img']``.

    Args:
        channels: 3 (grey replicated, the default) or 1.
        to_float32: Keep the full precision of 16-bit files as float32 in
            [0, 255] instead of rounding to uint8.
        on_error: ``'skip'`` logs a warning naming the file and returns ``None``
            (MMEngine's datasets then draw another training sample; at test time
            they raise); ``'raise'`` raises :class:`~optiml_plugin.data.io.ImageReadError`.
    """

    def __init__(
        self, channels: int = 3, to_float32: bool = False, on_error: str = "skip"
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"LoadChestXray: channels must be 1 or 3, got {channels}")
        if on_error not in ("skip", "raise"):
            raise ValueError(
                f"LoadChestXray: on_error must be 'skip' or 'raise', got {on_error!r}"
            )
        self.channels = channels
        self.to_float32 = to_float32
        self.on_error = on_error

    def transform(self, results: dict[str, Any]) -> dict[str, Any] | None:
        try:
            image = read_image(results["img_path"])
        except ImageReadError as err:
            if self.on_error == "raise":
                raise
            print_log(
                f"LoadChestXray: skipped {err}", logger="current", level=logging.WARNING
            )
            return None
        image = image * np.float32(255.0)
        if not self.to_float32:
            image = np.rint(image).astype(np.uint8)
        image = np.repeat(image[..., None], self.channels, axis=2)
        results["img"] = image
        results["img_shape"] = image.shape[:2]
        results["ori_shape"] = image.shape[:2]
        return results

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(channels={self.channels}, "
            f"to_float32={self.to_float32}, on_error={self.on_error!r})"
        )
