//! Detections from decoded head outputs (YOLOX `boxes.py: postprocess`, REFERENCE §3.7):
//! confidence threshold on `obj × best class probability`, then class-aware NMS. tch has no NMS,
//! so it is written here, as torchvision's CPU kernel computes it.
//!
//! Public API:
//! - [`postprocess`]`(decoded [B, A, 5+C], conf_thre, nms_thre) -> Result<Vec<Tensor>, _>`: one
//!   `[n, 7]` tensor per image (empty `[0, 7]` when nothing survives), rows
//!   `(x1, y1, x2, y2, obj_conf, class_conf, class_id)` in decreasing score order. `decoded` is the
//!   eval-mode head output: boxes `cx, cy, w, h` in input pixels, then sigmoid objectness and
//!   sigmoid class probabilities.
//! - [`PostprocessConfig`] with [`PostprocessConfig::TRAIN_VALIDATION`] (0.1 / 0.45) and
//!   [`PostprocessConfig::REPORTED`] (0.001 / 0.45), serde keys `confidence_threshold`,
//!   `nms_threshold` as in RVT's `model.postprocess`.
//! - [`batched_nms`]`(boxes_xyxy [n,4], scores [n], classes [n], iou_thre)` → kept indices
//!   (torchvision `batched_nms`), and [`nms_sorted`], the greedy loop over plain slices.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Pictures (sample detections, predicted frames) draw the boxes whose score reaches this.
pub const DRAW_SCORE: f32 = 0.3;

use crate::boxes::cxcywh_to_xyxy;

/// Errors from [`postprocess`] and [`batched_nms`].
#[derive(Debug, thiserror::Error)]
pub enum PostprocessError {
    #[error("postprocess: {what} has shape {shape:?}, expected {expected}")]
    Shape {
        what: &'static str,
        shape: Vec<i64>,
        expected: String,
    },
    #[error("postprocess: boxes must be a floating-point tensor, got {0:?}")]
    Kind(Kind),
    #[error(transparent)]
    Tch(#[from] tch::TchError),
}

/// Thresholds of RVT's `model.postprocess`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostprocessConfig {
    pub confidence_threshold: f64,
    pub nms_threshold: f64,
}

impl PostprocessConfig {
    /// RVT's training-time validation (`config/model/maxvit_yolox/default.yaml`).
    pub const TRAIN_VALIDATION: Self = Self {
        confidence_threshold: 0.1,
        nms_threshold: 0.45,
    };
    /// The setting behind published numbers (`validation.py ... confidence_threshold=0.001`).
    pub const REPORTED: Self = Self {
        confidence_threshold: 0.001,
        nms_threshold: 0.45,
    };
}

impl Default for PostprocessConfig {
    fn default() -> Self {
        Self::TRAIN_VALIDATION
    }
}

/// The float kinds NMS runs in, so the IoU arithmetic is done in the boxes' own precision.
trait NmsFloat:
    Copy + PartialOrd + std::ops::Sub<Output = Self> + std::ops::Mul<Output = Self>
{
    const ZERO: Self;
    fn div(self, o: Self) -> Self;
    fn add(self, o: Self) -> Self;
    fn to_f64(self) -> f64;
}

