#!/usr/bin/env python3
"""The GPU check (issue 27): what a first GPU machine must prove, in one call that builds nothing.

Run by scripts/gpu_check.sh (which finds libtorch in this python's torch). Every part runs even when an
earlier one failed, with its own time limit; the result is one JSON file (--out, default
gpu_check.json) with, per part, "ok" or the error and its numbers:

  data        the `mini` sample, generated and preprocessed by `evdet train` on first use
  init        one CPU training step, whose checkpoint every later run starts from (`model.init_from`):
              weights drawn on the GPU would come from another random stream
  train_<p>   --steps training steps on --device at precision p (fp32, bf16, fp16): losses of the first
              steps, steps/s over the steady-state steps, peak memory
  losses      the first LOSS_STEPS losses of each precision against the CPU's fp32 run from the same
              weights and data: |Δ| / |loss_cpu| within TOLERANCE[p] (fp32 on CUDA convolves in TF32)
  bench_model `evdet bench model` on --device: forward per preset, the training step per precision
  reference   scripts/bench_model_vs_reference.py on --device (needs $RVT_ROOT and RVT's python deps;
              skipped with the reason otherwise)
  latency     `evdet bench latency --no-onnx` on --device
  dist_alone  10 steps through the data-parallel path with a process group of one
              (`hardware.dist_alone`): NCCL on CUDA, Gloo in the CPU rehearsal

  python3 scripts/gpu_check.py --device cuda [--steps 50] [--bin target/release] [--out gpu_check.json]
  python3 scripts/gpu_check.py --device cpu --steps 6      # the rehearsal on a CPU machine
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

PRECISIONS = ("fp32", "bf16", "fp16")
LOSS_STEPS = 3
# Relative loss difference to the CPU's fp32 run, per precision, over the first LOSS_STEPS steps. fp32
# on CUDA convolves in TF32 (10-bit mantissa) by default; bf16 keeps 8 bits, fp16 10 with a smaller
# range; the steps after the first add the different updates' drift.
TOLERANCE = {"fp32": 2e-2, "bf16": 6e-2, "fp16": 6e-2}
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd, limit, env=None):
    """Runs `cmd`; (ok, seconds, stdout, stderr tail)."""
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, env=env, cwd=ROOT)
        return p.returncode == 0, time.time() - t0, p.stdout, p.stderr[-3000:]
    except subprocess.TimeoutExpired as e:
        return False, time.time() - t0, "", f"timed out after {limit} s: {(e.stderr or b'')[-2000:]!r}"
    except OSError as e:
        return False, time.time() - t0, "", str(e)


def last_json(ok, out, err):
    """The JSON object a command printed last (it starts a line), or the error."""
    if not ok:
        return {"ok": False, "error": err}
    try:
        obj, _ = json.JSONDecoder().raw_decode(out[out.rfind("\n{") + 1:])
        return obj
    except ValueError as e:
        return {"ok": False, "error": f"unreadable output ({e}): {out[-500:]}"}


def metrics(runs, ident):
    path = os.path.join(ROOT, runs, "synthetic", "mini", ident, "metrics.jsonl")
    rows = [json.loads(line) for line in open(path)]
    return [r for r in rows if "train/loss" in r]


def train(a, ident, device, precision, steps, extra=(), flags=()):
    cmd = [os.path.join(a.bin, "evdet"), "train", "--fresh", "--no-test", "--device", device, *flags,
           f"logging.runs_dir={a.runs}", f"logging.experiment_id={ident}", f"training.max_steps={steps}",
           f"training.precision={precision}", "logging.log_every_n_steps=1",
           "validation.val_check_interval=1000000", "logging.ckpt_every_n_steps=1000000", *extra]
    return run(cmd, a.part_limit)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release"))
    ap.add_argument("--out", default="gpu_check.json")
    ap.add_argument("--runs", default="gpu_check_runs")
    ap.add_argument("--part-limit", type=int, default=150, help="seconds per part")
    a = ap.parse_args()
    t_start = time.time()
    res = {"device": a.device, "steps": a.steps, "host": platform.node(), "python": sys.version.split()[0],
           "tolerance": TOLERANCE, "loss_steps": LOSS_STEPS, "parts": {}}
    try:
        import torch
        res["torch"] = torch.__version__
        res["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            res["gpu"] = torch.cuda.get_device_name(0)
            res["gpu_capability"] = list(torch.cuda.get_device_capability(0))
            res["gpu_count"] = torch.cuda.device_count()
    except Exception as e:  # noqa: BLE001 - the check reports whatever it meets
        res["torch"] = f"not importable: {e}"
    parts = res["parts"]

    def save():
        res["wall_s"] = time.time() - t_start
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)

    # The sample and the starting weights, on the CPU.
    ok, secs, _, err = train(a, "gpu_init", "cpu", "fp32", 1)
    init = os.path.join(ROOT, a.runs, "synthetic", "mini", "gpu_init", "checkpoints", "last")
    parts["init"] = {"ok": ok, "seconds": secs, **({} if ok else {"error": err})}
    save()
    start = [f"model.init_from={init}"] if ok else []

    # The same schedule as the runs it is compared with (OneCycle's rates depend on max_steps).
    ok, secs, _, err = train(a, "gpu_cpu_fp32", "cpu", "fp32", a.steps, start)
    cpu_losses = [r["train/loss"] for r in metrics(a.runs, "gpu_cpu_fp32")][:LOSS_STEPS] if ok else []
    parts["cpu_fp32"] = {"ok": ok, "seconds": secs, "losses": cpu_losses, **({} if ok else {"error": err})}
    save()

    comparisons = {}
    for p in PRECISIONS:
        ident = f"gpu_{a.device.replace(':', '')}_{p}"
        ok, secs, _, err = train(a, ident, a.device, p, a.steps, start)
        entry = {"ok": ok, "seconds": secs}
        if ok:
            rows = metrics(a.runs, ident)
            losses = [r["train/loss"] for r in rows]
            steady = [r["train/compute_time_s"] + r.get("train/data_time_s", 0.0) for r in rows[3:]
                      if "train/compute_time_s" in r]
            entry.update({"first_losses": losses[:LOSS_STEPS], "last_loss": losses[-1] if losses else None,
                          "finite": all(x == x and abs(x) != float("inf") for x in losses),
                          "steps_per_s": 1.0 / statistics.median(steady) if steady else None,
                          "peak_rss_mib": max((r.get("train/peak_rss_mib", 0) for r in rows), default=None)})
            if cpu_losses:
                rel = [abs(g - c) / abs(c) for g, c in zip(losses, cpu_losses)]
                comparisons[p] = {"rel_diff": rel, "tolerance": TOLERANCE[p],
                                  "within": bool(rel) and max(rel) <= TOLERANCE[p]}
        else:
            entry["error"] = err
        parts[f"train_{p}"] = entry
        save()
    parts["losses"] = comparisons

    bench = {}
    for p in PRECISIONS:
        ok, secs, out, err = run([os.path.join(a.bin, "evdet"), "bench", "model", "--device", a.device,
                                  "--threads", str(os.cpu_count() or 2), "--precision", p,
                                  "--presets", "tiny,small,base", "--scales", "3", "--reps", "10"]
                                 + (["--no-forward"] if p != "fp32" else []), a.part_limit)
        bench[p] = last_json(ok, out, err)
        save()
    parts["bench_model"] = bench

    if os.environ.get("RVT_ROOT"):
        env = dict(os.environ)
        try:
            import torchvision  # noqa: F401
        except Exception:  # noqa: BLE001
            # RVT imports torchvision for NMS in post-processing, which the timing never calls; the GPU
            # machines have no torchvision for their CUDA build of torch: a stand-in that refuses use.
            stub = os.path.join(ROOT, a.runs + "_stub", "torchvision")
            os.makedirs(stub, exist_ok=True)
            with open(os.path.join(stub, "__init__.py"), "w") as f:
                f.write("from . import ops\n")
            with open(os.path.join(stub, "ops.py"), "w") as f:
                f.write("def nms(*a, **k):\n    raise NotImplementedError('gpu_check stand-in for torchvision')\n"
                        "batched_nms = nms\n")
            env["PYTHONPATH"] = os.path.dirname(stub) + os.pathsep + env.get("PYTHONPATH", "")
            res["torchvision"] = "stand-in (not installed)"
        ok, secs, out, err = run([sys.executable, os.path.join(HERE, "bench_model_vs_reference.py"),
                                  "--evdet", os.path.join(a.bin, "evdet"), "--device", a.device,
                                  "--threads", str(os.cpu_count() or 2), "--rounds", "2", "--train",
                                  "--presets", "tiny"], a.part_limit * 2, env)
        parts["reference"] = last_json(ok, out, err)
    else:
        parts["reference"] = {"ok": False, "skipped": "RVT_ROOT is not set (a checkout of uzh-rpg/RVT)"}
    save()

    ok, secs, out, err = run([os.path.join(a.bin, "evdet"), "bench", "latency", "--device", a.device,
                              "--no-onnx", "--windows", "20", "--presets", "tiny,base"], a.part_limit)
    parts["latency"] = last_json(ok, out, err)
    save()

    # NCCL at world size 1: a single process joins a process group of one (`hardware.dist_alone`), so
    # the collectives, gradient buckets and SyncBatchNorm run through the backend on one GPU (NCCL
    # refuses two ranks on one GPU). The CPU rehearsal runs the same path on Gloo.
    backend = "nccl" if a.device.startswith("cuda") else "gloo"
    ok, secs, _, err = train(a, "gpu_dist_alone", a.device, "fp32", 10,
                             [*start, "hardware.dist_alone=true", f"hardware.dist_backend={backend}"])
    entry = {"ok": ok, "backend": backend, "seconds": secs}
    if ok:
        rows = metrics(a.runs, "gpu_dist_alone")
        entry["allreduce_s"] = statistics.median(r.get("train/grad_allreduce_s", 0.0) for r in rows)
        entry["last_loss"] = rows[-1]["train/loss"] if rows else None
    else:
        entry["error"] = err
    parts["dist_alone"] = entry
    save()
    shutil.rmtree(os.path.join(ROOT, a.runs), ignore_errors=True)
    shutil.rmtree(os.path.join(ROOT, a.runs + "_stub"), ignore_errors=True)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
