import importlib.util
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_lightly_vicreg_swap_example_trains() -> None:
    spec = importlib.util.spec_from_file_location(
        "swap_example", ROOT / "examples" / "lightly_vicreg_to_optiml.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    losses = module.main(steps=6, batch_size=8, image_size=64)
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    assert min(losses[3:]) < losses[0]
