"""The cpu-real probes: the position-only baseline sees position and nothing else,
Dice parts, label subsets, and the backbone diagnostics' codes."""

from __future__ import annotations

import torch

from optiml_plugin.eval.real import evaluate as ev
from optiml_plugin.eval.real import stats


def _masks(n: int, fixed: bool, seed: int = 0) -> torch.Tensor:
    """(n, 28, 28) masks holding one 8x8 square: at one place, or anywhere."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, 28, 28, dtype=torch.uint8)
    for i in range(n):
        r, c = (4, 4) if fixed else torch.randint(0, 20, (2,), generator=g).tolist()
        masks[i, r : r + 8, c : c + 8] = 1
    return masks


def _content_maps(masks: torch.Tensor, grid: int = 7) -> torch.Tensor:
    """Features that see the mask (its share in each cell), as a backbone might."""
    share = torch.nn.functional.avg_pool2d(masks[:, None].float(), 28 // grid)
    return torch.cat([share, 1 - share], dim=1)


def _dice(out: dict) -> float:
    return stats.dice_metric({k: v.numpy() for k, v in out.items()}, torch.arange(len(out["inter"])).numpy())  # fmt: skip


def test_position_only_probe_learns_a_fixed_place_but_not_a_moving_one() -> None:
    n, grid = 64, 7
    pos = ev.position_maps(n, grid)
    assert pos.shape == (n, 49, 7, 7) and torch.equal(pos.sum(1), torch.ones(n, 7, 7))
    fixed_tr, fixed_te = _masks(n, True), _masks(n, True, 1)
    moving_tr, moving_te = _masks(n, False, 2), _masks(n, False, 3)
    fixed = _dice(ev.segmentation(pos, fixed_tr, pos, fixed_te, 0, 60))
    moving = _dice(ev.segmentation(pos, moving_tr, pos, moving_te, 0, 60))
    content = _dice(ev.segmentation(_content_maps(moving_tr), moving_tr, _content_maps(moving_te), moving_te, 0, 60))  # fmt: skip
    assert fixed > 0.8
    assert moving < 0.45
    assert content > moving + 0.3


def test_dice_parts_by_hand() -> None:
    pred = torch.tensor([[[1, 1], [0, 0]], [[0, 0], [0, 0]]])
    mask = torch.tensor([[[1, 0], [1, 0]], [[0, 0], [0, 0]]])
    inter, total = ev.dice_parts(pred, mask)
    assert inter.tolist() == [2.0, 0.0] and total.tolist() == [4.0, 0.0]


def test_label_subsets() -> None:
    labels = torch.tensor([1] * 10 + [0] * 90)
    subs = ev.subsets(100, labels, 0.1, 5, seed=0)
    assert len(subs) == 5 and all(len(s) == 10 for s in subs)
    assert all(0 < int(labels[s].sum()) < 10 for s in subs)
    assert len({tuple(s.tolist()) for s in subs}) == 5
    assert [s.tolist() for s in ev.subsets(100, labels, 0.1, 5, seed=0)] == [s.tolist() for s in subs]  # fmt: skip
    assert torch.equal(ev.subsets(100, labels, 1.0, 5, seed=0)[0], torch.arange(100))


class _Code(torch.nn.Module):
    """A 'ResNet' whose layer4 tokens are a fixed code per cell (position only)."""

    def __init__(self) -> None:
        super().__init__()
        self.code = torch.randn(16, 7, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.code.expand(x.shape[0], -1, -1, -1)


def test_backbone_diagnostics_flag_a_position_code(monkeypatch) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    monkeypatch.setattr(ev, "resnet_dense_features", lambda m, x: m(x))
    pairs = {
        "view_a": torch.zeros(6, 3, 8, 8),
        "view_b": torch.zeros(6, 3, 8, 8),
        "grid_a": torch.rand(6, 7, 7, 2),
        "grid_b": torch.rand(6, 7, 7, 2),
    }
    d = ev.backbone_diagnostics(_Code(), pairs)
    assert d["position_share"] > 0.99
    assert d["same_index_rate_different"] > 0.99
    assert abs(d["ot_ratio"] - 1.0) < 1e-3
