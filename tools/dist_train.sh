#!/usr/bin/env bash
# Several processes / GPUs / nodes through torch.distributed (as mmdet's dist_train.sh):
#   bash tools/dist_train.sh CONFIG NPROC [tools/train.py options]
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash tools/dist_train.sh CONFIG 8
# One process per GPU; without CUDA the processes train on the CPU over gloo
# (optiml_plugin/mm/dist.py). Python: $PYTHON, else the repository's .venv, else python3.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"

usage() {
    echo "usage: bash tools/dist_train.sh CONFIG NPROC [tools/train.py options]" >&2
    echo "  e.g. bash tools/dist_train.sh configs/mmdet/optiml_fasterrcnn_rsna.py 4 --amp" >&2
    exit 2
}
[ $# -ge 2 ] || usage
CONFIG=$1
NPROC=$2
[[ "$NPROC" =~ ^[1-9][0-9]*$ ]] || { echo "dist_train.sh: NPROC must be a positive integer, got '$NPROC'" >&2; usage; }
[ -f "$CONFIG" ] || { echo "dist_train.sh: config not found: $CONFIG" >&2; exit 2; }

NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi

PYTHONPATH="$REPO:${PYTHONPATH:-}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$HERE/train.py" "$CONFIG" --launcher pytorch "${@:3}"
