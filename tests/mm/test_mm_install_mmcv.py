"""tools/install_mmcv.sh, fast: a stand-in Python whose pip builds a fake wheel.

The stand-in runs the real interpreter with stub ``torch`` and ``mmcv`` packages
first on ``PYTHONPATH`` (so the script's own checks, variant detection and
preflight run for real) and answers ``-m pip wheel`` / ``-m pip install`` itself,
logging each call. ``OPTIML_MMCV_SDIST`` hands the script a local sdist with the
lines the real patch changes, so ``tar`` and ``patch`` run too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "install_mmcv.sh"
PATCH = REPO / "tools" / "mmcv" / "mmcv-2.1.0-cxx20.patch"

TORCH_STUB = """
import os
__version__ = "2.14.1+cpu"
class version:
    cuda = "13.0" if os.environ.get("FAKE_CUDA") == "1" else None
    hip = None
class cuda:
    @staticmethod
    def is_available():
        return os.environ.get("FAKE_CUDA") == "1"
"""

PIP_STUB = r"""
import os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["FAKE_PIP_LOG"], "a") as log:
    log.write(" ".join(args) + "\n")
stubs = Path(os.environ["FAKE_STUBS"])
if args[0] == "wheel":
    src = Path(args[-3])
    assert "-std=c++20" in (src / "setup.py").read_text(), "patch not applied"
    out = Path(args[args.index("-w") + 1])
    out.mkdir(parents=True, exist_ok=True)
    variant = "cuda" if os.environ.get("FAKE_CUDA") == "1" else "cpu"
    (out / "mmcv-2.1.0-cp311-cp311-linux_x86_64.whl").write_text(variant)
elif args[0] == "install":
    variant = Path(args[-1]).read_text()  # the wheel must exist when installed
    pkg = stubs / "mmcv"
    (pkg / "ops").mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("__version__ = '2.1.0'\n")
    (pkg / "_ext.py").write_text("")
    cuda = "13.0" if variant == "cuda" else "not available"
    (pkg / "ops" / "__init__.py").write_text(
        f"def get_compiling_cuda_version():\n    return {cuda!r}\n"
    )
    meta = stubs / "mmcv-2.1.0.dist-info"
    meta.mkdir(exist_ok=True)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: mmcv\nVersion: 2.1.0\n")
else:
    sys.exit(f"stub pip: unexpected command {args}")
