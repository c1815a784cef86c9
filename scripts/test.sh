#!/usr/bin/env bash
# Runs the whole evdet test suite on a fresh machine: installs what is missing, then `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# A one-off build gains nothing from incremental state, which doubles the disk a fresh clone needs.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo test --workspace --locked "$@"
