"""Run-length encoding of the SIIM-ACR Pneumothorax challenge (``train-rle.csv``).

The competition's encoding (its ``mask_functions.py``): the (H, W) mask is
flattened in column-major order (``mask.T.ravel()``, i.e. ``order="F"``); the
string holds pairs ``offset length`` where the first offset counts from pixel
0 and each later offset counts from the END of the previous run (one past its
last pixel). ``"-1"`` (or an empty string) means an empty mask.

Several rows of one image are merged with :func:`merge_rles` (logical OR);
:func:`encode` of a merged mask gives one row, and
``decode(encode(mask)) == (mask != 0)`` exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

EMPTY = "-1"


class RLEError(ValueError):
    """An RLE string is malformed or does not fit the image."""


def encode(mask: np.ndarray) -> str:
    """Encodes a (H, W) mask (non-zero = foreground) as a SIIM RLE string.

    Returns:
        ``"-1"`` for an empty mask, else ``"offset length offset length ..."``.
    """
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    flat = np.asarray(mask).ravel(order="F") != 0
    edges = np.diff(np.concatenate(([0], flat.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    if starts.size == 0:
        return EMPTY
    ends = np.flatnonzero(edges == -1)
    offsets = starts - np.concatenate(([0], ends[:-1]))
    pairs = np.stack([offsets, ends - starts], axis=1).ravel()
    return " ".join(map(str, pairs.tolist()))


def decode(rle: str, height: int, width: int) -> np.ndarray:
    """Decodes a SIIM RLE string into a (height, width) uint8 mask of 0/1.

    Raises:
        RLEError: Non-integer values, an odd count, negative offsets,
            non-positive lengths, or runs past the end of the image.
    """
    text = rle.strip()
    size = height * width
    if text in ("", EMPTY):
        return np.zeros((height, width), dtype=np.uint8)
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError as err:
        raise RLEError(f"non-integer value in RLE string ({err})") from err
    if values.size % 2:
        raise RLEError(f"odd number of values ({values.size}) in RLE string")
    offsets, lengths = values[0::2], values[1::2]
    if (offsets < 0).any():
        raise RLEError("negative offset in RLE string")
    if (lengths <= 0).any():
        raise RLEError("non-positive run length in RLE string")
    starts = np.cumsum(offsets + np.concatenate(([0], lengths[:-1])))
    ends = starts + lengths
    if ends[-1] > size:
        raise RLEError(
            f"run ends at pixel {int(ends[-1])}, past the image ({height}x{width})"
        )
    marks = np.zeros(size + 1, dtype=np.int64)
    np.add.at(marks, starts, 1)
    np.add.at(marks, ends, -1)
    flat = (np.cumsum(marks[:-1]) > 0).astype(np.uint8)
    return flat.reshape(width, height).T.copy()


def merge_rles(rles: Iterable[str], height: int, width: int) -> np.ndarray:
    """Decodes several RLE rows of one image and merges them (logical OR)."""
    mask = np.zeros((height, width), dtype=np.uint8)
    for rle in rles:
        mask |= decode(rle, height, width)
    return mask
