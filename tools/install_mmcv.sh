#!/usr/bin/env bash
# Build mmcv 2.1.0 (with its compiled ops, mmcv._ext) once per machine, cache the
# wheel outside the repository, and install it into the given Python environment.
#
#   tools/install_mmcv.sh [PYTHON]        # default PYTHON: .venv/bin/python
#
# Why: mmdet 3.3 / mmseg 1.2 need 2.0.0rc4 <= mmcv < 2.2.0 and PyPI has no mmcv 2.1.0
# wheel for current torch, only its source distribution. Building it against torch 2.14
# needs three things (../shared/notes/mmcv.md):
#   * no build isolation, so that setup.py sees the installed torch (an isolated build
#     silently produces an mmcv without ops);
#   * setuptools < 81 (mmcv's setup.py imports pkg_resources), pinned in constraints.txt;
#   * C++20 instead of C++17 (torch >= 2.14 headers refuse older standards): the one-hunk
#     patch tools/mmcv/mmcv-2.1.0-cxx20.patch, applied to the unpacked sdist.
# Before the ~15-minute build it checks for `patch`, a C++20 compiler and setuptools < 81.
#
# The cache key is (mmcv, torch, Python, variant, machine). The variant is what mmcv's
# setup.py will build: CUDA ops whenever torch sees CUDA (or FORCE_CUDA=1), ROCm ops on
# a ROCm torch, CPU ops otherwise; so a GPU node never reuses a CPU-only wheel.
#
# Environment:
#   OPTIML_WHEEL_CACHE  cache folder (default ${XDG_CACHE_HOME:-~/.cache}/optiml-plugin/wheels);
#                       if it cannot be written, the built wheel is installed anyway
#   MAX_JOBS            parallel compiler processes (default: CPUs, at most one per
#                       1.5 GB of available memory; a compiler process takes ~1 GB)
#   FORCE_CUDA=1        build the CUDA ops even where torch sees no GPU (needs nvcc)
#   MMCV_REBUILD=1      ignore a cached wheel
#   OPTIML_MMCV_SDIST   a local mmcv-2.1.0.tar.gz to build instead of downloading it
set -euo pipefail

MMCV_VERSION=2.1.0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATCH="$HERE/mmcv/mmcv-${MMCV_VERSION}-cxx20.patch"
PY="${1:-.venv/bin/python}"

say() { echo "install_mmcv: $*"; }
die() { echo "install_mmcv: error: $*" >&2; exit 1; }

"$PY" -c "import torch" 2>/dev/null ||
    die "$PY cannot import torch; install the project first (make setup)"

read -r TORCH_V PY_TAG VARIANT < <(FORCE_CUDA="${FORCE_CUDA:-0}" "$PY" - <<'EOF'
import os, sys, torch
# What mmcv 2.1.0's setup.py builds: ROCm / CUDA ops when torch has them or
# FORCE_CUDA=1 is set, CPU ops otherwise.
if getattr(torch.version, "hip", None):
    variant = "rocm" + torch.version.hip.split("-")[0]
elif torch.cuda.is_available() or os.environ.get("FORCE_CUDA") == "1":
    variant = f"cuda{torch.version.cuda}"
else:
    variant = "cpu"
print(torch.__version__.split("+")[0], f"cp{sys.version_info[0]}{sys.version_info[1]}", variant)
EOF
)

if "$PY" - "$MMCV_VERSION" "$VARIANT" <<'EOF' 2>/dev/null; then
import importlib.metadata as md, sys
import mmcv.ops, mmcv._ext  # noqa: F401
assert md.version("mmcv") == sys.argv[1]
if sys.argv[2] != "cpu":  # a CPU-only build where GPU ops are wanted does not count
    assert mmcv.ops.get_compiling_cuda_version() != "not available"
EOF
    say "mmcv $MMCV_VERSION with ops ($VARIANT) already installed in $PY"
    exit 0
fi

CACHE_ROOT="${OPTIML_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/optiml-plugin/wheels}"
KEY="mmcv-${MMCV_VERSION}_torch-${TORCH_V}_${PY_TAG}_${VARIANT}_$(uname -m)"
CACHE="$CACHE_ROOT/$KEY"

wheel_in_cache() { ls "$CACHE"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true; }

