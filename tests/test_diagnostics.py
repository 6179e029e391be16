import math

import pytest
import torch
import torch.nn.functional as F

from optiml_plugin import OPTiMLLoss
from optiml_plugin.diagnostics import (
    Gate,
    PixelTokens,
    _pool,
    diagnose,
    diagnose_pooled,
    interaction_share,
    match_rates,
    orientation,
    plan_entropy,
    variance_shares,
)
from optiml_plugin.models import OPTiML
from optiml_plugin.viz.transport_plan import match_accuracy


def test_variance_shares_of_pure_codes() -> None:
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(1, 9, 6, generator=g).expand(10, 9, 6)
    img = torch.randn(10, 1, 6, generator=g).expand(10, 9, 6)
    p, v, _ = variance_shares(pos)
    assert p == pytest.approx(1.0) and v == pytest.approx(0.0, abs=1e-12)
    p, v, _ = variance_shares(img)
    assert p == pytest.approx(0.0, abs=1e-12) and v == pytest.approx(1.0)
    # Independent noise: both shares near their chance levels 1/V and 1/N.
    noise = torch.randn(400, 9, 6, generator=g)
    p, v, offset = variance_shares(noise)
    assert p < 0.01 and abs(v - 1 / 9) < 0.03 and offset < 0.1
    # A common shift: the offset grows with it, the shares do not change.
    p2, v2, offset2 = variance_shares(noise + 10.0)
    # |mean| = 10 sqrt(6), spread = sqrt(6): the offset is the shift in spreads.
    assert (
        offset2 == pytest.approx(10.0, rel=0.02)
        and p2 == pytest.approx(p)
        and v2 == pytest.approx(v)
    )


def test_interaction_share_sees_an_image_modulated_position_code() -> None:
    g = torch.Generator().manual_seed(3)
    scale = torch.randn(40, 1, 1, generator=g)
    pattern = torch.randn(1, 9, 6, generator=g)
    code = scale * pattern  # one scalar per image times a position pattern
    background = torch.randn(1, 9, 6, generator=g) + torch.randn(40, 1, 6, generator=g)
    # Cell and view means are removed first: adding them changes nothing.
    assert interaction_share(code) == pytest.approx(1.0)
    assert interaction_share(code + background) == pytest.approx(1.0)
    # The position share does not see it when the scalar's sign varies.
    p, _, _ = variance_shares(code - code.mean(dim=(0, 1)))
    assert p < 0.1
    # Independent content: about 1 / (V - 1), here 1/39 (largest of 39 values).
    content = torch.randn(40, 9, 6, generator=g)
    assert interaction_share(content) < 0.1
    assert math.isnan(interaction_share(torch.zeros(5, 4, 3)))  # constant tokens


def test_match_rates_agree_with_the_figure_helper() -> None:
    g = torch.Generator().manual_seed(1)
    plan = torch.rand(5, 16, 16, generator=g)
    grid_a = torch.rand(5, 4, 4, 2, generator=g)
    grid_b = grid_a + 0.05 * torch.randn(5, 4, 4, 2, generator=g)
    rates = match_rates(plan, grid_a, grid_b)
    for k in range(5):
        ref = match_accuracy(plan[k], grid_a[k], grid_b[k])
        assert (math.isnan(ref) and math.isnan(rates[k])) or rates[k] == pytest.approx(
            ref
        )


def test_plan_entropy_of_uniform_and_permutation() -> None:
    n = 9
    uniform = torch.full((1, n, n), 1 / n**2)
    perm = torch.eye(n)[torch.randperm(n)][None] / n
    assert plan_entropy(uniform).item() == pytest.approx(1.0)
    assert plan_entropy(perm).item() == pytest.approx(math.log(n) / math.log(n * n))


