//! Group-sequential boundaries: seeds are run in rounds and a hypothesis is looked at after each; to
//! keep the chance of a false verdict at α over all the looks, each look is held to a stricter bound,
//! spending α over the planned information (here: the fraction of the maximum seeds run). The
//! spending function is Lan–DeMets' O'Brien–Fleming type, α(t) = 2 − 2Φ(z_{1−α/2} / √t): almost
//! nothing is spent early, the last look's bound is close to the fixed-sample one.
//!
//! The bounds are on the z scale of the canonical joint distribution (Z_k at information t_k,
//! corr(Z_i, Z_j) = √(t_i/t_j)) and come from the recursive numerical integration of Armitage,
//! McPherson and Rowe (Jennison & Turnbull 2000, ch. 19), as gsDesign computes them; they are checked
//! against the multivariate normal CDF (scipy) and gsDesign's published values in
//! `tests/power_reference.rs`. A look's paired t statistic enters through its one-sided p-value:
//! z = Φ⁻¹(1 − p), so small seed counts keep their t tails.

use crate::power::normal_cdf;

/// Cumulative α spent by information fraction `t` (Lan–DeMets O'Brien–Fleming type).
pub fn obf_spent(t: f64, alpha: f64) -> f64 {
    if t <= 0.0 {
        return 0.0;
    }
    let z = normal_quantile(1.0 - alpha / 2.0);
    (2.0 - 2.0 * normal_cdf(z / t.min(1.0).sqrt())).min(alpha)
}

/// Φ⁻¹(p) by bisection on [`normal_cdf`] (to the last bits).
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let (mut lo, mut hi) = (-40.0, 40.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if normal_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// The density of the score S_k = Z_k·√t_k on the continuation region (every earlier look below
/// its bound), on an even grid from far below 0 up to the bound.
struct Continuation {
    grid: Vec<f64>,
    density: Vec<f64>,
    step: f64,
}

impl Continuation {
    fn first(bound: f64, t: f64) -> Self {
        let sd = t.sqrt();
        Self::on_grid(-12.0 * sd, bound * sd, sd, |s| normal_pdf(s / sd) / sd)
    }

    fn on_grid(lo: f64, hi: f64, kernel_sd: f64, f: impl Fn(f64) -> f64) -> Self {
        // Fine enough for the narrowest Gaussian kernel between looks.
        let n = (((hi - lo) / (kernel_sd / 10.0)).ceil() as usize).clamp(400, 20_000);
        let n = n + n % 2;
        let step = (hi - lo) / n as f64;
        let grid: Vec<f64> = (0..=n).map(|i| lo + i as f64 * step).collect();
        let density = grid.iter().map(|&s| f(s)).collect();
        Continuation {
            grid,
            density,
            step,
        }
    }

    /// ∫ density(u)·g(u) du over the grid (Simpson).
    fn integrate(&self, g: impl Fn(f64) -> f64) -> f64 {
        let n = self.grid.len() - 1;
        let mut sum = 0.0;
        for (i, (&u, &d)) in self.grid.iter().zip(&self.density).enumerate() {
            let w = if i == 0 || i == n {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            sum += w * d * g(u);
        }
        sum * self.step / 3.0
    }

    /// P(no earlier crossing, S_next ≥ bound·√t_next) with `delta` = t_next − t_prev.
    fn crossing(&self, bound: f64, t_next: f64, delta: f64) -> f64 {
        let b = bound * t_next.sqrt();
        let sd = delta.sqrt();
        self.integrate(|u| normal_cdf((u - b) / sd))
    }

    /// The continuation density at the next look (below `bound`).
    fn next(&self, bound: f64, t_next: f64, delta: f64) -> Self {
        let sd = delta.sqrt();
        let hi = bound * t_next.sqrt();
        Self::on_grid(-12.0 * t_next.sqrt(), hi, sd, |s| {
            self.integrate(|u| normal_pdf((s - u) / sd) / sd)
        })
    }
}

/// Upper bounds (z scale) of a one-sided design spending `alpha` by [`obf_spent`] at the increasing
/// information `fractions` (the last is normally 1). A look that may spend nothing gets +∞.
pub fn boundaries(fractions: &[f64], alpha: f64) -> Vec<f64> {
    let mut bounds = Vec::with_capacity(fractions.len());
    let mut state: Option<Continuation> = None;
    let mut spent = 0.0;
    let mut t_prev = 0.0;
    for &t in fractions {
        let target = obf_spent(t, alpha) - spent;
        let delta = t - t_prev;
        let c = if target <= 0.0 || delta <= 0.0 {
            f64::INFINITY
        } else {
            match &state {
                None => normal_quantile(1.0 - target),
                Some(cont) => {
                    // Crossing probability falls as the bound rises: bisect.
                    let (mut lo, mut hi) = (-5.0, 40.0);
                    for _ in 0..100 {
                        let mid = 0.5 * (lo + hi);
                        if cont.crossing(mid, t, delta) > target {
                            lo = mid;
                        } else {
                            hi = mid;
                        }
                        if hi - lo < 1e-10 {
                            break;
                        }
                    }
                    0.5 * (lo + hi)
                }
            }
        };
        bounds.push(c);
        let finite = c.min(40.0);
        state = Some(match &state {
            None => Continuation::first(finite, t),
            Some(cont) => cont.next(finite, t, delta),
        });
        spent = obf_spent(t, alpha);
        t_prev = t;
    }
    bounds
}

/// Under no effect, the probability of crossing each look's bound first (their sum is the design's
/// overall false-verdict rate).
pub fn crossing_probabilities(bounds: &[f64], fractions: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(bounds.len());
    let mut state: Option<Continuation> = None;
    let mut t_prev = 0.0;
    for (&c, &t) in bounds.iter().zip(fractions) {
        let c = c.min(40.0);
        let delta = t - t_prev;
        out.push(match &state {
            None => 1.0 - normal_cdf(c),
            Some(cont) => cont.crossing(c, t, delta),
        });
        state = Some(match &state {
            None => Continuation::first(c, t),
            Some(cont) => cont.next(c, t, delta),
        });
        t_prev = t;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_look_is_the_fixed_sample_test_and_the_design_spends_alpha() {
        let b = boundaries(&[1.0], 0.025);
        assert!((b[0] - 1.959_963_984_540_054).abs() < 1e-9, "{b:?}");
        let fr = [0.25, 0.5, 0.75, 1.0];
        let b = boundaries(&fr, 0.025);
        let total: f64 = crossing_probabilities(&b, &fr).iter().sum();
        assert!((total - 0.025).abs() < 1e-7, "{total}");
        assert!(b.windows(2).all(|w| w[0] > w[1]), "{b:?}");
    }
}
