//! The statistics a study reports, in float64: mean, sample standard deviation, Student t 95 %
//! intervals, the paired t-test (two-sided, and one-sided against a margin as hypotheses are stated),
//! and percentile bootstrap intervals. Student's t comes from `statrs`; every number is checked
//! against scipy on fixed tables (`tests/stats_reference.rs`, `tests/power_reference.rs`).

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean of `x` (NaN for none).
pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample standard deviation (n − 1 in the denominator); `None` below two values.
pub fn sd(x: &[f64]) -> Option<f64> {
    if x.len() < 2 {
        return None;
    }
    let m = mean(x);
    let ss: f64 = x.iter().map(|v| (v - m) * (v - m)).sum();
    Some((ss / (x.len() - 1) as f64).sqrt())
}

/// CDF of Student's t with `df` degrees of freedom (statrs).
pub fn t_cdf(t: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |d| d.cdf(t))
}

/// Quantile of Student's t: the `t` with `t_cdf(t, df) = p`, 0 < p < 1 (statrs).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |d| d.inverse_cdf(p))
}

/// Mean with its two-sided 95 % Student t interval; `None` for the interval below two values.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub sd: Option<f64>,
    pub ci95: Option<(f64, f64)>,
}

pub fn summarize(x: &[f64]) -> Summary {
    let m = mean(x);
    let s = sd(x);
    let ci95 = s.map(|s| {
        let half = t_quantile(0.975, (x.len() - 1) as f64) * s / (x.len() as f64).sqrt();
        (m - half, m + half)
    });
    Summary {
        n: x.len(),
        mean: m,
        sd: s,
        ci95,
    }
}

/// The paired comparison of `a` against `b` (same seeds, same order): the mean difference `a − b`,
/// its 95 % t interval and the two-sided paired t-test's p-value; `None` parts below two pairs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Paired {
    pub n: usize,
    pub mean_diff: f64,
    pub ci95: Option<(f64, f64)>,
    pub p_value: Option<f64>,
}

pub fn paired(a: &[f64], b: &[f64]) -> Paired {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let s = summarize(&d);
    let p_value = s.sd.map(|sd| {
        if sd == 0.0 {
            // Every pair differs by the same amount: certain unless that amount is zero.
            if s.mean == 0.0 {
                1.0
            } else {
                0.0
            }
        } else {
            let t = s.mean / (sd / (d.len() as f64).sqrt());
            2.0 * (1.0 - t_cdf(t.abs(), (d.len() - 1) as f64))
        }
    });
    Paired {
        n: d.len(),
        mean_diff: s.mean,
        ci95: s.ci95,
        p_value,
    }
}

/// One-sided paired t-tests of `mean(a − b)` against `margin`: `(p_greater, p_less)`, the p-values
/// of H1: mean > margin and of H1: mean < margin (scipy `ttest_rel(a, b + margin, alternative=…)`).
/// `None` below two pairs. When every pair differs by the same amount the answer is certain.
pub fn one_sided(a: &[f64], b: &[f64], margin: f64) -> Option<(f64, f64)> {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y - margin).collect();
    let s = summarize(&d);
    let sd = s.sd?;
    if sd == 0.0 {
        return Some(match s.mean.total_cmp(&0.0) {
            std::cmp::Ordering::Greater => (0.0, 1.0),
            std::cmp::Ordering::Less => (1.0, 0.0),
            std::cmp::Ordering::Equal => (1.0, 1.0),
        });
    }
    let t = s.mean / (sd / (d.len() as f64).sqrt());
    let dist = StudentsT::new(0.0, 1.0, (d.len() - 1) as f64).ok()?;
    Some((dist.sf(t), dist.cdf(t)))
}

/// A small deterministic generator (SplitMix64) for bootstrap resampling.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Percentile bootstrap 95 % interval of `statistic` over resamples (with replacement) of `n`
/// items (test recordings), `rounds` resamples from `seed`; `None` without items.
pub fn bootstrap_ci(
    n: usize,
    rounds: usize,
    seed: u64,
    statistic: impl Fn(&[usize]) -> f64 + Sync,
) -> Option<(f64, f64)> {
    use rayon::prelude::*;
    if n == 0 || rounds == 0 {
        return None;
    }
    // The resamples are drawn first, in order, so the interval does not depend on the threads.
    let mut rng = SplitMix(seed);
    let picks: Vec<Vec<usize>> = (0..rounds)
        .map(|_| (0..n).map(|_| rng.below(n)).collect())
        .collect();
    let mut values: Vec<f64> = picks
        .par_iter()
        .map(|p| statistic(p))
        .collect::<Vec<_>>()
        .into_iter()
        .filter(|v| v.is_finite())
        .collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let q = |p: f64| {
        // Linear interpolation between order statistics (numpy's default percentile).
        let pos = p * (values.len() - 1) as f64;
        let (i, f) = (pos.floor() as usize, pos.fract());
        let next = values[(i + 1).min(values.len() - 1)];
        values[i] + f * (next - values[i])
    };
    Some((q(0.025), q(0.975)))
}
