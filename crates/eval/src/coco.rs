//! pycocotools-identical COCO bbox evaluation (`COCOeval`, iouType `bbox`, default parameters).
//!
//! The matching and accumulation (`evaluate` + `accumulate`) are the `hotcoco` crate's, which
//! reproduces pycocotools 2.0.11 bit for bit on every `fixtures/coco_eval` case (stats, the
//! `precision [T,R,K,A,M]` and `recall [T,K,A,M]` arrays, per-category AP; checked by
//! `tests/coco_fixtures.rs`). Everything read off the arrays — the 12 summary stats, per-class
//! numbers, means over class groups or custom area ranges — is computed here, with numpy's
//! pairwise summation so every mean is `np.mean`'s to the last bit.

use std::ops::Range;
use std::sync::Arc;

use hotcoco::params::{AreaRange, IouType};
use hotcoco::{COCOeval, COCO};

use crate::error::{EvalError, Result};

/// Names of the 12 summary stats in `COCOeval.summarize()` order (DESIGN.md "Metric names").
pub const STAT_NAMES: [&str; 12] = [
    "AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "AR1", "AR10", "AR100", "AR_S", "AR_M", "AR_L",
];

/// pycocotools' "no upper bound" for area ranges (`1e5 ** 2`).
pub const AREA_MAX: f64 = 1e10;

/// The sentinel pycocotools uses for "undefined" (a class or area range without ground truth).
pub const UNDEFINED: f64 = -1.0;

/// pycocotools' default area ranges: all, small < 32², medium 32²–96², large > 96².
pub fn default_area_ranges() -> Vec<(String, [f64; 2])> {
    vec![
        ("all".into(), [0.0, AREA_MAX]),
        ("small".into(), [0.0, 32.0 * 32.0]),
        ("medium".into(), [32.0 * 32.0, 96.0 * 96.0]),
        ("large".into(), [96.0 * 96.0, AREA_MAX]),
    ]
}

/// What a summary stat reads: AP (else AR), the IoU threshold (`None`: the mean over .50:.95), the
/// area range and maxDets, as `COCOeval.summarize()` defines the 12.
pub fn stat_spec(stat: &str) -> Option<(bool, Option<f64>, &'static str, usize)> {
    Some(match stat {
        "AP" => (true, None, "all", 100),
        "AP50" => (true, Some(0.5), "all", 100),
        "AP75" => (true, Some(0.75), "all", 100),
        "AP_S" => (true, None, "small", 100),
        "AP_M" => (true, None, "medium", 100),
        "AP_L" => (true, None, "large", 100),
        "AR1" => (false, None, "all", 1),
        "AR10" => (false, None, "all", 10),
        "AR100" => (false, None, "all", 100),
        "AR_S" => (false, None, "small", 100),
        "AR_M" => (false, None, "medium", 100),
        "AR_L" => (false, None, "large", 100),
        _ => return None,
    })
}

/// What to evaluate: every parameter not listed is pycocotools' default.
#[derive(Debug, Clone)]
pub struct CocoOptions {
    /// `params.useCats`: false pools every category into one (class-agnostic matching).
    pub use_cats: bool,
    /// `params.catIds`; `None` = every category of the ground truth.
    pub cat_ids: Option<Vec<u64>>,
    /// `params.imgIds`; `None` = every image of the ground truth.
    pub img_ids: Option<Vec<u64>>,
    /// `params.areaRng` with `params.areaRngLbl`, inclusive at both ends as in pycocotools.
    pub area_ranges: Vec<(String, [f64; 2])>,
}

impl Default for CocoOptions {
    fn default() -> Self {
        CocoOptions {
            use_cats: true,
            cat_ids: None,
            img_ids: None,
            area_ranges: default_area_ranges(),
        }
    }
}

/// Axis lengths of the accumulated arrays: precision is `[t, r, k, a, m]`, recall `[t, k, a, m]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub t: usize,
    pub r: usize,
    pub k: usize,
    pub a: usize,
    pub m: usize,
}

/// The accumulated result of one COCO evaluation (`COCOeval.eval` plus the parameters that
/// give its axes meaning).
#[derive(Debug, Clone)]
pub struct CocoEval {
    pub use_cats: bool,
    pub iou_thrs: Vec<f64>,
    pub rec_thrs: Vec<f64>,
    pub max_dets: Vec<usize>,
    pub area_ranges: Vec<(String, [f64; 2])>,
    /// Category id of each K slot (empty when `use_cats` is false: one pooled slot).
    pub cat_ids: Vec<u64>,
    /// Category name of each K slot.
    pub cat_names: Vec<String>,
    pub shape: Shape,
    /// `precision [T, R, K, A, M]`, C order, `-1` where undefined.
    pub precision: Vec<f64>,
    /// `recall [T, K, A, M]`, C order, `-1` where undefined.
    pub recall: Vec<f64>,
    /// Detection score at each precision entry (`COCOeval.eval['scores']`).
    pub scores: Vec<f64>,
}

