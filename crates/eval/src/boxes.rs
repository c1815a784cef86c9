//! The Prophesee-style box the evaluator consumes: one labelled or detected object at one instant.

/// A box at time `t` (µs), top-left corner `x, y` and size `w, h` in the evaluation frame's pixels
/// (for eTraM/gen4 that is the network input, 640×360, i.e. downsampled by 2).
///
/// Coordinates stay `f32` because the Prophesee record (`BBOX_DTYPE`) stores them so, and the
/// reference computes filter sums and areas in `f32` (REFERENCE §6).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BBox {
    /// Time stamp in microseconds. Ground truth of one labelled frame shares one `t`; a detection
    /// carries the `t` of the frame it was predicted for.
    pub t: i64,
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    /// Class index (0-based); COCO category id is `class_id + 1`.
    pub class_id: u32,
    /// The detection score: the maximum class probability only, not obj × cls (REFERENCE §6).
    /// Ignored for ground truth.
    pub class_confidence: f32,
}

impl BBox {
    /// A ground-truth box (confidence 1).
    pub fn gt(t: i64, x: f32, y: f32, w: f32, h: f32, class_id: u32) -> Self {
        BBox {
            t,
            x,
            y,
            w,
            h,
            class_id,
            class_confidence: 1.0,
        }
    }

    /// A detection with score `class_confidence`.
    pub fn det(
        t: i64,
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        class_id: u32,
        class_confidence: f32,
    ) -> Self {
        BBox {
            t,
            x,
            y,
            w,
            h,
            class_id,
            class_confidence,
        }
    }

    /// `w * h` rounded to `f32` first, as numpy multiplies two `float32` fields
    /// (the area pycocotools then reads; REFERENCE §6 COCO conversion).
    pub fn area(&self) -> f64 {
        f64::from(self.w * self.h)
    }

    /// `[x, y, w, h]` widened exactly to `f64`, as pycocotools' IoU code converts them.
    pub fn xywh(&self) -> [f64; 4] {
        [
            f64::from(self.x),
            f64::from(self.y),
            f64::from(self.w),
            f64::from(self.h),
        ]
    }
}
