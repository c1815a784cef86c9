//! The Prophesee protocol around COCO (REFERENCE §6): box filters, ±50 ms time matching that
//! makes one COCO image per ground-truth time stamp, and the conversion to COCO datasets.

use std::ops::Range;

use hotcoco::{Annotation, Category, Dataset, Image, COCO};

use crate::boxes::BBox;

/// Half-width of the detection window around a ground-truth time stamp, µs (`time_tol`).
pub const TIME_TOL_US: i64 = 50_000;

/// Boxes at or before this time are dropped by the filter (the first 0.5 s lack history).
pub const SKIP_US: i64 = 500_000;

/// The sensor family, which sets the filter thresholds (REFERENCE §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Camera {
    /// Prophesee Gen1 (304×240): min diagonal 30, min side 10.
    Gen1,
    /// Prophesee Gen4 / eTraM (1280×720): min diagonal 60, min side 20.
    Gen4,
}

impl std::str::FromStr for Camera {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gen1" => Ok(Camera::Gen1),
            "gen4" => Ok(Camera::Gen4),
            other => Err(format!("unknown camera `{other}` (expected gen1 or gen4)")),
        }
    }
}

/// `filter_boxes`: keep a box iff `t > skip_us`, `w² + h² >= min_diag²`, `w >= min_side` and
/// `h >= min_side`, applied to ground truth and detections alike (REFERENCE §6).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxFilter {
    pub skip_us: i64,
    pub min_diag: f32,
    pub min_side: f32,
}

impl BoxFilter {
    /// The reference thresholds for `camera`, halved when boxes are in the downsampled-by-2 frame
    /// (always so for eTraM, whose labels live in the 640×360 network input).
    pub fn for_camera(camera: Camera, filter_downsampled_by_2: bool) -> Self {
        let (diag, side) = match camera {
            Camera::Gen1 => (30.0, 10.0),
            Camera::Gen4 => (60.0, 20.0),
        };
        let div = if filter_downsampled_by_2 { 2.0 } else { 1.0 };
        BoxFilter {
            skip_us: SKIP_US,
            min_diag: diag / div,
            min_side: side / div,
        }
    }

    /// Whether `b` survives. The sums are `f32`, as numpy computes them on the `float32` fields,
    /// so boxes on the threshold fall the same side as in the reference.
    pub fn keep(&self, b: &BBox) -> bool {
        let diag_sq = b.w * b.w + b.h * b.h;
        b.t > self.skip_us
            && diag_sq >= self.min_diag * self.min_diag
            && b.w >= self.min_side
            && b.h >= self.min_side
    }
}

/// One COCO image: the ground truth at time stamp `t` and the detections within the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub t: i64,
    /// Indices into the ground-truth array (those with exactly time `t`).
    pub gt: Range<usize>,
    /// Indices into the detection array (`t - tol <= dt.t <= t + tol`).
    pub dt: Range<usize>,
}

/// `_match_times`: one window per unique ground-truth time stamp, in time order. Both arrays must
/// be sorted by `t` (the reference asserts it). A detection may fall into several windows.
pub fn match_times(gt: &[BBox], dt: &[BBox], tol_us: i64) -> Vec<Window> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < gt.len() {
        let t = gt[i].t;
        let end = i + gt[i..].iter().take_while(|b| b.t == t).count();
        // Saturating: a time stamp near the ends of i64 (a corrupt file) must not wrap the window.
        let lo = dt.partition_point(|b| b.t < t.saturating_sub(tol_us));
        let hi = dt.partition_point(|b| b.t <= t.saturating_add(tol_us));
        out.push(Window {
            t,
            gt: i..end,
            dt: lo..hi.max(lo),
        });
        i = end;
    }
    out
}

/// The COCO images built from filtered, time-matched arrays, ready for the engine.
#[derive(Debug, Default, Clone)]
pub struct CocoImages {
    /// Per image (id = index + 1): its ground truth and its window's detections.
    pub gt: Vec<Vec<BBox>>,
    pub dt: Vec<Vec<BBox>>,
    /// Time stamp of each image.
    pub t: Vec<i64>,
}

