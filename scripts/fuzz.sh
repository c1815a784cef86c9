#!/usr/bin/env bash
# Coverage-guided fuzzing of every reader of outside data with cargo-fuzz (libFuzzer, nightly Rust):
# seeds each target with the real files the stable mutation test uses (crates/fuzz/src/targets.rs),
# then runs it for SECONDS (default 60) with libFuzzer's memory limits, and prints how many inputs each
# target ran and whether it crashed. Crashing inputs land in fuzz/artifacts/<target>/; keep each one in
# crates/fuzz/regressions/<target>/ so the normal suite replays it.
#   bash scripts/fuzz.sh [SECONDS] [TARGET…]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-60}"; shift || true
bash scripts/setup.sh
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
cargo run --release -q -p evdet-fuzz --bin fuzz_corpus -- fuzz/corpus >/dev/null
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=($(ls fuzz/fuzz_targets | sed 's/\.rs$//'))
# libtorch-free targets; the hdf5/blosc C libraries are linked as they are (not instrumented).
# Leak detection is off: HDF5 leaks a few dozen bytes in its error paths on corrupt files (found on the
# first run: H5O__pline_copy), which is not evdet's to fix; scripts/bench_memory.sh watches evdet's own.
export LIBTORCH="$PWD/.torch" LIBTORCH_CXX11_ABI=1
# HDF5 asks malloc for metadata blocks of the sizes a corrupt file states (109 TB in one input found
# here); outside ASan malloc returns NULL and HDF5 reports an error, which is the behaviour to test.
export ASAN_OPTIONS="allocator_may_return_null=1:detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
for t in "${targets[@]}"; do
  log="fuzz/artifacts/$t.log"; mkdir -p "fuzz/artifacts/$t"
  set +e
  (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" \
      -rss_limit_mb=4096 -malloc_limit_mb=1024 -timeout=20 -print_final_stats=1 \
      -detect_leaks=0) >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if [ $rc -eq 0 ]; then echo "$t: ${runs:-?} inputs in ${secs}s, $cov, no crash"
  else echo "$t: CRASH after ${runs:-?} inputs (rc $rc): see $log and fuzz/artifacts/$t/"; fi
done
