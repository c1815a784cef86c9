//! The small-object section: its heading and frame size, AP by size bin, AP by class with the
//! small-class group, and per-class numbers from the evaluation's analysis; the section's PR
//! curves and confusion matrices are in `pr_confusion`.

use std::collections::{BTreeMap, BTreeSet};

use evdet_eval::analysis::SmallObjectAnalysis;

use super::{defined, num, Report};
use crate::error::Result;
use crate::html::{escape, table, table_with_groups, Cell};
use crate::plots::{fmt_value, palette, BarChart};
use crate::run::{Run, PROTOCOLS};

impl Report<'_> {
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

    pub(super) fn analysis<'r>(
        run: &'r Run,
        split: &str,
        p: &str,
    ) -> Option<&'r SmallObjectAnalysis> {
        run.eval.get(split)?.analysis.as_ref()?.protocol(p)
    }

    /// One bar series per run, in run colours: `values` gets the run's final metrics and its analysis
    /// of `split` under protocol `p`.
    fn series_per_run(
        &self,
        split: &str,
        p: &str,
        values: impl Fn(&BTreeMap<String, f64>, Option<&SmallObjectAnalysis>) -> Vec<Option<f64>>,
    ) -> Vec<(String, [u8; 3], Vec<Option<f64>>)> {
        self.runs
            .iter()
            .enumerate()
            .map(|(i, run)| {
                let finals = run.final_metrics();
                let v = values(&finals, Self::analysis(run, split, p));
                (run.name.clone(), palette(i), v)
            })
            .collect()
    }

    pub(super) fn small_objects(&mut self) -> Result<()> {
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
            let series = self.series_per_run(split, p, |finals, a| {
                bins.iter()
                    .map(|label| {
                        defined(finals.get(&format!("{prefix}{label}")).copied()).or_else(|| {
                            defined(
                                a?.size_bins
                                    .iter()
                                    .find(|b| &b.label == label)
                                    .map(|b| b.ap),
                            )
                        })
                    })
                    .collect()
            });
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
        self.push_figs_or_note(
            &figs,
            "No size-bin numbers (<code>AP_bin/…</code>) for this split.",
        );
        Ok(())
    }

    /// Class names in config order, completed from analyses and metric keys.
    pub(super) fn class_names(&self, split: &str) -> Vec<String> {
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
            let series = self.series_per_run(split, p, |finals, a| {
                let mut values: Vec<Option<f64>> = classes
                    .iter()
                    .map(|c| {
                        defined(finals.get(&format!("{split}/{p}/AP/{c}")).copied()).or_else(|| {
                            defined(a.and_then(|a| {
                                a.per_class.iter().find(|s| &s.name == c).map(|s| s.ap)
                            }))
                        })
                    })
                    .collect();
                values.push(small_classes_ap(finals, split, p, a));
                values
            });
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
                let a = Self::analysis(run, split, p);
                let g = a.and_then(|a| a.small_classes.as_ref());
                let ap = small_classes_ap(&finals, split, p, a);
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
}

/// Lower edge of a `<lo>-<hi>` bin label, for ordering.
fn bin_lo(label: &str) -> f64 {
    label
        .split('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::INFINITY)
}

/// The small-class group's AP: from the final metrics, else from the analysis.
fn small_classes_ap(
    finals: &BTreeMap<String, f64>,
    split: &str,
    p: &str,
    a: Option<&SmallObjectAnalysis>,
) -> Option<f64> {
    defined(
        finals
            .get(&format!("{split}/{p}/AP_small_classes"))
            .copied(),
    )
    .or_else(|| defined(a?.small_classes.as_ref().map(|g| g.ap)))
}
