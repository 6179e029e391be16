import pytest
import torch

from optiml_plugin import CVSIM


def _perturb(module: torch.nn.Module) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))


def test_starts_as_identity_and_keeps_shape() -> None:
    m = CVSIM(16, global_dim=8, num_heads=4)
    u = torch.randn(2, 3, 3, 16)
    out = m(u, other_global=torch.randn(2, 8))
    assert out.shape == u.shape
    assert torch.allclose(out, u)


def test_global_mode_reads_only_the_other_global_embedding() -> None:
    m = CVSIM(16, global_dim=8, num_heads=4, mode="global")
    _perturb(m)
    u, z = torch.randn(2, 9, 16), torch.randn(2, 8)
    a = m(u, other_global=z, other_tokens=torch.randn(2, 9, 16))
    b = m(u, other_global=z, other_tokens=torch.randn(2, 9, 16))
    c = m(u, other_global=torch.randn(2, 8))
    assert torch.allclose(a, b)
    assert not torch.allclose(a, c, atol=1e-4)
    assert not torch.allclose(a, u, atol=1e-4)


@pytest.mark.parametrize("mode", ["global", "pointwise"])
def test_only_pointwise_mode_keeps_tokens_apart(mode: str) -> None:
    # In "pointwise" a token's output depends on that token and z_t only; in
    # "global" it also reads the other tokens of its own view.
    m = CVSIM(16, global_dim=8, num_heads=4, mode=mode)
    _perturb(m)
    u, z = torch.randn(2, 9, 16), torch.randn(2, 8)
    v = u.clone()
    v[:, 0] = torch.randn(2, 16)
    a, b = m(u, other_global=z), m(v, other_global=z)
    rest_equal = torch.allclose(a[:, 1:], b[:, 1:], atol=1e-6)
    assert rest_equal == (mode == "pointwise")
    assert not torch.allclose(a[:, 0], b[:, 0], atol=1e-4)
    c = m(u, other_global=torch.randn(2, 8))
    assert not torch.allclose(a, c, atol=1e-4)


def test_pointwise_mode_matches_a_per_token_reference() -> None:
    # Each token alone through the "global" block (a view of one token) is the
    # same computation as the "pointwise" block on the whole view.
    m = CVSIM(16, global_dim=8, num_heads=4, mode="pointwise")
    _perturb(m)
    u, z = torch.randn(2, 5, 16), torch.randn(2, 8)
    ref = CVSIM(16, global_dim=8, num_heads=4, mode="global")
    ref.load_state_dict(m.state_dict())
    expected = torch.cat(
        [ref(u[:, i : i + 1], other_global=z) for i in range(5)], dim=1
    )
    assert torch.allclose(m(u, other_global=z), expected, atol=1e-5)


def test_cross_mode_reads_the_other_tokens() -> None:
    m = CVSIM(16, num_heads=4, mode="cross")
    _perturb(m)
    u = torch.randn(2, 9, 16)
    a = m(u, other_tokens=torch.randn(2, 9, 16))
    b = m(u, other_tokens=torch.randn(2, 9, 16))
    assert not torch.allclose(a, b, atol=1e-4)


def test_none_mode_is_identity_and_errors_are_clear() -> None:
    u = torch.randn(2, 4, 8)
    m = CVSIM(8, num_heads=2, mode="none")
    _perturb(m)
    assert torch.equal(m(u), u)
    with pytest.raises(ValueError, match="mode"):
        CVSIM(8, mode="bogus")
    with pytest.raises(ValueError, match="divide"):
        CVSIM(10, num_heads=4)
    with pytest.raises(ValueError, match="other_global"):
        CVSIM(8, num_heads=2)(u)
    with pytest.raises(ValueError, match="other_tokens"):
        CVSIM(8, num_heads=2, mode="cross")(u)
