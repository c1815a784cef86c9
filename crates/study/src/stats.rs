//! The statistics a study reports, in float64: mean, sample standard deviation, Student t 95 %
//! intervals, the paired t-test, and percentile bootstrap intervals. The t distribution's CDF comes
//! from the regularized incomplete beta function (continued fraction, modified Lentz), its quantile
//! by bisection; both are checked against scipy on fixed tables (`tests/stats_reference.rs`).

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

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error ~1e-15).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    // One Lentz step with coefficient `aa`: updates d and c, returns the factor for h.
    let mut step = |aa: f64| {
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        d * c
    };
    for m in 1..=300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        h *= step(m * (b - m) * x / ((qam + m2) * (a + m2)));
        let del = step(-(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)));
        h *= del;
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// Regularized incomplete beta I_x(a, b).
pub fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    // The continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// CDF of Student's t with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * inc_beta(df / 2.0, 0.5, x);
    if t > 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// Quantile of Student's t: the `t` with `t_cdf(t, df) = p`, 0 < p < 1.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    // Bracket, then bisect to the last bit.
    let mut hi = 1.0;
    while t_cdf(hi, df) < p {
        hi *= 2.0;
        if hi > 1e12 {
            return f64::INFINITY;
        }
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-15 * hi.max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
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
