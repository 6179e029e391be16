"""Which checkpoint files may hold what: the trust model, enforced in one place.

Every local file that MMEngine, mmdet or mmseg reads (``load_from``, ``resume``,
``init_cfg=dict(type='Pretrained', ...)`` of any module) goes through
:func:`load_local`, registered here as MMEngine's loader for local paths; every
download (``http(s)://``, and ``torchvision://``, ``open-mmlab://``, ``mmcls://``,
which MMEngine resolves to URLs) through :func:`load_from_url`, tensors only (torch's
hub loader, which MMEngine uses, unpickles fully by default); the OPTiML backbone
reads its pretrained file through :func:`load_tensors`. There are two modes and
nothing is ever fully unpickled:

* **Tensors only** (``torch.load(..., weights_only=True)``, explicit; torch's own
  allowlist of tensors, containers and plain values): pretrained backbones,
  ``load_from`` (flag or config) and every file not named below.
* **MMEngine checkpoint** (:func:`load_mmengine_checkpoint`): the file given to
  ``--resume PATH``, the latest checkpoint ``--resume`` finds in the work dir and
  the checkpoint ``tools/test.py`` evaluates. Still ``weights_only=True``, with
  :data:`MMENGINE_GLOBALS` added: the few classes and functions an MMEngine Runner
  checkpoint pickles (``HistoryBuffer``, numpy arrays, dtypes and scalars).

A file needing any other global is refused with :class:`UnsafeCheckpointError`
naming the file and the global; nothing in it runs. No folder (a ``work_dir``, the
home directory) is trusted wholesale: :func:`mmengine_checkpoints` names single
files, for the duration of one run.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mmengine.runner.checkpoint as mmengine_checkpoint
import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

_NUMPY_CORE = np._core if hasattr(np, "_core") else np.core  # numpy 2 / numpy 1


def _statistics_method(owner: Any, name: str) -> Any:
    """``getattr`` as an MMEngine checkpoint uses it, and for nothing else.

    A ``HistoryBuffer`` pickles its ``statistics_methods`` as
    ``getattr(HistoryBuffer, 'mean')`` and so on; any other owner or name is refused.
    """
    allowed = {"min", "max", "current", "mean", *HistoryBuffer._statistics_methods}
    if owner is not HistoryBuffer or name not in allowed:
        raise pickle.UnpicklingError(
            f"refused builtins.getattr({getattr(owner, '__qualname__', owner)!r}, "
            f"{name!r}): only HistoryBuffer's statistics methods"
        )
    return getattr(HistoryBuffer, name)


def _numpy_dtype_classes() -> list[type]:
    """numpy 2's dtype classes (``numpy.dtypes.Float64DType``): a dtype's pickled
    state is set on an instance of one (torch checks the type on ``BUILD``)."""
    dtypes = getattr(np, "dtypes", None)
    return [
        cls
        for name in dir(dtypes or object)
        if name.endswith("DType")
        and isinstance(cls := getattr(dtypes, name), type)
        and issubclass(cls, np.dtype)
    ]


#: What an MMEngine Runner checkpoint pickles besides tensors and plain values
#: (measured on ``iter_N.pth`` written by mmengine 0.10.7 with numpy 2.4:
#: ``HistoryBuffer``, numpy's ``ndarray``, ``dtype``, ``_reconstruct`` and
#: ``scalar``, and ``getattr`` for the buffer's statistics methods; numpy 2's dtype
#: classes, whose state ``BUILD`` sets;
#: ``tests/mm/test_mm_checkpoint.py`` checks the list against
#: ``torch.serialization.get_unsafe_globals_in_checkpoint``). numpy 1 and 2 name the
#: reconstructors differently; ``getattr`` is the narrow :func:`_statistics_method`.
MMENGINE_GLOBALS: list[Any] = [
    HistoryBuffer,
    np.ndarray,
    np.dtype,
    *_numpy_dtype_classes(),
    (_statistics_method, "builtins.getattr"),
    (_NUMPY_CORE.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    (_NUMPY_CORE.multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
    (_NUMPY_CORE.multiarray.scalar, "numpy.core.multiarray.scalar"),
    (_NUMPY_CORE.multiarray.scalar, "numpy._core.multiarray.scalar"),
]

_MMENGINE_FILES: set[Path] = set()


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint that needs a global its trust level does not allow."""


