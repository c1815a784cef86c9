//! The run report: one self-contained HTML file for one or more run directories (training
//! curves, validation AP over steps, final metric tables for both protocols, AP by size bin and
//! class, the small-class group, PR curves, confusion matrices, sample detections, and with
//! several runs a comparison against the first run and the success criteria), plus the same
//! charts as PNG files in `<stem>_files/` next to it.
//!
//! This file holds the entry point and the page builder (`Report`) that every section writes
//! into; each section of the page lives in its own module, in page order: `runs_table` (runs
//! and what is missing), `criteria_table`, `final_metrics` (comparison and final tables),
//! `curves` (training and validation), `small_objects` (size bins, classes), `pr_confusion`
//! (PR curves, confusion matrices) and `samples`.

mod criteria_table;
mod curves;
mod final_metrics;
mod pr_confusion;
mod runs_table;
mod samples;
mod small_objects;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::criteria::CriterionResult;
use crate::error::{ReportError, Result};
use crate::html::{self, figure};
use crate::io::write_atomic;
use crate::plots::{bar_chart_svg, fmt_value, line_chart_svg, svg_to_png, BarChart, LineChart};
use crate::run::{Run, PROTOCOLS};

pub use final_metrics::delta_html;

/// What [`build_report`] did.
#[derive(Debug, Clone)]
pub struct ReportSummary {
    /// The HTML file.
    pub html: PathBuf,
    /// Every file written: the HTML first, then the chart PNGs.
    pub files: Vec<PathBuf>,
    /// Every run's success criteria, evaluated (for the command line to print).
    pub criteria: Vec<CriterionResult>,
    /// What was missing or skipped, per run (`<run>: <sentence>`).
    pub notes: Vec<String>,
}

/// Zoom of chart PNGs relative to their SVG size (sharper on high-density screens).
const CHART_ZOOM: f32 = 1.5;

/// Builds the report of `runs` (run directories; the first is the baseline of comparisons)
/// into `out_html`, and its charts as PNG files into `<out stem>_files/`.
pub fn build_report(runs: &[PathBuf], out_html: &Path) -> Result<ReportSummary> {
    if runs.is_empty() {
        return Err(ReportError::InvalidInput(
            "no run directories given for the report".into(),
        ));
    }
    let mut loaded = runs
        .iter()
        .map(|d| Run::load(d))
        .collect::<Result<Vec<_>>>()?;
    runs_table::disambiguate_names(&mut loaded);
    let stem = out_html
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let files_dir = out_html.with_file_name(format!("{stem}_files"));
    let mut r = Report {
        runs: &loaded,
        files_dir,
        files: Vec::new(),
        body: String::new(),
        extra_runs: Vec::new(),
    };
    let criteria = r.evaluate_criteria();
    r.header();
    r.missing();
    r.criteria_section(&criteria);
    r.comparison();
    r.final_tables();
    r.training_curves()?;
    r.assignment_curves()?;
    r.validation_curves()?;
    r.small_objects()?;
    r.samples();
    let title = format!(
        "evdet report: {}",
        loaded
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let page = html::page(&title, &r.body);
    write_atomic(out_html, page.as_bytes())?;
    let mut files = vec![out_html.to_path_buf()];
    files.extend(r.files);
    let notes = loaded
        .iter()
        .flat_map(|run| run.notes.iter().map(move |n| format!("{}: {n}", run.name)))
        .collect();
    Ok(ReportSummary {
        html: out_html.to_path_buf(),
        files,
        criteria,
        notes,
    })
}

/// File-name-safe form of a label.
fn slug(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    while out.contains("__") {
        out = out.replace("__", "_");
    }
    out.trim_matches('_').to_string()
}

/// A metric that counts (present, finite, not the undefined −1).
fn defined(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite() && *v >= 0.0)
}

/// Formats a fraction or "–".
fn num(v: Option<f64>) -> String {
    v.map(fmt_value).unwrap_or_else(|| "–".into())
}

/// The page being built: the runs, the HTML body so far and the chart files written.
struct Report<'a> {
    runs: &'a [Run],
    files_dir: PathBuf,
    files: Vec<PathBuf>,
    body: String,
    /// Baseline runs found next to a run but not given to the report.
    extra_runs: Vec<Run>,
}

impl Report<'_> {
    fn push(&mut self, s: &str) {
        self.body.push_str(s);
    }

    /// Renders `svg`, writes `<files_dir>/<name>.png` and returns the figure's HTML.
    fn chart(&mut self, name: &str, svg: &str, width: u32, caption: &str) -> Result<String> {
        let png = svg_to_png(svg, CHART_ZOOM)?;
        let path = self.files_dir.join(format!("{}.png", slug(name)));
        write_atomic(&path, &png)?;
        if !self.files.contains(&path) {
            self.files.push(path);
        }
        Ok(figure(&png, width, name, caption))
    }

    fn line(&mut self, name: &str, chart: &LineChart, caption: &str) -> Result<String> {
        let svg = line_chart_svg(chart)?;
        self.chart(name, &svg, chart.width, caption)
    }

    fn bars(&mut self, name: &str, chart: &BarChart, caption: &str) -> Result<String> {
        let svg = bar_chart_svg(chart);
        self.chart(name, &svg, chart.width, caption)
    }

    fn multi(&self) -> bool {
        self.runs.len() > 1
    }

    /// Splits with final numbers in any run, `test` first, then `val`, then others.
    fn splits(&self) -> Vec<String> {
        let mut set = BTreeSet::new();
        for run in self.runs {
            for k in run.final_metrics().keys() {
                if let Some((split, rest)) = k.split_once('/') {
                    if split != "train" && PROTOCOLS.iter().any(|p| rest.starts_with(p)) {
                        set.insert(split.to_string());
                    }
                }
            }
            set.extend(run.eval.keys().cloned());
        }
        let mut out: Vec<String> = ["test", "val"]
            .iter()
            .filter(|s| set.contains(**s))
            .map(|s| s.to_string())
            .collect();
        out.extend(set.into_iter().filter(|s| s != "test" && s != "val"));
        out
    }

    /// The figures in a row, or a note saying why there are none.
    fn push_figs_or_note(&mut self, figs: &str, note: &str) {
        if figs.is_empty() {
            self.push(&format!("<p class=\"note\">{note}</p>\n"));
        } else {
            self.push(&format!("<div class=\"figs\">{figs}</div>\n"));
        }
    }
}