/// Per-category numbers at maxDets 100, the way pycocotools' summary reads them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassSummary {
    pub cat_id: u64,
    pub name: String,
    /// AP @[.50:.95], all areas.
    pub ap: f64,
    pub ap50: f64,
    pub ap75: f64,
    pub ap_s: f64,
    pub ap_m: f64,
    pub ap_l: f64,
    /// AR @[.50:.95] maxDets 100, all areas.
    pub ar100: f64,
    pub ar_s: f64,
    pub ar_m: f64,
    pub ar_l: f64,
}

impl CocoEval {
    /// Runs `COCOeval(gt, dt, 'bbox')` with `opts`, then `evaluate()` and `accumulate()`.
    pub fn run(gt: &Arc<COCO>, dt: &Arc<COCO>, opts: &CocoOptions) -> Result<Self> {
        let ev = Self::evaluated(gt, dt, opts)?;
        Self::from_evaluated(&ev, gt)
    }

    /// hotcoco's evaluator for `opts`, after `evaluate()` and `accumulate()`.
    pub(crate) fn evaluated(
        gt: &Arc<COCO>,
        dt: &Arc<COCO>,
        opts: &CocoOptions,
    ) -> Result<COCOeval> {
        let mut ev = COCOeval::new(Arc::clone(gt), Arc::clone(dt), IouType::Bbox);
        ev.params.use_cats = opts.use_cats;
        if let Some(ids) = &opts.cat_ids {
            ev.params.cat_ids = ids.clone();
        }
        if let Some(ids) = &opts.img_ids {
            ev.params.img_ids = ids.clone();
        }
        ev.params.area_ranges = opts
            .area_ranges
            .iter()
            .map(|(label, range)| AreaRange {
                label: label.clone(),
                range: *range,
            })
            .collect();
        ev.evaluate()?;
        ev.accumulate();
        Ok(ev)
    }

    pub(crate) fn from_evaluated(ev: &COCOeval, gt: &COCO) -> Result<Self> {
        let p = &ev.params;
        let acc = ev.accumulated().ok_or_else(|| {
            EvalError::InvalidInput("COCO evaluation produced no accumulated result".into())
        })?;
        let s = acc.shape;
        let cat_ids = acc.cat_ids.clone();
        let cat_names = if cat_ids.is_empty() {
            vec!["all".to_string()]
        } else {
            cat_ids
                .iter()
                .map(|&id| {
                    gt.get_cat(id)
                        .map(|c| c.name.clone())
                        .unwrap_or_else(|| id.to_string())
                })
                .collect()
        };
        Ok(CocoEval {
            use_cats: p.use_cats,
            iou_thrs: p.iou_thrs.clone(),
            rec_thrs: p.rec_thrs.clone(),
            max_dets: p.max_dets.clone(),
            area_ranges: p
                .area_ranges
                .iter()
                .map(|a| (a.label.clone(), a.range))
                .collect(),
            cat_ids,
            cat_names,
            shape: Shape {
                t: s.t,
                r: s.r,
                k: s.k,
                a: s.a,
                m: s.m,
            },
            precision: acc.precision.clone(),
            recall: acc.recall.clone(),
            scores: acc.scores.clone(),
        })
    }

    /// `precision[t, r, k, a, m]`.
    pub fn precision_at(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        let s = self.shape;
        self.precision[(((t * s.r + r) * s.k + k) * s.a + a) * s.m + m]
    }

    /// `scores[t, r, k, a, m]`.
    pub fn score_at(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        let s = self.shape;
        self.scores[(((t * s.r + r) * s.k + k) * s.a + a) * s.m + m]
    }

    /// `recall[t, k, a, m]`.
    pub fn recall_at(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        let s = self.shape;
        self.recall[((t * s.k + k) * s.a + a) * s.m + m]
    }

    /// Index of an area range by label.
    pub fn area_index(&self, label: &str) -> Option<usize> {
        self.area_ranges.iter().position(|(l, _)| l == label)
    }

    /// Index of a maxDets value.
    pub fn max_det_index(&self, max_det: usize) -> Option<usize> {
        self.max_dets.iter().position(|&m| m == max_det)
    }

