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
//! `tests/power_reference.rs`.
//!
//! A study's looks are paired t-tests on a handful of seeds, not z statistics: carrying the z bounds
//! over through each look's p-value (Jennison & Turnbull's "significance level approach") lets ~6 %
//! more false verdicts through at 3–11 seeds (the t statistics of two looks share less than the z
//! design assumes). But under no effect the joint distribution of the looks' t statistics depends on
//! nothing but the look sizes, so the nominal p-value each look is held to is calibrated exactly for
//! them: 200 000 simulated studies (fixed seed), and at each look the threshold that lets the
//! spending function's increment of the studies not yet stopped cross ([`t_thresholds`]). With many
//! seeds the thresholds are the z design's.

use crate::power::normal_cdf;
use crate::verdict::Verdict;

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

/// Simulated studies behind [`t_thresholds`] (the calibration's standard error on a look spending
/// 0.01 is 0.0002).
pub const CALIBRATION_STUDIES: usize = 200_000;

/// Nominal one-sided p-value thresholds of paired t-tests at looks of `sizes` pairs (increasing, the
/// first ≥ 2) out of `max_pairs`, spending `alpha` by [`obf_spent`] over the fractions
/// `sizes / max_pairs`: under no effect a fraction α(t_k) − α(t_{k−1}) of all studies first reaches
/// p ≤ threshold at look k. Calibrated on [`CALIBRATION_STUDIES`] simulated studies with a fixed seed,
/// so the same sizes always give the same thresholds.
pub fn t_thresholds(sizes: &[usize], max_pairs: usize, alpha: f64) -> Vec<f64> {
    use rayon::prelude::*;
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let n_max = sizes.last().copied().unwrap_or(0);
    let dists: Vec<Option<StudentsT>> = sizes
        .iter()
        .map(|&n| StudentsT::new(0.0, 1.0, n.saturating_sub(1) as f64).ok())
        .collect();
    // Each study's one-sided p at every look (H1: mean > 0), from its own stream of normals.
    let p: Vec<Vec<f64>> = (0..CALIBRATION_STUDIES)
        .into_par_iter()
        .map(|i| {
            let mut rng =
                Normals::new(0x5eed_0000 ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let (mut sum, mut sq, mut n) = (0.0, 0.0, 0usize);
            sizes
                .iter()
                .zip(&dists)
                .map(|(&size, dist)| {
                    while n < size.min(n_max) {
                        let x = rng.normal();
                        sum += x;
                        sq += x * x;
                        n += 1;
                    }
                    let mean = sum / n as f64;
                    let var = (sq - n as f64 * mean * mean) / (n as f64 - 1.0);
                    match dist {
                        Some(d) if var > 0.0 => d.sf(mean / (var / n as f64).sqrt()),
                        _ => 1.0,
                    }
                })
                .collect()
        })
        .collect();
    let mut alive: Vec<usize> = (0..CALIBRATION_STUDIES).collect();
    let mut spent = 0.0;
    let mut out = Vec::with_capacity(sizes.len());
    for (k, &size) in sizes.iter().enumerate() {
        let total = obf_spent(size as f64 / max_pairs as f64, alpha);
        let crossing = ((total - spent) * CALIBRATION_STUDIES as f64).round() as usize;
        spent = total;
        let mut at: Vec<f64> = alive.iter().map(|&i| p[i][k]).collect();
        at.sort_by(f64::total_cmp);
        let threshold = match crossing {
            0 => 0.0,
            c => at[(c - 1).min(at.len().saturating_sub(1))],
        };
        alive.retain(|&i| p[i][k] > threshold);
        out.push(threshold);
    }
    out
}

/// Standard normals from SplitMix64 (Box–Muller), for the calibration.
struct Normals {
    state: u64,
    spare: Option<f64>,
}

impl Normals {
    fn new(seed: u64) -> Self {
        Normals {
            state: seed,
            spare: None,
        }
    }

    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        if let Some(x) = self.spare.take() {
            return x;
        }
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        let r = (-2.0 * u.ln()).sqrt();
        let angle = 2.0 * std::f64::consts::PI * v;
        self.spare = Some(r * angle.sin());
        r * angle.cos()
    }
}

/// When a sequential study looks: after `first` seeds, then every `per_round` more, up to `max_seeds`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Schedule {
    /// Seeds run by each look, increasing, the last = `max_seeds`.
    pub looks: Vec<usize>,
    pub max_seeds: usize,
    /// The one-sided level each hypothesis spends over its looks (α/m under a correction: Holm's
    /// first step is Bonferroni's, and over several looks each test keeps its own share).
    pub alpha_each: f64,
    /// The nominal one-sided p-value thresholds of the planned looks (every run finished),
    /// calibrated once.
    pub planned_thresholds: Vec<f64>,
}

