#!/usr/bin/env python3
"""Reference numbers for evdet-study's statistics (crates/study/tests/data/stats_reference.json), from
scipy: Student t quantiles and CDF values, per-arm mean / sd / 95 % t interval of small fixed tables, and
paired differences with their 95 % interval and scipy.stats.ttest_rel's two-sided p-value.
Run with a Python that has scipy (the evdet venv after `pip install scipy`)."""
import json
import numpy as np
from scipy import stats

quantiles = [{"p": p, "df": df, "t": float(stats.t.ppf(p, df))}
             for df in (1, 2, 3, 4, 5, 9, 29, 100) for p in (0.975, 0.9, 0.6)]
cdfs = [{"t": t, "df": df, "cdf": float(stats.t.cdf(t, df))}
        for df in (1, 2, 4, 7, 30) for t in (-3.0, -0.5, 0.0, 0.7, 2.1, 12.0)]
tables = [
    [0.340, 0.312, 0.355],
    [0.309, 0.301, 0.322, 0.290],
    [0.2989, 0.2615],
    [0.1, 0.1, 0.1],
]
summaries = []
for x in tables:
    a = np.array(x)
    m, s = a.mean(), a.std(ddof=1)
    lo, hi = stats.t.interval(0.95, len(a) - 1, loc=m, scale=s / np.sqrt(len(a))) if s > 0 else (m, m)
    summaries.append({"x": x, "mean": float(m), "sd": float(s), "ci95": [float(lo), float(hi)]})
pairs = [
    ([0.322, 0.309, 0.340], [0.340, 0.312, 0.355]),   # a 3-seed AP_S comparison
    ([0.05, 0.07, 0.04, 0.06], [0.03, 0.05, 0.05, 0.02]),
    ([0.41, 0.39], [0.40, 0.36]),
]
paired = []
for a, b in pairs:
    d = np.array(a) - np.array(b)
    m, s = d.mean(), d.std(ddof=1)
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=m, scale=s / np.sqrt(len(d)))
    p = stats.ttest_rel(a, b).pvalue
    paired.append({"a": a, "b": b, "mean_diff": float(m), "ci95": [float(lo), float(hi)], "p_value": float(p)})
print(json.dumps({"scipy": __import__("scipy").__version__, "t_quantiles": quantiles, "t_cdf": cdfs,
                  "summaries": summaries, "paired": paired}, indent=1))
