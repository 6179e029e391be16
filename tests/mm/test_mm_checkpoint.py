"""The checkpoint trust model: a booby-trapped pickle never runs, through any entry.

Each entry point is given a real checkpoint with a :class:`mm_helpers.Trap` inside
(unpickling it runs ``exec``, which would write a marker file). Every test asserts
both that the marker never appears and that the error names the file and the
forbidden global; honest MMEngine checkpoints still resume and test.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mm_helpers import CPU_LOADERS, REPO, SEG, booby_trap, cpu_options, train_args
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from optiml_plugin.mm.checkpoint import (
    MMENGINE_GLOBALS,
    UnsafeCheckpointError,
    is_mmengine_checkpoint,
    load_mmengine_checkpoint,
    load_tensors,
    mmengine_checkpoints,
)
from optiml_plugin.mm.cli import test as run_test
from optiml_plugin.mm.cli import train as run_train

LUNGS = SEG / "optiml_fcn_lungs_phantom.py"
TINY = [
    "train_cfg.max_iters=2",
    "train_cfg.val_interval=100",
    "default_hooks.checkpoint.interval=1",
    "train_dataloader.batch_size=2",
]


@pytest.fixture(scope="module")
def honest_run(
    tmp_path_factory: pytest.TempPathFactory, phantom_root: Path, r18_file: Path
) -> Path:
    """A work dir with iter_1.pth and iter_2.pth written by MMEngine's Runner."""
    work = tmp_path_factory.mktemp("honest") / "work"
    run_train(train_args(LUNGS, work, phantom_root, r18_file, *TINY))
    assert (work / "iter_2.pth").is_file()
    return work


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "the booby-trapped pickle ran"


@pytest.fixture
def evil(tmp_path: Path, marker: Path, honest_run: Path) -> Path:
    """An honest MMEngine checkpoint with a trap added."""
    honest = load_mmengine_checkpoint(honest_run / "iter_1.pth")
    return booby_trap(honest, tmp_path / "evil.pth", marker)


@pytest.fixture
def lungs_args(tmp_path: Path, phantom_root: Path, r18_file: Path) -> list[str]:
    """A two-iteration phantom lung run into a fresh work dir."""
    return train_args(LUNGS, tmp_path / "w", phantom_root, r18_file, *TINY)


def _refused(err: pytest.ExceptionInfo, path: Path) -> None:
    assert err.type is UnsafeCheckpointError
    assert str(path) in str(err.value) and "builtins.exec" in str(err.value)


# --- the loaders -----------------------------------------------------------------


def test_mmengine_checkpoint_needs_exactly_the_listed_globals(honest_run: Path) -> None:
    ckpt = honest_run / "iter_2.pth"
    with pytest.raises(pickle.UnpicklingError):  # what torch's default refuses
        torch.load(ckpt, weights_only=True)
    needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(ckpt))
    listed = {
        g[1] if isinstance(g, tuple) else f"{g.__module__}.{g.__qualname__}"
        for g in MMENGINE_GLOBALS
    }
    assert needed and needed <= listed, needed - listed
    data = load_mmengine_checkpoint(ckpt)
    assert data["meta"]["iter"] == 2 and "backbone.conv1.weight" in data["state_dict"]


def test_tensor_only_read_refuses_an_mmengine_checkpoint(honest_run: Path) -> None:
    with pytest.raises(UnsafeCheckpointError, match="HistoryBuffer.*--resume"):
        load_tensors(honest_run / "iter_2.pth")


@pytest.mark.parametrize("loader", [load_tensors, load_mmengine_checkpoint])
def test_both_modes_refuse_the_trap(
    loader, tmp_path: Path, marker: Path, r18_file: Path
) -> None:
    evil = booby_trap(
        {"state_dict": load_tensors(r18_file)}, tmp_path / "e.pth", marker
    )
    with pytest.raises(UnsafeCheckpointError) as err:
        loader(evil)
    _refused(err, evil)


class _Getattr:
    """Pickles as ``getattr(owner, name)``, the one builtin an MMEngine file uses."""

    def __init__(self, owner, name: str) -> None:
        self.owner, self.name = owner, name

    def __reduce__(self):
        return (getattr, (self.owner, self.name))