impl Schedule {
    pub fn new(
        first: usize,
        per_round: usize,
        max_seeds: usize,
        alpha_each: f64,
    ) -> Result<Self, String> {
        if first < 2 {
            return Err(format!(
                "the first look needs at least 2 seeds for a paired test (the study file lists {first})"
            ));
        }
        if max_seeds < first {
            return Err(format!(
                "--max-seeds {max_seeds} is below the {first} seeds the study file lists"
            ));
        }
        if per_round == 0 {
            return Err("--seeds-per-round must be at least 1".into());
        }
        let mut looks = vec![first];
        while *looks.last().unwrap_or(&first) < max_seeds {
            let next = (looks[looks.len() - 1] + per_round).min(max_seeds);
            looks.push(next);
        }
        let planned_thresholds = t_thresholds(&looks, max_seeds, alpha_each);
        Ok(Schedule {
            looks,
            max_seeds,
            alpha_each,
            planned_thresholds,
        })
    }
}

impl Schedule {
    /// `sequential: looks at [3, 5, 7] seeds per arm, each hypothesis at one-sided 0.0063`.
    pub fn line(&self) -> String {
        format!(
            "sequential: looks at {:?} seeds per arm, each hypothesis at one-sided {:.4}",
            self.looks, self.alpha_each
        )
    }
}

/// One look at one hypothesis: the pairs it saw, its information fraction and bound, and the
/// z-equivalents of the claim's and the opposite's one-sided p-values.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Look {
    /// Seeds run by this look (planned), and paired seeds with both runs finished among them.
    pub seeds: usize,
    pub pairs: usize,
    pub fraction: f64,
    /// The nominal one-sided p-value this look is held to, and its z equivalent.
    pub threshold: f64,
    pub bound: f64,
    /// One-sided p-values of the claim and of the opposite at this look.
    pub p_claim: Option<f64>,
    pub p_against: Option<f64>,
    pub z_claim: Option<f64>,
    pub z_against: Option<f64>,
    pub verdict: Verdict,
}

/// The looks of one hypothesis over the schedule's first `looks_done` looks, stopping at the first that
/// decides. `pair(k)` gives the (arm, other) metric of the k-th seed when both runs finished. A look
/// with fewer than 2 pairs decides nothing and spends nothing.
pub fn looks(
    schedule: &Schedule,
    looks_done: usize,
    above: bool,
    margin: f64,
    pair: impl Fn(usize) -> Option<(f64, f64)>,
) -> Vec<Look> {
    let mut out: Vec<Look> = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    for &seeds in schedule.looks.iter().take(looks_done) {
        let (a, b): (Vec<f64>, Vec<f64>) = (0..seeds).filter_map(&pair).unzip();
        let pairs = a.len();
        let fraction = pairs as f64 / schedule.max_seeds as f64;
        let tested = crate::stats::one_sided(&a, &b, margin);
        let fresh = sizes.last().is_none_or(|&n| pairs > n);
        let (threshold, p_claim, p_against) = match tested {
            Some((greater, less)) if fresh => {
                sizes.push(pairs);
                let k = sizes.len() - 1;
                // Every run of every look so far finished: the planned thresholds; else calibrated
                // for the look sizes seen (the spending function at their fractions: Lan–DeMets).
                let threshold = if sizes[..] == schedule.looks[..sizes.len()] {
                    schedule.planned_thresholds[k]
                } else {
                    t_thresholds(&sizes, schedule.max_seeds, schedule.alpha_each)[k]
                };
                let (claim, against) = if above {
                    (greater, less)
                } else {
                    (less, greater)
                };
                (threshold, Some(claim), Some(against))
            }
            _ => (0.0, None, None),
        };
        let verdict = match (p_claim, p_against) {
            (Some(p), _) if p <= threshold => Verdict::Supported,
            (_, Some(p)) if p <= threshold => Verdict::Refuted,
            _ => Verdict::Inconclusive,
        };
        let z = |p: Option<f64>| p.map(|p| normal_quantile(1.0 - p));
        let (z_claim, z_against) = (z(p_claim), z(p_against));
        let bound = normal_quantile(1.0 - threshold);
        out.push(Look {
            seeds,
            pairs,
            fraction,
            threshold,
            bound,
            p_claim,
            p_against,
            z_claim,
            z_against,
            verdict,
        });
        if verdict != Verdict::Inconclusive {
            break;
        }
    }
    out
}

/// The sequential part of a study's result (study.json `sequential`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SequentialResult {
    /// The method, in words.
    pub method: String,
    pub schedule: Schedule,
    /// Every seed the schedule may use, in order (the study file's first).
    pub seeds: Vec<u64>,
    /// Looks taken so far.
    pub looks_done: usize,
    /// Per hypothesis (study file order), its looks up to the one that decided it.
    pub looks: Vec<Vec<Look>>,
}