def test_gate_names_each_failure() -> None:
    good = {
        "same_index_rate_different": 0.1,
        "ot_ratio": 0.5,
        "position_share": 0.2,
        "view_mean_share": 0.3,
        "plan_accuracy": 0.5,
        "same_index_accuracy": 0.3,
    }
    assert Gate().failures(good) == []
    for key, value in [
        ("same_index_rate_different", 0.9),
        ("ot_ratio", 0.95),
        ("position_share", 0.98),
        ("view_mean_share", 0.98),
        ("plan_accuracy", 0.32),
    ]:
        failures = Gate().failures({**good, key: value})
        assert len(failures) == 1 and key in failures[0]


class _CodeModel(torch.nn.Module):
    """Stands in for OPTiML: dense tokens are a fixed code chosen by the test."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        g = torch.Generator().manual_seed(0)
        self.pos = torch.randn(16, 8, generator=g)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        if self.kind == "position":
            u = self.pos.expand(b, 16, 8)
        else:  # content: each cell's token is the image value there (4x4 pooled)
            u = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(2).transpose(1, 2)
        return u.mean(1), u

    def infuse(self, za, ua, zb, ub):  # noqa: ANN001, ANN201
        return _Out(ua, ub)


class _Out:
    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        self.dense_a, self.dense_b = a, b


def _pairs(b: int = 6, shift: int = 1):
    # View B is view A shifted right by ``shift`` cells (4x4 grid of 8 px cells);
    # every image is independent noise, so content identifies each cell.
    g = torch.Generator().manual_seed(3)
    width = 32 + 8 * shift
    full = torch.randn(b, 8, 32, width, generator=g)
    va, vb = full[..., :32], full[..., 8 * shift :]
    cells = (torch.arange(4) + 0.5) / 4
    yy, xx = torch.meshgrid(cells, cells, indexing="ij")
    ga = torch.stack([xx * 32 / width, yy], -1).expand(b, 4, 4, 2)
    gb = torch.stack([(xx * 32 + 8 * shift) / width, yy], -1).expand(b, 4, 4, 2)
    return va, vb, ga, gb


def test_position_code_is_caught_and_content_passes() -> None:
    loss = OPTiMLLoss(
        epsilon=0.01, center="none", position_weight=0.0, epsilon_scale="absolute"
    )  # what sees a position code
    pos = diagnose(_CodeModel("position"), loss, *_pairs())
    assert pos["position_share"] == pytest.approx(1.0)
    assert pos["same_index_rate_different"] == 1.0
    assert pos["ot_ratio"] == pytest.approx(1.0)
    assert pos["plan_accuracy"] == pytest.approx(pos["same_index_accuracy"])
    assert Gate().failures(pos)
    content = diagnose(_CodeModel("content"), loss, *_pairs())
    assert content["plan_accuracy"] > 0.9  # balanced OT: unmatched cells displace a few
    assert content["same_index_accuracy"] == pytest.approx(0.0)
    assert content["ot_ratio"] < 0.8 and content["same_index_rate_different"] < 0.5
    assert content["position_share"] < 0.3
    # Different images: neither code follows image coordinates across them.
    for d in (pos, content):
        assert d["same_index_accuracy_different"] == pytest.approx(0.0)
        assert d["plan_accuracy_different"] < 0.2


def _aligned_pairs(b: int = 6):
    # Every image is one atlas plus a little noise (aligned anatomy), cropped at
    # x offset 0 or 8 px in turn (48 px wide); view B starts one cell (8 px)
    # right of view A. Grids are in image coordinates, so they differ by image.
    g = torch.Generator().manual_seed(4)
    atlas = torch.randn(8, 32, 48, generator=g)
    full = atlas + 0.05 * torch.randn(b, 8, 32, 48, generator=g)
    offsets = [8 * (k % 2) for k in range(b)]
    va = torch.stack([full[k, :, :, o : o + 32] for k, o in enumerate(offsets)])
    vb = torch.stack([full[k, :, :, o + 8 : o + 40] for k, o in enumerate(offsets)])
    cells = (torch.arange(4) + 0.5) / 4
    yy, xx = torch.meshgrid(cells, cells, indexing="ij")
    ga = torch.stack([torch.stack([(xx * 32 + o) / 48, yy], -1) for o in offsets])
    gb = torch.stack([torch.stack([(xx * 32 + o + 8) / 48, yy], -1) for o in offsets])
    return va, vb, ga, gb


def test_a_plan_that_follows_aligned_anatomy_across_images_is_told_apart() -> None:
    # Between two different images the anatomy is 0 or 2 cells away from the
    # same index; content tokens follow it, a position code does not.
    loss = OPTiMLLoss(
        epsilon=0.01, center="none", position_weight=0.0, epsilon_scale="absolute"
    )
    content = diagnose(_CodeModel("content"), loss, *_aligned_pairs())
    assert content["plan_accuracy_different"] > 0.9
    assert 0.3 < content["same_index_accuracy_different"] < 0.7
    pos = diagnose(_CodeModel("position"), loss, *_aligned_pairs())
    assert pos["plan_accuracy_different"] == pytest.approx(
        pos["same_index_accuracy_different"]
    )


def test_orientation_sees_flips_not_rotations() -> None:
    ga = _pairs(1)[2]
    angle = torch.tensor(0.5)  # about 29 degrees, about the image centre
    rot = torch.stack([torch.cos(angle), -torch.sin(angle), torch.sin(angle), torch.cos(angle)]).reshape(2, 2)  # fmt: skip
    rotated = (ga - 0.5) @ rot.T + 0.5
    grids = torch.cat([ga, ga.flip(2), ga.flip(1), rotated, rotated.flip(2)])
    assert orientation(grids).tolist() == [1, -1, -1, 1, -1]


def _mirrored_pairs(b: int = 6):
    # Even pairs: view B is view A mirrored left-right, so cell (r, c) of A is
    # cell (r, 3 - c) of B, never the same index; odd pairs: _pairs' shift.
    va, vb, ga, gb = (t.clone() for t in _pairs(b))
    for k in range(0, b, 2):
        vb[k], gb[k] = va[k].flip(-1), ga[k].flip(1)
    return va, vb, ga, gb


def test_mirrored_pairs_are_split_off_and_a_position_code_peaks_at_the_mirror() -> None:
    loss = OPTiMLLoss(
        epsilon=0.01, center="none", position_weight=0.0, epsilon_scale="absolute"
    )
    pos = diagnose(_CodeModel("position"), loss, *_mirrored_pairs())
    content = diagnose(_CodeModel("content"), loss, *_mirrored_pairs())
    for d in (pos, content):
        assert d["flipped_share"] == pytest.approx(0.5)
        assert d["same_index_accuracy_flipped"] == 0.0
        assert d["same_index_accuracy_same_orientation"] == 0.0
    assert pos["same_index_rate_flipped"] == 1.0
    assert pos["plan_accuracy_flipped"] == 0.0
    assert content["same_index_rate_flipped"] == 0.0
    assert content["plan_accuracy_flipped"] == 1.0  # a mirror leaves every cell a match
    assert content["plan_accuracy_same_orientation"] > 0.8
    # The parts are the halves of the whole.
    whole = (content["plan_accuracy_flipped"] + content["plan_accuracy_same_orientation"]) / 2  # fmt: skip
    assert content["plan_accuracy"] == pytest.approx(whole)


def test_far_rows_show_a_position_code_and_leave_out_mirrored_pairs() -> None:
    loss = OPTiMLLoss(
        epsilon=0.01, center="none", position_weight=0.0, epsilon_scale="absolute"
    )
    pos = diagnose(_CodeModel("position"), loss, *_pairs(shift=2))
    content = diagnose(_CodeModel("content"), loss, *_pairs(shift=2))
    # View B starts two cells right of view A: A's cells in columns 2-3 lie in B,
    # and their same-index cells of B are two cells from them.
    for d in (pos, content):
        assert d["far_rows_per_pair"] == 8  # columns 2-3 of A, 4 rows each
    assert pos["same_index_rate_far"] == 1.0 and pos["plan_accuracy_far"] == 0.0
    assert content["same_index_rate_far"] < 0.05  # balanced OT displaces a few
    assert content["plan_accuracy_far"] > 0.85
    # A one-cell shift has no far rows; a mirror's far rows are left out.
    mirrored = diagnose(_CodeModel("position"), loss, *_mirrored_pairs())
    assert mirrored["far_rows_per_pair"] == 0
    assert math.isnan(mirrored["same_index_rate_far"])


def test_pooled_far_figures_weigh_batches_by_their_far_rows() -> None:
    base = {"ot_same": 1.0, "ot_different": 2.0, "flipped_share": 0.0}
    parts = [
        (2, {**base, "far_rows_per_pair": 1.0, "same_index_rate_far": 0.0}),
        (2, {**base, "far_rows_per_pair": 3.0, "same_index_rate_far": 1.0}),
        (4, {**base, "far_rows_per_pair": 0.0, "same_index_rate_far": math.nan}),
    ]
    pooled = _pool(parts)
    assert pooled["same_index_rate_far"] == pytest.approx(0.75)
    assert pooled["far_rows_per_pair"] == pytest.approx(1.0)


def test_pooled_figures_of_flipped_pairs_weigh_only_those_pairs() -> None:
    loss = OPTiMLLoss(
        epsilon=0.01, center="none", position_weight=0.0, epsilon_scale="absolute"
    )
    model = _CodeModel("content")
    unflipped, mixed = _aligned_pairs(4), _mirrored_pairs(6)
    first, second = diagnose(model, loss, *unflipped), diagnose(model, loss, *mixed)
    assert math.isnan(first["plan_accuracy_flipped"])
    pooled, _ = diagnose_pooled(model, loss, [unflipped, mixed])
    assert pooled["plan_accuracy_flipped"] == second["plan_accuracy_flipped"]
    key = "plan_accuracy_same_orientation"
    assert first[key] != pytest.approx(second[key])
    assert pooled[key] == pytest.approx((4 * first[key] + 3 * second[key]) / 7)
    assert pooled["flipped_share"] == pytest.approx(3 / 10)


def test_pooled_diagnosis_weights_batches_and_pools_the_ot_costs() -> None:
    loss = OPTiMLLoss(
        epsilon=0.01, center="none", position_weight=0.0, epsilon_scale="absolute"
    )
    model = _CodeModel("content")
    first, second = _pairs(8), _aligned_pairs(9)
    one, per_draw = diagnose_pooled(model, loss, [first])
    assert one == pytest.approx(diagnose(model, loss, *first), nan_ok=True)
    assert per_draw[0] == pytest.approx(one, nan_ok=True) and len(per_draw) == 1
    pooled, per_draw = diagnose_pooled(model, loss, [first, second], batch_size=4)
    # Draw 1: two batches of 4; draw 2 (9 pairs): batches of 5 and 4.
    batches = [(4, first, 0, 4), (4, first, 4, 8), (5, second, 0, 5), (4, second, 5, 9)]
    parts = [
        (n, diagnose(model, loss, *(t[lo:hi] for t in pairs)))
        for n, pairs, lo, hi in batches
    ]
    for key in ("plan_accuracy", "same_index_rate_different", "position_share"):
        want = sum(n * d[key] for n, d in parts) / 17
        assert pooled[key] == pytest.approx(want), key
    ot_same = sum(n * d["ot_same"] for n, d in parts) / 17
    ot_diff = sum(n * d["ot_different"] for n, d in parts) / 17
    assert pooled["ot_ratio"] == pytest.approx(ot_same / ot_diff)
    mean_of_ratios = sum(n * d["ot_ratio"] for n, d in parts) / 17
    assert pooled["ot_ratio"] != pytest.approx(mean_of_ratios, rel=1e-3)
    assert per_draw[1]["ot_same"] == pytest.approx(
        (5 * parts[2][1]["ot_same"] + 4 * parts[3][1]["ot_same"]) / 9
    )
    with pytest.raises(ValueError, match="batch_size"):
        diagnose_pooled(model, loss, [first], batch_size=1)


def test_pixel_tokens_are_each_cells_pooled_pixels_and_find_shifted_content() -> None:
    x = torch.randn(2, 3, 32, 32)
    _, tokens = PixelTokens(k=1, stride=8).embed(x)
    assert tokens.shape == (2, 4, 4, 1)
    assert torch.allclose(tokens[..., 0], F.avg_pool2d(x[:, :1], 8)[:, 0])
    _, tokens = PixelTokens(k=2, stride=8).embed(x)
    assert torch.allclose(
        tokens[0, 1, 2], F.avg_pool2d(x[0, 0, 8:16, 16:24][None], 4).flatten()
    )
    loss = OPTiMLLoss(epsilon=0.01, center="none", position_weight=0.0, epsilon_scale="absolute")  # fmt: skip
    d = diagnose(PixelTokens(k=4, stride=8), loss, *_pairs())
    assert d["plan_accuracy"] > 0.9 and d["same_index_accuracy"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="square views"):
        PixelTokens(stride=64).embed(x)


def test_mirrored_pixel_tokens_give_a_cell_and_its_mirror_image_one_token() -> None:
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    _, tokens = PixelTokens(k=4, stride=8, mirror=True).embed(x)
    _, flipped = PixelTokens(k=4, stride=8, mirror=True).embed(x.flip(-1))
    # cell (r, c) <-> (r, 3 - c); pooling sums in another order, hence atol
    assert torch.allclose(flipped, tokens.flip(2), atol=1e-6)
    _, plain = PixelTokens(k=4, stride=8).embed(x.flip(-1))
    assert not torch.allclose(plain, PixelTokens(k=4, stride=8).embed(x)[1].flip(2))
    # On mirrored pairs of noise images only the mirrored tokens find every cell.
    loss = OPTiMLLoss(epsilon=0.01, center="none", position_weight=0.0, epsilon_scale="absolute")  # fmt: skip
    d = diagnose(PixelTokens(k=4, stride=8, mirror=True), loss, *_mirrored_pairs())
    assert d["plan_accuracy_flipped"] == 1.0
    d = diagnose(PixelTokens(k=4, stride=8), loss, *_mirrored_pairs())
    assert d["plan_accuracy_flipped"] < 0.5


def test_diagnose_runs_on_the_real_model_and_needs_two_images() -> None:
    model = OPTiML("resnet18", global_dim=32, global_hidden_dim=32, dense_dim=16,
                   dense_hidden_dim=32, cvsim_heads=2).eval()  # fmt: skip
    va, vb, ga, gb = _pairs(3)
    x = torch.randn(3, 3, 64, 64)
    grid = ga.expand(3, 4, 4, 2)
    out = model(x, x)
    assert out.dense_a.shape[1:3] == (2, 2)
    g2 = grid[:, :2, :2]
    d = diagnose(model, OPTiMLLoss(), x, x.flip(-1), g2, g2.flip(2))
    assert set(d) >= {"position_share", "plan_accuracy", "ot_ratio"}
    with pytest.raises(ValueError, match="at least two images"):
        diagnose(model, OPTiMLLoss(), x[:1], x[:1], g2[:1], g2[:1])


def test_batch_statistics_leave_running_statistics_untouched() -> None:
    from optiml_plugin.diagnostics import batch_statistics

    model = OPTiML("resnet18", global_dim=32, global_hidden_dim=32, dense_dim=16,
                   dense_hidden_dim=32, cvsim_heads=2).eval()  # fmt: skip
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = 3 + 2 * torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        running = model.embed(x)[1]
        with batch_statistics(model):
            batch = model.embed(x)[1]
    assert not torch.allclose(running, batch, atol=1e-3)  # the statistics differ
    assert not model.training and not model.backbone.bn1.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
