//! The event pixel: each pixel memorises the log intensity at its last event and fires when the present
//! log intensity has moved by its contrast threshold (ON up, OFF down), once per threshold crossed, with
//! the crossing time interpolated inside the simulation step (the intensity is taken to change linearly
//! across a step) plus a little timing jitter. Thresholds vary from pixel to pixel; a refractory period
//! drops crossings that come too soon after the previous event (the reference still moves, so the
//! pixel does not fire a burst afterwards). Background-activity noise and a few hot pixels are added as
//! Poisson processes.

use super::paint::mix64;
use evdet_events::rng::Rng;

/// Sensor parameters of a preset.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SensorParams {
    /// Mean contrast threshold in log intensity (ON and OFF).
    pub contrast: f32,
    /// Relative standard deviation of the per-pixel thresholds.
    pub threshold_sigma: f32,
    /// Refractory period, µs.
    pub refractory_us: i64,
    /// Background-activity noise rate per pixel, Hz.
    pub background_rate_hz: f64,
    /// Number of hot pixels per million pixels, and their event rate range in Hz.
    pub hot_pixels_per_mpix: f64,
    pub hot_rate_hz: (f64, f64),
    /// Timestamp jitter (uniform ±), µs.
    pub jitter_us: i64,
}

/// One event before it is written; `p` 1 = ON, 0 = OFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ev {
    pub t: i64,
    pub x: u16,
    pub y: u16,
    pub p: u8,
}

/// The per-pixel state every re-rendered pixel reads, packed in 16 bytes (the time of the last event,
/// needed only when a pixel fires, lives in a separate array: the renderer is memory-bound).
#[derive(Debug, Clone, Copy)]
pub struct Pixel {
    /// Log intensity at the last event (ON/OFF crossings are measured from here).
    pub reference: f32,
    /// Log intensity of the scene (without the global illumination) as last rendered.
    pub current: f32,
    pub c_on: f32,
    pub c_off: f32,
}

impl Pixel {
    /// Whether log intensity `l` is a threshold away from the reference (the cheap test before [`fire`]).
    #[inline]
    pub fn crosses(&self, l: f32) -> bool {
        let d = l - self.reference;
        d >= self.c_on || d <= -self.c_off
    }
}

/// "No event yet" for the refractory test.
pub const NEVER: i64 = i64::MIN / 4;

/// At most this many events per pixel per step: an extreme jump (a light switching on) saturates.
const MAX_PER_STEP: u32 = 12;

/// The sensor: pixel states and the fixed noise sources.
pub struct Sensor {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<Pixel>,
    /// Time of each pixel's last event, µs.
    pub last_t: Vec<i64>,
    pub params: SensorParams,
    hot: Vec<(u16, u16, f64)>,
    /// Seed of the position-keyed jitter.
    pub jitter_seed: u64,
}

impl Sensor {
    /// A sensor with per-pixel thresholds and hot pixels drawn from `rng`; the scene intensities and
    /// references are set by [`Sensor::settle`] after the first frame has been rendered.
    pub fn new(width: usize, height: usize, params: SensorParams, rng: &mut Rng) -> Self {
        let (c, sig) = (params.contrast, params.threshold_sigma);
        let pixels = (0..width * height)
            .map(|_| {
                let c_on = (c * (1.0 + sig * rng.normal() as f32)).max(0.3 * c);
                let c_off = (c * (1.0 + sig * rng.normal() as f32)).max(0.3 * c);
                Pixel {
                    reference: 0.0,
                    current: 0.0,
                    c_on,
                    c_off,
                }
            })
            .collect();
        let mean_hot = params.hot_pixels_per_mpix * (width * height) as f64 / 1e6;
        let n_hot = mean_hot.floor() as usize + usize::from(rng.f64() < mean_hot.fract());
        let hot = (0..n_hot)
            .map(|_| {
                (
                    rng.below(width as u64) as u16,
                    rng.below(height as u64) as u16,
                    rng.uniform(params.hot_rate_hz.0, params.hot_rate_hz.1),
                )
            })
            .collect();
        Self {
            width,
            height,
            pixels,
            last_t: vec![NEVER; width * height],
            params,
            hot,
            jitter_seed: rng.next_u64(),
        }
    }

    /// Sets every reference to the rendered scene under illumination `g0`, offset by a random part of the
    /// threshold: a pixel's memorised level is wherever its last event left it, so pixels do not all
    /// fire together at the first global change.
    pub fn settle(&mut self, g0: f32, rng: &mut Rng) {
        for p in &mut self.pixels {
            p.reference = p.current + g0 + (rng.f64() as f32 - 0.5) * 0.8 * p.c_on.min(p.c_off);
        }
    }

