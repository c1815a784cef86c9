#!/usr/bin/env python3
"""Reference numbers for evdet-study's power, one-sided p-values, Holm's adjustment and group-sequential
boundaries (crates/study/tests/data/power_reference.json), from statsmodels and scipy:

- the noncentral t survival function (scipy.stats.nct.sf), behind every power number;
- statsmodels' TTestPower (one-sample / paired t, alternative="larger"): power at (effect, n, alpha),
  the minimal detectable effect at 80 % power for n pairs, and the pairs needed for an effect;
- one-sided paired p-values (scipy.stats.ttest_rel with alternative="greater" / "less");
- Holm's step-down adjustment (statsmodels.stats.multitest.multipletests, method="holm");
- Lan-DeMets O'Brien-Fleming-type upper boundaries (one-sided alpha 0.025) at equally and unequally
  spaced looks, solved here from the multivariate normal CDF of the canonical joint distribution
  (corr(Z_i, Z_j) = sqrt(t_i / t_j)), a different method from the recursive integration in Rust;
  beside them the values gsDesign publishes for K = 3 equally spaced looks and, from gsDesign's own unit
  tests, the chance of crossing z = 1.96 at any of k looks (repeated testing without adjustment).

Run with a Python that has scipy and statsmodels: python3 -m venv /tmp/s && /tmp/s/bin/pip install scipy
statsmodels && /tmp/s/bin/python scripts/study_power_reference.py > crates/study/tests/data/power_reference.json
"""
import json
import math

import numpy as np
import scipy
import statsmodels
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

nct = [{"t": t, "df": df, "nc": nc, "sf": float(stats.nct.sf(t, df, nc))}
       for df in (1, 2, 4, 9, 29) for nc in (0.0, 0.8, 2.5, 6.0) for t in (-1.0, 0.5, 2.0, 4.5)]

tp = TTestPower()
power = [{"effect": e, "n": n, "alpha": a,
          "power": float(tp.power(effect_size=e, nobs=n, alpha=a, alternative="larger"))}
         for e in (0.2, 0.5, 1.0, 2.0) for n in (2, 3, 5, 10, 30) for a in (0.025, 0.0125)]
# solve_power stops ~1e-6 short in power (e.g. n = 4: power(MDE) - 0.8 = 7.9e-7); the MDE is solved
# here on statsmodels' own power function to 1e-14.
mde = [{"n": n, "alpha": a, "power": 0.8,
        "effect": float(optimize.brentq(
            lambda e: tp.power(effect_size=e, nobs=n, alpha=a, alternative="larger") - 0.8,
            1e-6, 100.0, xtol=1e-14)),
        "solve_power": float(tp.solve_power(nobs=n, alpha=a, power=0.8, alternative="larger"))}
       for n in (3, 4, 5, 10, 30) for a in (0.025, 0.0125, 0.00625)]
needed = []
for e in (0.25, 0.5, 1.0, 1.5):
    for a in (0.025, 0.0125):
        n = tp.solve_power(effect_size=e, alpha=a, power=0.8, alternative="larger")
        needed.append({"effect": e, "alpha": a, "power": 0.8, "n_real": float(n), "n": int(math.ceil(n - 1e-9))})

pairs = [
    ([0.322, 0.309, 0.340], [0.340, 0.312, 0.355]),
    ([0.05, 0.07, 0.04, 0.06], [0.03, 0.05, 0.05, 0.02]),
    ([0.41, 0.39, 0.45, 0.38, 0.40], [0.40, 0.36, 0.41, 0.39, 0.35]),
]
one_sided = []
for a, b in pairs:
    for margin in (0.0, -0.005, 0.01):
        bm = [x + margin for x in b]  # H0: mean(a - b) <= margin  <=>  mean(a - (b + margin)) <= 0
        one_sided.append({"a": a, "b": b, "margin": margin,
                          "p_greater": float(stats.ttest_rel(a, bm, alternative="greater").pvalue),
                          "p_less": float(stats.ttest_rel(a, bm, alternative="less").pvalue)})

holm = []
for p in ([0.01, 0.04, 0.03, 0.2], [0.001, 0.5], [0.02, 0.021, 0.022], [0.3]):
    rej, adj, _, _ = multipletests(p, alpha=0.05, method="holm")
    holm.append({"p": p, "alpha": 0.05, "adjusted": [float(x) for x in adj], "reject": [bool(x) for x in rej]})


# Genz's algorithm to ~1e-9 (scipy's default 1e-5 would move a boundary by ~2e-4).
EXACT = {"maxpts": 5_000_000, "abseps": 1e-9, "releps": 0}


def obf_spend(t, alpha):
    """Lan-DeMets O'Brien-Fleming-type spending: 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))."""
    return 2.0 * (1.0 - stats.norm.cdf(stats.norm.ppf(1.0 - alpha / 2.0) / math.sqrt(t)))


def boundaries(fractions, alpha):
    out = []
    spent = 0.0
    for k, tk in enumerate(fractions):
        target = obf_spend(tk, alpha) - spent
        if k == 0:
            c = stats.norm.isf(target)
        else:
            ts = fractions[: k + 1]
            cov = np.array([[math.sqrt(min(a, b) / max(a, b)) for b in ts] for a in ts])
            prev = np.array(out)

            def crossing(c):
                # P(Z_1 < c_1, ..., Z_{k-1} < c_{k-1}, Z_k >= c)
                below = stats.multivariate_normal(mean=np.zeros(k), cov=cov[:k, :k], **EXACT).cdf(prev)
                both = stats.multivariate_normal(mean=np.zeros(k + 1), cov=cov, **EXACT).cdf(np.append(prev, c))
                return (below - both) - target

            c = optimize.brentq(crossing, 0.5, 12.0, xtol=1e-8)
        out.append(float(c))
        spent = obf_spend(tk, alpha)
    return out


np.random.seed(0)
designs = []
for fr in ([1 / 3, 2 / 3, 1.0], [0.2, 0.4, 0.6, 0.8, 1.0], [0.5, 1.0], [0.3, 0.55, 1.0], [0.25, 0.5, 0.75, 1.0]):
    designs.append({"fractions": fr, "alpha": 0.025, "upper": boundaries(fr, 0.025)})

published = [
    {"source": "gsDesign vignettes: gsDesign(k=3, test.type=1, alpha=0.025, sfu=sfLDOF)$upper$bound",
     "fractions": [1 / 3, 2 / 3, 1.0], "alpha": 0.025, "upper": [3.7103, 2.5114, 1.9930]},
]
# gsDesign's own unit tests (inst/unitTests/runit.output.R, "test.Deming.gsProb"): the chance of crossing
# z = 1.96 at any of k equally spaced looks under the null, rounded to 3 decimals.
repeated = [{"k": 2, "z": 1.959964, "prob": 0.042}, {"k": 4, "z": 1.959964, "prob": 0.063},
            {"k": 10, "z": 1.959964, "prob": 0.097}, {"k": 20, "z": 1.959964, "prob": 0.124}]

print(json.dumps({"scipy": scipy.__version__, "statsmodels": statsmodels.__version__, "nct_sf": nct,
                  "power": power, "mde": mde, "seeds_needed": needed, "one_sided": one_sided, "holm": holm,
                  "obf_boundaries": designs, "obf_published": published,
                  "repeated_testing_published": repeated}, indent=1))
