//! Rendering only where the picture changes: each step, the rectangles of objects that moved (old and new
//! position) are re-composited row by row — background, then every object overlapping the row from far to
//! near, bilinearly sampled at its sub-pixel position — and each re-rendered pixel is handed to the event
//! pixel model. Rows are processed in independent bands, in parallel when the changed area is large; the
//! bands' events are concatenated in band order, so the output does not depend on the thread count.

use super::sensor::{fire, Ev, Pixel, SensorParams};
use super::sprite::{Facing, Placement, Rect, SpriteFrame, SpriteSet};

/// Adds the whole of `r` (clipped) to the per-row dirty spans.
pub fn add_rect(rows: &mut [Vec<(i32, i32)>], r: &Rect, width: usize) {
    let r = r.clip(width, rows.len());
    if r.is_empty() {
        return;
    }
    for row in &mut rows[r.y0 as usize..r.y1 as usize] {
        row.push((r.x0, r.x1));
    }
}
use rayon::prelude::*;
use std::sync::Arc;

/// Rows per band: small enough to balance threads, large enough to amortise the per-band setup.
pub const BAND_ROWS: usize = 16;
/// Below this many changed pixels per step the work stays on one thread (spawning costs more).
const PARALLEL_MIN_AREA: i64 = 24_000;

/// Something to composite: a sprite frame at a placement, with its depth (far objects first).
#[derive(Clone)]
pub struct Drawable {
    pub set: Arc<SpriteSet>,
    pub facing: Facing,
    pub frame: usize,
    pub place: Placement,
    pub rect: Rect,
    /// (foot row, tie-breaker): larger is nearer the camera.
    pub depth: (f64, u64),
    /// Track id and class id for objects; track id 0 for street furniture.
    pub track_id: u32,
    pub class_id: u32,
}

impl Drawable {
    pub fn sprite(&self) -> &SpriteFrame {
        let list = match self.facing {
            Facing::Right => &self.set.right,
            Facing::Left => &self.set.left,
            Facing::Front => &self.set.front,
        };
        &list[self.frame.min(list.len().saturating_sub(1))]
    }
}

/// What a step needs besides the pixel states.
pub struct StepInput<'a> {
    pub width: usize,
    pub background: &'a [f32],
    /// Depth-sorted, far first.
    pub items: &'a [Drawable],
    /// Per image row, the column spans to re-render (unsorted, may overlap).
    pub dirty_rows: &'a [Vec<(i32, i32)>],
    pub t0: i64,
    pub dt: i64,
    /// Global illumination (log) at the start and end of the step.
    pub g0: f32,
    pub g1: f32,
    pub params: &'a SensorParams,
    pub jitter_seed: u64,
    /// False for the initial render: set the pixels' scene intensity, fire nothing.
    pub fire: bool,
}

/// One band's share of a step: its index, pixel states, last-event times and output.
type BandWork<'a> = (usize, ((&'a mut [Pixel], &'a mut [i64]), &'a mut Vec<Ev>));

/// Renders the dirty parts of the frame and fires events; `last_t` is the pixels' last event times,
/// `outs` holds one buffer per band.
pub fn step(pixels: &mut [Pixel], last_t: &mut [i64], input: &StepInput, outs: &mut Vec<Vec<Ev>>) {
    let w = input.width;
    let bands = pixels.len().div_ceil(w * BAND_ROWS);
    outs.resize_with(bands, Vec::new);
    let area: i64 = input
        .dirty_rows
        .iter()
        .flatten()
        .map(|&(a, b)| (b - a) as i64)
        .sum();
    let n = w * BAND_ROWS;
    let work = |(b, ((px, lt), out)): BandWork| {
        out.clear();
        band(b * BAND_ROWS, px, lt, input, out);
    };
    if area >= PARALLEL_MIN_AREA {
        pixels
            .par_chunks_mut(n)
            .zip(last_t.par_chunks_mut(n))
            .zip(outs.par_iter_mut())
            .enumerate()
            .for_each(work);
    } else {
        pixels
            .chunks_mut(n)
            .zip(last_t.chunks_mut(n))
            .zip(outs.iter_mut())
            .enumerate()
            .for_each(work);
    }
}

