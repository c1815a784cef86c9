//! The end of the small-object section: precision–recall curves and confusion matrices at
//! IoU 0.5, per run and protocol, from the evaluation's analysis.

use super::Report;
use crate::error::Result;
use crate::html::escape;
use crate::plots::{confusion_svg, fmt_value, palette, LineChart, Series};
use crate::run::{Run, PROTOCOLS};

impl Report<'_> {
    /// `<run> — ` before a chart title when the report has several runs, else nothing.
    fn run_prefix(&self, run: &Run) -> String {
        if self.multi() {
            format!("{} — ", run.name)
        } else {
            String::new()
        }
    }

    pub(super) fn pr_curves(&mut self, split: &str) -> Result<()> {
        self.push("<h3>Precision–recall curves at IoU 0.5</h3>\n");
        let mut figs = String::new();
        let classes = self.class_names(split);
        for run in self.runs {
            for p in PROTOCOLS {
                let Some(a) = Self::analysis(run, split, p) else {
                    continue;
                };
                let mut chart = LineChart::new(
                    &format!("PR curves @IoU 0.5 — {}{split}/{p}", self.run_prefix(run)),
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

    pub(super) fn confusions(&mut self, split: &str) -> Result<()> {
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
                    self.run_prefix(run)
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
}

/// The `width` attribute of an SVG document's root element.
fn svg_width(svg: &str) -> u32 {
    svg.split_once("width=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .and_then(|(w, _)| w.parse::<f64>().ok())
        .map(|w| w.round() as u32)
        .unwrap_or(640)
}
