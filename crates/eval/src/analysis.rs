//! Small-object analysis on top of a COCO evaluation: AP/AR per area range and class, the
//! "small classes" group, fine size bins, a confusion matrix at IoU 0.5 and per-class
//! precision–recall curves.
//!
//! Sizes are areas in the pixels of the frame the boxes are given in; for eTraM that is the
//! 640×360 network input (DESIGN.md "Sizes are measured where the network sees them").

use std::sync::Arc;

use hotcoco::params::IouType;
use hotcoco::{COCOeval, COCO};
use serde::{Deserialize, Serialize};

use crate::coco::{ClassSummary, CocoEval, CocoOptions, AREA_MAX, UNDEFINED};
use crate::error::{EvalError, Result};

/// Default fine size bins as side lengths: `<8², 8²–16², 16²–32², 32²–96², >96²`.
pub const DEFAULT_SIZE_EDGES: [f64; 4] = [8.0, 16.0, 32.0, 96.0];

/// IoU threshold of the confusion matrix and the PR curves.
pub const ANALYSIS_IOU: f64 = 0.5;

/// What the analysis needs beyond the evaluation itself.
#[derive(Debug, Clone)]
pub struct AnalysisConfig {
    /// Names of the classes that form the "small classes" group (from the dataset config; never
    /// hard-coded). Empty: no group.
    pub small_classes: Vec<String>,
    /// Interior edges of the fine size bins, as box side lengths (area = edge²), ascending.
    pub size_edges: Vec<f64>,
    /// Compute the size bins and the confusion matrix, which each cost one more pass over the
    /// boxes (a training loop validating often may turn them off).
    pub detailed: bool,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            small_classes: Vec::new(),
            size_edges: DEFAULT_SIZE_EDGES.to_vec(),
            detailed: true,
        }
    }
}

/// One fine size bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeBin {
    /// `<lo>-<hi>` in side-length pixels, e.g. `8-16`, `96-inf` (the `AP_bin/<lo>-<hi>` key).
    pub label: String,
    /// Area range `[lo², hi²]`, inclusive at both ends like COCO's ranges.
    pub area: [f64; 2],
    /// Non-crowd ground-truth boxes whose area lies in the range.
    pub num_gt: usize,
    /// AP @[.50:.95] over all classes, maxDets 100.
    pub ap: f64,
    pub ap50: f64,
    /// AR @[.50:.95], maxDets 100.
    pub ar: f64,
    /// Recall at IoU 0.5, maxDets 100 (mean over classes with ground truth in the bin).
    pub recall50: f64,
}

/// AP/AR of a group of classes, pooled as COCOeval pools categories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub classes: Vec<String>,
    pub ap: f64,
    pub ap50: f64,
    pub ap75: f64,
    pub ap_s: f64,
    pub ar100: f64,
}

/// Confusion matrix at one IoU: rows are ground-truth classes, columns predicted classes; the
/// last row and column are "background" (unmatched detections in the background row, missed
/// ground truth in the background column).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub iou_thr: f64,
    /// Class names of rows/columns, `background` last.
    pub labels: Vec<String>,
    pub matrix: Vec<Vec<u64>>,
}

/// COCO's interpolated precision–recall curve of one class at one IoU (all areas, maxDets 100).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrCurve {
    pub class: String,
    pub iou_thr: f64,
    /// The 101 recall thresholds; points past the class's maximum recall have precision 0.
    pub recall: Vec<f64>,
    pub precision: Vec<f64>,
    /// Score of the detection where each recall threshold is reached.
    pub score: Vec<f64>,
}

/// Everything the small-object work looks at, for one protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmallObjectAnalysis {
    /// AP/AR per class and COCO area range (small/medium/large).
    pub per_class: Vec<ClassSummary>,
    pub small_classes: Option<GroupSummary>,
    /// Empty unless [`AnalysisConfig::detailed`].
    pub size_bins: Vec<SizeBin>,
    /// `None` unless [`AnalysisConfig::detailed`].
    pub confusion: Option<Confusion>,
    /// Classes without ground truth have no curve.
    pub pr_curves: Vec<PrCurve>,
}

impl SmallObjectAnalysis {
    /// The size-bin table: GT count, AP, AP50, AR, recall at IoU 0.5 per bin, `-` where undefined.
    pub fn size_bin_lines(&self) -> Vec<String> {
        let cell = |v: f64| {
            if v < 0.0 {
                format!("{:>7}", "-")
            } else {
                format!("{v:>7.3}")
            }
        };
        let mut lines =
            vec!["size bin (side px)   GT      AP    AP50      AR  recall50".to_string()];
        for b in &self.size_bins {
            lines.push(format!(
                "{:<16} {:>6} {} {} {} {}",
                b.label,
                b.num_gt,
                cell(b.ap),
                cell(b.ap50),
                cell(b.ar),
                cell(b.recall50)
            ));
        }
        lines
    }
}

