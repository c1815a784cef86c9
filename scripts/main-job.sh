#!/usr/bin/env bash
# The main job on the synthetic sample: installs what is missing, builds evdet, then `evdet train` with
# its default experiment (config/experiment/synthetic/mini.yaml): the `mini` sample is generated and
# preprocessed on first use, an RVT-tiny-sized 4-scale size-aware detector is trained on 2 CPU cores,
# evaluated on the test split, and the metric table printed. A killed run resumes where it stopped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo build --release --locked -p evdet-cli
exec target/release/evdet train "$@"
