#!/usr/bin/env python3
"""Times the main job's model under two CPU layouts at the same global batch: 1 process x N threads and
N processes x 1 thread (`evdet train --nproc N`), in alternating rounds, and for the multi-process
layout the gradient all-reduce per step at several bucket sizes. Prints one JSON object: per layout the
median and range over rounds of the per-step time (median over steady-state steps of compute + data
wait, from metrics.jsonl), steps/s, and the all-reduce's share.

    python3 scripts/bench_distributed.py --rounds 3 --steps 16 [--evdet target/release/evdet]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

def run(evdet, runs, ident, steps, extra):
    cmd = [evdet, "train", "--no-test", f"logging.runs_dir={runs}", f"logging.experiment_id={ident}",
           f"training.max_steps={steps}", "logging.log_every_n_steps=1", "validation.val_check_interval=100000",
           "validation.limit_val_batches=1", "logging.ckpt_every_n_steps=100000"] + extra
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.time() - t0
    rows = [json.loads(l) for l in open(os.path.join(runs, "synthetic/mini", ident, "metrics.jsonl"))]
    rows = [r for r in rows if "train/compute_time_s" in r and r["step"] > 2]
    step = statistics.median(r["train/compute_time_s"] + r["train/data_time_s"] for r in rows)
    ar = [r["train/grad_allreduce_s"] for r in rows if "train/grad_allreduce_s" in r]
    return {"step_s": step, "allreduce_s": statistics.median(ar) if ar else 0.0, "wall_s": wall}

def summary(xs, key):
    v = [x[key] for x in xs]
    return {"median": statistics.median(v), "min": min(v), "max": max(v)}

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evdet", default="target/release/evdet")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--buckets-mb", default="1,25,100", help="bucket sizes for the extra all-reduce rounds")
    a = ap.parse_args()
    n = a.nproc
    layouts = {
        f"1x{n}threads": [f"hardware.cpu_threads={n}", f"batch_size.train={n}"],
        f"{n}x1thread": ["--nproc", str(n), "hardware.cpu_threads=1", "batch_size.train=1"],
    }
    res = {k: [] for k in layouts}
    buckets = {mb: [] for mb in a.buckets_mb.split(",")}
    with tempfile.TemporaryDirectory() as runs:
        for r in range(a.rounds):
            for name, extra in layouts.items():
                res[name].append(run(a.evdet, runs, f"{name}_{r}", a.steps, extra))
                print(f"round {r} {name}: {res[name][-1]}", file=sys.stderr)
            for mb in buckets:
                extra = layouts[f"{n}x1thread"] + [f"hardware.dist_bucket_mb={mb}"]
                buckets[mb].append(run(a.evdet, runs, f"bucket{mb}_{r}", a.steps, extra))
    out = {"global_batch": n, "steps_per_run": a.steps, "rounds": a.rounds, "layouts": {}, "bucket_mb": {}}
    for name, xs in res.items():
        s = summary(xs, "step_s")
        out["layouts"][name] = {"step_s": s, "steps_per_s": 1.0 / s["median"], "allreduce_s": summary(xs, "allreduce_s")}
    for mb, xs in buckets.items():
        out["bucket_mb"][mb] = {"step_s": summary(xs, "step_s"), "allreduce_s": summary(xs, "allreduce_s")}
    print(json.dumps(out, indent=1))

if __name__ == "__main__":
    main()
