#!/usr/bin/env bash
# Runs the whole evdet test suite on a fresh machine: installs what is missing, then `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo test --workspace --locked "$@"
