//! The run report: one self-contained HTML file for one or more run directories (training
//! curves, validation AP over steps, final metric tables for both protocols, AP by size bin and
//! class, the small-class group, PR curves, confusion matrices, sample detections, and with
//! several runs a comparison against the first run and the success criteria), plus the same
//! charts as PNG files in `<stem>_files/` next to it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use evdet_eval::analysis::SmallObjectAnalysis;

use crate::criteria::{evaluate_run, CriterionResult, Status, Target};
use crate::error::{ReportError, Result};
use crate::html::{self, badge, escape, figure, table, table_with_groups, Cell};
use crate::io::write_atomic;
use crate::plots::{
    bar_chart_svg, confusion_svg, fmt_value, line_chart_svg, palette, svg_to_png, BarChart,
    LineChart, Series,
};
use crate::run::{Run, PROTOCOLS, STATS};

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

/// Training scalars shown as curves (DESIGN.md "Metric names").
const LOSS_KEYS: [&str; 5] = [
    "train/loss",
    "train/iou_loss",
    "train/conf_loss",
    "train/cls_loss",
    "train/l1_loss",
];

/// Statistics shown over validation steps.
const VAL_STATS: [&str; 3] = ["AP", "AP50", "AP_S"];

/// Statistics of the comparison table.
const KEY_STATS: [&str; 5] = ["AP", "AP50", "AP_S", "AP_small_classes", "agnostic/AP"];

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
    disambiguate_names(&mut loaded);
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

