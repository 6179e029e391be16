"""The phantom dataset written by several processes at once (the ranks of a run)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from PIL import Image

from optiml_plugin.data.phantom_export import ensure_phantom_dataset

SETTINGS = {"num_images": 12, "size": 96, "seed": 5}


def _rank(out: str, barrier, results) -> None:
    """Waits for the other process, asks for the set, then reads every PNG."""
    barrier.wait()
    root = ensure_phantom_dataset(out, SETTINGS)
    pngs = sorted(root.glob("*/*.png"))
    stamps = {p.name + p.parent.name: p.stat().st_mtime_ns for p in pngs}
    bad = 0
    for _ in range(3):
        for path in pngs:
            try:
                with Image.open(path) as image:
                    image.load()
            except Exception:
                bad += 1
    results.put((stamps, bad))


def test_two_processes_build_one_phantom_set(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    out = str(tmp_path / "phantom")
    procs = [ctx.Process(target=_rank, args=(out, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    (stamps_a, bad_a), (stamps_b, bad_b) = (results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(stamps_a) == 3 * SETTINGS["num_images"]
    # Written once: the second process found the first one's files, unchanged.
    assert stamps_a == stamps_b
    assert bad_a == bad_b == 0
    assert not list(Path(out).rglob("*.tmp"))