@pytest.mark.parametrize(
    ("owner", "name"), [(HistoryBuffer, "__init__"), (np.ndarray, "tofile")]
)
def test_getattr_is_only_for_history_buffer_statistics(
    tmp_path: Path, owner, name: str
) -> None:
    ok = tmp_path / "ok.pth"
    torch.save({"m": _Getattr(HistoryBuffer, "mean")}, ok)
    assert load_mmengine_checkpoint(ok)["m"] is HistoryBuffer.mean
    bad = tmp_path / "bad.pth"
    torch.save({"m": _Getattr(owner, name)}, bad)
    with pytest.raises(UnsafeCheckpointError, match=f"builtins.getattr.*{name}"):
        load_mmengine_checkpoint(bad)


def test_mmengine_loader_is_scoped_to_named_files(evil: Path, honest_run: Path) -> None:
    honest = honest_run / "iter_1.pth"
    with mmengine_checkpoints(honest):
        assert is_mmengine_checkpoint(honest) and not is_mmengine_checkpoint(evil)
        assert CheckpointLoader.load_checkpoint(str(honest))["meta"]["iter"] == 1
        with pytest.raises(UnsafeCheckpointError) as err:
            CheckpointLoader.load_checkpoint(str(evil))
        _refused(err, evil)
    assert not is_mmengine_checkpoint(honest)
    with pytest.raises(UnsafeCheckpointError, match="HistoryBuffer"):
        CheckpointLoader.load_checkpoint(str(honest))  # tensors only again


# --- every entry point -------------------------------------------------------------


