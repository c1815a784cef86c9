//! The success-criteria section: evaluating every run's `success_criteria` (loading baselines
//! named there from next to the run when they are not among the report's runs) and their table.

use std::collections::BTreeSet;

use super::{num, Report};
use crate::criteria::{evaluate_run, CriterionResult, Status, Target};
use crate::html::{badge, escape, table, Cell};
use crate::run::Run;

impl Report<'_> {
    pub(super) fn evaluate_criteria(&mut self) -> Vec<CriterionResult> {
        // Baselines named in criteria but not among the report's runs: look next to the run.
        let mut wanted = BTreeSet::new();
        for run in self.runs {
            if let Some(cfg) = &run.config {
                for c in crate::criteria::parse_criteria(cfg).into_iter().flatten() {
                    if let Target::Baseline(name) = c.target {
                        if find_run(self.runs, &name).is_none() {
                            if let Some(parent) = run.dir.parent() {
                                wanted.insert(parent.join(&name));
                            }
                        }
                    }
                }
            }
        }
        for dir in wanted {
            if dir.is_dir() {
                if let Ok(run) = Run::load(&dir) {
                    self.extra_runs.push(run);
                }
            }
        }
        let runs = self.runs;
        let extra = &self.extra_runs;
        let find = |name: &str| find_run(runs, name).or_else(|| find_run(extra, name));
        runs.iter()
            .flat_map(|run| evaluate_run(run, &find))
            .collect()
    }

    pub(super) fn criteria_section(&mut self, criteria: &[CriterionResult]) {
        self.push("<h2>Success criteria</h2>\n");
        if criteria.is_empty() {
            self.push("<p class=\"note\">No run declares <code>success_criteria</code> in its config.</p>\n");
            return;
        }
        let met = criteria.iter().filter(|c| c.status == Status::Met).count();
        self.push(&format!(
            "<p class=\"sub\">{met} of {} met.</p>\n",
            criteria.len()
        ));
        let headers = [
            "run", "metric", "op", "target", "measured", "status", "note",
        ]
        .map(Cell::text);
        let rows: Vec<Vec<Cell>> = criteria
            .iter()
            .map(|c| {
                let (metric, op, target) = match &c.criterion {
                    Some(k) => (
                        k.metric.clone(),
                        k.op.as_str().to_string(),
                        match &k.target {
                            Target::Value(v) => format!("{v}"),
                            Target::Baseline(b) => format!("{b}: {}", num(c.reference)),
                        },
                    ),
                    None => ("–".into(), "–".into(), "–".into()),
                };
                vec![
                    Cell::text(&c.run),
                    Cell::raw(format!("<code>{}</code>", escape(&metric))),
                    Cell::text(&op),
                    Cell::num(escape(&target)),
                    Cell::num(num(c.measured)),
                    Cell::raw(badge(c.status)),
                    Cell::text(&c.note),
                ]
            })
            .collect();
        self.push(&table(&headers, &rows));
    }
}

/// A run by `logging.experiment_id` (its report name) or folder name.
fn find_run<'r>(runs: &'r [Run], name: &str) -> Option<&'r Run> {
    runs.iter()
        .find(|r| r.name == name)
        .or_else(|| runs.iter().find(|r| r.folder_name() == name))
        .or_else(|| {
            runs.iter().find(|r| {
                r.config_value("logging.experiment_id")
                    .and_then(|v| v.as_str())
                    == Some(name)
            })
        })
}
