//! Curves over training steps: the loss and its parts, learning rate, gradient norm, foreground
//! count and step time, and validation AP over steps for both protocols.

use super::Report;
use crate::error::Result;
use crate::plots::{palette, LineChart, Series};
use crate::run::PROTOCOLS;

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

impl Report<'_> {
    pub(super) fn training_curves(&mut self) -> Result<()> {
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

    /// Where SimOTA put the positives (`model.head.assignment`, `obj_loss_norm`): positives per
    /// ground truth and the share without one, by size bin, the smallest bins by FPN level, and the
    /// objectness-to-IoU loss ratio. Absent for logs written before these diagnostics existed.
    pub(super) fn assignment_curves(&mut self) -> Result<()> {
        const BINS: [&str; 4] = ["0-16", "16-32", "32-96", "96-inf"];
        const STRIDES: [u32; 4] = [4, 8, 16, 32];
        let has = |key: &str| self.runs.iter().any(|r| !r.series(key).is_empty());
        if !BINS.iter().any(|b| has(&format!("train/pos_per_gt/{b}"))) {
            return Ok(());
        }
        self.push("<h2>Assignment: where the positives go</h2>\n");
        let mut figs = String::new();
        if self.multi() {
            for key in [
                "train/pos_per_gt/0-16",
                "train/pos_per_gt/16-32",
                "train/gt_without_pos/0-16",
                "train/loss_obj_over_iou",
            ] {
                if has(key) {
                    let chart = self.runs_chart(key, key, false);
                    figs.push_str(&self.line(&format!("assignment {key}"), &chart, "")?);
                }
            }
        } else {
            let run = &self.runs[0];
            let by_bin = |title: &str, prefix: &str, y: &str| {
                let mut chart = LineChart::new(title, "step", y);
                for (i, b) in BINS.iter().enumerate() {
                    let points = run.series(&format!("{prefix}/{b}"));
                    if !points.is_empty() {
                        chart.series.push(Series {
                            name: format!("side {b} px"),
                            points,
                            color: palette(i),
                        });
                    }
                }
                chart
            };
            let chart = by_bin(
                "Positives per ground truth, by size",
                "train/pos_per_gt",
                "positives / gt",
            );
            figs.push_str(&self.line(
                "assignment positives per gt",
                &chart,
                "SimOTA's positives per ground truth; side = √(w·h) in network-input pixels.",
            )?);
            let mut chart = by_bin(
                "Ground truths without a positive",
                "train/gt_without_pos",
                "share",
            );
            chart.y_range = Some(unit_range(&chart.series));
            figs.push_str(&self.line("assignment gts without positive", &chart, "")?);
            for b in ["0-16", "16-32"] {
                let mut chart = LineChart::new(
                    &format!("Positives per gt of side {b} px, by level"),
                    "step",
                    "positives / gt",
                );
                for (i, s) in STRIDES.iter().enumerate() {
                    let points = run.series(&format!("train/pos_per_gt/{b}/stride{s}"));
                    if !points.is_empty() {
                        chart.series.push(Series {
                            name: format!("stride {s}"),
                            points,
                            color: palette(i),
                        });
                    }
                }
                if !chart.series.is_empty() {
                    figs.push_str(&self.line(
                        &format!("assignment {b} by level"),
                        &chart,
                        "Does the finest level get positives for the objects it is there for?",
                    )?);
                }
            }
            if has("train/loss_obj_over_iou") {
                let chart = self.runs_chart("train/loss_obj_over_iou", "conf / iou loss", false);
                figs.push_str(&self.line(
                    "assignment obj over iou",
                    &chart,
                    "train/conf_loss ÷ train/iou_loss (the latter with its ×5 weight).",
                )?);
            }
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

    pub(super) fn validation_curves(&mut self) -> Result<()> {
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
}

/// Y range for fractions: 0 to a bit above the largest value (at most 1.05).
fn unit_range(series: &[Series]) -> (f64, f64) {
    let max = max_finite(series, |p| p.1);
    (0.0, (max * 1.15).clamp(0.05, 1.05))
}

/// X range from step 0 to a little past the last step (validation points sit at the end).
fn step_range(series: &[Series]) -> Option<(f64, f64)> {
    let max = max_finite(series, |p| p.0);
    (max > 0.0).then_some((0.0, max * 1.03))
}

/// The largest finite `coord` of any point of `series`, and at least 0.
fn max_finite(series: &[Series], coord: fn(&(f64, f64)) -> f64) -> f64 {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(coord))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
}
