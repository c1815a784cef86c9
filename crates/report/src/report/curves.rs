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
