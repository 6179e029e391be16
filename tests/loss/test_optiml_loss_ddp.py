"""Under DDP the dense statistics are those of the global batch (gloo, 2 CPUs)."""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from optiml_plugin import OPTiMLLoss


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, stats: str, queue) -> None:  # noqa: ANN001
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=2, rank=rank
    )
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 9, 6, generator=g), torch.randn(8, 9, 6, generator=g)
    half = slice(4 * rank, 4 * rank + 4)
    loss = OPTiMLLoss(dense_statistics=stats, position_weight=0.0,
                      gather_distributed=True)  # fmt: skip
    terms = loss.terms(a[half], b[half])
    queue.put((rank, terms["dense_var"].item(), terms["dense_cov"].item()))
    dist.destroy_process_group()


@pytest.mark.parametrize("stats", ["residual", "batch"])
def test_statistics_gather_the_global_batch(stats: str) -> None:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, stats, queue)) for r in (0, 1)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 9, 6, generator=g), torch.randn(8, 9, 6, generator=g)
    full = OPTiMLLoss(dense_statistics=stats, position_weight=0.0).terms(a, b)
    local = OPTiMLLoss(dense_statistics=stats, position_weight=0.0).terms(a[:4], b[:4])
    for _, var, cov in results:
        assert var == pytest.approx(full["dense_var"].item(), rel=1e-5)
        assert cov == pytest.approx(full["dense_cov"].item(), rel=1e-5)
    assert abs(local["dense_cov"].item() - full["dense_cov"].item()) > 1e-4
