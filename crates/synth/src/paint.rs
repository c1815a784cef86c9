//! Anti-aliased drawing for the generator: a luminance + alpha canvas, shapes given by signed distance
//! functions (coverage = clamp(0.5 − distance, 0, 1), i.e. one-pixel anti-aliasing), and hash-based value
//! noise for textures. Everything is a pure function of its inputs, so sprites and backgrounds are the same
//! for the same seed on every machine.

/// Luminance (linear, 0 = black, 1 = white paper in daylight; light sources may exceed 1) and coverage.
#[derive(Debug, Clone)]
pub struct Canvas {
    pub w: usize,
    pub h: usize,
    pub lum: Vec<f32>,
    pub alpha: Vec<f32>,
}

impl Canvas {
    pub fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            lum: vec![0.0; w * h],
            alpha: vec![0.0; w * h],
        }
    }

    /// Paints a shape over the canvas ("over" compositing). `bounds` = (x0, y0, x1, y1) limits the pixels
    /// visited (the shape must lie inside it, up to the anti-aliasing pixel); `sdf(x, y)` is the signed
    /// distance in pixels (negative inside) at a pixel centre, `paint(x, y)` its luminance there.
    pub fn fill(
        &mut self,
        bounds: (f32, f32, f32, f32),
        sdf: impl Fn(f32, f32) -> f32,
        paint: impl Fn(f32, f32) -> f32,
    ) {
        let x0 = (bounds.0 - 1.0).floor().max(0.0) as usize;
        let y0 = (bounds.1 - 1.0).floor().max(0.0) as usize;
        let x1 = ((bounds.2 + 1.0).ceil().max(0.0) as usize).min(self.w);
        let y1 = ((bounds.3 + 1.0).ceil().max(0.0) as usize).min(self.h);
        for y in y0..y1 {
            let cy = y as f32 + 0.5;
            for x in x0..x1 {
                let cx = x as f32 + 0.5;
                let cov = (0.5 - sdf(cx, cy)).clamp(0.0, 1.0);
                if cov <= 0.0 {
                    continue;
                }
                let i = y * self.w + x;
                self.lum[i] = self.lum[i] * (1.0 - cov) + paint(cx, cy) * cov;
                self.alpha[i] += cov * (1.0 - self.alpha[i]);
            }
        }
    }

    /// Mirrors the canvas left to right (a sprite facing right becomes one facing left).
    pub fn mirrored(&self) -> Canvas {
        let mut out = Canvas::new(self.w, self.h);
        for y in 0..self.h {
            for x in 0..self.w {
                let (s, d) = (y * self.w + x, y * self.w + (self.w - 1 - x));
                out.lum[d] = self.lum[s];
                out.alpha[d] = self.alpha[s];
            }
        }
        out
    }
}

/// Signed distance to an axis-aligned rectangle with rounded corners (radius `r`).
pub fn sd_rect(px: f32, py: f32, x0: f32, y0: f32, x1: f32, y1: f32, r: f32) -> f32 {
    let (cx, cy) = ((x0 + x1) * 0.5, (y0 + y1) * 0.5);
    let r = r.min((x1 - x0) * 0.5).min((y1 - y0) * 0.5).max(0.0);
    let qx = (px - cx).abs() - ((x1 - x0) * 0.5 - r);
    let qy = (py - cy).abs() - ((y1 - y0) * 0.5 - r);
    let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt();
    outside + qx.max(qy).min(0.0) - r
}

/// Signed distance to a disc.
pub fn sd_circle(px: f32, py: f32, cx: f32, cy: f32, r: f32) -> f32 {
    ((px - cx).powi(2) + (py - cy).powi(2)).sqrt() - r
}

/// Signed distance to an axis-aligned ellipse (approximation, exact on the axes; fine for 1 px AA).
pub fn sd_ellipse(px: f32, py: f32, cx: f32, cy: f32, rx: f32, ry: f32) -> f32 {
    let (dx, dy) = ((px - cx) / rx.max(1e-3), (py - cy) / ry.max(1e-3));
    ((dx * dx + dy * dy).sqrt() - 1.0) * rx.min(ry)
}

