"""Label-fraction subsets: sizes, determinism, nesting."""

import pytest
import torch

from optiml_plugin.eval.label_fraction import label_fraction_indices


def test_sizes_follow_the_fraction_with_a_floor() -> None:
    assert len(label_fraction_indices(1000, 0.01, 0)) == 10
    assert len(label_fraction_indices(1000, 0.1, 0)) == 100
    assert len(label_fraction_indices(1000, 1.0, 0)) == 1000
    assert len(label_fraction_indices(50, 0.01, 0)) == 2  # min_samples
    assert len(label_fraction_indices(1, 0.5, 0)) == 1  # capped at the set


def test_subsets_of_one_seed_are_nested_and_seeds_differ() -> None:
    small = set(label_fraction_indices(500, 0.01, 3).tolist())
    mid = set(label_fraction_indices(500, 0.1, 3).tolist())
    assert small < mid
    assert torch.equal(
        label_fraction_indices(500, 0.1, 3), label_fraction_indices(500, 0.1, 3)
    )
    assert mid != set(label_fraction_indices(500, 0.1, 4).tolist())
    assert len(mid) == len(set(mid)) and max(mid) < 500


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_fraction_outside_unit_interval_is_an_error(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        label_fraction_indices(10, fraction, 0)
