"""Side-by-side speed of `evdet preprocess` and the reference preprocessing (eTraM's copy of RVT's
scripts/genx/preprocess_dataset.py), both run as the commands a user runs, on the same recording.

The recording is a 1280x720 clustered-traffic recording (60 moving blobs carry 85 % of the events, the
rest is background noise) with 30 Hz labels, written once by `evdet bench repr --save-raw`. Each round
runs the reference command line (gen4, stacked histogram dt=50 ms, 10 bins, ds2, one process) and then
`evdet preprocess` (same settings, --jobs), each into a fresh output folder, and times the whole command
(interpreter / binary start-up included: that is what a user waits for). Rounds alternate the two so that
both see the same load on a shared machine; the result is the median over rounds with the range.

The reference is read from $ETRAM_RVT_ROOT (a checkout of eventbasedvision/eTraM's rvt_eTram folder,
never committed); it needs numba, omegaconf, einops, h5py, hdf5plugin, tqdm beside torch.

usage: ETRAM_RVT_ROOT=/tmp/eTraM/rvt_eTram ~/.evdet/venv/bin/python scripts/bench_preprocess_vs_reference.py \
           OUT [--events 20000000] [--rounds 3] [--jobs 2] [--evdet target/release/evdet] [--json FILE]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(cmd, **kw):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t0


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="work folder: the recording and both outputs go here")
    ap.add_argument("--events", type=int, default=20_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2, help="evdet preprocess --jobs")
    ap.add_argument("--evdet", default=str(HERE.parent / "target" / "release" / "evdet"))
    ap.add_argument("--json")
    a = ap.parse_args()
    etram = os.environ.get("ETRAM_RVT_ROOT")
    script = Path(etram or "") / "scripts" / "genx" / "preprocess_dataset.py"
    if not script.is_file():
        sys.exit("set ETRAM_RVT_ROOT to the rvt_eTram folder of a checkout of eventbasedvision/eTraM")

    raw = a.out / "raw"
    if not (raw / "train" / "rec_0000_td.h5").is_file():
        subprocess.run([a.evdet, "bench", "repr", "--events", str(a.events), "--save-raw", str(raw),
                        "--skip-histogram", "--jobs", str(a.jobs)], check=True, stdout=subprocess.DEVNULL)
    for split in ("val", "test"):  # the reference script expects all three splits
        (raw / split).mkdir(parents=True, exist_ok=True)
    events = a.events
    conf = script.parent / "conf_preprocess"
    # The reference writes blosc-compressed HDF5 (filter 32001) through h5py without importing
    # hdf5plugin, which registers that filter; its command line is run with the import in front.
    launcher = ("import sys, runpy, hdf5plugin; sys.argv = sys.argv[1:]; "
                "runpy.run_path(sys.argv[0], run_name='__main__')")
    reference_cmd = [sys.executable, "-c", launcher, str(script), str(raw), None,
                     str(conf / "representation" / "stacked_hist.yaml"),
                     str(conf / "extraction" / "const_duration.yaml"),
                     str(conf / "filter_gen4.yaml"), "-ds", "gen4", "-np", "1"]
    env = dict(os.environ, PYTHONPATH=etram)
    runs = {"reference": [], "evdet": []}
    for r in range(a.rounds):
        ref_out, our_out = a.out / "ref_pre", a.out / "evdet_pre"
        for d in (ref_out, our_out):
            shutil.rmtree(d, ignore_errors=True)
        reference_cmd[5] = str(ref_out)
        runs["reference"].append(timed(reference_cmd, cwd=script.parent, env=env))
        runs["evdet"].append(timed([a.evdet, "preprocess", "--raw", str(raw), "--out", str(our_out),
                                    "--dataset", "gen4", "--jobs", str(a.jobs)]))
        print(f"round {r}: reference {runs['reference'][-1]:.2f} s, evdet {runs['evdet'][-1]:.2f} s", flush=True)
    res = {"events": events, "jobs": a.jobs, "rounds": a.rounds,
           "seconds": {k: spread(v) for k, v in runs.items()},
           "events_per_s_median": {k: events / statistics.median(v) for k, v in runs.items()},
           "speedup_per_round": [t / o for t, o in zip(runs["reference"], runs["evdet"])]}
    res["speedup_median"] = statistics.median(res["speedup_per_round"])
    text = json.dumps(res, indent=1)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
