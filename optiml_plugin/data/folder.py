"""A folder (or list file) of radiographs for pretraining.

Unreadable files are reported by name and skipped (the next image is served in
their place), or raise at once with ``on_error="raise"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from optiml_plugin.data.io import ImageReadError, read_image

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".bmp",
    ".dcm",
    ".dicom",
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFolderDataset",
    "ImageReadError",
    "list_images",
    "read_image",
]


def list_images(source: str | Path, root: str | Path | None = None) -> list[Path]:
    """Lists the images of a folder (recursively, sorted) or of a list file.

    A list file (``.txt``) has one path per line, relative to ``root`` (default:
    the list's own folder) or absolute; blank lines and lines starting with ``#``
    are ignored.
    """
    source = Path(source)
    if source.is_dir():
        files = sorted(
            p for p in source.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
        )
    elif source.is_file() and source.suffix == ".txt":
        lines = [s.strip() for s in source.read_text().splitlines()]
        base = Path(root) if root is not None else source.parent
        files = [base / s for s in lines if s and not s.startswith("#")]
    else:
        raise FileNotFoundError(f"{source}: not a folder of images or a .txt list")
    if not files:
        raise FileNotFoundError(
            f"{source}: no images found ({', '.join(IMAGE_EXTENSIONS)})"
        )
    return files


class ImageFolderDataset(Dataset):
    """Radiographs from a folder or a list file, for self-supervised pretraining.

    Args:
        source: A folder (searched recursively) or a ``.txt`` list of paths.
        transform: Applied to each image, a float32 (H, W) array in [0, 1]
            (e.g. ``CVSIMTransform``).
        on_error: ``"skip"`` reports an unreadable file once and serves the next
            readable image instead; ``"raise"`` raises ``ImageReadError``.
        root: Folder that a list file's relative paths start from (default: the
            list's own folder).

    Returns from ``__getitem__``: ``(transform(image), 0)``, like an unlabelled
    torchvision dataset.
    """

    def __init__(
        self,
        source: str | Path,
        transform: Callable[[np.ndarray], Any] | None = None,
        on_error: str = "skip",
        root: str | Path | None = None,
    ) -> None:
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}.")
        self.files = list_images(source, root)
        self.transform = transform
        self.on_error = on_error
        self.bad_files: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        for offset in range(len(self.files)):
            path = self.files[(index + offset) % len(self.files)]
            try:
                image = read_image(path)
            except ImageReadError as err:
                if self.on_error == "raise":
                    raise
                if str(path) not in self.bad_files:
                    self.bad_files[str(path)] = str(err)
                    logger.warning("skipping unreadable image %s", err)
                continue
            sample = self.transform(image) if self.transform else image
            return sample, torch.tensor(0)
        raise ImageReadError(f"no readable image among {len(self.files)} files")
