//! Object labels as the training pipeline sees them (REFERENCE §4.5 and RVT `data/genx_utils/labels.py`):
//! float32 boxes clamped to the label frame at load time, halved for ds2 inputs, and the geometric
//! operations of the augmentations (flip, zoom in, zoom out) with RVT's clamping rules.

use evdet_events::BBox;

/// One box: top-left corner and size in input pixels, class id, class confidence, label time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjLabel {
    pub t: f32,
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    pub class_id: f32,
    pub class_confidence: f32,
}

/// The boxes of one labelled frame with the canvas size they live in.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameLabels {
    pub boxes: Vec<ObjLabel>,
    /// Canvas height and width (floats: zoom makes them fractional, as in RVT).
    pub hw: (f32, f32),
}

impl FrameLabels {
    /// Loads a frame's boxes as RVT's `ObjectLabelFactory` does: clamp both corners to the label frame
    /// `frame_hw` (0…W−1, 0…H−1), then, for ds2 inputs, scale by ½.
    pub fn load(raw: &[BBox], frame_hw: (usize, usize), downsample_by_factor_2: bool) -> Self {
        let (fh, fw) = (frame_hw.0 as f32, frame_hw.1 as f32);
        let boxes = raw
            .iter()
            .map(|b| {
                // float32 throughout, like the reference tensors
                let x0 = b.x.clamp(0.0, fw - 1.0);
                let y0 = b.y.clamp(0.0, fh - 1.0);
                let x1 = (b.x + b.w).clamp(0.0, fw - 1.0);
                let y1 = (b.y + b.h).clamp(0.0, fh - 1.0);
                ObjLabel {
                    t: b.t as f32,
                    x: x0,
                    y: y0,
                    w: x1 - x0,
                    h: y1 - y0,
                    class_id: b.class_id as f32,
                    class_confidence: b.class_confidence,
                }
            })
            .collect();
        let mut f = Self {
            boxes,
            hw: (fh, fw),
        };
        f.remove_flat();
        if downsample_by_factor_2 {
            f.scale(0.5);
        }
        f
    }

    pub fn len(&self) -> usize {
        self.boxes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }

    fn remove_flat(&mut self) {
        self.boxes.retain(|b| b.w > 0.0 && b.h > 0.0);
    }

    /// RVT `scale_`: the far corner is clamped to the new canvas, flat boxes are dropped.
    pub fn scale(&mut self, s: f32) {
        if self.boxes.is_empty() || s == 1.0 {
            self.hw = (self.hw.0 * s, self.hw.1 * s);
            return;
        }
        let (nh, nw) = (s * self.hw.0, s * self.hw.1);
        for b in &mut self.boxes {
            let x1 = ((b.x + b.w) * s).min(nw - 1.0);
            let y1 = ((b.y + b.h) * s).min(nh - 1.0);
            b.x *= s;
            b.y *= s;
            b.w = x1 - b.x;
            b.h = y1 - b.y;
        }
        self.hw = (nh, nw);
        self.remove_flat();
    }

    /// Horizontal flip: `x' = W − 1 − x − w`.
    pub fn flip_lr(&mut self) {
        let w = self.hw.1;
        for b in &mut self.boxes {
            b.x = w - 1.0 - b.x - b.w;
        }
    }

    /// Zoom out by `f`: shrink the canvas content by 1/f and paste it at (x0, y0).
    pub fn zoom_out(&mut self, x0: usize, y0: usize, f: f32) {
        if self.boxes.is_empty() || f == 1.0 {
            return;
        }
        let hw = self.hw;
        self.scale(1.0 / f);
        self.hw = hw;
        for b in &mut self.boxes {
            b.x += x0 as f32;
            b.y += y0 as f32;
        }
    }

    /// Zoom in by `f` on the window with top-left (x0, y0): clip boxes to the window, shift, scale by f.
    pub fn zoom_in(&mut self, x0: usize, y0: usize, f: f32) {
        if self.boxes.is_empty() || f == 1.0 {
            return;
        }
        let (h, w) = self.hw;
        let (zh, zw) = (h / f, w / f);
        let (zx0, zy0) = (x0 as f32, y0 as f32);
        let zx1 = (zx0 + zw).min(w - 1.0);
        let zy1 = (zy0 + zh).min(h - 1.0);
        for b in &mut self.boxes {
            let bx0 = b.x.clamp(zx0, zx1 - 1.0);
            let by0 = b.y.clamp(zy0, zy1 - 1.0);
            let bx1 = (b.x + b.w).clamp(zx0, zx1 - 1.0);
            let by1 = (b.y + b.h).clamp(zy0, zy1 - 1.0);
            b.x = bx0 - zx0;
            b.y = by0 - zy0;
            b.w = bx1 - bx0;
            b.h = by1 - by0;
        }
        self.hw = (zh, zw);
        self.remove_flat();
        self.scale(f);
    }

    /// YOLOX rows `(class, cx, cy, w, h)`.
    pub fn yolox_rows(&self) -> Vec<[f32; 5]> {
        self.boxes
            .iter()
            .map(|b| [b.class_id, b.x + 0.5 * b.w, b.y + 0.5 * b.h, b.w, b.h])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bbox(x: f32, y: f32, w: f32, h: f32) -> BBox {
        BBox {
            t: 5,
            x,
            y,
            w,
            h,
            class_id: 2,
            track_id: 0,
            class_confidence: 1.0,
        }
    }

    #[test]
    fn load_clamps_then_halves_for_ds2() {
        let f = FrameLabels::load(
            &[bbox(1270.0, 700.0, 30.0, 30.0), bbox(10.0, 10.0, 0.0, 5.0)],
            (720, 1280),
            true,
        );
        assert_eq!(f.hw, (360.0, 640.0));
        assert_eq!(f.len(), 1, "flat boxes are dropped");
        let b = f.boxes[0];
        // clamped to x1 = 1279 -> scaled x1 = min(639.5, 639) = 639
        assert_eq!((b.x, b.y, b.w, b.h), (635.0, 350.0, 4.0, 9.0));
    }

    #[test]
    fn flip_and_zoom_out_move_boxes_as_the_reference() {
        let mut f = FrameLabels {
            boxes: vec![ObjLabel {
                t: 0.0,
                x: 10.0,
                y: 20.0,
                w: 30.0,
                h: 40.0,
                class_id: 1.0,
                class_confidence: 1.0,
            }],
            hw: (100.0, 200.0),
        };
        f.flip_lr();
        assert_eq!(f.boxes[0].x, 200.0 - 1.0 - 10.0 - 30.0);
        let mut g = f.clone();
        g.zoom_out(5, 7, 2.0);
        assert_eq!(g.hw, (100.0, 200.0));
        let b = g.boxes[0];
        assert_eq!(
            (b.x, b.y, b.w, b.h),
            (159.0 / 2.0 + 5.0, 10.0 + 7.0, 15.0, 20.0)
        );
        let mut z = f.clone();
        z.zoom_in(150, 10, 2.0);
        // window x 150..199 (clamped to 199), box 159..189 -> shifted 9..39, scaled x2
        let b = z.boxes[0];
        assert_eq!((b.x, b.w), (18.0, 60.0));
        assert_eq!(z.hw, (100.0, 200.0));
    }
}
