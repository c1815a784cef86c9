//! How far a study is from a decision: the power of the one-sided paired t-test a hypothesis is
//! judged by, the smallest difference it detects with 80 % power at the seeds run (MDE), and the
//! seeds a given difference needs. The numbers are statsmodels' `TTestPower` (alternative
//! "larger"): power = P(T' > t_{1−α, n−1}) with T' noncentral t of n − 1 degrees of freedom and
//! noncentrality (δ/σ)·√n. statrs has no noncentral t, so its survival function is integrated here
//! (checked against scipy's `nct.sf` in `tests/power_reference.rs`).

use statrs::distribution::{ContinuousCDF, StudentsT};
use statrs::function::erf::erfc;
use statrs::function::gamma::ln_gamma;

/// The power a study's tables and seed counts are computed for.
pub const TARGET_POWER: f64 = 0.8;

/// Seeds are never planned beyond this (the search stops; the answer is "more than this").
pub const MAX_SEEDS: usize = 100_000;

/// Φ(z), the standard normal CDF.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// P(T > t) for T noncentral t with `df` degrees of freedom and noncentrality `nc`:
/// T = (Z + nc) / X with X = √(χ²_df / df), so P(T > t) = E[Φ(nc − t·X)], integrated over X's
/// density by Simpson's rule on the range holding all but ~1e-30 of it.
pub fn nct_sf(t: f64, df: f64, nc: f64) -> f64 {
    if df.is_nan() || df <= 0.0 || !t.is_finite() || !nc.is_finite() {
        return f64::NAN;
    }
    // X has mean ≈ 1 and sd ≈ 1/√(2 df); for df = 1 it is a half-normal.
    let s = (0.5 / df).sqrt();
    let (lo, hi) = ((1.0 - 14.0 * s).max(0.0), 1.0 + 14.0 * s + 1.0 / df);
    let ln_norm = std::f64::consts::LN_2 + 0.5 * df * (0.5 * df).ln() - ln_gamma(0.5 * df);
    let density = |x: f64| {
        if x <= 0.0 {
            // Only df = 1 has a density above 0 at x = 0.
            return if df == 1.0 { ln_norm.exp() } else { 0.0 };
        }
        (ln_norm + (df - 1.0) * x.ln() - 0.5 * df * x * x).exp()
    };
    let f = |x: f64| normal_cdf(nc - t * x) * density(x);
    simpson(f, lo, hi, 4000).clamp(0.0, 1.0)
}

/// Composite Simpson's rule with `n` (even) intervals.
fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
    let h = (b - a) / n as f64;
    let mut sum = f(a) + f(b);
    for i in 1..n {
        sum += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    sum * h / 3.0
}

/// The upper `alpha` quantile of Student's t with `df` degrees of freedom.
pub fn t_isf(alpha: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(1.0 - alpha),
        Err(_) => f64::NAN,
    }
}

/// Power of the one-sided one-sample (paired) t-test at level `alpha` with `n` pairs, for a true
/// difference of `effect` standard deviations (statsmodels `TTestPower().power(effect, n, alpha,
/// alternative="larger")`). `NaN` below two pairs.
pub fn power(effect: f64, n: usize, alpha: f64) -> f64 {
    if n < 2 {
        return f64::NAN;
    }
    let df = (n - 1) as f64;
    nct_sf(t_isf(alpha, df), df, effect * (n as f64).sqrt())
}

/// The smallest difference, in standard deviations, that `n` pairs detect with probability
/// `target` at one-sided level `alpha` (statsmodels `solve_power(nobs=n, ...)`).
pub fn min_detectable_effect(n: usize, alpha: f64, target: f64) -> f64 {
    if n < 2 {
        return f64::INFINITY;
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while power(hi, n, alpha) < target {
        hi *= 2.0;
        if hi > 1e6 {
            return f64::INFINITY;
        }
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if power(mid, n, alpha) < target {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The fewest pairs (≥ 2) whose one-sided test at `alpha` detects a difference of `effect`
/// standard deviations with probability `target`; `None` when no effect is given (≤ 0) or more
/// than [`MAX_SEEDS`] would be needed.
pub fn seeds_needed(effect: f64, alpha: f64, target: f64) -> Option<usize> {
    if effect.is_nan() || effect <= 0.0 {
        return None;
    }
    let enough = |n: usize| power(effect, n, alpha) >= target;
    // Grow to a bracket, then bisect: power rises with n.
    let mut hi = 2;
    while !enough(hi) {
        hi *= 2;
        if hi > MAX_SEEDS {
            return None;
        }
    }
    if hi == 2 {
        return Some(2);
    }
    // hi / 2 was checked above and fell short.
    let mut lo = hi / 2;
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if enough(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn central_t_is_the_zero_noncentrality_case() {
        let t = StudentsT::new(0.0, 1.0, 4.0).unwrap();
        for x in [-2.0, 0.0, 0.7, 3.0] {
            assert!(
                (nct_sf(x, 4.0, 0.0) - (1.0 - t.cdf(x))).abs() < 1e-10,
                "{x}"
            );
        }
    }

    #[test]
    fn seeds_needed_is_the_first_n_reaching_the_power() {
        for effect in [0.3, 0.8, 2.5] {
            let n = seeds_needed(effect, 0.025, 0.8).unwrap();
            assert!(power(effect, n, 0.025) >= 0.8);
            assert!(n == 2 || power(effect, n - 1, 0.025) < 0.8, "{effect}: {n}");
        }
        assert_eq!(seeds_needed(0.0, 0.025, 0.8), None);
        assert_eq!(seeds_needed(1e-4, 0.025, 0.8), None);
    }
}