def _derived(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "derived.py"
    path.write_text(f"_base_ = {str(LUNGS)!r}\n{body}")
    return path


def test_load_from_flag(evil: Path, lungs_args: list[str]) -> None:
    with pytest.raises(UnsafeCheckpointError) as err:
        run_train([*lungs_args, f"load_from={evil}"])
    _refused(err, evil)


def test_load_from_in_a_derived_config(
    tmp_path: Path, evil: Path, lungs_args: list[str]
) -> None:
    config = _derived(tmp_path, f"load_from = {str(evil)!r}\n")
    with pytest.raises(UnsafeCheckpointError) as err:
        run_train([str(config), *lungs_args[1:]])
    _refused(err, evil)


def test_load_from_with_plain_weights_still_loads(
    tmp_path: Path, honest_run: Path, lungs_args: list[str]
) -> None:
    state = load_mmengine_checkpoint(honest_run / "iter_2.pth")["state_dict"]
    plain = tmp_path / "weights.pth"
    torch.save({"state_dict": state, "meta": {"note": "tensors only"}}, plain)
    run_train([*lungs_args, "train_cfg.max_iters=1", f"load_from={plain}"])
    logs = "".join(p.read_text() for p in (tmp_path / "w").glob("*/*.log"))
    assert f"Load checkpoint from {plain}" in logs


@pytest.mark.parametrize(
    "where", ["backbone dict", "backbone list", "another module's init_cfg"]
)
def test_init_cfg(
    where: str, tmp_path: Path, marker: Path, phantom_root, r18_file
) -> None:
    evil = booby_trap(load_tensors(r18_file), tmp_path / "e.pth", marker)
    pretrained = f"dict(type='Pretrained', checkpoint={str(evil)!r})"
    body = {
        "backbone dict": f"model = dict(backbone=dict(init_cfg={pretrained}))\n",
        "backbone list": f"model = dict(backbone=dict(init_cfg=[{pretrained}]))\n",
        "another module's init_cfg": f"model = dict(decode_head=dict(init_cfg={pretrained}))\n",
    }[where]
    args = [
        str(_derived(tmp_path, body)),
        "--work-dir",
        str(tmp_path / "w"),
        "--data-root",
        str(phantom_root),
        "--cfg-options",
        *TINY,
        *cpu_options(),
    ]
    if where == "another module's init_cfg":
        args += [f"model.backbone.init_cfg.checkpoint={r18_file}"]
    with pytest.raises(UnsafeCheckpointError) as err:
        run_train(args)
    _refused(err, evil)


def test_resume_path(evil: Path, lungs_args: list[str]) -> None:
    with pytest.raises(UnsafeCheckpointError) as err:
        run_train([*lungs_args, "--resume", str(evil)])
    _refused(err, evil)


def test_resume_auto(
    tmp_path: Path, marker: Path, honest_run: Path, phantom_root, r18_file
) -> None:
    work = tmp_path / "w"
    shutil.copytree(honest_run, work)
    evil = booby_trap(
        load_mmengine_checkpoint(work / "iter_1.pth"), work / "iter_1.pth", marker
    )
    (work / "last_checkpoint").write_text(str(evil))
    args = train_args(LUNGS, work, phantom_root, r18_file, *TINY)
    with pytest.raises(UnsafeCheckpointError) as err:
        run_train([*args, "--resume"])
    _refused(err, evil)


def test_test_py(tmp_path: Path, evil: Path, phantom_root: Path) -> None:
    args = [str(LUNGS), str(evil), "--data-root", str(phantom_root)]
    with pytest.raises(UnsafeCheckpointError) as err:
        run_test(
            [*args, "--work-dir", str(tmp_path / "t"), "--cfg-options", *cpu_options()]
        )
    _refused(err, evil)


def test_config_resume_with_load_from_is_refused(
    tmp_path: Path, honest_run: Path, lungs_args: list[str]
) -> None:
    config = _derived(
        tmp_path, f"resume = True\nload_from = {str(honest_run / 'iter_1.pth')!r}\n"
    )
    with pytest.raises(SystemExit, match="--resume .*iter_1.pth"):
        run_train([str(config), *lungs_args[1:]])


# --- honest checkpoints still work ---------------------------------------------


def test_honest_resume_and_test(
    tmp_path: Path, honest_run: Path, phantom_root, r18_file
) -> None:
    work = tmp_path / "w"
    work.mkdir()
    shutil.copy(honest_run / "iter_1.pth", work / "iter_1.pth")
    args = train_args(LUNGS, work, phantom_root, r18_file, *TINY)
    run_train([*args, "--resume", str(work / "iter_1.pth")])
    assert load_mmengine_checkpoint(work / "iter_2.pth")["meta"]["iter"] == 2
    logs = "".join(p.read_text() for p in work.glob("*/*.log"))
    assert "resumed epoch: 0, iter: 1" in logs

    out = tmp_path / "metrics.json"
    run_test(
        [
            str(LUNGS),
            str(work / "iter_2.pth"),
            "--work-dir",
            str(tmp_path / "t"),
            "--data-root",
            str(phantom_root),
            "--out",
            str(out),
            "--cfg-options",
            *cpu_options(),
        ]
    )
    assert "dice/dice_all" in out.read_text()


def test_downloads_are_tensors_only(
    tmp_path: Path, marker: Path, r18_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """http(s) and the model-zoo schemes MMEngine resolves to URLs (torch's hub
    loader, which MMEngine calls, unpickles fully by default)."""
    import mmengine.runner.checkpoint as mmengine_checkpoint

    from optiml_plugin.mm.checkpoint import load_from_url

    evil = booby_trap(load_tensors(r18_file), tmp_path / "evil.pth", marker)
    url = evil.as_uri()  # file://, as a download (urllib reads it the same way)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_from_url(url, model_dir=str(tmp_path / "cache"))
    assert url in str(err.value) and "builtins.exec" in str(err.value)
    assert CheckpointLoader._get_checkpoint_loader("https://x/y.pth") is load_from_url
    monkeypatch.setattr(
        mmengine_checkpoint, "get_torchvision_models", lambda: {"evil": url}
    )
    with pytest.raises(UnsafeCheckpointError, match="builtins.exec"):
        CheckpointLoader.load_checkpoint("torchvision://evil")
    honest = load_from_url(r18_file.as_uri(), model_dir=str(tmp_path / "cache"))
    assert set(honest) == set(load_tensors(r18_file))


def test_tools_test_py_command_line(
    tmp_path: Path, evil: Path, phantom_root: Path
) -> None:
    """The same refusal from the real command, in a process of its own."""
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "test.py"),
            str(LUNGS),
            str(evil),
            "--data-root",
            str(phantom_root),
            "--work-dir",
            str(tmp_path / "t"),
            "--cfg-options",
            *CPU_LOADERS,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "UnsafeCheckpointError" in proc.stderr and "builtins.exec" in proc.stderr
    assert str(evil) in proc.stderr
