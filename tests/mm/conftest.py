"""OpenMMLab tests: need the ``[mm]`` extra and mmcv built with its ops.

Without the stack they skip, naming why, unless ``OPTIML_REQUIRE_MM=1`` (set by
``make test`` and CI), where a missing stack is an error: a broken mmcv build must
not turn into a green run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torchvision

from optiml_plugin.train.export import save_backbone

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
REPO = Path(__file__).resolve().parents[2]


def _stack_error() -> str | None:
    try:
        import mmcv._ext  # noqa: F401
        import mmdet  # noqa: F401
        import mmseg  # noqa: F401
    except Exception as err:  # ImportError, or mmdet's mmcv version assertion
        return f"OpenMMLab stack not usable ({type(err).__name__}: {err}); run `make setup`"
    return None


_ERROR = _stack_error()
if _ERROR is not None:
    if os.environ.get("OPTIML_REQUIRE_MM") == "1":
        raise RuntimeError(_ERROR)
    pytest.skip(_ERROR, allow_module_level=True)


def make_backbone_file(path: Path, depth: int, seed: int = 0) -> Path:
    """A tensor-only backbone file as tools/pretrain.py exports it (random weights)."""
    torch.manual_seed(seed)
    net = getattr(torchvision.models, f"resnet{depth}")()
    net.fc = torch.nn.Identity()
    state = {
        k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
        for k, v in net.state_dict().items()
    }
    save_backbone(state, path, f"resnet{depth}")
    return path


@pytest.fixture(scope="session")
def r18_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_backbone_file(tmp_path_factory.mktemp("bb") / "r18.pth", 18)


@pytest.fixture(scope="session")
def r50_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_backbone_file(tmp_path_factory.mktemp("bb") / "r50.pth", 50)


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from optiml_plugin.data.phantom_export import write_phantom_dataset

    return write_phantom_dataset(
        tmp_path_factory.mktemp("phantom") / "phantom", num_images=8, size=128, seed=3
    )


@pytest.fixture
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(
            f"real chest X-rays not found at {SHARED.resolve()} (../shared/data)"
        )
    return SHARED