    /// Index of an IoU threshold (pycocotools compares exactly; the grid is numpy's linspace).
    pub fn iou_index(&self, thr: f64) -> Option<usize> {
        self.iou_thrs.iter().position(|&t| (t - thr).abs() < 1e-9)
    }

    /// IoU rows for a threshold (`None` = all of .50:.95), empty if the threshold is absent.
    fn iou_rows(&self, iou: Option<f64>) -> Range<usize> {
        match iou {
            None => 0..self.shape.t,
            Some(thr) => self.iou_index(thr).map_or(0..0, |i| i..i + 1),
        }
    }

    /// pycocotools `_summarize(ap=1)` restricted to the K slots `ks`: the mean of the defined
    /// entries of `precision[iou rows, :, ks, a, m]`, or `-1` if none is defined.
    pub fn mean_precision(&self, iou: Option<f64>, ks: &[usize], a: usize, m: usize) -> f64 {
        let rows = self.iou_rows(iou);
        let mut vals = Vec::with_capacity(rows.len() * self.shape.r * ks.len());
        for t in rows {
            for r in 0..self.shape.r {
                for &k in ks {
                    vals.push(self.precision_at(t, r, k, a, m));
                }
            }
        }
        mean_defined(vals)
    }

    /// pycocotools `_summarize(ap=0)` restricted to the K slots `ks`.
    pub fn mean_recall(&self, iou: Option<f64>, ks: &[usize], a: usize, m: usize) -> f64 {
        let rows = self.iou_rows(iou);
        let mut vals = Vec::with_capacity(rows.len() * ks.len());
        for t in rows {
            for &k in ks {
                vals.push(self.recall_at(t, k, a, m));
            }
        }
        mean_defined(vals)
    }

    /// All K slots.
    pub fn all_k(&self) -> Vec<usize> {
        (0..self.shape.k).collect()
    }

    /// AP/AR of one stat (`AP`, `AP_S`, `AR10`, …) over the K slots `ks`, or `-1` if the stat's
    /// area range or maxDets is not part of this evaluation.
    pub fn stat_over(&self, stat: &str, ks: &[usize]) -> f64 {
        let Some((ap, iou, area, max_det)) = stat_spec(stat) else {
            return UNDEFINED;
        };
        let (Some(a), Some(m)) = (self.area_index(area), self.max_det_index(max_det)) else {
            return UNDEFINED;
        };
        if ap {
            self.mean_precision(iou, ks, a, m)
        } else {
            self.mean_recall(iou, ks, a, m)
        }
    }

    /// The 12 numbers of `COCOeval.summarize()`, in [`STAT_NAMES`] order.
    pub fn stats(&self) -> [f64; 12] {
        let ks = self.all_k();
        STAT_NAMES.map(|name| self.stat_over(name, &ks))
    }

    /// Per-category numbers (one entry per K slot; the pooled slot when class-agnostic).
    pub fn per_class(&self) -> Vec<ClassSummary> {
        (0..self.shape.k)
            .map(|k| {
                let one = [k];
                let st = |name| self.stat_over(name, &one);
                ClassSummary {
                    cat_id: self.cat_ids.get(k).copied().unwrap_or(0),
                    name: self.cat_names.get(k).cloned().unwrap_or_default(),
                    ap: st("AP"),
                    ap50: st("AP50"),
                    ap75: st("AP75"),
                    ap_s: st("AP_S"),
                    ap_m: st("AP_M"),
                    ap_l: st("AP_L"),
                    ar100: st("AR100"),
                    ar_s: st("AR_S"),
                    ar_m: st("AR_M"),
                    ar_l: st("AR_L"),
                }
            })
            .collect()
    }

    /// The 12 lines `COCOeval.summarize()` prints, character for character.
    pub fn summary_lines(&self) -> Vec<String> {
        let stats = self.stats();
        let first = self.iou_thrs.first().copied().unwrap_or(0.5);
        let last = self.iou_thrs.last().copied().unwrap_or(0.95);
        let spec: [(bool, Option<f64>, &str, usize); 12] = [
            (true, None, "all", 100),
            (true, Some(0.5), "all", 100),
            (true, Some(0.75), "all", 100),
            (true, None, "small", 100),
            (true, None, "medium", 100),
            (true, None, "large", 100),
            (false, None, "all", 1),
            (false, None, "all", 10),
            (false, None, "all", 100),
            (false, None, "small", 100),
            (false, None, "medium", 100),
            (false, None, "large", 100),
        ];
        spec.iter()
            .zip(stats)
            .map(|(&(ap, iou, area, max_det), value)| {
                let title = if ap { "Average Precision" } else { "Average Recall" };
                let kind = if ap { "(AP)" } else { "(AR)" };
                let iou_str = match iou {
                    None => format!("{first:0.2}:{last:0.2}"),
                    Some(t) => format!("{t:0.2}"),
                };
                format!(" {title:<18} {kind} @[ IoU={iou_str:<9} | area={area:>6} | maxDets={max_det:>3} ] = {value:0.3}")
            })
            .collect()
    }