macro_rules! nms_float {
    ($t:ty) => {
        impl NmsFloat for $t {
            const ZERO: Self = 0.0;
            fn div(self, o: Self) -> Self {
                self / o
            }
            fn add(self, o: Self) -> Self {
                self + o
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    };
}
nms_float!(f32);
nms_float!(f64);

fn max<T: PartialOrd>(a: T, b: T) -> T {
    if b > a {
        b
    } else {
        a
    }
}

fn min<T: PartialOrd>(a: T, b: T) -> T {
    if b < a {
        b
    } else {
        a
    }
}

/// Greedy NMS over boxes already in decreasing score order (torchvision's CPU kernel): a box is
/// dropped when its IoU with a kept box is `> iou_thre`. Returns the kept positions, in order.
fn nms_one_group<T: NmsFloat>(boxes: &[[T; 4]], iou_thre: f64) -> Vec<usize> {
    let n = boxes.len();
    let areas: Vec<T> = boxes
        .iter()
        .map(|b| (b[2] - b[0]) * (b[3] - b[1]))
        .collect();
    let mut suppressed = vec![false; n];
    let mut keep = Vec::new();
    for i in 0..n {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let bi = boxes[i];
        for j in (i + 1)..n {
            if suppressed[j] {
                continue;
            }
            let bj = boxes[j];
            let w = max(T::ZERO, min(bi[2], bj[2]) - max(bi[0], bj[0]));
            let h = max(T::ZERO, min(bi[3], bj[3]) - max(bi[1], bj[1]));
            let inter = w * h;
            let ovr = inter.div(areas[i].add(areas[j]) - inter);
            // torchvision compares the box-precision IoU with the threshold as a double.
            if ovr.to_f64() > iou_thre {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// [`nms_one_group`] per group (boxes of different groups never suppress each other), kept
/// positions merged back into score order. Splitting first keeps the cost at Σ n_group², which
/// matters at the 0.001 threshold where nearly every anchor is a candidate.
fn nms_sorted_generic<T: NmsFloat>(
    boxes: &[[T; 4]],
    groups: Option<&[i64]>,
    iou_thre: f64,
) -> Vec<usize> {
    let Some(groups) = groups else {
        return nms_one_group(boxes, iou_thre);
    };
    let mut members: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
    for (pos, &g) in groups.iter().enumerate() {
        members.entry(g).or_default().push(pos);
    }
    let mut keep = Vec::new();
    for pos in members.values() {
        let sub: Vec<[T; 4]> = pos.iter().map(|&p| boxes[p]).collect();
        keep.extend(nms_one_group(&sub, iou_thre).into_iter().map(|k| pos[k]));
    }
    keep.sort_unstable();
    keep
}

/// Greedy NMS on `f64` boxes `(x1, y1, x2, y2)` already sorted by decreasing score; `groups`
/// (e.g. class ids) keeps boxes of different groups from suppressing each other.
pub fn nms_sorted(boxes: &[[f64; 4]], groups: Option<&[i64]>, iou_thre: f64) -> Vec<usize> {
    nms_sorted_generic(boxes, groups, iou_thre)
}

fn rows<T: tch::kind::Element + Copy + Default>(t: &Tensor) -> Result<Vec<[T; 4]>, tch::TchError> {
    let flat: Vec<T> = Vec::try_from(t.reshape([-1]))?;
    Ok(flat
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect())
}

/// Class-aware NMS (torchvision `batched_nms`): returns the kept indices `[k]` (int64, on the
/// boxes' device) in decreasing score order. Boxes are `(x1, y1, x2, y2)`.
pub fn batched_nms(
    boxes: &Tensor,
    scores: &Tensor,
    classes: &Tensor,
    iou_thre: f64,
) -> Result<Tensor, PostprocessError> {
    let n = scores.size().first().copied().unwrap_or(0);
    if boxes.size() != [n, 4] {
        return Err(PostprocessError::Shape {
            what: "boxes",
            shape: boxes.size(),
            expected: format!("[{n}, 4]"),
        });
    }
    if classes.size() != [n] {
        return Err(PostprocessError::Shape {
            what: "classes",
            shape: classes.size(),
            expected: format!("[{n}]"),
        });
    }
    let device = boxes.device();
    if n == 0 {
        return Ok(Tensor::zeros([0], (Kind::Int64, device)));
    }
    // torchvision sorts with a stable descending sort: equal scores keep their input order.
    let (_, order) = scores.sort_stable(true, 0, true);
    let boxes_s = boxes.index_select(0, &order);
    let classes_s = classes.index_select(0, &order).to_kind(Kind::Int64);
    // torchvision (>= 0.22) picks by size: up to 4000 coordinates on CPU (100 000 on CUDA) it
    // offsets each class's boxes by class * (max coordinate + 1) and runs one NMS; above that, one
    // NMS per class. The offset changes the IoU rounding, so the same choice is made here.
    let limit = if device == Device::Cpu { 4000 } else { 100_000 };
    let (nms_boxes, groups) = if n * 4 > limit {
        (
            boxes_s,
            Some(Vec::<i64>::try_from(classes_s.to_device(Device::Cpu))?),
        )
    } else {
        let offsets = classes_s.to_kind(boxes.kind()) * (boxes.max() + 1.0);
        (boxes_s + offsets.unsqueeze(1), None)
    };
    let nms_boxes = nms_boxes.to_device(Device::Cpu);
    let keep = match boxes.kind() {
        Kind::Double => nms_sorted_generic(&rows::<f64>(&nms_boxes)?, groups.as_deref(), iou_thre),
        // Half precision (autocast outputs) runs the IoU in float32.
        Kind::Float | Kind::Half | Kind::BFloat16 => {
            nms_sorted_generic(&rows::<f32>(&nms_boxes)?, groups.as_deref(), iou_thre)
        }
        k => return Err(PostprocessError::Kind(k)),
    };
    let keep: Vec<i64> = keep.into_iter().map(|i| i as i64).collect();
    Ok(order.index_select(0, &Tensor::from_slice(&keep).to_device(device)))
}

/// YOLOX postprocess (REFERENCE §3.7) for every image of `decoded` `[B, A, 5+C]`.
pub fn postprocess(
    decoded: &Tensor,
    conf_thre: f64,
    nms_thre: f64,
) -> Result<Vec<Tensor>, PostprocessError> {
    let ds = decoded.size();
    if ds.len() != 3 || ds[2] < 6 {
        return Err(PostprocessError::Shape {
            what: "decoded",
            shape: ds,
            expected: "[B, A, 5+C]".into(),
        });
    }
    let nc = ds[2] - 5;
    tch::no_grad(|| {
        // REFERENCE §3.7: boxes to corners; best class per anchor; keep obj·class_conf ≥ conf_thre
        // (inclusive); class-aware NMS on score obj·class_conf; rows in decreasing score order.
        let boxes = cxcywh_to_xyxy(&decoded.narrow(2, 0, 4)); // [B, A, 4]
        let mut out = Vec::with_capacity(ds[0] as usize);
        for b in 0..ds[0] {
            let pred = decoded.get(b);
            let (class_conf, class_pred) = pred.narrow(1, 5, nc).max_dim(1, true); // [A, 1]
            let obj = pred.narrow(1, 4, 1);
            let keep = (&obj * &class_conf)
                .squeeze_dim(1)
                .ge(conf_thre)
                .nonzero()
                .squeeze_dim(1);
            let det = Tensor::cat(
                &[
                    boxes.get(b),
                    obj,
                    class_conf,
                    class_pred.to_kind(decoded.kind()),
                ],
                1,
            )
            .index_select(0, &keep); // [n, 7]
            let scores = det.select(1, 4) * det.select(1, 5);
            let kept = batched_nms(&det.narrow(1, 0, 4), &scores, &det.select(1, 6), nms_thre)?;
            out.push(det.index_select(0, &kept));
        }
        Ok(out)
    })
}

/// One detection of [`postprocess`]: a `(x1, y1, x2, y2, obj_conf, class_conf, class_id)` row by name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// Corners in network-input pixels.
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    /// Objectness (sigmoid).
    pub obj_conf: f32,
    /// Probability of the best class (sigmoid).
    pub class_conf: f32,
    pub class_id: u32,
}

impl Detection {
    /// `obj_conf × class_conf`: what the confidence threshold is applied to and pictures show.
    pub fn score(&self) -> f32 {
        self.obj_conf * self.class_conf
    }

    pub fn width(&self) -> f32 {
        self.x2 - self.x1
    }

    pub fn height(&self) -> f32 {
        self.y2 - self.y1
    }

    /// The rows of one image's `[n, 7]` postprocess output. A tensor of another shape, or one that
    /// cannot be read back, is an error (never an empty list that would look like "no detections").
    pub fn from_tensor(t: &Tensor) -> Result<Vec<Detection>, PostprocessError> {
        let shape = t.size();
        if shape.len() != 2 || shape[1] != 7 {
            return Err(PostprocessError::Shape {
                what: "a detection tensor",
                shape,
                expected: "[n, 7]".into(),
            });
        }
        let flat = t
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .view([-1]);
        let v = Vec::<f32>::try_from(&flat)?;
        Ok(v.chunks_exact(7)
            .map(|r| Detection {
                x1: r[0],
                y1: r[1],
                x2: r[2],
                y2: r[3],
                obj_conf: r[4],
                class_conf: r[5],
                class_id: r[6] as u32,
            })
            .collect())
    }
}
