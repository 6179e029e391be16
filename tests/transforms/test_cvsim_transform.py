import math

import numpy as np
import pytest
import torch
from lightly.transforms.utils import IMAGENET_NORMALIZE
from PIL import Image

from optiml_plugin.transforms import (
    CVSIMTransform,
    RandomResizedCropRotateWithGrid,
    to_gray_tensor,
)


def _dot_image(x0: float, y0: float, h: int = 120, w: int = 160) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    return torch.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 2.0**2))[None]


def test_output_structure_views_then_grids() -> None:
    out = CVSIMTransform(size=96)(Image.new("L", (200, 150), color=128))
    assert len(out) == 4
    assert out[0].shape == out[1].shape == (3, 96, 96)
    assert out[2].shape == out[3].shape == (3, 3, 2)  # 96 // 32 cells per side
    # One grey image replicated into 3 channels, each normalised with ImageNet stats.
    mean = torch.tensor(IMAGENET_NORMALIZE["mean"])[:, None, None]
    std = torch.tensor(IMAGENET_NORMALIZE["std"])[:, None, None]
    raw = out[0] * std + mean
    assert torch.allclose(raw[0], raw[1], atol=1e-6) and torch.allclose(
        raw[1], raw[2], atol=1e-6
    )


def test_one_channel_and_local_views() -> None:
    t = CVSIMTransform(size=64, local_size=32, n_local_views=2, num_channels=1)
    out = t(np.full((100, 100), 90, dtype=np.uint8))
    assert len(out) == 8
    assert [v.shape[0] for v in out[:4]] == [1, 1, 1, 1]
    assert out[2].shape[-1] == 32 and out[6].shape == (1, 1, 2)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("hf_prob", [0.0, 1.0])
def test_grid_points_to_where_the_pixels_came_from(seed: int, hf_prob: float) -> None:
    # With one grid cell per output pixel, the grid value at the brightest view
    # pixel must be where the bright dot is in the original image.
    torch.manual_seed(seed)
    x0, y0 = 70.0, 55.0
    geom = RandomResizedCropRotateWithGrid(
        size=48, scale=(0.5, 0.9), degrees=15, hf_prob=hf_prob, grid_size=48
    )
    image = _dot_image(x0, y0)
    for _ in range(20):  # draw until the dot is inside the crop
        view, grid = geom(image)
        if view.max() > 0.5:
            break
    else:
        pytest.skip("dot never inside the crop")
    r, c = divmod(int(view[0].argmax()), 48)
    x, y = (grid[r, c] * torch.tensor([160.0, 120.0])).tolist()
    assert abs(x - x0) < 3.5 and abs(y - y0) < 3.5


def test_grid_is_in_unit_coordinates_and_flip_reverses_columns() -> None:
    torch.manual_seed(0)
    plain = RandomResizedCropRotateWithGrid(
        size=64, degrees=0, hf_prob=0.0, grid_size=4
    )
    flipped = RandomResizedCropRotateWithGrid(
        size=64, degrees=0, hf_prob=1.0, grid_size=4
    )
    image = torch.rand(1, 100, 130)
    _, g = plain(image)
    _, gf = flipped(image)
    assert g.min() >= 0 and g.max() <= 1
    assert (g[:, 1:, 0] > g[:, :-1, 0]).all()  # x grows left to right
    assert (gf[:, 1:, 0] < gf[:, :-1, 0]).all()  # mirrored
    assert (g[1:, :, 1] > g[:-1, :, 1]).all()  # y grows downwards


def test_same_seed_same_views() -> None:
    t = CVSIMTransform(size=64)
    image = Image.fromarray(
        np.random.default_rng(0).integers(0, 255, (90, 90), dtype=np.uint8)
    )
    torch.manual_seed(3)
    a = t(image)
    torch.manual_seed(3)
    b = t(image)
    torch.manual_seed(4)
    c = t(image)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_to_gray_tensor_scales_by_bit_depth() -> None:
    a16 = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    assert torch.allclose(
        to_gray_tensor(a16)[0], torch.from_numpy(a16 / 65535.0).float()
    )
    a8 = np.array([[0, 255]], dtype=np.uint8)
    assert to_gray_tensor(Image.fromarray(a8)).tolist() == [[[0.0, 1.0]]]
    rgb = torch.zeros(3, 2, 2)
    rgb[1] = 1.0
    assert torch.allclose(to_gray_tensor(rgb), torch.full((1, 2, 2), 0.587))
    with pytest.raises(ValueError, match="channels"):
        to_gray_tensor(torch.zeros(2, 4, 4))


def test_grid_marks_cell_centres_and_follows_a_large_rotation(monkeypatch) -> None:
    # A coarse grid (16 px cells), a 60 degree turn and a landmark in a corner cell
    # far from the crop centre: the grid must give the landmark's original position
    # for the cell it appears in. Grids at cell corners would be off by half a cell
    # (several px), grids that ignore the rotation by tens of px.
    h, w, size, cells = 200, 240, 64, 4
    params = {
        "top": 40,
        "left": 50,
        "height": 120,
        "width": 128,
        "angle": 60.0,
        "flip": False,
    }
    geom = RandomResizedCropRotateWithGrid(size=size, degrees=60, grid_size=cells)
    monkeypatch.setattr(geom, "sample_params", lambda *_: params)
    # Where view cell (row 0, col 3) has its centre in the original, by hand: the
    # crop's frame is turned by the angle about the crop centre.
    u, v = (3 + 0.5) / cells, (0 + 0.5) / cells
    dx, dy = (u - 0.5) * params["width"], (v - 0.5) * params["height"]
    t = math.radians(params["angle"])
    cx = params["left"] + params["width"] / 2
    cy = params["top"] + params["height"] / 2
    x0 = cx + math.cos(t) * dx + math.sin(t) * dy
    y0 = cy - math.sin(t) * dx + math.cos(t) * dy
    assert math.hypot(x0 - cx, y0 - cy) > 50  # far from the crop centre
    view, grid = geom(_dot_image(x0, y0, h, w))
    # The pixels put the landmark at that cell's centre ...
    r, c = divmod(int(view[0].argmax()), size)
    assert abs(r - (0.5 * size / cells)) <= 1.5 and abs(c - (3.5 * size / cells)) <= 1.5
    # ... and the grid says where it came from.
    x, y = (grid[0, 3] * torch.tensor([float(w), float(h)])).tolist()
    assert abs(x - x0) < 1.0 and abs(y - y0) < 1.0


def test_views_rotate_up_to_180_degrees_by_default_in_the_transform_and_the_cli() -> (
    None
):
    # Screen 11: under small rotations the cell index predicts the matching cell.
    from optiml_plugin.train.pretrain import parse_args

    assert CVSIMTransform().transforms[0][0].degrees == 180.0
    assert parse_args([]).degrees == 180.0
    torch.manual_seed(0)
    angles = [
        CVSIMTransform().transforms[0][0].sample_params(64, 64)["angle"]
        for _ in range(200)
    ]
    assert max(angles) > 150 and min(angles) < -150
