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
#
# Environment:
#   OPTIML_WHEEL_CACHE  cache folder (default ${XDG_CACHE_HOME:-~/.cache}/optiml-plugin/wheels)
#   MAX_JOBS            parallel compiler processes (default: number of CPUs; ~1 GB each)
#   FORCE_CUDA=1        build the CUDA ops too (needs nvcc); part of the cache key
#   MMCV_REBUILD=1      ignore a cached wheel
set -euo pipefail

MMCV_VERSION=2.1.0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATCH="$HERE/mmcv/mmcv-${MMCV_VERSION}-cxx20.patch"
PY="${1:-.venv/bin/python}"

if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "install_mmcv: $PY cannot import torch; install the project first (make setup)" >&2
    exit 1
fi

if "$PY" - <<EOF 2>/dev/null; then
import importlib.metadata as md, mmcv.ops, mmcv._ext  # noqa: F401
assert md.version("mmcv") == "$MMCV_VERSION"
EOF
    echo "install_mmcv: mmcv $MMCV_VERSION with ops already installed in $PY"
    exit 0
fi

read -r TORCH_V PY_TAG < <("$PY" -c "import sys, torch; print(torch.__version__.split('+')[0], f'cp{sys.version_info[0]}{sys.version_info[1]}')")
VARIANT=cpu
if [ "${FORCE_CUDA:-0}" = "1" ]; then
    VARIANT="cuda$("$PY" -c 'import torch; print(torch.version.cuda)')"
fi
CACHE_ROOT="${OPTIML_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/optiml-plugin/wheels}"
KEY="mmcv-${MMCV_VERSION}_torch-${TORCH_V}_${PY_TAG}_${VARIANT}_$(uname -m)"
CACHE="$CACHE_ROOT/$KEY"

wheel_in_cache() { ls "$CACHE"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1; }

if [ "${MMCV_REBUILD:-0}" = "1" ] || [ -z "$(wheel_in_cache)" ]; then
    echo "install_mmcv: building mmcv $MMCV_VERSION for torch $TORCH_V ($PY_TAG, $VARIANT); this takes ~15 min on 2 cores"
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
        --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$WORK"
    tar -xzf "$WORK/mmcv-$MMCV_VERSION.tar.gz" -C "$WORK"
    patch --forward --quiet -d "$WORK/mmcv-$MMCV_VERSION" -p1 <"$PATCH"
    start=$(date +%s)
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$PY" -m pip wheel \
        --disable-pip-version-check --no-deps --no-build-isolation \
        "$WORK/mmcv-$MMCV_VERSION" -w "$WORK/dist"
    mkdir -p "$CACHE"
    # Copy then rename, so that an interrupted copy never looks like a cached wheel.
    whl="$(ls "$WORK"/dist/mmcv-*.whl)"
    cp "$whl" "$CACHE/.partial" && mv "$CACHE/.partial" "$CACHE/$(basename "$whl")"
    echo "install_mmcv: built in $(( $(date +%s) - start )) s, cached in $CACHE"
else
    echo "install_mmcv: reusing cached wheel $(wheel_in_cache)"
fi

"$PY" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$(wheel_in_cache)"
"$PY" -c "import mmcv, mmcv._ext, mmcv.ops; print('install_mmcv: mmcv', mmcv.__version__, 'with ops installed')"
