//! Deterministic event streams for benchmarks and tests: "clustered" (60 moving blobs carry 85 % of the
//! events, the rest is background noise; `evdet bench repr --save-raw` writes it as the recording that
//! scripts/bench_preprocess_vs_reference.py times the reference on) and "uniform" (every event at a
//! random pixel: the cache worst case).

use crate::event::EventBatch;
use crate::labels::BBox;

pub use crate::rng::Rng;

/// Spatial layout of generated events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Clustered,
    Uniform,
}

/// `n` events over `duration_us` on an `hw` sensor, sorted by time.
pub fn recording(
    n: usize,
    duration_us: i64,
    hw: (usize, usize),
    pattern: Pattern,
    seed: u64,
) -> EventBatch {
    let mut rng = Rng::new(seed);
    let (h, w) = (hw.0 as f64, hw.1 as f64);
    let k = 60;
    let blobs: Vec<[f64; 4]> = (0..k)
        .map(|_| {
            [
                rng.uniform(0.0, w),
                rng.uniform(0.0, h),
                rng.uniform(-200.0, 200.0) / 1e6,
                rng.uniform(-60.0, 60.0) / 1e6,
            ]
        })
        .collect();
    let mut t: Vec<i64> = (0..n)
        .map(|_| rng.below(duration_us as u64) as i64)
        .collect();
    t.sort_unstable();
    let mut ev = EventBatch {
        x: Vec::with_capacity(n),
        y: Vec::with_capacity(n),
        p: Vec::with_capacity(n),
        t,
    };
    for i in 0..n {
        let ti = ev.t[i] as f64;
        let (x, y) = if pattern == Pattern::Clustered && rng.f64() < 0.85 {
            let b = &blobs[rng.below(k as u64) as usize];
            (
                b[0] + b[2] * ti + 25.0 * rng.normal(),
                b[1] + b[3] * ti + 15.0 * rng.normal(),
            )
        } else {
            (rng.uniform(0.0, w), rng.uniform(0.0, h))
        };
        ev.x.push(x.rem_euclid(w) as u16);
        ev.y.push(y.rem_euclid(h) as u16);
        ev.p.push(rng.below(2) as u8);
    }
    ev
}

/// 30 Hz labels for the blobs of a clustered recording (12 tracks, 60×40 px), as the reference bench does.
pub fn labels_30hz(duration_us: i64, hw: (usize, usize), seed: u64) -> Vec<BBox> {
    let mut out = Vec::new();
    let mut rng = Rng::new(seed ^ 0xB0B);
    let tracks: Vec<(f64, f64)> = (0..12)
        .map(|_| {
            (
                rng.uniform(30.0, hw.1 as f64 - 90.0),
                rng.uniform(20.0, hw.0 as f64 - 60.0),
            )
        })
        .collect();
    let mut t = 33_333;
    while t < duration_us {
        for (j, &(x, y)) in tracks.iter().enumerate() {
            out.push(BBox {
                t,
                x: x as f32,
                y: y as f32,
                w: 60.0,
                h: 40.0,
                class_id: (j % 8) as u32,
                track_id: j as u32,
                class_confidence: 1.0,
            });
        }
        t += 33_333;
    }
    out
}

/// `n` events as an event camera reads them out: moving objects' edges fire runs of neighbouring
/// pixels on a row at one time stamp (what EVT 2.1/3.0 vectors encode), rows in readout order
/// within a time stamp, plus isolated noise events. Sorted by time.
pub fn camera_like(n: usize, duration_us: i64, hw: (usize, usize), seed: u64) -> EventBatch {
    let mut rng = Rng::new(seed);
    let (h, w) = (hw.0 as f64, hw.1 as f64);
    let blobs: Vec<[f64; 4]> = (0..60)
        .map(|_| {
            [
                rng.uniform(0.0, w),
                rng.uniform(0.0, h),
                rng.uniform(-200.0, 200.0) / 1e6,
                rng.uniform(-60.0, 60.0) / 1e6,
            ]
        })
        .collect();
    // (t, y, x0, run length, polarity) groups, then sorted into readout order.
    let mut groups: Vec<(i64, u16, u16, u16, u8)> = Vec::with_capacity(n / 3);
    let mut total = 0;
    while total < n {
        let t = rng.below(duration_us as u64) as i64;
        let (x, y, len) = if rng.f64() < 0.85 {
            let b = &blobs[rng.below(60) as usize];
            let ti = t as f64;
            let len = 1 + (-(1.0 - rng.f64()).ln() * 4.0) as u16;
            (
                b[0] + b[2] * ti + 25.0 * rng.normal(),
                b[1] + b[3] * ti + 15.0 * rng.normal(),
                len.min(32),
            )
        } else {
            (rng.uniform(0.0, w), rng.uniform(0.0, h), 1)
        };
        let x0 = (x.rem_euclid(w) as u16).min((w as u16).saturating_sub(len));
        let len = len.min((n - total).min(32) as u16);
        groups.push((t, y.rem_euclid(h) as u16, x0, len, rng.below(2) as u8));
        total += len as usize;
    }
    groups.sort_unstable();
    let mut ev = EventBatch {
        x: Vec::with_capacity(n),
        y: Vec::with_capacity(n),
        p: Vec::with_capacity(n),
        t: Vec::with_capacity(n),
    };
    for (t, y, x0, len, p) in groups {
        for k in 0..len {
            ev.x.push(x0 + k);
            ev.y.push(y);
            ev.p.push(p);
            ev.t.push(t);
        }
    }
    ev
}