impl SequentialResult {
    pub fn method(alpha: f64, m: usize, alpha_each: f64) -> String {
        format!(
            "group-sequential paired t-tests: each of the {m} hypotheses spends one-sided α = {alpha_each:.4} \
             (α = {alpha} over the family, Bonferroni) by Lan–DeMets O'Brien–Fleming spending over the \
             fraction of the maximum seeds; nominal p thresholds calibrated for t statistics \
             ({CALIBRATION_STUDIES} simulated studies); a hypothesis stops at the first look that \
             decides it, and its arms stop when no undecided hypothesis needs them"
        )
    }
}

/// The seeds of a sequential study: the file's, then the next integers after their largest, up to
/// `max` in all.
pub fn extended_seeds(file_seeds: &[u64], max: usize) -> Vec<u64> {
    let mut out = file_seeds.to_vec();
    let mut next = file_seeds.iter().max().map_or(0, |m| m + 1);
    while out.len() < max {
        if !out.contains(&next) {
            out.push(next);
        }
        next += 1;
    }
    out.truncate(max.max(file_seeds.len()));
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

    /// How often `studies` synthetic sequential studies (paired differences of mean `effect`, sd 1)
    /// end supported and refuted, and the mean seeds they ran.
    fn simulate(effect: f64, studies: usize, seed: u64) -> (f64, f64, f64) {
        let schedule = Schedule::new(3, 2, 11, 0.025).unwrap();
        let mut rng = Normals::new(seed);
        let (mut supported, mut refuted, mut seeds) = (0, 0, 0);
        for _ in 0..studies {
            let d: Vec<f64> = (0..11).map(|_| effect + rng.normal()).collect();
            let l = looks(&schedule, schedule.looks.len(), true, 0.0, |k| {
                Some((d[k], 0.0))
            });
            let last = l.last().unwrap();
            seeds += last.seeds;
            match last.verdict {
                Verdict::Supported => supported += 1,
                Verdict::Refuted => refuted += 1,
                Verdict::Inconclusive => {}
            }
        }
        let n = studies as f64;
        (supported as f64 / n, refuted as f64 / n, seeds as f64 / n)
    }

    #[test]
    fn without_an_effect_false_verdicts_stay_at_alpha() {
        // Looks at 3, 5, 7, 9, 11 seeds; 4000 studies: the rate's standard error is 0.0025.
        let (supported, refuted, _) = simulate(0.0, 40000, 7);
        assert!(
            supported <= 0.025 + 3.0 * 0.0025,
            "false supported {supported}"
        );
        assert!(refuted <= 0.025 + 3.0 * 0.0025, "false refuted {refuted}");
        // Not vacuous: the procedure does spend its α.
        assert!(supported > 0.005, "{supported}");
    }

    #[test]
    fn a_real_effect_is_found_and_often_early() {
        let (supported, refuted, seeds) = simulate(1.5, 2000, 11);
        assert!(supported > 0.9, "power {supported}");
        assert!(refuted < 0.001, "{refuted}");
        assert!(seeds < 9.0, "mean seeds {seeds}");
    }

    #[test]
    fn one_look_is_held_to_alpha_and_early_looks_to_far_less() {
        // A single look: the threshold is the uniform p-value's α quantile (calibration SE 0.00035).
        let t = t_thresholds(&[11], 11, 0.025);
        assert!((t[0] - 0.025).abs() < 0.0015, "{t:?}");
        // Looks at 3, 7, 11 of 11: O'Brien–Fleming spends almost nothing early.
        let t = t_thresholds(&[3, 7, 11], 11, 0.025);
        assert!(t[0] < 1e-4 && t[1] < t[2] && t[2] < 0.025, "{t:?}");
        assert_eq!(t, t_thresholds(&[3, 7, 11], 11, 0.025), "deterministic");
    }

    #[test]
    fn seeds_extend_after_the_file_s() {
        assert_eq!(extended_seeds(&[0, 1, 2], 6), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(extended_seeds(&[7, 3], 4), vec![7, 3, 8, 9]);
        assert_eq!(extended_seeds(&[0, 1, 2], 3), vec![0, 1, 2]);
    }

    #[test]
    fn schedules_and_bad_ones() {
        assert_eq!(
            Schedule::new(3, 2, 10, 0.025).unwrap().looks,
            vec![3, 5, 7, 9, 10]
        );
        assert_eq!(Schedule::new(3, 5, 3, 0.025).unwrap().looks, vec![3]);
        assert!(Schedule::new(1, 2, 10, 0.025).is_err());
        assert!(Schedule::new(3, 2, 2, 0.025).is_err());
        assert!(Schedule::new(3, 0, 10, 0.025).is_err());
    }
}