def load_tensors(path: str | os.PathLike[str], map_location: Any = "cpu") -> Any:
    """Reads ``path`` with ``torch.load(weights_only=True)`` (tensors and plain data).

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        UnsafeCheckpointError: If the file pickles anything else (naming it).
    """
    path = _existing(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise _refusal(path, err, "tensors only") from None


def load_mmengine_checkpoint(
    path: str | os.PathLike[str], map_location: Any = "cpu"
) -> Any:
    """Reads an MMEngine training checkpoint: tensors plus :data:`MMENGINE_GLOBALS`.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        UnsafeCheckpointError: If the file pickles any other global (naming it).
    """
    path = _existing(path)
    try:
        with torch.serialization.safe_globals(MMENGINE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise _refusal(path, err, "an MMEngine checkpoint") from None


@contextmanager
def mmengine_checkpoints(*paths: str | os.PathLike[str] | None) -> Iterator[None]:
    """Within the block, MMEngine reads these files (only) as MMEngine checkpoints.

    Args:
        *paths: Single files (``None`` entries are ignored): a resume checkpoint, the
            checkpoint under test. Every other file stays tensors only.
    """
    added = {Path(p).expanduser().resolve() for p in paths if p} - _MMENGINE_FILES
    _MMENGINE_FILES.update(added)
    try:
        yield
    finally:
        _MMENGINE_FILES.difference_update(added)


def is_mmengine_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether :func:`load_local` currently reads ``path`` as an MMEngine checkpoint."""
    return Path(path).expanduser().resolve() in _MMENGINE_FILES


def load_local(filename: str, map_location: Any = None) -> Any:
    """MMEngine's loader for local paths: one of the two modes, never full unpickling."""
    if is_mmengine_checkpoint(filename):
        return load_mmengine_checkpoint(filename, map_location)
    return load_tensors(filename, map_location)


def load_from_url(
    url: str,
    map_location: Any = None,
    model_dir: str | None = None,
    progress: bool = False,
) -> Any:
    """MMEngine's loader for downloads: cached by torch.hub, read tensors only.

    As MMEngine's own, rank 0 downloads first and the other ranks read its copy.

    Raises:
        UnsafeCheckpointError: If the file pickles anything but tensors and plain data.
    """

    def fetch() -> Any:
        try:
            return torch.hub.load_state_dict_from_url(
                url,
                model_dir=model_dir,
                map_location=map_location,
                progress=progress,
                weights_only=True,
            )
        except pickle.UnpicklingError as err:
            raise _refusal(url, err, "tensors only") from None

    rank, world_size = get_dist_info()
    checkpoint = fetch() if rank == 0 else None
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = fetch()
    return checkpoint


def register() -> None:
    """Makes this module MMEngine's checkpoint reader (idempotent).

    :func:`load_local` for local paths and :func:`load_from_url` for ``http(s)://``;
    MMEngine's ``torchvision://``, ``open-mmlab://`` and ``mmcls://`` loaders call
    ``load_from_http`` by its module-level name, which is pointed here too. (Its
    ``pavi://`` and ``s3://`` loaders keep torch's default, tensors only since torch
    2.6.)
    """
    CheckpointLoader.register_scheme(prefixes="", loader=load_local, force=True)
    CheckpointLoader.register_scheme(
        prefixes=("http://", "https://"), loader=load_from_url, force=True
    )
    mmengine_checkpoint.load_from_http = load_from_url


def _existing(path: str | os.PathLike[str]) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


def _refusal(path: Path | str, err: Exception, mode: str) -> UnsafeCheckpointError:
    """Our error for torch's refusal: the file, the global, what the file was read as."""
    text = str(err)
    found = re.search(r"GLOBAL (\S+) (?:was not an allowed global|whose module)", text)
    found = found or re.search(r"refused (builtins\.getattr\([^)]*\))", text)
    found = found or re.search(r"unrecognized function (.+?)(?: which belongs|$)", text)
    name = found.group(1) if found else "an object torch refuses"
    if found and "." not in name and not name.startswith("<"):
        name = f"builtins.{name}"  # torch prints builtins without the module
    hint = (
        " To continue an MMEngine training run use tools/train.py --resume PATH; "
        "to start from its weights, pass a file holding only its state_dict."
        if mode == "tensors only"
        else ""
    )
    return UnsafeCheckpointError(
        f"{path}: refused to unpickle global {name} (read as {mode}; "
        f"see optiml_plugin/mm/checkpoint.py). Nothing in the file was run.{hint}"
    )