/// Bin labels and area ranges from interior side-length edges.
pub fn size_bins_from_edges(edges: &[f64]) -> Result<Vec<(String, [f64; 2])>> {
    if edges.windows(2).any(|w| w[0] >= w[1]) || edges.iter().any(|e| !e.is_finite() || *e <= 0.0) {
        return Err(EvalError::InvalidInput(format!(
            "size bin edges must be positive and ascending, got {edges:?}"
        )));
    }
    let fmt = |v: f64| {
        if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v}")
        }
    };
    let mut lo = 0.0;
    let mut out = Vec::with_capacity(edges.len() + 1);
    for &e in edges.iter().chain(std::iter::once(&f64::INFINITY)) {
        let label = format!(
            "{}-{}",
            fmt(lo),
            if e.is_infinite() {
                "inf".to_string()
            } else {
                fmt(e)
            }
        );
        let hi_area = if e.is_infinite() { AREA_MAX } else { e * e };
        out.push((label, [lo * lo, hi_area]));
        lo = e;
    }
    Ok(out)
}

/// Runs the analysis for the evaluation `class_aware` of `gt`/`dt` (the class-aware one).
pub fn analyse(
    gt: &Arc<COCO>,
    dt: &Arc<COCO>,
    class_aware: &CocoEval,
    config: &AnalysisConfig,
) -> Result<SmallObjectAnalysis> {
    let per_class = class_aware.per_class();

    let small_classes = if config.small_classes.is_empty() {
        None
    } else {
        let mut ks = Vec::new();
        for name in &config.small_classes {
            let k = class_aware
                .cat_names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| {
                    EvalError::InvalidInput(format!(
                        "small class `{name}` is not one of the evaluated classes {:?}",
                        class_aware.cat_names
                    ))
                })?;
            ks.push(k);
        }
        ks.sort_unstable();
        ks.dedup();
        let st = |s| class_aware.stat_over(s, &ks);
        Some(GroupSummary {
            classes: config.small_classes.clone(),
            ap: st("AP"),
            ap50: st("AP50"),
            ap75: st("AP75"),
            ap_s: st("AP_S"),
            ar100: st("AR100"),
        })
    };

    let (size_bins, confusion) = if config.detailed {
        let ranges = size_bins_from_edges(&config.size_edges)?;
        (size_bins(gt, dt, &ranges)?, Some(confusion(gt, dt)))
    } else {
        (Vec::new(), None)
    };

    let mut pr_curves = Vec::new();
    if let (Some(t), Some(a), Some(m)) = (
        class_aware.iou_index(ANALYSIS_IOU),
        class_aware.area_index("all"),
        class_aware.max_det_index(100),
    ) {
        for k in 0..class_aware.shape.k {
            let precision: Vec<f64> = (0..class_aware.shape.r)
                .map(|r| class_aware.precision_at(t, r, k, a, m))
                .collect();
            if precision.iter().all(|&p| p == UNDEFINED) {
                continue;
            }
            pr_curves.push(PrCurve {
                class: class_aware.cat_names[k].clone(),
                iou_thr: ANALYSIS_IOU,
                recall: class_aware.rec_thrs.clone(),
                precision,
                score: (0..class_aware.shape.r)
                    .map(|r| class_aware.score_at(t, r, k, a, m))
                    .collect(),
            });
        }
    }

    Ok(SmallObjectAnalysis {
        per_class,
        small_classes,
        size_bins,
        confusion,
        pr_curves,
    })
}

fn size_bins(
    gt: &Arc<COCO>,
    dt: &Arc<COCO>,
    ranges: &[(String, [f64; 2])],
) -> Result<Vec<SizeBin>> {
    let count = |r: [f64; 2]| {
        gt.dataset
            .annotations
            .iter()
            .filter(|a| !a.iscrowd && a.area.is_some_and(|x| x >= r[0] && x <= r[1]))
            .count()
    };
    let mut area_ranges = vec![("all".to_string(), [0.0, AREA_MAX])];
    area_ranges.extend(ranges.iter().cloned());
    let ev = CocoEval::run(
        gt,
        dt,
        &CocoOptions {
            area_ranges,
            ..Default::default()
        },
    )?;
    let ks = ev.all_k();
    let m = ev.max_det_index(100).unwrap_or(ev.shape.m - 1);
    Ok(ranges
        .iter()
        .enumerate()
        .map(|(i, (label, r))| {
            let a = i + 1;
            SizeBin {
                label: label.clone(),
                area: *r,
                num_gt: count(*r),
                ap: ev.mean_precision(None, &ks, a, m),
                ap50: ev.mean_precision(Some(0.5), &ks, a, m),
                ar: ev.mean_recall(None, &ks, a, m),
                recall50: ev.mean_recall(Some(0.5), &ks, a, m),
            }
        })
        .collect())
}

fn confusion(gt: &Arc<COCO>, dt: &Arc<COCO>) -> Confusion {
    let ev = COCOeval::new(Arc::clone(gt), Arc::clone(dt), IouType::Bbox);
    let cm = ev.confusion_matrix(ANALYSIS_IOU, Some(100), None);
    let n = cm.num_cats + 1;
    let mut labels = cm.cat_names.clone();
    labels.push("background".into());
    let matrix = (0..n)
        .map(|r| (0..n).map(|c| cm.get(r, c)).collect())
        .collect();
    Confusion {
        iou_thr: ANALYSIS_IOU,
        labels,
        matrix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_bins_are_labelled_by_side() {
        let bins = size_bins_from_edges(&DEFAULT_SIZE_EDGES).unwrap();
        let labels: Vec<&str> = bins.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["0-8", "8-16", "16-32", "32-96", "96-inf"]);
        assert_eq!(bins[1].1, [64.0, 256.0]);
        assert_eq!(bins[4].1, [9216.0, AREA_MAX]);
        assert!(size_bins_from_edges(&[16.0, 8.0]).is_err());
    }
}
