//! The table `evdet study` prints: per arm the headline metrics over seeds, then every hypothesis.

use crate::aggregate::StudyResult;

/// The metrics of the table's columns.
const METRICS: [&str; 5] = [
    "test/prophesee/AP",
    "test/prophesee/AP50",
    "test/prophesee/AP_S",
    "test/unfiltered/AP",
    "test/unfiltered/AP_S",
];

impl StudyResult {
    /// Per arm the headline metrics as mean ± CI half-width over seeds, then one line per hypothesis
    /// with its verdict, paired difference and bootstrap interval.
    pub fn table_lines(&self) -> Vec<String> {
        let mut header = format!("{:<20}", "arm");
        for m in METRICS {
            header += &format!(" {:>20}", m.trim_start_matches("test/"));
        }
        let mut lines = vec![header];
        for (arm, metrics) in &self.arms {
            let mut row = format!("{arm:<20}");
            for m in METRICS {
                let cell = match metrics.get(m) {
                    Some(s) => match (s.ci95_low, s.ci95_high) {
                        (Some(lo), Some(hi)) => format!("{:.4} ± {:.4}", s.mean, (hi - lo) / 2.0),
                        _ => format!("{:.4} (n={})", s.mean, s.n),
                    },
                    None => "—".into(),
                };
                row += &format!(" {cell:>20}");
            }
            lines.push(row);
        }
        lines.push("(mean ± half-width of the 95 % Student t interval over seeds)".into());
        lines.push(String::new());
        for h in &self.hypotheses {
            let x = &h.hypothesis;
            let diff = match (h.mean_diff, h.ci95_low, h.ci95_high) {
                (Some(d), Some(lo), Some(hi)) => format!(
                    "difference {d:+.4} [{lo:+.4}, {hi:+.4}], one-sided p = {}, {} {}",
                    p3(h.p_value),
                    self.correction.name(),
                    p3(h.p_holm)
                ),
                (Some(d), _, _) => format!("difference {d:+.4}, no interval"),
                _ => "no paired runs".into(),
            };
            let boot = match (h.bootstrap_ci95_low, h.bootstrap_ci95_high) {
                (Some(lo), Some(hi)) => format!("bootstrap over recordings [{lo:+.4}, {hi:+.4}]"),
                _ => format!("bootstrap: {}", h.bootstrap_note),
            };
            let power = match (h.mde, h.seeds_needed) {
                (Some(mde), needed) => format!(
                    "MDE {mde:.4} at 80 % power with {} seeds{}",
                    h.n_pairs,
                    match (needed, h.effect) {
                        (Some(n), Some(e)) => format!(", {n} seeds for {e:.4}"),
                        (None, Some(e)) => format!(", over 100000 seeds for {e:.4}"),
                        _ => String::new(),
                    }
                ),
                (None, _) => "no power estimate (fewer than 2 seeds, or no spread)".into(),
            };
            lines.push(format!(
                "{}: {} of {} {} {} {:+}  — {}; {power}; {}; {}",
                h.verdict.word(),
                x.metric,
                x.arm,
                x.op.symbol(),
                x.than,
                x.margin,
                diff,
                boot,
                h.note
            ));
        }
        lines.push(match &self.sequential {
            Some(seq) => format!(
                "(verdicts from {} looks at {:?} seeds of at most {}: {})",
                seq.looks_done,
                &seq.schedule.looks[..seq.looks_done.min(seq.schedule.looks.len())],
                seq.schedule.max_seeds,
                seq.method
            ),
            None => format!(
                "(verdicts at one-sided α = {} after {} adjustment over the {} hypotheses)",
                self.alpha,
                self.correction.name(),
                self.hypotheses.len()
            ),
        });
        lines
    }

    /// `evdet study --plan-power`: per hypothesis the spread of the paired difference, the smallest
    /// difference the seeds run detect with 80 % power, and the seeds the planned effect needs.
    pub fn power_lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "power at one-sided α = {} ({} over {} hypotheses: each test at {:.4} at worst), 80 % power",
            self.alpha,
            self.correction.name(),
            self.hypotheses.len(),
            self.hypotheses.first().map_or(self.alpha, |h| h.level)
        )];
        for h in &self.hypotheses {
            let x = &h.hypothesis;
            let name = format!(
                "{} of {} {} {} {:+}",
                x.metric,
                x.arm,
                x.op.symbol(),
                x.than,
                x.margin
            );
            lines.push(match (h.sd_diff, h.mde) {
                (Some(sd), Some(mde)) => format!(
                    "{name}: {} seeds, paired sd {sd:.4}, detectable difference {mde:.4}; {}",
                    h.n_pairs,
                    match (h.seeds_needed, h.effect) {
                        (Some(n), Some(e)) =>
                            format!("{n} seeds detect {e:.4} ({})", h.effect_source),
                        (None, Some(e)) =>
                            format!("more than 100000 seeds for {e:.4} ({})", h.effect_source),
                        _ => "give --effect DELTA for a seed count".into(),
                    }
                ),
                _ => format!(
                    "{name}: {} seeds — at least 2 with a spread are needed to plan",
                    h.n_pairs
                ),
            });
        }
        lines
    }
}

fn p3(p: Option<f64>) -> String {
    p.map_or("—".into(), |p| format!("{p:.3}"))
}
