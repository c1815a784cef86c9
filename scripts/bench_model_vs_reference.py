"""Side-by-side speed of evdet's detector and the PyTorch reference (uzh-rpg/RVT) on this machine.

Alternates the two, configuration by configuration, for several rounds (the machine is shared, so
interleaving keeps both under the same load) and reports the per-round numbers, the best (minimum)
and the median over rounds, and ours / reference.

The reference is RVT's own `YoloXDetector` (read from $RVT_ROOT, a checkout of uzh-rpg/RVT that is
never committed), built and timed by scripts/rvt_reference.py; evdet by `evdet bench model` (release
build) in a subprocess. Both use libtorch 2.11 from the same wheel and the same thread count. Two clocks: wall time (what the issue's numbers are), and
the process CPU time (all threads), which a machine shared with other work inflates far less.

usage: RVT_ROOT=/tmp/rvt /root/.evdet/venv/bin/python scripts/bench_model_vs_reference.py \
           [--evdet target/release/evdet] [--threads 2] [--rounds 3] [--reps 5] \
           [--presets tiny,small,base] [--train] [--precision bf16] [--reference-precision fp32]
           [--json OUT]
Needs (besides torch): pip install omegaconf einops pillow; pip install --no-deps torchvision==0.26.0
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rvt_reference as ref  # noqa: E402
import torch  # noqa: E402


def ours(evdet, args, extra):
    cmd = [evdet, "bench", "model", "--device", args.device, "--threads", str(args.threads),
           "--reps", str(args.reps), "--attention", args.attention] + extra
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def summary(values):
    return {"min": min(values), "median": statistics.median(values), "runs": values}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--evdet", default=os.path.join(HERE, "..", "target", "release", "evdet"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (both sides)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--presets", default="tiny,small,base")
    ap.add_argument("--attention", default="fused", choices=["fused", "reference"])
    ap.add_argument("--train", action="store_true", help="also the tiny training step")
    ap.add_argument("--train-reps", type=int, default=3)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                    help="evdet's autocast (forward and training step)")
    ap.add_argument("--reference-precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                    help="the reference's autocast (the issue's targets are against fp32)")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ref.set_device(a.device)
    presets = [p for p in a.presets.split(",") if p]  # --presets "" times only the training step
    res = {"torch": torch.__version__, "threads": a.threads, "device": a.device, "attention": a.attention,
           "rounds": a.rounds, "precision": a.precision, "reference_precision": a.reference_precision,
           "forward_384x640": {}, "train_step": {}}
    keys = ("backbone_ms", "fpn_ms", "head_ms", "total_ms")
    fwd = {p: {side: {f"{clock}{k}": [] for k in keys for clock in ("", "cpu_")}
               for side in ("ours", "reference")} for p in presets}
    trn = {"ours": [], "reference": [], "ours_cpu": [], "reference_cpu": [], "ours_peak_mib": []}
    for r in range(a.rounds):
        for p in presets:
            o = ours(a.evdet, a, ["--presets", p, "--scales", "3", "--no-train",
                                  "--precision", a.precision])["forward"]["3scale"][p]
            t = ref.forward(p, (384, 640), a.reps, a.reference_precision)
            for side, d in (("ours", o), ("reference", t)):
                for k in keys:
                    fwd[p][side][k].append(d[k])
                    fwd[p][side]["cpu_" + k].append(d["cpu"][k])
            print(f"round {r} {p}: ours {o['total_ms']:.1f} ms (cpu {o['cpu']['total_ms']:.1f}), "
                  f"reference {t['total_ms']:.1f} ms (cpu {t['cpu']['total_ms']:.1f})", flush=True)
        if a.train:
            o = ours(a.evdet, a, ["--no-forward", "--train-presets", "tiny", "--precision", a.precision,
                                  "--train-reps", str(a.train_reps)])["train_step"]["tiny"]
            t = ref.train_step("tiny", (192, 320), 2, 5, a.train_reps, a.reference_precision)
            trn["ours"].append(o["step_ms"])
            trn["ours_cpu"].append(o["step_cpu_ms"])
            trn["ours_peak_mib"].append(o.get("peak_memory_mib"))
            trn["reference"].append(t["step_ms"])
            trn["reference_cpu"].append(t["step_cpu_ms"])
            print(f"round {r} tiny train step: ours {o['step_ms']:.1f} ms (cpu {o['step_cpu_ms']:.1f}), "
                  f"reference {t['step_ms']:.1f} ms (cpu {t['step_cpu_ms']:.1f})", flush=True)
    for p in presets:
        entry = {side: {k: summary(v) for k, v in fwd[p][side].items()} for side in ("ours", "reference")}
        entry["ratio_min"] = {k: entry["ours"][k]["min"] / entry["reference"][k]["min"] for k in fwd[p]["ours"]}
        entry["ratio_median"] = {k: entry["ours"][k]["median"] / entry["reference"][k]["median"]
                                 for k in fwd[p]["ours"]}
        entry["ratio_per_round_total"] = [o / t for o, t in zip(fwd[p]["ours"]["total_ms"],
                                                                fwd[p]["reference"]["total_ms"])]
        res["forward_384x640"][p] = entry
    if a.train:
        res["train_step"]["tiny"] = {
            "ours": summary(trn["ours"]), "reference": summary(trn["reference"]),
            "ours_cpu": summary(trn["ours_cpu"]), "reference_cpu": summary(trn["reference_cpu"]),
            "ours_peak_memory_mib": trn["ours_peak_mib"],
            "ratio_min": min(trn["ours"]) / min(trn["reference"]),
            "ratio_median": statistics.median(trn["ours"]) / statistics.median(trn["reference"]),
            "ratio_cpu_min": min(trn["ours_cpu"]) / min(trn["reference_cpu"]),
        }
    text = json.dumps(res, indent=1)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
