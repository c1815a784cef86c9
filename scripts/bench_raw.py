#!/usr/bin/env python3
"""Side-by-side EVT 3.0 decoding throughput, one thread: evdet against expelliarmus (C) and the
`evt3` package (Rust, PyO3), on the same camera-like 20 M-event file, in alternating rounds; plus
`evdet bench raw`'s own figures (EVT 2.0/2.1, encoding, preprocessing from .raw vs _td.h5).

  ~/.evdet/venv/bin/python scripts/bench_raw.py [--rounds 5] [--out notes/bench_raw_<date>.json]

Installs expelliarmus and evt3 into the venv if missing. Prints one JSON object.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
EVDET = ROOT / "target/release/evdet"


def ensure(pkg, version):
    try:
        __import__(pkg)
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"{pkg}=={version}"], check=True)


def stats(v):
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--events", type=int, default=20_000_000)
    ap.add_argument("--out", type=pathlib.Path)
    a = ap.parse_args()
    ensure("expelliarmus", "1.1.12")
    ensure("evt3", "0.4.1")
    import evt3
    import expelliarmus

    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "camera_like_evt3.raw"
        full = json.loads(
            subprocess.run(
                [EVDET, "bench", "raw", "--events", str(a.events), "--rounds", "3", "--keep", path],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )

        def run_evdet():
            out = json.loads(
                subprocess.run(
                    [EVDET, "bench", "raw", "--file", path, "--decode-only", "--rounds", "1"],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            return out["events"], out["decode_seconds"]["median"]

        def timed(fn):
            start = time.perf_counter()
            n = len(fn())
            return n, time.perf_counter() - start

        tools = {
            "evdet": run_evdet,
            "evt3": lambda: timed(lambda: evt3.decode_file(str(path))),
            "expelliarmus": lambda: timed(
                lambda: expelliarmus.Wizard(encoding="evt3", fpath=str(path)).read()
            ),
        }
        rates = {k: [] for k in tools}
        counts = {}
        for _ in range(a.rounds):
            for name, fn in tools.items():  # alternating: drift touches every tool alike
                n, secs = fn()
                counts[name] = n
                rates[name].append(n / secs)
        assert len(set(counts.values())) == 1, f"tools decoded different event counts: {counts}"
        result = {
            "file_bytes": path.stat().st_size,
            "events": counts["evdet"],
            "rounds": a.rounds,
            "decode_events_per_s": {k: stats(v) for k, v in rates.items()},
            "evdet_over_faster_other": statistics.median(rates["evdet"])
            / max(statistics.median(rates["evt3"]), statistics.median(rates["expelliarmus"])),
            "versions": {"evt3": getattr(evt3, "__version__", "?"), "expelliarmus": "1.1.12"},
            "evdet_bench_raw": full,
        }
    text = json.dumps(result, indent=1)
    if a.out:
        a.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
