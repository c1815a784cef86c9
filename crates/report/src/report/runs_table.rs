//! The top of the report: the table of runs (dataset, model, size-aware loss, steps, classes),
//! what is missing from each run, and unique run names for every table and legend.

use std::collections::{BTreeMap, BTreeSet};

use super::Report;
use crate::html::{escape, table, Cell};
use crate::run::Run;

/// Config keys that say where a run is and what it is called, not what it does.
fn is_bookkeeping(key: &str) -> bool {
    key.starts_with("logging.") || key.starts_with("hardware.")
}

/// What `run`'s config changes against `base`'s: `key=value` of every differing setting (bookkeeping
/// keys left out), in config order.
pub(crate) fn differences(base: &Run, run: &Run) -> Vec<String> {
    let (Some(a), Some(b)) = (&base.config, &run.config) else {
        return Vec::new();
    };
    evdet_config::differing_keys(a, b)
        .into_iter()
        .filter(|d| !is_bookkeeping(&d.key))
        .map(|d| {
            let short = d.key.rsplit('.').next().unwrap_or(&d.key).to_string();
            format!("{short}={}", evdet_config::diff::show(d.right.as_ref()))
        })
        .collect()
}

/// Makes run names unique: a name shared by several runs gets what its config changes against the
/// first of them (`4scale (embed_dim=64)`), else its group folder (`name (group)`), else `#i`.
pub(super) fn disambiguate_names(runs: &mut [Run]) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for run in runs.iter() {
        *seen.entry(run.name.clone()).or_default() += 1;
    }
    let mut first_of: BTreeMap<String, usize> = BTreeMap::new();
    for (i, run) in runs.iter().enumerate() {
        first_of.entry(run.name.clone()).or_insert(i);
    }
    let mut used = BTreeSet::new();
    let mut names = Vec::with_capacity(runs.len());
    for (i, run) in runs.iter().enumerate() {
        let mut name = run.name.clone();
        if seen.get(&run.name).copied().unwrap_or(0) > 1 {
            let first = first_of[&run.name];
            let diff = if first == i {
                Vec::new()
            } else {
                differences(&runs[first], run)
            };
            let parent = run
                .dir
                .parent()
                .and_then(|p| p.file_name())
                .map(|s| s.to_string_lossy().into_owned());
            let candidate = if !diff.is_empty() {
                let shown: Vec<&str> = diff.iter().take(3).map(String::as_str).collect();
                let more = if diff.len() > 3 { ", …" } else { "" };
                format!("{} ({}{more})", run.name, shown.join(", "))
            } else if first == i {
                run.name.clone()
            } else {
                match parent {
                    Some(p) => format!("{} ({p})", run.name),
                    None => format!("{} #{}", run.name, i + 1),
                }
            };
            name = if used.contains(&candidate) {
                format!("{} #{}", run.name, i + 1)
            } else {
                candidate
            };
        }
        used.insert(name.clone());
        names.push(name);
    }
    for (run, name) in runs.iter_mut().zip(names) {
        run.name = name;
    }
}

/// `4-scale, embed_dim 32`: the FPN and the backbone width, what a reader tells models apart by.
fn model_label(run: &Run) -> String {
    let scales = run.scales();
    let width = run
        .config_value("model.backbone.embed_dim")
        .and_then(serde_norway::Value::as_u64);
    match (scales, width) {
        (Some(s), Some(w)) => format!("{s}, embed_dim {w}"),
        (Some(s), None) => s,
        (None, Some(w)) => format!("embed_dim {w}"),
        (None, None) => "–".into(),
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
        let mut headers: Vec<Cell> = [
            "run",
            "path",
            "dataset",
            "model",
            "size-aware loss",
            "steps",
            "classes",
        ]
        .map(Cell::text)
        .to_vec();
        if self.multi() {
            headers.push(Cell::text("config against the first run"));
        }
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
                let mut row = vec![
                    Cell::raw(format!("<b>{}</b>", escape(&run.name))),
                    Cell::raw(format!(
                        "<code>{}</code>",
                        escape(&run.dir.display().to_string())
                    )),
                    Cell::text(&format!("{dataset}{hw}")),
                    Cell::text(&model_label(run)),
                    Cell::text(size_aware),
                    Cell::num(steps),
                    Cell::num(run.classes().len().to_string()),
                ];
                if self.multi() {
                    let d = differences(&self.runs[0], run);
                    row.push(Cell::text(&if std::ptr::eq(run, &self.runs[0]) {
                        "(baseline)".to_string()
                    } else if d.is_empty() {
                        "same".to_string()
                    } else {
                        d.join(", ")
                    }));
                }
                row
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
