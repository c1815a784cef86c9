#!/usr/bin/env python3
"""A study's study.json as Markdown tables, for notes and the README: per arm the mean and 95 %
Student t interval over seeds of the headline metrics and of AP in the fine size bins, and per
hypothesis the paired difference, its interval, p-value, bootstrap interval and verdict. Nothing is
recomputed: every number is read from study.json, which `evdet study` writes.

usage: python3 scripts/study_summary.py runs/size_aware_mini/study.json
"""
import json
import sys

study = json.load(open(sys.argv[1]))
arms = study["arms"]
# The arms in the study file's order: the baseline first, then as the runs list them.
order = []
for r in study["runs"]:
    if r["arm"] not in order:
        order.append(r["arm"])
order.sort(key=lambda a: a != study["baseline"])


def cell(arm, metric):
    m = arms.get(arm, {}).get(metric)
    if m is None:
        return "–"
    if m["ci95_low"] is None:
        return f"{m['mean']:.3f} (n={m['n']})"
    half = (m["ci95_high"] - m["ci95_low"]) / 2
    return f"{m['mean']:.3f} ± {half:.3f}"


def seeds(arm, metric):
    vals = [r["metrics"].get(metric) for r in study["runs"] if r["arm"] == arm and r["status"] == "done"]
    return " / ".join("–" if v is None else f"{v:.3f}" for v in vals)


def table(title, metrics, labels=None):
    labels = labels or [m.split("/", 2)[-1] for m in metrics]
    print(f"**{title}** (mean ± half-width of the 95 % t interval over seeds)\n")
    print("| arm | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(metrics))
    for arm in order:
        print(f"| {arm} | " + " | ".join(cell(arm, m) for m in metrics) + " |")
    print()


done = sum(r["status"] == "done" for r in study["runs"])
print(f"{study['study']}: {done} of {len(study['runs'])} runs done, seeds {study['seeds']}, "
      f"baseline {study['baseline']}\n")
table("Prophesee protocol (the reference's filter)",
      ["test/prophesee/AP", "test/prophesee/AP50", "test/prophesee/AP_S", "test/prophesee/AP_M"])
table("Unfiltered (every box)",
      ["test/unfiltered/AP", "test/unfiltered/AP50", "test/unfiltered/AP_S", "test/unfiltered/AP_M",
       "test/unfiltered/AP/pedestrian"])
bins = sorted({k.rsplit("/", 1)[1] for a in arms.values() for k in a if k.startswith("test/unfiltered/AP_bin/")},
              key=lambda b: float(b.split("-")[0]))
bins = [b for b in bins if any(arms[a].get(f"test/unfiltered/AP_bin/{b}", {}).get("mean", 0) > 0 for a in arms)]
table("AP by size bin, unfiltered (√area of the box in label pixels)",
      [f"test/unfiltered/AP_bin/{b}" for b in bins], [f"{b} px" for b in bins])

print("**Seed by seed** (test/prophesee/AP_S, then test/prophesee/AP; seeds in order)\n")
print("| arm | AP_S | AP |")
print("|---|---|---|")
for arm in order:
    print(f"| {arm} | {seeds(arm, 'test/prophesee/AP_S')} | {seeds(arm, 'test/prophesee/AP')} |")
print()

print("**Hypotheses** (paired over seeds: arm − than)\n")
print("| hypothesis | pairs | mean diff | 95 % t interval | p | bootstrap 95 % (recordings) | verdict |")
print("|---|---|---|---|---|---|---|")
f = lambda v: "–" if v is None else f"{v:+.3f}"
for h in study["hypotheses"]:
    margin = h.get("margin") or 0
    claim = f"{h['metric'].split('/', 1)[1]}: {h['arm']} {h['op']} {h['than']}" + (f" {margin:+g}" if margin else "")
    ci = "–" if h["ci95_low"] is None else f"[{h['ci95_low']:+.3f}, {h['ci95_high']:+.3f}]"
    boot = "–" if h["bootstrap_ci95_low"] is None else f"[{h['bootstrap_ci95_low']:+.3f}, {h['bootstrap_ci95_high']:+.3f}]"
    p = "–" if h["p_value"] is None else f"{h['p_value']:.3f}"
    print(f"| {claim} | {h['n_pairs']} | {f(h['mean_diff'])} | {ci} | {p} | {boot} | **{h['verdict']}** |")
