#!/usr/bin/env python3
"""Per arm of a study, from each finished run's metrics.jsonl and eval/test_metrics.json: the assignment
diagnostics (issue 19) averaged over the logged steps of the second half of training, where the
assignment has settled — positives per ground truth by size bin and by level, the share of ground
truths without a positive, objectness over IoU loss — and the headline test metrics. Markdown on stdout.

usage: python3 scripts/study_diagnostics.py runs/size_aware_mini
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study_archive  # noqa: E402  (the runs of a study folder, as the archive walks them)

root = sys.argv[1]
BINS = ["0-16", "16-32", "32-96"]


def rows(run):
    out = []
    for line in open(os.path.join(run, "metrics.jsonl")):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def mean(vals):
    vals = [v for v in vals if v is not None]
    return statistics.mean(vals) if vals else float("nan")


arms = {}
for arm, seed, run in study_archive.runs(root):
    if not os.path.isfile(os.path.join(run, "eval/test_metrics.json")):
        continue
    r = [x for x in rows(run) if "train/loss" in x]
    last = max(x["step"] for x in r)
    late = [x for x in r if x["step"] > last / 2]
    d = {k: mean([x.get(k) for x in late]) for k in set().union(*late)}
    d["test"] = json.load(open(os.path.join(run, "eval/test_metrics.json")))
    arms.setdefault(arm, []).append((seed, d))


def f(v):
    return "–" if v != v else f"{v:.2f}"


print("| arm (seeds) | ppg 0-16 | by stride 4/8/16/32 | no pos 0-16 | ppg 16-32 | by stride 4/8/16/32 | ppg 32-96 | obj/iou | AP | AP_S | AP50 (unfilt.) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for arm, runs in arms.items():
    m = lambda k: mean([d.get(k, float("nan")) for _, d in runs])
    t = lambda k: mean([d["test"].get(k) for _, d in runs])
    by = lambda b: "/".join(f(m(f"train/pos_per_gt/{b}/stride{s}")) for s in (4, 8, 16, 32))
    print(f"| {arm} ({len(runs)}) | {f(m('train/pos_per_gt/0-16'))} | {by('0-16')} | "
          f"{f(m('train/gt_without_pos/0-16'))} | {f(m('train/pos_per_gt/16-32'))} | {by('16-32')} | "
          f"{f(m('train/pos_per_gt/32-96'))} | {f(m('train/loss_obj_over_iou'))} | "
          f"{t('test/prophesee/AP'):.3f} | {t('test/prophesee/AP_S'):.3f} | {t('test/unfiltered/AP50'):.3f} |")