    /// Background activity and hot pixels during `[t0, t0 + dt)`.
    pub fn noise(&self, rng: &mut Rng, t0: i64, dt: i64, out: &mut Vec<Ev>) {
        let dt_s = dt as f64 * 1e-6;
        let n = poisson(
            rng,
            self.params.background_rate_hz * (self.width * self.height) as f64 * dt_s,
        );
        for _ in 0..n {
            let x = rng.below(self.width as u64) as u16;
            let y = rng.below(self.height as u64) as u16;
            let t = t0 + rng.below(dt as u64) as i64;
            out.push(Ev {
                t,
                x,
                y,
                p: rng.below(2) as u8,
            });
        }
        for &(x, y, rate) in &self.hot {
            for _ in 0..poisson(rng, rate * dt_s) {
                out.push(Ev {
                    t: t0 + rng.below(dt as u64) as i64,
                    x,
                    y,
                    p: rng.below(2) as u8,
                });
            }
        }
    }
}

/// Events of one pixel whose log intensity went from `l0` to `l1` (global illumination included) during
/// `[t0, t0 + dt)`.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn fire(
    px: &mut Pixel,
    last_t: &mut i64,
    l0: f32,
    l1: f32,
    t0: i64,
    dt: i64,
    x: u16,
    y: u16,
    params: &SensorParams,
    jitter_seed: u64,
    out: &mut Vec<Ev>,
) {
    let d = l1 - px.reference;
    let (c, pol, sign) = if d >= px.c_on {
        (px.c_on, 1u8, 1.0f32)
    } else if d <= -px.c_off {
        (px.c_off, 0u8, -1.0f32)
    } else {
        return;
    };
    let crossings = (d.abs() / c) as u32;
    let span = l1 - l0;
    let key = jitter_seed
        ^ ((y as u64) << 48 | (x as u64) << 32)
        ^ (t0 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for k in 1..=crossings.min(MAX_PER_STEP) {
        let level = px.reference + sign * c * k as f32;
        // When the crossing happened: where `level` lies between the step's start and end intensity.
        let frac = if span.abs() > 1e-6 {
            ((level - l0) / span).clamp(0.0, 1.0)
        } else {
            0.5
        };
        let mut t = t0 + (frac as f64 * dt as f64) as i64;
        if params.jitter_us > 0 {
            let j = mix64(key ^ k as u64) % (2 * params.jitter_us as u64 + 1);
            t += j as i64 - params.jitter_us;
        }
        let t = t.clamp(t0, t0 + dt - 1);
        if t >= *last_t + params.refractory_us {
            out.push(Ev { t, x, y, p: pol });
            *last_t = t;
        }
    }
    px.reference += sign * c * crossings as f32;
}

/// Poisson-distributed count (Knuth for small means, a rounded normal for large ones).
pub fn poisson(rng: &mut Rng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        return (mean + mean.sqrt() * rng.normal()).round().max(0.0) as u64;
    }
    let limit = (-mean).exp();
    let mut k = 0;
    let mut p = rng.f64();
    while p > limit {
        k += 1;
        p *= rng.f64();
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: SensorParams = SensorParams {
        contrast: 0.2,
        threshold_sigma: 0.0,
        refractory_us: 100,
        background_rate_hz: 0.0,
        hot_pixels_per_mpix: 0.0,
        hot_rate_hz: (0.0, 0.0),
        jitter_us: 0,
    };

    fn pixel() -> Pixel {
        Pixel {
            reference: 0.0,
            current: 0.0,
            c_on: 0.2,
            c_off: 0.2,
        }
    }

    #[test]
    fn one_event_per_threshold_crossed_with_interpolated_times() {
        let (mut px, mut lt) = (pixel(), NEVER);
        let mut out = Vec::new();
        fire(
            &mut px, &mut lt, 0.0, 0.65, 1000, 1000, 3, 4, &P, 0, &mut out,
        );
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|e| e.p == 1 && e.x == 3 && e.y == 4));
        let ts: Vec<i64> = out.iter().map(|e| e.t).collect();
        assert_eq!(ts, vec![1307, 1615, 1923]);
        assert!((px.reference - 0.6).abs() < 1e-6);
        out.clear();
        fire(
            &mut px, &mut lt, 0.65, 0.3, 2000, 1000, 3, 4, &P, 0, &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].p, 0);
    }

    #[test]
    fn refractory_period_drops_close_crossings() {
        let (mut px, mut lt) = (pixel(), NEVER);
        let mut out = Vec::new();
        // Ten crossings within 500 µs: at most one per 100 µs survives.
        fire(&mut px, &mut lt, 0.0, 2.05, 0, 500, 0, 0, &P, 0, &mut out);
        assert!(out.len() <= 5 && !out.is_empty(), "{}", out.len());
        assert!((px.reference - 2.0).abs() < 1e-5);
    }

    #[test]
    fn no_change_no_events() {
        let (mut px, mut lt) = (pixel(), NEVER);
        let mut out = Vec::new();
        fire(&mut px, &mut lt, 0.1, 0.1, 0, 1000, 0, 0, &P, 0, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn poisson_mean() {
        let mut rng = Rng::new(5);
        for mean in [0.3, 4.0, 80.0] {
            let n = 4000;
            let s: u64 = (0..n).map(|_| poisson(&mut rng, mean)).sum();
            let m = s as f64 / n as f64;
            assert!((m - mean).abs() < 0.1 * mean + 0.05, "{mean}: {m}");
        }
    }
}
