"""Tests for the SIIM-ACR run-length encoding (optiml_plugin.data.rle)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from optiml_plugin.data.rle import RLEError, decode, encode, merge_rles


def reference_rle2mask(rle: str, width: int, height: int) -> np.ndarray:
    """The competition's mask_functions.rle2mask (loop), used as (..).T."""
    mask = np.zeros(width * height)
    array = np.asarray([int(x) for x in rle.split()])
    position = 0
    for start, length in zip(array[0::2], array[1::2], strict=True):
        position += start
        mask[position : position + length] = 255
        position += length
    return mask.reshape(width, height)


def test_hand_computed_example():
    mask = np.array([[0, 1], [1, 1], [0, 0]], np.uint8)  # H=3, W=2
    # column-major: 0 1 0 | 1 1 0 -> runs (1, 1) and (3, 2) -> offsets 1, 3-2=1
    assert encode(mask) == "1 1 1 2"
    np.testing.assert_array_equal(decode("1 1 1 2", 3, 2), mask)
    ref = reference_rle2mask("1 1 1 2", width=2, height=3).T
    np.testing.assert_array_equal(ref / 255, mask)


def test_empty_and_minus_one():
    assert encode(np.zeros((4, 5))) == "-1"
    for text in ("-1", " -1", ""):
        assert decode(text, 4, 5).sum() == 0
        assert decode(text, 4, 5).shape == (4, 5)


def test_run_to_the_last_pixel_and_merge():
    mask = np.zeros((4, 3), np.uint8)
    mask[2:, 2] = 1  # the last two pixels in column-major order
    assert encode(mask) == "10 2"
    merged = merge_rles(["0 1", "-1", "10 2"], 4, 3)
    assert merged[0, 0] == 1 and merged[2:, 2].all() and merged.sum() == 3
    assert encode(merged) == "0 1 9 2"


@pytest.mark.parametrize("bad", ["1 2 3", "a b", "0 0", "5 2", "-2 1"])
def test_malformed(bad):
    with pytest.raises(RLEError):
        decode(bad, 2, 3)


@settings(max_examples=50, deadline=None)
@given(
    arrays(
        np.uint8,
        st.tuples(st.integers(1, 24), st.integers(1, 24)),
        elements=st.integers(0, 1),
    )
)
def test_round_trip_property(mask):
    text = encode(mask)
    h, w = mask.shape
    np.testing.assert_array_equal(decode(text, h, w), mask)
    if text != "-1":
        ref = reference_rle2mask(text, width=w, height=h).T
        np.testing.assert_array_equal(ref / 255, mask)
    assert encode(decode(text, h, w)) == text
