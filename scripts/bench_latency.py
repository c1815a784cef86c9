#!/usr/bin/env python3
"""Streaming latency side by side: `evdet bench latency` (events → histogram, evdet eager, its
TorchScript export from Rust, its ONNX export in ONNX Runtime) and the PyTorch reference's eager
forward (uzh-rpg/RVT's YoloXDetector, read from $RVT_ROOT, built by scripts/rvt_reference.py), window
after window at batch 1 with the LSTM states fed back, in alternating rounds.

usage: RVT_ROOT=/tmp/rvt ~/.evdet/venv/bin/python scripts/bench_latency.py \
           [--presets tiny,small,base] [--windows 40] [--rounds 3] [--threads 2] [--json OUT]
Needs (besides torch): pip install omegaconf einops pillow; pip install --no-deps torchvision==0.26.0
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rvt_reference as ref  # noqa: E402
import torch  # noqa: E402


def percentiles(v):
    v = sorted(v)
    at = lambda q: v[round((len(v) - 1) * q)]
    return {"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "windows": len(v)}


def reference_latency(preset, hw, windows, warmup):
    m = ref.build(preset, hw).eval()
    g = torch.Generator().manual_seed(0)
    ms = []
    with torch.inference_mode():
        states = None
        for k in range(warmup + windows):
            x = torch.randint(0, 11, (1, 20, *hw), generator=g).float()
            t0 = time.perf_counter()
            feats, states = m.forward_backbone(x, states)
            m.forward_detect(feats)
            if k >= warmup:
                ms.append(1e3 * (time.perf_counter() - t0))
    return ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--evdet", default=os.path.join(HERE, "..", "target", "release", "evdet"))
    ap.add_argument("--presets", default="tiny,small,base")
    ap.add_argument("--windows", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    hw = (384, 640)
    presets = a.presets.split(",")
    engines = ("eager", "torchscript", "onnxruntime")
    runs = {p: {e: [] for e in engines + ("reference",)} for p in presets}
    hist = []
    evdet_out = []
    for r in range(a.rounds):
        out = json.loads(subprocess.run(
            [a.evdet, "bench", "latency", "--device", "cpu", "--threads", str(a.threads),
             "--presets", a.presets, "--windows", str(a.windows), "--warmup", str(a.warmup)],
            check=True, capture_output=True, text=True).stdout)
        evdet_out.append(out)
        hist.append(out["histogram_ms"]["p50"])
        for p in presets:
            for e in engines:
                runs[p][e].append(out["presets"][p][f"{e}_ms"]["p50"])
            ms = reference_latency(p, hw, a.windows, a.warmup)
            runs[p]["reference"].append(statistics.median(ms))
            print(f"round {r}: {p}: " + ", ".join(f"{e} {runs[p][e][-1]:.1f} ms" for e in runs[p]),
                  file=sys.stderr)
    summary = {p: {e: {"p50_median": statistics.median(v), "p50_min": min(v), "p50_max": max(v)}
                   for e, v in per.items()} for p, per in runs.items()}
    for p in presets:
        refm = summary[p]["reference"]["p50_median"]
        for e in engines:
            summary[p][e]["over_reference"] = summary[p][e]["p50_median"] / refm
    res = {"torch": torch.__version__, "threads": a.threads, "input_hw": hw, "rounds": a.rounds,
           "windows": a.windows, "histogram_p50_ms": statistics.median(hist),
           "summary": summary, "per_round_p50_ms": runs, "evdet_bench_latency_last_round": evdet_out[-1],
           "reference_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    text = json.dumps(res, indent=1)
    if a.json:
        open(a.json, "w").write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
