"""Reading throughput (images/s) of 1024 px PNG and DICOM into 224 px CV-SIM views.

Writes synthetic phantoms (8-bit PNG and 8-bit DICOM) to a temporary folder,
then times ``ImageFolderDataset(folder, transform=CVSIMTransform(size=224))``
through a ``DataLoader`` (batch 16) with 0 and 2 workers.

Usage: ``python tools/benchmark_io.py --images 64``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from PIL import Image
from torch.utils.data import DataLoader

from optiml_plugin.data.folder import ImageFolderDataset
from optiml_plugin.data.io import write_dicom
from optiml_plugin.data.phantom import generate_phantom
from optiml_plugin.transforms import CVSIMTransform


def main(argv: list[str] | None = None) -> int:
    """Prints a table: format, workers, images, seconds, images/s."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("png", "dcm"):
            (Path(tmp) / fmt).mkdir()
        for seed in range(args.images):
            image = generate_phantom(seed, size=args.size).image
            Image.fromarray(image).save(Path(tmp) / "png" / f"{seed:05d}.png")
            write_dicom(image, Path(tmp) / "dcm" / f"{seed:05d}.dcm")
        print(
            f"{'format':<8}{'workers':>8}{'images':>8}{'seconds':>10}{'images/s':>10}"
        )
        for fmt in ("png", "dcm"):
            dataset = ImageFolderDataset(
                Path(tmp) / fmt, transform=CVSIMTransform(size=224)
            )
            for workers in args.workers:
                loader = DataLoader(dataset, batch_size=16, num_workers=workers)
                start = time.perf_counter()
                n = sum(len(batch[1]) for batch in loader)
                seconds = time.perf_counter() - start
                print(f"{fmt:<8}{workers:>8}{n:>8}{seconds:>10.2f}{n / seconds:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
