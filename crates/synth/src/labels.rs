//! Labels as annotators give them: every 1/30 s, a box around each object that can be seen — clipped to
//! the frame, skipped when the object is off-frame or (almost) completely hidden behind nearer objects or
//! street furniture. The box is the whole object's extent (amodal), as in eTraM, not only its visible part.

use super::render::Drawable;
use evdet_events::labels::BBox;

/// The label clock: 30 Hz at integer µs, `k · 33 333` for k ≥ 1 — what RVT's preprocessing expects.
pub const LABEL_PERIOD_US: i64 = 33_333;

/// An object is labelled when at least this fraction of its silhouette is inside the frame and unoccluded.
pub const MIN_VISIBLE: f64 = 0.15;

/// Samples per box side for the visibility estimate.
const GRID: usize = 12;

/// Boxes of the objects visible at `t_us`, inside the step `[t0, t0 + dt]` whose end state `items`
/// describes (objects are moved back along their step motion to the label time).
pub fn visible_boxes(
    t_us: i64,
    t0: i64,
    dt: i64,
    items: &[Drawable],
    motion: &[(f64, f64)],
    width: usize,
    height: usize,
) -> Vec<BBox> {
    let (wf, hf) = (width as f64, height as f64);
    let back = ((t0 + dt - t_us) as f64 / dt as f64).clamp(0.0, 1.0);
    let mut out = Vec::new();
    for (i, d) in items.iter().enumerate() {
        if d.track_id == 0 {
            continue;
        }
        let s = d.sprite();
        let (bx0, by0, bx1, by1) = s.bbox;
        if bx1 <= bx0 || by1 <= by0 {
            continue;
        }
        // Visibility on a grid over the box, at the step-end placement (sub-pixel differences don't matter).
        let (n, m) = (
            GRID.min((bx1 - bx0).ceil() as usize).max(1),
            GRID.min((by1 - by0).ceil() as usize).max(1),
        );
        let (ox, oy) = (d.place.ox, d.place.oy);
        let nearer: Vec<&Drawable> = items[i + 1..]
            .iter()
            .filter(|o| {
                o.rect.x1 as f64 > ox + bx0
                    && (o.rect.x0 as f64) < ox + bx1
                    && o.rect.y1 as f64 > oy + by0
                    && (o.rect.y0 as f64) < oy + by1
            })
            .collect();
        let (mut solid, mut seen) = (0usize, 0usize);
        for j in 0..m {
            let v = by0 + (j as f64 + 0.5) / m as f64 * (by1 - by0);
            for k in 0..n {
                let u = bx0 + (k as f64 + 0.5) / n as f64 * (bx1 - bx0);
                if s.alpha_at(u, v) < 0.5 {
                    continue;
                }
                solid += 1;
                let (x, y) = (ox + u, oy + v);
                if x < 0.0 || y < 0.0 || x >= wf || y >= hf {
                    continue;
                }
                if nearer
                    .iter()
                    .any(|o| o.sprite().alpha_at(x - o.place.ox, y - o.place.oy) >= 0.5)
                {
                    continue;
                }
                seen += 1;
            }
        }
        if solid == 0 || (seen as f64) < MIN_VISIBLE * solid as f64 {
            continue;
        }
        let (mx, my) = motion[i];
        let (x0, y0) = (ox + bx0 - mx * back, oy + by0 - my * back);
        let (x1, y1) = (x0 + (bx1 - bx0), y0 + (by1 - by0));
        let (cx0, cy0, cx1, cy1) = (x0.max(0.0), y0.max(0.0), x1.min(wf), y1.min(hf));
        if cx1 - cx0 < 1.0 || cy1 - cy0 < 1.0 {
            continue;
        }
        out.push(BBox {
            t: t_us,
            x: cx0 as f32,
            y: cy0 as f32,
            w: (cx1 - cx0) as f32,
            h: (cy1 - cy0) as f32,
            class_id: d.class_id,
            track_id: d.track_id,
            class_confidence: 1.0,
        });
    }
    // Stable order within an instant: by track id.
    out.sort_by_key(|b| b.track_id);
    out
}
