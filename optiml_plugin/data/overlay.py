"""Drawing boxes and mask outlines over radiographs, to check converted data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from optiml_plugin.data.io import read_image  # noqa: E402


def draw(
    ax: Axes,
    image: np.ndarray,
    boxes: list[list[float]] = (),
    labels: list[str] = (),
    mask: np.ndarray | None = None,
    title: str = "",
) -> None:
    """Draws a radiograph with COCO [x, y, w, h] boxes and a mask outline on ``ax``.

    The image is shown with pixel centres at integer coordinates (matplotlib's
    default), so a box [x, y, w, h] covers x-0.5 .. x+w-0.5 like the pixels
    it encloses.
    """
    ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for i, (x, y, w, h) in enumerate(boxes):
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, ec="red", lw=1))
        if i < len(labels):
            ax.text(x, y - 3, labels[i], color="yellow", fontsize=6, va="bottom")
    if mask is not None and mask.any():
        ax.contour((mask > 0).astype(float), levels=[0.5], colors="cyan", linewidths=1)
    ax.set_title(title, fontsize=7)
    ax.set_axis_off()


def show(
    coco: str | Path,
    images: str | Path,
    out: str | Path,
    masks: str | Path | None = None,
    max_images: int = 8,
) -> Path:
    """Draws the first ``max_images`` images of a COCO file (those with boxes
    first) with their boxes and, from ``masks/<stem>.png``, mask outlines.

    Args:
        coco: A COCO json file.
        images: The folder ``file_name`` is relative to.
        out: The figure (PNG) to write.
        masks: Optional folder of label maps named like the images.
        max_images: How many images to draw.
    """
    data = json.loads(Path(coco).read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    chosen = sorted(data["images"], key=lambda im: (im["id"] not in by_image, im["id"]))
    chosen = chosen[:max_images]
    cols = min(4, max(1, len(chosen)))
    rows = max(1, math.ceil(len(chosen) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, im in zip(axes.ravel(), chosen, strict=False):
        anns = by_image.get(im["id"], [])
        mask = None
        if masks is not None:
            mask_path = Path(masks) / f"{Path(im['file_name']).stem}.png"
            if mask_path.is_file():
                with Image.open(mask_path) as m:
                    mask = np.asarray(m) == 1
        draw(
            ax,
            read_image(Path(images) / im["file_name"]),
            [a["bbox"] for a in anns],
            [names.get(a["category_id"], "?") for a in anns],
            mask,
            Path(im["file_name"]).name,
        )
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Path(out)
