//! The final numbers: the comparison of key statistics against the baseline (first) run, and
//! the final metric table of every evaluated split for both protocols.

use std::collections::BTreeMap;

use super::{defined, num, Report};
use crate::html::{escape, table, table_with_groups, Cell};
use crate::run::{PROTOCOLS, STATS};

/// Statistics of the comparison table.
const KEY_STATS: [&str; 5] = ["AP", "AP50", "AP_S", "AP_small_classes", "agnostic/AP"];

impl Report<'_> {
    pub(super) fn comparison(&mut self) {
        if !self.multi() {
            return;
        }
        let Some(split) = self.splits().into_iter().next() else {
            return;
        };
        self.push(&format!(
            "<h2>Comparison with the baseline ({})</h2>\n<p class=\"sub\">Split <b>{split}</b>; Δ is the difference to the first run; green is better, red worse.</p>\n",
            escape(&self.runs[0].name)
        ));
        let finals: Vec<BTreeMap<String, f64>> =
            self.runs.iter().map(|r| r.final_metrics()).collect();
        let mut headers = vec![Cell::text("protocol"), Cell::text("stat")];
        for (i, run) in self.runs.iter().enumerate() {
            headers.push(Cell::raw(format!(
                "{}{}",
                escape(&run.name),
                if i == 0 { " (baseline)" } else { "" }
            )));
        }
        let mut rows = Vec::new();
        for p in PROTOCOLS {
            for s in KEY_STATS {
                let key = format!("{split}/{p}/{s}");
                let base = defined(finals[0].get(&key).copied());
                let mut row = vec![Cell::text(p), Cell::raw(format!("<code>{s}</code>"))];
                for (i, f) in finals.iter().enumerate() {
                    let v = defined(f.get(&key).copied());
                    let mut cell = num(v);
                    if i > 0 {
                        cell.push_str(&delta_html(v, base));
                    }
                    row.push(Cell::num(cell));
                }
                rows.push(row);
            }
        }
        self.push(&table(&headers, &rows));
    }

    pub(super) fn final_tables(&mut self) {
        let splits = self.splits();
        self.push("<h2>Final metrics</h2>\n");
        if splits.is_empty() {
            self.push("<p class=\"note\">No evaluation results yet (neither <code>eval/</code> nor validation lines in <code>metrics.jsonl</code>).</p>\n");
            return;
        }
        for split in splits {
            let sources: Vec<String> = self
                .runs
                .iter()
                .map(|run| {
                    if run.eval.get(&split).is_some_and(|e| e.metrics.is_some()) {
                        format!("{}: eval/{split}_metrics.json", run.name)
                    } else {
                        let step = run
                            .metrics
                            .iter()
                            .filter(|l| {
                                l.values.keys().any(|k| k.starts_with(&format!("{split}/")))
                            })
                            .map(|l| l.step)
                            .max();
                        match step {
                            Some(s) => format!(
                                "{}: last validation in the training log (step {s})",
                                run.name
                            ),
                            None => format!("{}: none", run.name),
                        }
                    }
                })
                .collect();
            self.push(&format!(
                "<h3>Split {}</h3>\n<p class=\"note\">From {}.</p>\n",
                escape(&split),
                escape(&sources.join("; "))
            ));
            let finals: Vec<BTreeMap<String, f64>> =
                self.runs.iter().map(|r| r.final_metrics()).collect();
            let mut groups = vec![(String::new(), 1)];
            let mut headers = vec![Cell::text("stat")];
            for p in PROTOCOLS {
                groups.push((p.to_string(), self.runs.len()));
                for run in self.runs {
                    headers.push(Cell::text(if self.multi() { &run.name } else { "value" }));
                }
            }
            let rows: Vec<Vec<Cell>> = STATS
                .iter()
                .map(|stat| {
                    let mut row = vec![Cell::raw(format!("<code>{stat}</code>"))];
                    for p in PROTOCOLS {
                        for f in &finals {
                            row.push(Cell::num(num(f
                                .get(&format!("{split}/{p}/{stat}"))
                                .copied())));
                        }
                    }
                    row
                })
                .collect();
            self.push(&table_with_groups(&groups, &headers, &rows));
        }
    }
}

/// Δ against the baseline as coloured HTML (higher is better for every key statistic).
pub fn delta_html(v: Option<f64>, base: Option<f64>) -> String {
    match (v, base) {
        (Some(v), Some(b)) => {
            let d = v - b;
            let class = if d > 5e-4 {
                "up"
            } else if d < -5e-4 {
                "down"
            } else {
                "same"
            };
            format!(" <span class=\"{class}\">({d:+.3})</span>")
        }
        _ => String::new(),
    }
}