fn band(y0: usize, pixels: &mut [Pixel], last_t: &mut [i64], input: &StepInput, out: &mut Vec<Ev>) {
    let w = input.width;
    let rows = pixels.len() / w;
    let (by0, by1) = (y0 as i32, (y0 + rows) as i32);
    if input.dirty_rows[y0..y0 + rows].iter().all(|r| r.is_empty()) {
        return;
    }
    let items: Vec<&Drawable> = input
        .items
        .iter()
        .filter(|d| d.rect.y1 > by0 && d.rect.y0 < by1)
        .collect();
    let mut buf = vec![0.0f32; w];
    let mut spans: Vec<(i32, i32)> = Vec::new();
    for r in 0..rows {
        let y = by0 + r as i32;
        spans.clear();
        spans.extend_from_slice(&input.dirty_rows[y as usize]);
        if spans.is_empty() {
            continue;
        }
        merge_spans(&mut spans);
        let bg = &input.background[y as usize * w..(y as usize + 1) * w];
        for &(a, b) in &spans {
            buf[a as usize..b as usize].copy_from_slice(&bg[a as usize..b as usize]);
        }
        for d in &items {
            if y < d.rect.y0 || y >= d.rect.y1 {
                continue;
            }
            let s = d.sprite();
            blend_row(&mut buf, s, &d.place, y, &spans);
        }
        let row = &mut pixels[r * w..(r + 1) * w];
        let row_t = &mut last_t[r * w..(r + 1) * w];
        for &(a, b) in &spans {
            for x in a as usize..b as usize {
                let px = &mut row[x];
                let scene = buf[x];
                if input.fire && px.crosses(scene + input.g1) {
                    let l0 = px.current + input.g0;
                    fire(
                        px,
                        &mut row_t[x],
                        l0,
                        scene + input.g1,
                        input.t0,
                        input.dt,
                        x as u16,
                        y as u16,
                        input.params,
                        input.jitter_seed,
                        out,
                    );
                }
                px.current = scene;
            }
        }
    }
}

/// Sorts spans and merges overlapping or touching ones.
fn merge_spans(spans: &mut Vec<(i32, i32)>) {
    spans.sort_unstable();
    let mut k = 0;
    for i in 1..spans.len() {
        if spans[i].0 <= spans[k].1 {
            spans[k].1 = spans[k].1.max(spans[i].1);
        } else {
            k += 1;
            spans[k] = spans[i];
        }
    }
    spans.truncate(k + 1);
}

/// Composites one row of a sprite over `buf` inside the spans ("over" in log intensity, bilinear).
fn blend_row(buf: &mut [f32], s: &SpriteFrame, p: &Placement, y: i32, spans: &[(i32, i32)]) {
    let pw = s.w + 2;
    // Destination row y takes (1 − fy)·sprite[y − iy] + fy·sprite[y − iy − 1]; padded rows are +1.
    let r1 = (y - p.iy + 1) as usize;
    let r0 = r1 - 1;
    let (pv1, pv0) = (&s.pv[r1 * pw..(r1 + 1) * pw], &s.pv[r0 * pw..(r0 + 1) * pw]);
    let (a1, a0) = (&s.a[r1 * pw..(r1 + 1) * pw], &s.a[r0 * pw..(r0 + 1) * pw]);
    let (fx, fy) = (p.fx, p.fy);
    let (w11, w10, w01, w00) = (
        (1.0 - fx) * (1.0 - fy),
        fx * (1.0 - fy),
        (1.0 - fx) * fy,
        fx * fy,
    );
    let (rx0, rx1) = (p.ix, p.ix + s.w as i32 + 1);
    for &(a, b) in spans {
        let (xa, xb) = (a.max(rx0), b.min(rx1));
        for x in xa..xb {
            let c1 = (x - p.ix + 1) as usize;
            let c0 = c1 - 1;
            let alpha = w11 * a1[c1] + w10 * a1[c0] + w01 * a0[c1] + w00 * a0[c0];
            if alpha <= 0.0 {
                continue;
            }
            let pv = w11 * pv1[c1] + w10 * pv1[c0] + w01 * pv0[c1] + w00 * pv0[c0];
            let d = &mut buf[x as usize];
            *d = *d * (1.0 - alpha) + pv;
        }
    }
}

/// The global illumination moved from `g0` (at `t0`) to `g1` (at `t0 + dt`): every pixel compares its
/// scene intensity under the new illumination with its reference.
#[allow(clippy::too_many_arguments)]
pub fn illumination(
    pixels: &mut [Pixel],
    last_t: &mut [i64],
    width: usize,
    t0: i64,
    dt: i64,
    g0: f32,
    g1: f32,
    params: &SensorParams,
    jitter_seed: u64,
    outs: &mut Vec<Vec<Ev>>,
) {
    let n = width * BAND_ROWS;
    outs.resize_with(pixels.len().div_ceil(n), Vec::new);
    pixels
        .par_chunks_mut(n)
        .zip(last_t.par_chunks_mut(n))
        .zip(outs.par_iter_mut())
        .enumerate()
        .for_each(|(b, ((px, lt), out))| {
            out.clear();
            for (i, (p, t)) in px.iter_mut().zip(lt.iter_mut()).enumerate() {
                if p.crosses(p.current + g1) {
                    let (x, y) = (i % width, b * BAND_ROWS + i / width);
                    fire(
                        p,
                        t,
                        p.current + g0,
                        p.current + g1,
                        t0,
                        dt,
                        x as u16,
                        y as u16,
                        params,
                        jitter_seed ^ 0x1111,
                        out,
                    );
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_merge() {
        let mut s = vec![(5, 9), (0, 3), (3, 4), (8, 12), (20, 21)];
        merge_spans(&mut s);
        assert_eq!(s, vec![(0, 4), (5, 12), (20, 21)]);
    }
}