/// Signed distance to a thick segment (a capsule of radius `r`).
pub fn sd_capsule(px: f32, py: f32, ax: f32, ay: f32, bx: f32, by: f32, r: f32) -> f32 {
    let (dx, dy) = (bx - ax, by - ay);
    let len2 = (dx * dx + dy * dy).max(1e-6);
    let t = (((px - ax) * dx + (py - ay) * dy) / len2).clamp(0.0, 1.0);
    ((px - ax - t * dx).powi(2) + (py - ay - t * dy).powi(2)).sqrt() - r
}

/// Signed distance to a convex polygon (any winding); exact inside, a slight under-estimate near
/// outside corners, which only softens the anti-aliasing there.
pub fn sd_convex(px: f32, py: f32, pts: &[(f32, f32)]) -> f32 {
    let n = pts.len();
    // Orientation from the signed area, so callers may list points either way round.
    let area: f32 = (0..n)
        .map(|i| pts[i].0 * pts[(i + 1) % n].1 - pts[(i + 1) % n].0 * pts[i].1)
        .sum();
    let sign = if area >= 0.0 { 1.0 } else { -1.0 };
    let mut d = f32::NEG_INFINITY;
    for i in 0..n {
        let (a, b) = (pts[i], pts[(i + 1) % n]);
        let (ex, ey) = (b.0 - a.0, b.1 - a.1);
        let len = (ex * ex + ey * ey).sqrt().max(1e-6);
        // Outward normal of a counter-clockwise (in y-down coordinates: clockwise) edge.
        let dist = sign * ((px - a.0) * ey - (py - a.1) * ex) / len;
        d = d.max(dist);
    }
    d
}

/// Bounding box of a point list, for [`Canvas::fill`].
pub fn bounds_of(pts: &[(f32, f32)]) -> (f32, f32, f32, f32) {
    pts.iter()
        .fold((f32::MAX, f32::MAX, f32::MIN, f32::MIN), |b, p| {
            (b.0.min(p.0), b.1.min(p.1), b.2.max(p.0), b.3.max(p.1))
        })
}

/// A 64-bit mix (SplitMix64 finaliser): the basis of every position-keyed random number here.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform [0, 1) from integer lattice coordinates and a seed.
#[inline]
pub fn hash01(ix: i64, iy: i64, seed: u64) -> f32 {
    let h = mix64(
        seed ^ (ix as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (iy as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
    );
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// Smooth value noise in [0, 1) with features about `cell` pixels across.
pub fn value_noise(x: f32, y: f32, cell: f32, seed: u64) -> f32 {
    let (fx, fy) = (x / cell, y / cell);
    let (ix, iy) = (fx.floor(), fy.floor());
    let (tx, ty) = (fx - ix, fy - iy);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let (ix, iy) = (ix as i64, iy as i64);
    let a = hash01(ix, iy, seed);
    let b = hash01(ix + 1, iy, seed);
    let c = hash01(ix, iy + 1, seed);
    let d = hash01(ix + 1, iy + 1, seed);
    let top = a + (b - a) * sx;
    let bot = c + (d - c) * sx;
    top + (bot - top) * sy
}

/// Three octaves of value noise, centred on 0 (range about ±0.5).
pub fn fractal_noise(x: f32, y: f32, cell: f32, seed: u64) -> f32 {
    let n = value_noise(x, y, cell, seed) * 0.57
        + value_noise(x, y, cell * 0.5, seed ^ 0xA5A5) * 0.29
        + value_noise(x, y, cell * 0.25, seed ^ 0x5A5A) * 0.14;
    n - 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rect_fills_its_area_with_soft_edges() {
        let mut c = Canvas::new(20, 10);
        c.fill(
            (2.0, 2.0, 12.0, 8.0),
            |x, y| sd_rect(x, y, 2.0, 2.0, 12.0, 8.0, 0.0),
            |_, _| 0.5,
        );
        let covered: f32 = c.alpha.iter().sum();
        assert!((covered - 60.0).abs() < 1.0, "{covered}");
        assert_eq!(c.alpha[5 * 20 + 5], 1.0);
        assert_eq!(c.alpha[0], 0.0);
    }

    #[test]
    fn convex_polygon_either_winding() {
        let sq = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)];
        let rev: Vec<_> = sq.iter().rev().copied().collect();
        assert!(sd_convex(2.0, 2.0, &sq) < 0.0 && sd_convex(2.0, 2.0, &rev) < 0.0);
        assert!(sd_convex(6.0, 2.0, &sq) > 0.0 && sd_convex(6.0, 2.0, &rev) > 0.0);
    }
}