/// Makes run names unique (`name` → `name (group)` or `name #2`).
fn disambiguate_names(runs: &mut [Run]) {
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

    fn evaluate_criteria(&mut self) -> Vec<CriterionResult> {
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

    fn header(&mut self) {
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

    fn missing(&mut self) {
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

    fn criteria_section(&mut self, criteria: &[CriterionResult]) {
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

    fn comparison(&mut self) {
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

    fn final_tables(&mut self) {
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

    fn training_curves(&mut self) -> Result<()> {
        self.push("<h2>Training</h2>\n");
        let has = |key: &str| self.runs.iter().any(|r| !r.series(key).is_empty());
        if !LOSS_KEYS.iter().any(|k| has(k)) {
            self.push("<p class=\"note\">No training log lines.</p>\n");
            return Ok(());
        }
        let mut figs = String::new();
        // Loss parts that are not identically zero (train/l1_loss is 0 unless use_l1).
        let nonzero = |key: &str| {
            self.runs
                .iter()
                .any(|r| r.series(key).iter().any(|p| p.1 != 0.0))
        };
        let parts: Vec<&str> = LOSS_KEYS.iter().copied().filter(|k| nonzero(k)).collect();
        if self.multi() {
            for key in &parts {
                let chart = self.runs_chart(key, key, false);
                figs.push_str(&self.line(&format!("train {key}"), &chart, "")?);
            }
        } else {
            let run = &self.runs[0];
            let mut chart = LineChart::new("Loss and its parts", "step", "loss");
            for (i, key) in parts.iter().enumerate() {
                chart.series.push(Series {
                    name: key.trim_start_matches("train/").into(),
                    points: run.series(key),
                    color: palette(i),
                });
            }
            figs.push_str(&self.line(
                "train loss parts",
                &chart,
                "train/iou_loss includes its ×5 weight, as the reference logs it.",
            )?);
        }
        for (key, log) in [
            ("train/lr", false),
            ("train/grad_norm", true),
            ("train/num_fg", false),
        ] {
            if has(key) {
                let chart = self.runs_chart(key, key, log);
                let caption = if key == "train/grad_norm" {
                    "Gradient norm before clipping (log scale)."
                } else {
                    ""
                };
                figs.push_str(&self.line(&format!("train {key}"), &chart, caption)?);
            }
        }
        if has("train/compute_time_s") {
            let mut chart = self.runs_chart("train/compute_time_s", "seconds per step", false);
            if let (false, Some(first)) = (self.multi(), chart.series.first_mut()) {
                chart.title = "Step time".into();
                first.name = "compute".into();
                chart.series.push(Series {
                    name: "data wait".into(),
                    points: self.runs[0].series("train/data_time_s"),
                    color: palette(1),
                });
            } else {
                chart.title = "Compute time per step".into();
            }
            figs.push_str(&self.line("train step time", &chart, "")?);
        }
        self.push(&format!("<div class=\"figs\">{figs}</div>\n"));
        Ok(())
    }

    /// A chart of `key` over steps with one series per run.
    fn runs_chart(&self, key: &str, y_label: &str, log_y: bool) -> LineChart {
        let mut chart = LineChart::new(key, "step", y_label);
        chart.log_y = log_y;
        chart.series = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, r)| Series {
                name: r.name.clone(),
                points: r.series(key),
                color: palette(i),
            })
            .collect();
        chart
    }

    fn validation_curves(&mut self) -> Result<()> {
        self.push("<h2>Validation over training</h2>\n");
        let any = self.runs.iter().any(|r| {
            !r.series("val/prophesee/AP").is_empty() || !r.series("val/unfiltered/AP").is_empty()
        });
        if !any {
            self.push("<p class=\"note\">No validation lines in the training log.</p>\n");
            return Ok(());
        }
        let mut figs = String::new();
        for p in PROTOCOLS {
            if self.multi() {
                for stat in VAL_STATS {
                    let key = format!("val/{p}/{stat}");
                    let mut chart = self.runs_chart(&key, stat, false);
                    chart.markers = true;
                    chart.legend_lower = true;
                    chart.x_range = step_range(&chart.series);
                    chart.y_range = Some(unit_range(&chart.series));
                    figs.push_str(&self.line(&format!("val {key}"), &chart, "")?);
                }
            } else {
                let run = &self.runs[0];
                let mut chart = LineChart::new(&format!("Validation AP — {p}"), "step", "fraction");
                chart.markers = true;
                chart.legend_lower = true;
                for (i, stat) in VAL_STATS.iter().enumerate() {
                    chart.series.push(Series {
                        name: stat.to_string(),
                        points: run.series(&format!("val/{p}/{stat}")),
                        color: palette(i),
                    });
                }
                chart.y_range = Some(unit_range(&chart.series));
                chart.x_range = step_range(&chart.series);
                figs.push_str(&self.line(
                    &format!("val {p}"),
                    &chart,
                    if p == "prophesee" {
                        "prophesee: the reference's filters (comparable with published numbers)."
                    } else {
                        "unfiltered: every box."
                    },
                )?);
            }
        }
        self.push(&format!("<div class=\"figs\">{figs}</div>\n"));
        Ok(())
    }

    /// The frame sizes are measured in, as words.
    fn frame_words(&self, split: &str) -> String {
        let hw = self
            .runs
            .iter()
            .find_map(|r| {
                r.eval
                    .get(split)
                    .and_then(|e| e.analysis.as_ref()?.frame_hw)
            })
            .or_else(|| self.runs.iter().find_map(|r| r.input_hw()));
        match hw {
            Some([h, w]) => format!("areas in network-input pixels ({w}×{h} frame)"),
            None => "areas in network-input pixels".into(),
        }
    }

    fn analysis<'r>(run: &'r Run, split: &str, p: &str) -> Option<&'r SmallObjectAnalysis> {
        run.eval.get(split)?.analysis.as_ref()?.protocol(p)
    }

    fn small_objects(&mut self) -> Result<()> {
        let splits = self.splits();
        self.push("<h2>Small objects</h2>\n");
        if splits.is_empty() {
            self.push("<p class=\"note\">No evaluation results yet.</p>\n");
            return Ok(());
        }
        // The evaluation split with the most to show: test, else the first.
        let split = splits[0].clone();
        let frame = self.frame_words(&split);
        self.push(&format!(
            "<p class=\"sub\">Split <b>{}</b>; {}.</p>\n",
            escape(&split),
            escape(&frame)
        ));
        self.size_bins(&split, &frame)?;
        self.per_class(&split)?;
        self.pr_curves(&split)?;
        self.confusions(&split)?;
        Ok(())
    }

    fn size_bins(&mut self, split: &str, frame: &str) -> Result<()> {
        self.push("<h3>AP by size bin</h3>\n");
        let mut figs = String::new();
        for p in PROTOCOLS {
            // Bin labels: from the analyses, else from the metric keys; ordered by lower edge.
            let prefix = format!("{split}/{p}/AP_bin/");
            let mut bins: BTreeSet<String> = BTreeSet::new();
            let mut notes: BTreeMap<String, String> = BTreeMap::new();
            for run in self.runs {
                if let Some(a) = Self::analysis(run, split, p) {
                    for b in &a.size_bins {
                        bins.insert(b.label.clone());
                        notes
                            .entry(b.label.clone())
                            .or_insert(format!("n={}", b.num_gt));
                    }
                }
                for k in run.final_metrics().keys() {
                    if let Some(label) = k.strip_prefix(&prefix) {
                        bins.insert(label.to_string());
                    }
                }
            }
            if bins.is_empty() {
                continue;
            }
            let mut bins: Vec<String> = bins.into_iter().collect();
            bins.sort_by(|a, b| bin_lo(a).total_cmp(&bin_lo(b)));
            let series =
                self.runs
                    .iter()
                    .enumerate()
                    .map(|(i, run)| {
                        let finals = run.final_metrics();
                        let a = Self::analysis(run, split, p);
                        let values =
                            bins.iter()
                                .map(|label| {
                                    defined(finals.get(&format!("{prefix}{label}")).copied())
                                        .or_else(|| {
                                            defined(
                                                a?.size_bins
                                                    .iter()
                                                    .find(|b| &b.label == label)
                                                    .map(|b| b.ap),
                                            )
                                        })
                                })
                                .collect();
                        (run.name.clone(), palette(i), values)
                    })
                    .collect();
            let chart = BarChart {
                title: format!("AP by size bin — {split}/{p}"),
                x_label: "box side length bin (px; area = side²) in network-input pixels".into(),
                y_label: "AP @[.50:.95]".into(),
                category_notes: if self.multi() {
                    Vec::new()
                } else {
                    bins.iter()
                        .map(|b| notes.get(b).cloned().unwrap_or_default())
                        .collect()
                },
                categories: bins,
                series,
                y_max: None,
                group_last: false,
                width: 640,
                height: 360,
            };
            let caption = format!(
                "{frame}; n = ground-truth boxes in the bin. Bins with no ground truth show “–”."
            );
            figs.push_str(&self.bars(&format!("size bins {split} {p}"), &chart, &caption)?);
        }
        if figs.is_empty() {
            self.push("<p class=\"note\">No size-bin numbers (<code>AP_bin/…</code>) for this split.</p>\n");
        } else {
            self.push(&format!("<div class=\"figs\">{figs}</div>\n"));
        }
        Ok(())
    }

    /// Class names in config order, completed from analyses and metric keys.
    fn class_names(&self, split: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let mut add = |n: &str| {
            if !names.iter().any(|x| x == n) {
                names.push(n.to_string());
            }
        };
        for run in self.runs {
            for c in run.classes() {
                add(&c);
            }
        }
        for run in self.runs {
            for p in PROTOCOLS {
                if let Some(a) = Self::analysis(run, split, p) {
                    for c in &a.per_class {
                        add(&c.name);
                    }
                }
                let prefix = format!("{split}/{p}/AP/");
                for k in run.final_metrics().keys() {
                    if let Some(c) = k.strip_prefix(&prefix) {
                        add(c);
                    }
                }
            }
        }
        names
    }

    fn per_class(&mut self, split: &str) -> Result<()> {
        self.push("<h3>AP by class and the small-class group</h3>\n");
        let classes = self.class_names(split);
        let small = self
            .runs
            .iter()
            .map(|r| r.small_classes())
            .find(|s| !s.is_empty())
            .unwrap_or_default();
        if classes.is_empty() {
            self.push("<p class=\"note\">No per-class numbers.</p>\n");
            return Ok(());
        }
        let mut figs = String::new();
        for p in PROTOCOLS {
            let mut categories = classes.clone();
            categories.push("small classes".into());
            let series =
                self.runs
                    .iter()
                    .enumerate()
                    .map(|(i, run)| {
                        let finals = run.final_metrics();
                        let a = Self::analysis(run, split, p);
                        let mut values: Vec<Option<f64>> = classes
                            .iter()
                            .map(|c| {
                                defined(finals.get(&format!("{split}/{p}/AP/{c}")).copied())
                                    .or_else(|| {
                                        defined(a.and_then(|a| {
                                            a.per_class.iter().find(|s| &s.name == c).map(|s| s.ap)
                                        }))
                                    })
                            })
                            .collect();
                        values.push(
                            defined(
                                finals
                                    .get(&format!("{split}/{p}/AP_small_classes"))
                                    .copied(),
                            )
                            .or_else(|| defined(a?.small_classes.as_ref().map(|g| g.ap))),
                        );
                        (run.name.clone(), palette(i), values)
                    })
                    .collect();
            let width = (110 + 86 * categories.len() as u32).max(640);
            let chart = BarChart {
                title: format!("AP by class — {split}/{p}"),
                x_label: "class (last: the small-class group)".into(),
                y_label: "AP @[.50:.95]".into(),
                categories,
                category_notes: Vec::new(),
                series,
                y_max: None,
                group_last: true,
                width,
                height: 360,
            };
            let caption = if small.is_empty() {
                "“–”: no ground truth of the class (AP undefined).".to_string()
            } else {
                format!(
                    "small classes = {} (dataset.small_classes). “–”: no ground truth of the class (AP undefined).",
                    small.join(", ")
                )
            };
            figs.push_str(&self.bars(&format!("classes {split} {p}"), &chart, &caption)?);
        }
        self.push(&format!("<div class=\"figs\">{figs}</div>\n"));
        // The small-class group's numbers.
        let mut groups = vec![(String::new(), 2)];
        let headers: Vec<Cell> = ["run", "protocol", "AP", "AP50", "AP75", "AP_S", "AR100"]
            .iter()
            .map(|h| Cell::text(h))
            .collect();
        groups.push(("small-class group".to_string(), 5));
        let mut rows = Vec::new();
        for run in self.runs {
            let finals = run.final_metrics();
            for p in PROTOCOLS {
                let g = Self::analysis(run, split, p).and_then(|a| a.small_classes.as_ref());
                let ap = defined(
                    finals
                        .get(&format!("{split}/{p}/AP_small_classes"))
                        .copied(),
                )
                .or_else(|| defined(g.map(|g| g.ap)));
                rows.push(vec![
                    Cell::text(&run.name),
                    Cell::text(p),
                    Cell::num(num(ap)),
                    Cell::num(num(g.map(|g| g.ap50))),
                    Cell::num(num(g.map(|g| g.ap75))),
                    Cell::num(num(g.map(|g| g.ap_s))),
                    Cell::num(num(g.map(|g| g.ar100))),
                ]);
            }
        }
        self.push(&table_with_groups(&groups, &headers, &rows));
        // Per-class details from the analyses.
        for run in self.runs {
            for p in PROTOCOLS {
                let Some(a) = Self::analysis(run, split, p) else {
                    continue;
                };
                let headers: Vec<Cell> = [
                    "class", "AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "AR100", "AR_S", "AR_M",
                    "AR_L",
                ]
                .iter()
                .map(|h| Cell::text(h))
                .collect();
                let rows: Vec<Vec<Cell>> = a
                    .per_class
                    .iter()
                    .map(|c| {
                        let mark = if small.contains(&c.name) {
                            " <span class=\"note\">(small)</span>"
                        } else {
                            ""
                        };
                        vec![
                            Cell::raw(format!("{}{mark}", escape(&c.name))),
                            Cell::num(fmt_value(c.ap)),
                            Cell::num(fmt_value(c.ap50)),
                            Cell::num(fmt_value(c.ap75)),
                            Cell::num(fmt_value(c.ap_s)),
                            Cell::num(fmt_value(c.ap_m)),
                            Cell::num(fmt_value(c.ap_l)),
                            Cell::num(fmt_value(c.ar100)),
                            Cell::num(fmt_value(c.ar_s)),
                            Cell::num(fmt_value(c.ar_m)),
                            Cell::num(fmt_value(c.ar_l)),
                        ]
                    })
                    .collect();
                self.push(&format!(
                    "<details><summary>Per-class numbers — {} — {split}/{p}</summary>{}</details>\n",
                    escape(&run.name),
                    table(&headers, &rows)
                ));
            }
        }
        Ok(())
    }

    fn pr_curves(&mut self, split: &str) -> Result<()> {
        self.push("<h3>Precision–recall curves at IoU 0.5</h3>\n");
        let mut figs = String::new();
        let classes = self.class_names(split);
        for run in self.runs {
            for p in PROTOCOLS {
                let Some(a) = Self::analysis(run, split, p) else {
                    continue;
                };
                let mut chart = LineChart::new(
                    &format!(
                        "PR curves @IoU 0.5 — {}{split}/{p}",
                        if self.multi() {
                            format!("{} — ", run.name)
                        } else {
                            String::new()
                        }
                    ),
                    "recall",
                    "precision",
                );
                chart.x_range = Some((0.0, 1.0));
                chart.y_range = Some((0.0, 1.05));
                for curve in a
                    .pr_curves
                    .iter()
                    .filter(|c| (c.iou_thr - 0.5).abs() < 1e-6)
                {
                    // COCO curves drop to 0 past the class's maximum recall: stop there.
                    let last = curve.precision.iter().rposition(|&v| v > 0.0);
                    let points: Vec<(f64, f64)> = match last {
                        Some(last) => curve
                            .recall
                            .iter()
                            .zip(&curve.precision)
                            .take(last + 1)
                            .map(|(r, p)| (*r, *p))
                            .collect(),
                        None => Vec::new(),
                    };
                    let ap50 = a
                        .per_class
                        .iter()
                        .find(|c| c.name == curve.class)
                        .map(|c| format!(" (AP50 {})", fmt_value(c.ap50)))
                        .unwrap_or_default();
                    let idx = classes.iter().position(|c| c == &curve.class).unwrap_or(0);
                    chart.series.push(Series {
                        name: format!("{}{ap50}", curve.class),
                        points,
                        color: palette(idx),
                    });
                }
                if chart.series.is_empty() {
                    continue;
                }
                figs.push_str(&self.line(
                    &format!("pr {} {split} {p}", run.name),
                    &chart,
                    "COCO's interpolated precision at the 101 recall thresholds; each curve ends at the class's highest recall.",
                )?);
            }
        }
        self.push_figs_or_note(
            &figs,
            &format!(
                "No PR curves: <code>eval/{}_analysis.json</code> is missing.",
                escape(split)
            ),
        );
        Ok(())
    }

    /// The figures in a row, or a note saying why there are none.
    fn push_figs_or_note(&mut self, figs: &str, note: &str) {
        if figs.is_empty() {
            self.push(&format!("<p class=\"note\">{note}</p>\n"));
        } else {
            self.push(&format!("<div class=\"figs\">{figs}</div>\n"));
        }
    }

    fn confusions(&mut self, split: &str) -> Result<()> {
        self.push("<h3>Confusion matrices at IoU 0.5</h3>\n");
        let mut figs = String::new();
        for run in self.runs {
            for p in PROTOCOLS {
                let Some(c) = Self::analysis(run, split, p).and_then(|a| a.confusion.as_ref())
                else {
                    continue;
                };
                if c.labels.is_empty() || c.matrix.len() != c.labels.len() {
                    continue;
                }
                let title = format!(
                    "Confusion @IoU {} — {}{split}/{p}",
                    c.iou_thr,
                    if self.multi() {
                        format!("{} — ", run.name)
                    } else {
                        String::new()
                    }
                );
                let svg = confusion_svg(&title, &c.labels, &c.matrix);
                let width = svg_width(&svg);
                figs.push_str(&self.chart(
                    &format!("confusion {} {split} {p}", run.name),
                    &svg,
                    width,
                    "Rows: ground truth, columns: predictions; background row = unmatched detections, background column = missed ground truth.",
                )?);
            }
        }
        self.push_figs_or_note(
            &figs,
            &format!(
                "No confusion matrix: <code>eval/{}_analysis.json</code> is missing or has none.",
                escape(split)
            ),
        );
        Ok(())
    }

    fn samples(&mut self) {
        self.push("<h2>Sample detections</h2>\n");
        let mut any = false;
        for run in self.runs {
            for (split, e) in &run.eval {
                if e.samples.is_empty() {
                    continue;
                }
                let mut figs = String::new();
                let mut missing = Vec::new();
                for s in e.samples.iter().take(12) {
                    let path = e.samples_dir.join(&s.file);
                    match std::fs::read(&path) {
                        Ok(bytes) => {
                            let width = png_width(&bytes).unwrap_or(640);
                            let caption = format!(
                                "{} · t = {:.3} s · {} ground truth, {} detections",
                                if s.sequence.is_empty() {
                                    &s.file
                                } else {
                                    &s.sequence
                                },
                                s.t_us as f64 / 1e6,
                                s.num_gt,
                                s.num_dt
                            );
                            figs.push_str(&figure(&bytes, width.min(1300), &s.file, &caption));
                        }
                        Err(_) => missing.push(s.file.clone()),
                    }
                }
                any = true;
                self.push(&format!(
                    "<h3>{} — {}</h3>\n<p class=\"note\">Left: predictions with scores; right: ground truth.</p>\n<div class=\"figs samples\">{figs}</div>\n",
                    escape(&run.name),
                    escape(split)
                ));
                if !missing.is_empty() {
                    self.push(&format!(
                        "<p class=\"note\">Sample pictures missing: {}</p>\n",
                        escape(&missing.join(", "))
                    ));
                }
            }
        }
        if !any {
            self.push("<p class=\"note\">No sample pictures (<code>eval/samples/&lt;split&gt;_samples.json</code>).</p>\n");
        }
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

/// Y range for fractions: 0 to a bit above the largest value (at most 1.05).
fn unit_range(series: &[Series]) -> (f64, f64) {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    (0.0, (max * 1.15).clamp(0.05, 1.05))
}

/// X range from step 0 to a little past the last step (validation points sit at the end).
fn step_range(series: &[Series]) -> Option<(f64, f64)> {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    (max > 0.0).then_some((0.0, max * 1.03))
}

/// Lower edge of a `<lo>-<hi>` bin label, for ordering.
fn bin_lo(label: &str) -> f64 {
    label
        .split('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::INFINITY)
}

/// The `width` attribute of an SVG document's root element.
fn svg_width(svg: &str) -> u32 {
    svg.split_once("width=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .and_then(|(w, _)| w.parse::<f64>().ok())
        .map(|w| w.round() as u32)
        .unwrap_or(640)
}

/// Width of a PNG from its header.
fn png_width(bytes: &[u8]) -> Option<u32> {
    if bytes.len() < 24 || &bytes[1..4] != b"PNG" {
        return None;
    }
    Some(u32::from_be_bytes([
        bytes[16], bytes[17], bytes[18], bytes[19],
    ]))
}
