import torch
from lightly.models.modules.heads import ProjectionHead

from optiml_plugin import OPTiMLDenseProjectionHead, OPTiMLProjectionHead


def test_heads_are_lightly_projection_heads_with_requested_dims() -> None:
    g = OPTiMLProjectionHead(32, 16, 8, num_layers=3)
    d = OPTiMLDenseProjectionHead(32, 16, 8)
    assert isinstance(g, ProjectionHead) and isinstance(d, ProjectionHead)
    assert g(torch.randn(4, 32)).shape == (4, 8)
    assert sum(isinstance(m, torch.nn.Linear) for m in g.modules()) == 3


def test_dense_head_acts_per_cell_and_keeps_layout() -> None:
    head = OPTiMLDenseProjectionHead(12, 10, 6).eval()
    x = torch.randn(2, 3, 5, 12)
    out = head(x)
    assert out.shape == (2, 3, 5, 6)
    assert torch.allclose(out[1, 2, 4], head(x[1:2, 2:3, 4:5])[0, 0, 0], atol=1e-6)
    assert torch.allclose(out.reshape(-1, 6), head(x.reshape(-1, 12)), atol=1e-6)
