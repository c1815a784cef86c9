//! The top of the report: the table of runs (dataset, model, size-aware loss, steps, classes),
//! what is missing from each run, and unique run names for every table and legend.

use std::collections::{BTreeMap, BTreeSet};

use super::Report;
use crate::html::{escape, table, Cell};
use crate::run::Run;

/// Makes run names unique (`name` → `name (group)` or `name #2`).
pub(super) fn disambiguate_names(runs: &mut [Run]) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for run in runs.iter() {
        *seen.entry(run.name.clone()).or_default() += 1;
    }
    let mut used = BTreeSet::new();
    for (i, run) in runs.iter_mut().enumerate() {
        if seen.get(&run.name).copied().unwrap_or(0) > 1 {
            let parent = run
                .dir
                .parent()
                .and_then(|p| p.file_name())
                .map(|s| s.to_string_lossy().into_owned());
            let candidate = match parent {
                Some(p) => format!("{} ({p})", run.name),
                None => format!("{} #{}", run.name, i + 1),
            };
            run.name = if used.contains(&candidate) {
                format!("{} #{}", run.name, i + 1)
            } else {
                candidate
            };
        }
        used.insert(run.name.clone());
    }
}

impl Report<'_> {
    pub(super) fn header(&mut self) {
        let mut s = String::from("<h1>evdet report</h1>\n");
        s.push_str(&format!(
            "<p class=\"sub\">{} run{}{}. Metrics are fractions in [0, 1]; “–” means missing or undefined (no ground truth). Sizes are box areas in network-input pixels.</p>\n",
            self.runs.len(),
            if self.multi() { "s" } else { "" },
            if self.multi() {
                "; the first run is the baseline of comparisons"
            } else {
                ""
            }
        ));
        let headers = [
            "run",
            "path",
            "dataset",
            "model",
            "size-aware loss",
            "steps",
            "classes",
        ]
        .map(Cell::text);
        let rows: Vec<Vec<Cell>> = self
            .runs
            .iter()
            .map(|run| {
                let dataset = run
                    .config_value("dataset.name")
                    .and_then(|v| v.as_str())
                    .unwrap_or("–")
                    .to_string();
                let hw = run
                    .input_hw()
                    .map(|[h, w]| format!(" ({w}×{h} input)"))
                    .unwrap_or_default();
                let steps = match (run.steps_reached(), run.max_steps()) {
                    (Some(s), Some(m)) => format!("{s} / {m}"),
                    (Some(s), None) => s.to_string(),
                    (None, Some(m)) => format!("0 / {m}"),
                    (None, None) => "–".into(),
                };
                let size_aware = match run.size_aware() {
                    Some(true) => "on",
                    Some(false) => "off",
                    None => "–",
                };
                vec![
                    Cell::raw(format!("<b>{}</b>", escape(&run.name))),
                    Cell::raw(format!(
                        "<code>{}</code>",
                        escape(&run.dir.display().to_string())
                    )),
                    Cell::text(&format!("{dataset}{hw}")),
                    Cell::text(&run.scales().unwrap_or_else(|| "–".into())),
                    Cell::text(size_aware),
                    Cell::num(steps),
                    Cell::num(run.classes().len().to_string()),
                ]
            })
            .collect();
        s.push_str(&table(&headers, &rows));
        self.push(&s);
    }

    pub(super) fn missing(&mut self) {
        let mut s = String::new();
        for run in self.runs {
            if run.notes.is_empty() {
                continue;
            }
            s.push_str(&format!(
                "<p class=\"note\"><b>{}</b>: not shown because</p><ul class=\"missing\">",
                escape(&run.name)
            ));
            for n in &run.notes {
                s.push_str(&format!("<li>{}</li>", escape(n)));
            }
            s.push_str("</ul>\n");
        }
        if !s.is_empty() {
            self.push("<h2>What is missing</h2>\n");
            self.push(&s);
        }
    }
}