    /// What `evdet coco-eval` prints: the summary lines, then (class-aware) the per-class table.
    pub fn lines(&self) -> Vec<String> {
        let mut out = self.summary_lines();
        if self.use_cats {
            out.push(String::new());
            out.extend(self.per_class_table());
        }
        out
    }

    /// A per-class table (AP, AP50, AP75, AP_S, AP_M, AP_L, AR100), `-` where undefined.
    pub fn per_class_table(&self) -> Vec<String> {
        let rows = self.per_class();
        let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(5).max(5);
        let mut out = vec![format!(
            "{:<width$}  {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
            "class", "AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "AR100"
        )];
        let cell = |v: f64| {
            if v < 0.0 {
                format!("{:>6}", "-")
            } else {
                format!("{v:>6.3}")
            }
        };
        for r in rows {
            out.push(format!(
                "{:<width$}  {} {} {} {} {} {} {}",
                r.name,
                cell(r.ap),
                cell(r.ap50),
                cell(r.ap75),
                cell(r.ap_s),
                cell(r.ap_m),
                cell(r.ap_l),
                cell(r.ar100)
            ));
        }
        out
    }

    /// `{"stats": [12], "stat_names": [...], "per_class": {"<name>": {"AP", "AP50", "AP75", "AP_S",
    /// "AP_M", "AP_L"}}}` (`-1` where undefined, as pycocotools; a repeated name gets its id).
    pub fn results_json(&self) -> serde_json::Value {
        let mut per_class = serde_json::Map::new();
        if self.use_cats {
            for c in self.per_class() {
                let key = if per_class.contains_key(&c.name) {
                    format!("{} (id {})", c.name, c.cat_id)
                } else {
                    c.name.clone()
                };
                per_class.insert(
                    key,
                    serde_json::json!({"AP": c.ap, "AP50": c.ap50, "AP75": c.ap75, "AP_S": c.ap_s, "AP_M": c.ap_m, "AP_L": c.ap_l}),
                );
            }
        }
        serde_json::json!({
            "stats": self.stats().to_vec(),
            "stat_names": STAT_NAMES,
            "per_class": per_class,
        })
    }
}

/// `np.mean(v[v > -1])`, `-1` when nothing is defined.
pub(crate) fn mean_defined(mut vals: Vec<f64>) -> f64 {
    vals.retain(|&v| v > -1.0);
    if vals.is_empty() {
        UNDEFINED
    } else {
        pairwise_sum(&vals) / vals.len() as f64
    }
}

/// numpy's `pairwise_sum` (`loops_utils.h.src`): serial below 8 values, eight interleaved
/// accumulators up to 128, halves (at a multiple of 8) above — the order `np.mean` adds in,
/// which makes our means bit-identical to pycocotools'.
pub(crate) fn pairwise_sum(v: &[f64]) -> f64 {
    let n = v.len();
    if n < 8 {
        v.iter().fold(0.0, |s, &x| s + x)
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&v[..8]);
        let end = n - n % 8;
        for block in v[8..end].chunks_exact(8) {
            for (acc, &x) in r.iter_mut().zip(block) {
                *acc += x;
            }
        }
        let head = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        v[end..].iter().fold(head, |s, &x| s + x)
    } else {
        let half = n / 2;
        let split = half - half % 8;
        pairwise_sum(&v[..split]) + pairwise_sum(&v[split..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_matches_serial_for_short_and_exact_values() {
        assert_eq!(pairwise_sum(&[]), 0.0);
        assert_eq!(pairwise_sum(&[1.0, 2.0, 3.0]), 6.0);
        let v: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        assert_eq!(pairwise_sum(&v), 499_500.0);
    }

    #[test]
    fn mean_defined_skips_sentinels() {
        assert_eq!(mean_defined(vec![-1.0, -1.0]), UNDEFINED);
        assert_eq!(mean_defined(vec![-1.0, 0.5, 1.0]), 0.75);
    }
}
