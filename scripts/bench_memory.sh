#!/usr/bin/env bash
# Long-run memory of training: `evdet train` for STEPS steps (default 2000) on the synthetic `mini`
# sample, logging the process's resident and peak resident memory every 100 steps
# and the allocator's live heap (train/rss_mib, train/peak_rss_mib, train/heap_live_mib in metrics.jsonl), then prints them at steps 200 and STEPS as
# JSON. Flat means no growth from the recurrent states, the logs or the prefetcher.
# The model is the main job's with embed_dim 8 and batch 2 by default, so 2000 steps fit in minutes on
# 2 cores; give `model.backbone.embed_dim=32 batch_size.train=8` (or any override) to measure others.
#   bash scripts/bench_memory.sh [STEPS] [key=value …]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps="${1:-2000}"; shift || true
runs="$(mktemp -d)"
trap 'rm -rf "$runs"' EXIT
target/release/evdet train --no-test "logging.runs_dir=$runs" logging.experiment_id=memory \
  "training.max_steps=$steps" logging.log_every_n_steps=100 logging.ckpt_every_n_steps=500 \
  validation.val_check_interval=1000 validation.limit_val_batches=4 \
  model.backbone.embed_dim=8 model.backbone.stage.attention.dim_head=8 batch_size.train=2 \
  batch_size.eval=2 "$@" >/dev/null
python3 - "$runs/synthetic/mini/memory/metrics.jsonl" "$steps" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "train/rss_mib" in r:
        rows[r["step"]] = r
steps = int(sys.argv[2])
at = lambda s: {k: round(rows[s]["train/" + k], 1) for k in ("rss_mib", "peak_rss_mib", "heap_live_mib") if "train/" + k in rows[s]}
out = {"steps": steps, "at_200": at(200), f"at_{steps}": at(steps),
       "rss_by_step": {s: round(r["train/rss_mib"], 1) for s, r in sorted(rows.items())},
       "heap_live_by_step": {s: round(r.get("train/heap_live_mib", float("nan")), 1) for s, r in sorted(rows.items())}}
print(json.dumps(out, indent=1))
PY