impl CocoImages {
    /// Appends the images of one array pair (a sequence, or one labelled frame): filter both
    /// arrays (if `filter` is set), then one image per unique ground-truth time stamp.
    /// Arrays not sorted by `t` are sorted stably first.
    pub fn push_pair(&mut self, gt: &[BBox], dt: &[BBox], filter: Option<&BoxFilter>, tol_us: i64) {
        let prepare = |boxes: &[BBox]| {
            let mut v: Vec<BBox> = match filter {
                Some(f) => boxes.iter().filter(|b| f.keep(b)).copied().collect(),
                None => boxes.to_vec(),
            };
            if !v.windows(2).all(|w| w[0].t <= w[1].t) {
                v.sort_by_key(|b| b.t);
            }
            v
        };
        let (gt, dt) = (prepare(gt), prepare(dt));
        for w in match_times(&gt, &dt, tol_us) {
            self.t.push(w.t);
            self.gt.push(gt[w.gt].to_vec());
            self.dt.push(dt[w.dt].to_vec());
        }
    }

    pub fn num_images(&self) -> usize {
        self.t.len()
    }

    pub fn num_gt(&self) -> usize {
        self.gt.iter().map(Vec::len).sum()
    }

    pub fn num_dt(&self) -> usize {
        self.dt.iter().map(Vec::len).sum()
    }

    /// `_to_coco_format`: images 1..N, categories `class_id + 1` named by `class_names`, GT area
    /// `w * h` (in `f32`, as numpy), `iscrowd` false; detections scored by class confidence.
    /// Boxes whose class has no name keep their category id and are ignored by COCOeval, as in
    /// the reference's 3-class gen4 evaluation.
    pub fn to_coco(&self, class_names: &[String], height: u32, width: u32) -> (COCO, COCO) {
        let images: Vec<Image> = (1..=self.num_images() as u64)
            .map(|id| Image {
                id,
                height,
                width,
                file_name: "n.a".into(),
                ..Default::default()
            })
            .collect();
        let categories: Vec<Category> = class_names
            .iter()
            .enumerate()
            .map(|(i, name)| Category {
                id: i as u64 + 1,
                name: name.clone(),
                supercategory: Some("none".into()),
                ..Default::default()
            })
            .collect();
        let anns = |per_image: &Vec<Vec<BBox>>, scored: bool| {
            let mut out = Vec::with_capacity(per_image.iter().map(Vec::len).sum());
            for (img, boxes) in per_image.iter().enumerate() {
                for b in boxes {
                    out.push(Annotation {
                        id: out.len() as u64 + 1,
                        image_id: img as u64 + 1,
                        category_id: u64::from(b.class_id) + 1,
                        bbox: Some(b.xywh()),
                        area: Some(b.area()),
                        iscrowd: false,
                        score: scored.then_some(f64::from(b.class_confidence)),
                        ..Default::default()
                    });
                }
            }
            out
        };
        let gt = COCO::from_dataset(Dataset {
            images: images.clone(),
            annotations: anns(&self.gt, false),
            categories: categories.clone(),
            ..Default::default()
        });
        // Built directly rather than through `loadRes`, so the detection area stays the `f32`
        // product numpy computes in the reference's `loadRes` call.
        let dt = COCO::from_dataset(Dataset {
            images,
            annotations: anns(&self.dt, true),
            categories,
            ..Default::default()
        });
        (gt, dt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: i64) -> BBox {
        BBox::gt(t, 0.0, 0.0, 40.0, 40.0, 0)
    }

    #[test]
    fn filter_thresholds_halve_for_ds2() {
        let f = BoxFilter::for_camera(Camera::Gen4, true);
        assert_eq!((f.min_diag, f.min_side), (30.0, 10.0));
        assert!(!f.keep(&at(500_000)), "t must be strictly after 0.5 s");
        assert!(f.keep(&at(500_001)));
        let thin = BBox::gt(600_000, 0.0, 0.0, 9.9, 60.0, 0);
        assert!(!f.keep(&thin));
        let short = BBox::gt(600_000, 0.0, 0.0, 20.0, 22.0, 0); // diag² 884 < 900
        assert!(!f.keep(&short));
        let full = BoxFilter::for_camera(Camera::Gen4, false);
        assert_eq!((full.min_diag, full.min_side), (60.0, 20.0));
    }

    #[test]
    fn windows_are_inclusive_and_overlap() {
        let gt = [at(100_000), at(100_000), at(150_000)];
        let dt = [
            at(50_000),
            at(49_999),
            at(120_000),
            at(200_000),
            at(200_001),
        ];
        let mut sorted = dt.to_vec();
        sorted.sort_by_key(|b| b.t);
        let w = match_times(&gt, &sorted, TIME_TOL_US);
        assert_eq!(w.len(), 2);
        assert_eq!(
            (w[0].t, w[0].gt.clone(), w[0].dt.clone()),
            (100_000, 0..2, 1..3)
        );
        assert_eq!(
            (w[1].t, w[1].gt.clone(), w[1].dt.clone()),
            (150_000, 2..3, 2..4)
        );
    }
}
