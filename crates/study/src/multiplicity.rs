//! A study's hypotheses are a family: testing four of them at 2.5 % each finds "something" far more
//! often than 2.5 % of the time. Holm's step-down adjustment (the default; `correction: none` turns
//! it off) keeps the chance of any false verdict at α and is never less powerful than Bonferroni.
//! Checked against statsmodels' `multipletests(method="holm")` in `tests/power_reference.rs`.

use serde::{Deserialize, Serialize};

/// How a study's p-values are adjusted for testing several hypotheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    /// Holm's step-down method.
    #[default]
    Holm,
    /// Each hypothesis on its own (the family's error rate grows with its size).
    None,
}

impl Correction {
    pub fn name(self) -> &'static str {
        match self {
            Correction::Holm => "holm",
            Correction::None => "none",
        }
    }

    /// The adjusted p-values of `p` (same order); `None` entries (no test) are skipped and do not
    /// count in the family.
    pub fn adjust(self, p: &[Option<f64>]) -> Vec<Option<f64>> {
        match self {
            Correction::None => p.to_vec(),
            Correction::Holm => {
                let present: Vec<(usize, f64)> = p
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (i, v)))
                    .collect();
                let adjusted = holm(&present.iter().map(|x| x.1).collect::<Vec<_>>());
                let mut out = vec![None; p.len()];
                for ((i, _), a) in present.iter().zip(adjusted) {
                    out[*i] = Some(a);
                }
                out
            }
        }
    }

    /// The level each of `m` tests is held to at worst (Holm's first step is Bonferroni's α/m):
    /// what power and seed counts are computed at.
    pub fn worst_level(self, alpha: f64, m: usize) -> f64 {
        match self {
            Correction::Holm => alpha / m.max(1) as f64,
            Correction::None => alpha,
        }
    }
}

/// Holm's adjusted p-values: sorted ascending, p_(i) · (m − i + 1), made monotone, capped at 1.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_by_hand_and_skipped_entries() {
        // Sorted 0.01, 0.03, 0.04, 0.2 → ×4, ×3, ×2, ×1 = 0.04, 0.09, 0.08→0.09, 0.2.
        let a = holm(&[0.01, 0.04, 0.03, 0.2]);
        let want = [0.04, 0.09, 0.09, 0.2];
        for (x, y) in a.iter().zip(want) {
            assert!((x - y).abs() < 1e-12, "{a:?}");
        }
        let adj = Correction::Holm.adjust(&[Some(0.01), None, Some(0.04)]);
        assert_eq!(adj[1], None);
        assert!((adj[0].unwrap() - 0.02).abs() < 1e-12 && (adj[2].unwrap() - 0.04).abs() < 1e-12);
        assert_eq!(Correction::None.adjust(&[Some(0.3)]), vec![Some(0.3)]);
    }
}
