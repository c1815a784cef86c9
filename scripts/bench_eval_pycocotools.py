"""Time pycocotools' COCOeval (bbox, default parameters) on the case `evdet bench eval --write-case DIR`
wrote, and check that its 12 stats equal evdet's.

usage: /root/.evdet/venv/bin/python scripts/bench_eval_pycocotools.py DIR [--evdet EVDET.json] [--repeat N]

Prints one JSON object: load time (COCO(gt) + loadRes), evaluate+accumulate+summarize time (best of
--repeat), the stats, and with --evdet whether they are identical to evdet's (bit for bit) and the speed
ratio against evdet's `eval_s_best`. Needs `pip install pycocotools numpy`.
"""
import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("--evdet", type=Path, help="evdet bench eval JSON output to compare with")
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()

    quiet = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(quiet):
        gt = COCO(str(a.dir / "gt.json"))
        dt = gt.loadRes(str(a.dir / "dt.json"))
    load_s = time.perf_counter() - t0

    times, stats = [], None
    for _ in range(max(a.repeat, 1)):
        t = time.perf_counter()
        with contextlib.redirect_stdout(quiet):
            ev = COCOeval(gt, dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        times.append(time.perf_counter() - t)
        stats = [float(s) for s in ev.stats]

    out = {
        "bench": "eval-pycocotools",
        "images": len(gt.getImgIds()),
        "gt_boxes": len(gt.getAnnIds()),
        "detections": len(dt.getAnnIds()),
        "load_s": load_s,
        "eval_s": times,
        "eval_s_best": min(times),
        "stats": stats,
    }
    if a.evdet:
        theirs = json.loads(a.evdet.read_text())
        out["identical_to_evdet"] = theirs["stats"] == stats
        out["max_abs_diff"] = max(abs(x - y) for x, y in zip(theirs["stats"], stats))
        out["speedup_eval"] = min(times) / theirs["eval_s_best"]
        if "files" in theirs:
            out["speedup_load_and_eval"] = (load_s + min(times)) / theirs["files"]["total_s"]
    print(json.dumps(out, indent=2))
    return 0 if out.get("identical_to_evdet", True) else 1


if __name__ == "__main__":
    sys.exit(main())
