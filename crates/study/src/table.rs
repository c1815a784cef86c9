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
                    "difference {d:+.4} [{lo:+.4}, {hi:+.4}], p = {}",
                    h.p_value.map_or("—".into(), |p| format!("{p:.3}"))
                ),
                (Some(d), _, _) => format!("difference {d:+.4}, no interval"),
                _ => "no paired runs".into(),
            };
            let boot = match (h.bootstrap_ci95_low, h.bootstrap_ci95_high) {
                (Some(lo), Some(hi)) => format!("bootstrap over recordings [{lo:+.4}, {hi:+.4}]"),
                _ => format!("bootstrap: {}", h.bootstrap_note),
            };
            lines.push(format!(
                "{}: {} of {} {} {} {:+}  — {}; {}; {}",
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
        lines
    }
}
