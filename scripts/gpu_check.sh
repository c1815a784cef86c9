#!/usr/bin/env bash
# The GPU check (issue 27) in one call on a bare GPU machine: builds nothing, runs the release binaries
# against the libtorch of that machine's python3 torch, and writes gpu_check.json (scripts/gpu_check.py
# lists the parts and their tolerances).
#
#   RVT_ROOT=/tmp/rvt bash scripts/gpu_check.sh --pack   # here: stripped binaries, RVT's source and the
#                                                        # wheels RVT needs into .gpu/ (git-ignored, ~35 MB)
#   bash scripts/gpu_check.sh                            # there (with .gpu/ sent along): --device cuda
#   bash scripts/gpu_check.sh --device cpu --steps 6     # the rehearsal here
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${EVDET_PYTHON:-python3}"

if [ "${1:-}" = "--pack" ]; then
    set -e
    rm -rf .gpu && mkdir -p .gpu/bin .gpu/wheels
    for b in evdet evdet-torch; do
        cp "target/release/$b" .gpu/bin/ && strip .gpu/bin/$b
    done
    if [ -n "${RVT_ROOT:-}" ]; then
        mkdir -p .gpu/rvt && cp -r "$RVT_ROOT"/. .gpu/rvt/ && rm -rf .gpu/rvt/.git
    fi
    # RVT's model code imports omegaconf (not on the GPU machines); wheels for their python 3.12.
    PIP="${EVDET_VENV:-$HOME/.evdet/venv}/bin/pip"
    "$PIP" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .gpu/wheels omegaconf==2.3.0 PyYAML
    "$PIP" wheel -q --no-deps -w .gpu/wheels antlr4-python3-runtime==4.9.3
    du -sh .gpu
    exit 0
fi

TORCH_LIB="$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" || {
    echo "gpu_check: $PY cannot import torch" >&2
    exit 1
}
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
BIN="${EVDET_BIN:-target/release}"
[ -x .gpu/bin/evdet ] && [ -z "${EVDET_BIN:-}" ] && BIN=.gpu/bin
for b in evdet evdet-torch; do
    [ -x "$BIN/$b" ] || { echo "gpu_check: $BIN/$b is missing (cargo build --release -p evdet-cli)" >&2; exit 1; }
done
if [ -d .gpu/rvt ] && [ -z "${RVT_ROOT:-}" ]; then
    export RVT_ROOT="$PWD/.gpu/rvt"
fi
if [ -d .gpu/wheels ] && ! "$PY" -c 'import omegaconf' 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --target .gpu/py .gpu/wheels/*.whl && \
        export PYTHONPATH="$PWD/.gpu/py${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" scripts/gpu_check.py --bin "$BIN" "$@"
status=$?
[ -n "${OUT:-}" ] && [ -f gpu_check.json ] && cp gpu_check.json "$OUT"/
exit $status
