#!/usr/bin/env bash
# The main job on the synthetic sample: installs what is missing, builds evdet, generates the `mini`
# sample on first use, preprocesses it and prints the summary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo build --release --locked -p evdet-cli
evdet=target/release/evdet
if [ ! -d data/mini_raw/test ]; then
  echo "main job: generating the synthetic 'mini' sample in data/mini_raw (first use only)" >&2
  "$evdet" synth --out data/mini_raw --preset mini
fi
"$evdet" preprocess --raw data/mini_raw --out data/mini --downsample 1