preflight() {
    local missing=()
    command -v patch >/dev/null || missing+=("'patch' (apt-get install patch)")
    local cxx="${CXX:-c++}"
    if ! command -v "$cxx" >/dev/null; then
        missing+=("a C++ compiler '$cxx' (apt-get install g++)")
    elif ! printf '#include <concepts>\nint main() {}\n' |
        "$cxx" -std=c++20 -x c++ -fsyntax-only - 2>/dev/null; then
        missing+=("C++20 support in '$cxx' (g++ >= 10; set CXX to choose another)")
    fi
    "$PY" -W ignore -c "
import setuptools, pkg_resources  # noqa: F401
assert int(setuptools.__version__.split('.')[0]) < 81
" 2>/dev/null || missing+=("setuptools < 81 with pkg_resources in $PY (pip install -c constraints.txt 'setuptools>=77.0.3,<81')")
    if [ "$VARIANT" != cpu ] && [[ "$VARIANT" == cuda* ]] &&
        ! command -v nvcc >/dev/null && [ ! -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then
        missing+=("nvcc for the $VARIANT ops (set CUDA_HOME)")
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        printf 'install_mmcv: error: building mmcv needs:\n' >&2
        printf '  - %s\n' "${missing[@]}" >&2
        printf 'install_mmcv: nothing was built\n' >&2
        exit 1
    fi
}

default_jobs() {
    local cpus mem_kb
    cpus=$(nproc 2>/dev/null || echo 1)
    mem_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)
    local by_mem=$((mem_kb / 1500000))
    if [ "$mem_kb" -gt 0 ] && [ "$by_mem" -lt "$cpus" ]; then cpus=$by_mem; fi
    [ "$cpus" -ge 1 ] || cpus=1
    echo "$cpus"
}

# Copies the wheel into the cache under a name of this process's own, then renames it
# (atomic in one folder), so that neither an interrupted copy nor a concurrent install
# ever looks like a cached wheel. Returns 1, with a warning, if the cache is not writable.
cache_wheel() {
    local whl=$1 tmp
    if ! mkdir -p "$CACHE" 2>/dev/null || ! tmp=$(mktemp "$CACHE/.partial.XXXXXX" 2>/dev/null); then
        echo "install_mmcv: warning: cannot write the cache $CACHE; installing the built wheel without caching it (set OPTIML_WHEEL_CACHE to a writable folder to keep it)" >&2
        return 1
    fi
    if cp "$whl" "$tmp" && mv -f "$tmp" "$CACHE/$(basename "$whl")"; then
        return 0
    fi
    rm -f "$tmp"
    echo "install_mmcv: warning: could not copy the wheel into $CACHE; installing it without caching" >&2
    return 1
}

WHEEL="$(wheel_in_cache)"
if [ "${MMCV_REBUILD:-0}" = "1" ] || [ -z "$WHEEL" ]; then
    preflight
    JOBS="${MAX_JOBS:-$(default_jobs)}"
    say "building mmcv $MMCV_VERSION for torch $TORCH_V ($PY_TAG, $VARIANT) with $JOBS jobs; this takes ~15 min on 2 cores"
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
    if [ -n "${OPTIML_MMCV_SDIST:-}" ]; then
        [ -f "$OPTIML_MMCV_SDIST" ] || die "OPTIML_MMCV_SDIST=$OPTIML_MMCV_SDIST is not a file"
        cp "$OPTIML_MMCV_SDIST" "$WORK/mmcv-$MMCV_VERSION.tar.gz"
    else
        "$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
            --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$WORK"
    fi
    tar -xzf "$WORK/mmcv-$MMCV_VERSION.tar.gz" -C "$WORK"
    patch --forward --quiet -d "$WORK/mmcv-$MMCV_VERSION" -p1 <"$PATCH"
    start=$(date +%s)
    MMCV_WITH_OPS=1 MAX_JOBS="$JOBS" "$PY" -m pip wheel \
        --disable-pip-version-check --no-deps --no-build-isolation \
        "$WORK/mmcv-$MMCV_VERSION" -w "$WORK/dist"
    built="$(ls "$WORK"/dist/mmcv-*.whl)"
    say "built in $(($(date +%s) - start)) s"
    if cache_wheel "$built"; then
        WHEEL="$CACHE/$(basename "$built")"
        say "cached in $CACHE"
    else
        WHEEL="$built"
    fi
else
    say "reusing cached wheel $WHEEL"
fi

"$PY" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$WHEEL"
"$PY" -c "import mmcv, mmcv._ext, mmcv.ops; print('install_mmcv: mmcv', mmcv.__version__, 'with ops installed')"