"""


def _sdist(path: Path) -> Path:
    """An mmcv-2.1.0.tar.gz whose setup.py has the lines the patch changes."""
    old = [
        line[1:]
        for line in PATCH.read_text().splitlines()
        if line[:1] in (" ", "-") and not line.startswith("---")
    ]
    src = path.parent / "mmcv-2.1.0"
    src.mkdir()
    (src / "setup.py").write_text("\n".join(old) + "\n")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname="mmcv-2.1.0")
    return path


@pytest.fixture
def fake(tmp_path: Path) -> dict[str, Path]:
    stubs = tmp_path / "stubs"
    (stubs / "torch").mkdir(parents=True)
    (stubs / "torch" / "__init__.py").write_text(TORCH_STUB)
    (stubs / "mmcv").mkdir()
    (stubs / "mmcv" / "__init__.py").write_text("raise ImportError('not installed')\n")
    (tmp_path / "stub_pip.py").write_text(PIP_STUB)
    python = tmp_path / "python"
    python.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "$1" = -m ] && [ "$2" = pip ]; then\n'
        f'  exec {sys.executable} {tmp_path / "stub_pip.py"} "${{@:3}}"\n'
        "fi\n"
        f'PYTHONPATH={stubs} exec {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    sdist_dir = tmp_path / "sdist"
    sdist_dir.mkdir()
    return {
        "python": python,
        "stubs": stubs,
        "log": tmp_path / "pip.log",
        "sdist": _sdist(sdist_dir / "mmcv-2.1.0.tar.gz"),
        "tmp": tmp_path,
    }


def _run(fake: dict[str, Path], cache: Path, **env: str) -> subprocess.CompletedProcess:
    full = {
        **os.environ,
        "FAKE_PIP_LOG": str(fake["log"]),
        "FAKE_STUBS": str(fake["stubs"]),
        "OPTIML_MMCV_SDIST": str(fake["sdist"]),
        "OPTIML_WHEEL_CACHE": str(cache),
        **env,
    }
    for name in ("FORCE_CUDA", "MAX_JOBS", "MMCV_REBUILD"):
        full.pop(name, None)
    return subprocess.run(
        ["bash", str(SCRIPT), str(fake["python"])],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _pip_calls(fake: dict[str, Path]) -> list[str]:
    log = fake["log"]
    return log.read_text().splitlines() if log.is_file() else []


def test_unwritable_cache_still_installs_the_built_wheel(fake) -> None:
    blocker = fake["tmp"] / "a_file"
    blocker.write_text("a file where the cache folder should be")
    proc = _run(fake, blocker / "cache")
    assert proc.returncode == 0, proc.stderr
    assert "cannot write the cache" in proc.stderr
    calls = _pip_calls(fake)
    assert [c.split()[0] for c in calls] == ["wheel", "install"]
    assert "mmcv 2.1.0 with ops installed" in proc.stdout


def test_missing_patch_fails_before_building(fake) -> None:
    bin_dir = fake["tmp"] / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        for tool in Path(folder).iterdir():
            link = bin_dir / tool.name
            if tool.name != "patch" and not link.exists():
                link.symlink_to(tool)
    proc = _run(fake, fake["tmp"] / "cache", PATH=str(bin_dir))
    assert proc.returncode == 1
    assert "'patch'" in proc.stderr and "nothing was built" in proc.stderr
    assert _pip_calls(fake) == []


@pytest.mark.parametrize("lack", ["compiler", "setuptools"])
def test_other_build_needs_are_checked_first(fake, lack: str) -> None:
    env = {}
    if lack == "compiler":
        env["CXX"] = "false"  # a "compiler" that compiles nothing
        expected = "C++20 support in 'false'"
    else:  # setuptools 81 has no pkg_resources, which mmcv's setup.py imports
        stub = fake["stubs"] / "setuptools"
        stub.mkdir()
        (stub / "__init__.py").write_text("__version__ = '81.0.0'\n")
        expected = "setuptools < 81"
    proc = _run(fake, fake["tmp"] / "cache", **env)
    assert proc.returncode == 1
    assert expected in proc.stderr and "nothing was built" in proc.stderr
    assert _pip_calls(fake) == []


def test_cache_key_is_the_variant_mmcv_builds(fake) -> None:
    cache = fake["tmp"] / "cache"
    proc = _run(fake, cache)  # no GPU: CPU ops
    assert proc.returncode == 0, proc.stderr
    (cpu,) = cache.iterdir()
    assert "_cpu_" in cpu.name and not list(cpu.glob(".partial*"))

    # A GPU node with the CPU-only mmcv installed and a shared cache: not reused.
    nvcc = fake["tmp"] / "cuda" / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text("#!/bin/sh\n")
    nvcc.chmod(0o755)
    proc = _run(fake, cache, FAKE_CUDA="1", CUDA_HOME=str(nvcc.parents[1]))
    assert proc.returncode == 0, proc.stderr
    assert "already installed" not in proc.stdout
    assert "reusing" not in proc.stdout
    assert sorted(p.name.split("_")[3] for p in cache.iterdir()) == ["cpu", "cuda13.0"]

    # A fresh CPU environment reuses the cached CPU wheel without building.
    (fake["stubs"] / "mmcv" / "__init__.py").write_text("raise ImportError\n")
    fake["log"].unlink()
    proc = _run(fake, cache)
    assert proc.returncode == 0, proc.stderr
    assert f"reusing cached wheel {cpu}/" in proc.stdout
    assert [c.split()[0] for c in _pip_calls(fake)] == ["install"]


def test_default_jobs_fit_the_memory(fake) -> None:
    proc = _run(fake, fake["tmp"] / "cache")
    assert proc.returncode == 0, proc.stderr
    jobs = int(proc.stdout.split(" with ")[1].split()[0])
    available_kb = int(
        next(
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemAvailable:")
        )
    )
    assert 1 <= jobs <= min(os.cpu_count() or 1, max(1, available_kb // 1_500_000))
