"""Before a run: is the data where the config says, and if not, how to make it.

Without this, a config whose dataset was never converted fails deep inside
pycocotools or mmseg after hundreds of log lines. :func:`check_data` looks at each
dataloader's ``data_root``, ``ann_file`` and ``data_prefix`` folders and at the
evaluators' ``ann_file`` and raises :class:`MissingDataError` naming the missing
path, the ``tools/prepare_data.py`` command that writes it and ``--data-root``.
Phantom datasets are skipped: they write themselves on first use.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

#: How to make each dataset type's folder (``{root}``: the config's data root); a
#: ``(type, dataloader)`` key where one loader's data comes from elsewhere.
CONVERTERS: dict[str | tuple[str, str], str] = {
    "RSNAPneumoniaDataset": "python tools/prepare_data.py rsna "
    "--labels stage_2_train_labels.csv --images stage_2_train_images/ --out {root}",
    "VinDrCXRDataset": "python tools/prepare_data.py vindr "
    "--labels train.csv --images train/ --out {root}",
    "SIIMPneumothoraxDataset": "python tools/prepare_data.py siim "
    "--rle train-rle.csv --images dicom-images-train/ --out {root}",
    ("VinDrCXRDataset", "test_dataloader"): "python tools/prepare_data.py vindr "
    "--labels annotations_test.csv --images test/ --out {root}  (VinDr-CXR's test set)",
    "ChestXrayLungDataset": "(no converter) a folder with images/*.png and "
    "masks/*.png, e.g. ../shared/data/covid_cxr_lungseg",
}


class MissingDataError(FileNotFoundError):
    """A dataset file or folder the config needs does not exist."""


def check_data(cfg: Any, loaders: Sequence[str], evaluators: Sequence[str]) -> None:
    """Raises :class:`MissingDataError` for the first missing dataset path.

    Args:
        cfg: The (merged) config.
        loaders: Dataloader keys to check, e.g. ``('train_dataloader',
            'val_dataloader')``.
        evaluators: Evaluator keys whose ``ann_file`` to check.
    """
    for name in loaders:
        for dataset in _datasets(cfg.get(name) or {}):
            kind = str(dataset.get("type", ""))
            if "Phantom" in kind:
                continue
            for path in _paths(dataset):
                if not path.exists():
                    raise MissingDataError(_message(name, kind, path, dataset))
    for name in evaluators:
        entries = cfg.get(name) or []
        for ev in entries if isinstance(entries, (list, tuple)) else [entries]:
            ann = ev.get("ann_file") if ev else None
            if ann and not Path(ann).exists():
                raise MissingDataError(
                    _message(name, str(ev.get("type", "")), Path(ann), {})
                )


def _datasets(loader: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The loader's dataset and those it wraps (RepeatDataset, ConcatDataset)."""
    stack = [loader.get("dataset")]
    while stack:
        dataset = stack.pop()
        if isinstance(dataset, (list, tuple)):
            stack.extend(dataset)
        elif isinstance(dataset, dict):
            yield dataset
            stack.extend([dataset.get("dataset"), dataset.get("datasets")])


def _paths(dataset: dict[str, Any]) -> Iterator[Path]:
    root = Path(dataset["data_root"]) if dataset.get("data_root") else None
    if root is not None:
        yield root
    ann = dataset.get("ann_file")
    if ann:
        yield Path(ann) if root is None or Path(ann).is_absolute() else root / ann
    for prefix in (dataset.get("data_prefix") or {}).values():
        if prefix and root is not None and not Path(prefix).is_absolute():
            yield root / prefix


def _message(source: str, kind: str, path: Path, dataset: dict[str, Any]) -> str:
    root = dataset.get("data_root") or str(path.parent)
    command = CONVERTERS.get((kind, source)) or CONVERTERS.get(kind, "")
    command = command.format(root=str(root).rstrip("/"))
    lines = [f"{source} ({kind or 'dataset'}): {path} does not exist."]
    if command:
        lines.append(f"  Make it with:  {command}")
    lines.append(
        "  or point the config at converted data:  tools/train.py CONFIG --data-root DIR"
    )
    return "\n".join(lines)
