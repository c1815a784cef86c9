#!/usr/bin/env bash
# The GPU check (issue 27) in one call on a bare GPU machine: builds nothing, runs the release binaries
# of target/release (or $EVDET_BIN) against the libtorch of this machine's python3 torch, and writes
# gpu_check.json (see scripts/gpu_check.py for the parts and their tolerances).
#
#   bash scripts/gpu_check.sh                 # on the GPU machine: --device cuda, 50 steps per precision
#   bash scripts/gpu_check.sh --device cpu --steps 6     # the rehearsal here
# $RVT_ROOT (a checkout of uzh-rpg/RVT) adds the PyTorch reference's timing on the same device.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${EVDET_PYTHON:-python3}"
TORCH_LIB="$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" || {
    echo "gpu_check: $PY cannot import torch" >&2
    exit 1
}
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
BIN="${EVDET_BIN:-target/release}"
for b in evdet evdet-torch; do
    [ -x "$BIN/$b" ] || { echo "gpu_check: $BIN/$b is missing (cargo build --release -p evdet-cli)" >&2; exit 1; }
done
exec "$PY" scripts/gpu_check.py --bin "$BIN" "$@"
