//! The static part of a simulated traffic camera: the street layout (sidewalks, kerbs, lanes, bike lanes, a
//! zebra crossing with a signal), the textured background image, street furniture that occludes passing
//! objects, the photometry (how scene luminance becomes sensor log intensity, day or night) and the slow
//! global illumination change.
//!
//! The camera looks across a street from the side and slightly above: traffic moves left and right, nearer
//! lanes are lower in the image and their objects larger and drawn in front. Lengths are chosen in
//! full-resolution eTraM pixels and multiplied by the pixel scale, so `mini` sees a narrower window of the
//! same street at the network's resolution.

use super::objects::{Class, NUM_CLASSES};
use super::paint::{fractal_noise, hash01, sd_circle, sd_ellipse, sd_rect, value_noise, Canvas};
use evdet_events::rng::Rng;

/// Scene luminance → log intensity: `ln(gain · lum + dark)`. The dark term (dark current, stray light)
/// compresses contrast when the gain is low, which is what makes night scenes low-contrast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Photometry {
    pub gain: f32,
    pub dark: f32,
}

impl Photometry {
    pub const DAY: Photometry = Photometry {
        gain: 1.0,
        dark: 0.01,
    };
    pub const NIGHT: Photometry = Photometry {
        gain: 0.08,
        dark: 0.012,
    };
    pub fn log(&self, lum: f32) -> f32 {
        (self.gain * lum.max(0.0) + self.dark).ln()
    }
}

/// What travels in a lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneKind {
    /// Motor traffic (and a few cyclists), following each other and the signal.
    Road,
    /// Cyclists (and scooters), following each other and the signal.
    Bike,
    /// Pedestrians (and a few wheelchairs and pushed bicycles) walking along a sidewalk; they pass each other.
    Sidewalk,
    /// Pedestrians and wheelchairs that walk along one sidewalk, wait for the signal, cross and walk away.
    Crossing,
}

/// A lane: where objects' feet are, which way they go, how often they come and which classes.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    pub kind: LaneKind,
    /// Image row of the objects' ground contact (sensor px).
    pub foot_y: f64,
    /// Random spread of the foot row per object (sidewalk users walk anywhere across the sidewalk).
    pub spread_y: f64,
    /// +1: moves right, −1: moves left.
    pub dir: f64,
    /// Arrivals per second.
    pub rate: f64,
    /// Relative class frequencies of arrivals.
    pub mix: [f64; NUM_CLASSES],
    /// Stop line: the x a waiting object's front stays behind while its signal is red.
    pub stop_x: Option<f64>,
}

/// The zebra crossing: its x extent and the walking rows on the two sidewalks it joins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crosswalk {
    pub x0: f64,
    pub x1: f64,
    /// Walking rows on the far (upper) and near (lower) sidewalk.
    pub far_y: f64,
    pub near_y: f64,
    /// Spread of the walking rows.
    pub spread_y: f64,
}

/// A fixed-time traffic signal: vehicles green, amber, then red while pedestrians cross.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signal {
    pub vehicle_green_s: f64,
    pub amber_s: f64,
    pub vehicle_red_s: f64,
    pub offset_s: f64,
}

impl Signal {
    fn phase(&self, t_s: f64) -> f64 {
        let cycle = self.vehicle_green_s + self.amber_s + self.vehicle_red_s;
        (t_s + self.offset_s).rem_euclid(cycle)
    }
    /// Vehicles may pass the stop line (green); during amber only those that cannot stop comfortably go.
    pub fn vehicles(&self, t_s: f64) -> Light {
        let p = self.phase(t_s);
        if p < self.vehicle_green_s {
            Light::Green
        } else if p < self.vehicle_green_s + self.amber_s {
            Light::Amber
        } else {
            Light::Red
        }
    }
    /// Pedestrians may start crossing: the vehicle red phase, less a clearance second at each end.
    pub fn pedestrians(&self, t_s: f64) -> Light {
        let p = self.phase(t_s);
        let start = self.vehicle_green_s + self.amber_s + 1.0;
        let end = self.vehicle_green_s + self.amber_s + self.vehicle_red_s - 2.0;
        if p >= start && p < end {
            Light::Green
        } else {
            Light::Red
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Light {
    Green,
    Amber,
    Red,
}

/// A horizontal band of the background, top to bottom.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Band {
    Far,
    Sidewalk,
    Kerb,
    Bike,
    Road,
    Verge,
}

/// The street as the camera sees it.
#[derive(Debug, Clone)]
pub struct Layout {
    pub width: usize,
    pub height: usize,
    /// Sensor px per full-resolution eTraM px.
    pub scale: f64,
    pub lanes: Vec<Lane>,
    pub crosswalk: Crosswalk,
    pub signal: Signal,
    bands: Vec<(Band, f64, f64)>,
    /// Road lane boundaries: (y, kind) with kind 0 = dashed, 1 = centre double line, 2 = edge line.
    lane_lines: Vec<(f64, u8)>,
    road: (f64, f64),
    /// Direction of each road lane, top to bottom, for the stop lines.
    road_lanes: Vec<(f64, f64, f64)>,
}

/// Class mixes of the lane kinds: cars dominate the road, pedestrians the sidewalks; buses, trucks,
/// motorbikes and bicycles are occasional, trams and wheelchairs rare (eTraM's frequencies).
const ROAD_MIX: [f64; NUM_CLASSES] = [0.0, 0.8, 0.01, 0.03, 0.06, 0.08, 0.0, 0.0];
const BIKE_MIX: [f64; NUM_CLASSES] = [0.0, 0.0, 0.85, 0.0, 0.15, 0.0, 0.0, 0.0];
const SIDEWALK_MIX: [f64; NUM_CLASSES] = [0.965, 0.0, 0.02, 0.0, 0.0, 0.0, 0.0, 0.015];
const CROSSING_MIX: [f64; NUM_CLASSES] = [0.98, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.02];
/// A tram line shares one of the middle lanes in some streets.
const TRAM_WEIGHT: f64 = 0.04;

/// Arrivals per second per lane at density 1.
const ROAD_RATE: f64 = 0.26;
const BIKE_RATE: f64 = 0.015;
const SIDEWALK_RATE: f64 = 0.014;
const CROSSING_RATE: f64 = 0.022;

impl Layout {
    /// A random street for a `width`×`height` sensor at `scale` px per eTraM px; `density` multiplies the
    /// arrival rates.
    pub fn generate(width: usize, height: usize, scale: f64, density: f64, rng: &mut Rng) -> Self {
        let (hw, ww) = (height as f64 / scale, width as f64 / scale);
        let mut side_a = rng.uniform(60.0, 95.0);
        let mut side_b = rng.uniform(60.0, 95.0);
        let kerb = 6.0;
        let pitch = rng.uniform(62.0, 76.0);
        let mut bike_a = if rng.f64() < 0.35 { 34.0 } else { 0.0 };
        let mut bike_b = if rng.f64() < 0.35 { 34.0 } else { 0.0 };
        let avail = hw - side_a - side_b - bike_a - bike_b - 2.0 * kerb - 10.0;
        let max_lanes = 3 + rng.below(2) as i64;
        let n = ((avail / pitch).floor() as i64).clamp(2, max_lanes) as usize;
        // A short view (mini) that cannot hold two lanes and full sidewalks: no bike lanes, narrower
        // sidewalks (down to 45 px), so every walking row stays inside the image.
        let fixed = 2.0 * kerb + n as f64 * pitch + 4.0;
        if fixed + side_a + side_b + bike_a + bike_b > hw {
            (bike_a, bike_b) = (0.0, 0.0);
            let room = ((hw - fixed) * 0.5).max(45.0);
            side_a = side_a.min(room);
            side_b = side_b.min(room);
        }
        let used = side_a + side_b + bike_a + bike_b + 2.0 * kerb + n as f64 * pitch;
        let spare = (hw - used).max(0.0);
        let far = spare * rng.uniform(0.45, 0.75);

        // Bands top to bottom, in eTraM px.
        let mut y = 0.0;
        let mut bands = Vec::new();
        let mut push = |b: Band, h: f64, y: &mut f64| {
            bands.push((b, *y, *y + h));
            *y += h;
        };
        push(Band::Far, far, &mut y);
        push(Band::Sidewalk, side_a, &mut y);
        push(Band::Kerb, kerb, &mut y);
        if bike_a > 0.0 {
            push(Band::Bike, bike_a, &mut y);
        }
        let road_top = y;
        push(Band::Road, n as f64 * pitch, &mut y);
        let road_bottom = y;
        if bike_b > 0.0 {
            push(Band::Bike, bike_b, &mut y);
        }
        push(Band::Kerb, kerb, &mut y);
        push(Band::Sidewalk, side_b, &mut y);
        let verge = (hw - y).max(0.0);
        push(Band::Verge, verge, &mut y);

        // The crossing somewhere in the middle of the view; stop lines a little before it.
        let cw = rng.uniform(70.0, 100.0);
        let cx0 = rng.uniform(0.3, 0.7) * ww - cw * 0.5;
        let (cx1, stop_gap) = (cx0 + cw, 14.0);
        let left_on_top = rng.f64() < 0.5;
        let n_top = n / 2 + if n % 2 == 1 && rng.f64() < 0.5 { 1 } else { 0 };
        let tram_lane = if rng.f64() < 0.5 {
            Some(if left_on_top {
                n_top.saturating_sub(1)
            } else {
                n_top.min(n - 1)
            })
        } else {
            None
        };

        let mut lanes = Vec::new();
        let s = scale;
        // Foot traffic grows with the street (more lanes, more people), times how busy this street is, so
        // the pedestrian share does not depend on how many lanes the view holds.
        let walkers = density * (n as f64 / 2.5) * rng.uniform(0.6, 1.6);
        let mut road_lanes = Vec::new();
        for i in 0..n {
            let top = road_top + i as f64 * pitch;
            let upper = i < n_top;
            let dir = if upper == left_on_top { -1.0 } else { 1.0 };
            let mut mix = ROAD_MIX;
            if tram_lane == Some(i) {
                mix[Class::Tram as usize] = TRAM_WEIGHT;
            }
            let stop_x = if dir > 0.0 {
                cx0 - stop_gap
            } else {
                cx1 + stop_gap
            };
            lanes.push(Lane {
                kind: LaneKind::Road,
                foot_y: (top + 0.85 * pitch) * s,
                spread_y: 2.0 * s,
                dir,
                rate: ROAD_RATE * density,
                mix,
                stop_x: Some(stop_x * s),
            });
            road_lanes.push((top * s, (top + pitch) * s, dir));
        }
        for (i, &(b, y0, y1)) in bands.iter().enumerate() {
            match b {
                Band::Bike => {
                    let dir = if (y0 < road_top) == left_on_top {
                        -1.0
                    } else {
                        1.0
                    };
                    let stop_x = if dir > 0.0 {
                        cx0 - stop_gap
                    } else {
                        cx1 + stop_gap
                    };
                    lanes.push(Lane {
                        kind: LaneKind::Bike,
                        foot_y: (y0 + 0.85 * (y1 - y0)) * s,
                        spread_y: 2.0 * s,
                        dir,
                        rate: BIKE_RATE * density,
                        mix: BIKE_MIX,
                        stop_x: Some(stop_x * s),
                    });
                }
                Band::Sidewalk => {
                    for (k, frac) in [0.45, 0.82].into_iter().enumerate() {
                        let dir = if (k + i).is_multiple_of(2) { 1.0 } else { -1.0 };
                        lanes.push(Lane {
                            kind: LaneKind::Sidewalk,
                            foot_y: (y0 + frac * (y1 - y0)) * s,
                            spread_y: 0.12 * (y1 - y0) * s,
                            dir,
                            rate: SIDEWALK_RATE * walkers,
                            mix: SIDEWALK_MIX,
                            stop_x: None,
                        });
                    }
                }
                _ => {}
            }
        }
        let far_walk = road_top - kerb - 0.2 * side_a;
        let near_walk = road_bottom + bike_b + kerb + 0.35 * side_b;
        lanes.push(Lane {
            kind: LaneKind::Crossing,
            foot_y: far_walk * s,
            spread_y: 0.0,
            dir: 1.0,
            rate: CROSSING_RATE * walkers,
            mix: CROSSING_MIX,
            stop_x: None,
        });
        let crosswalk = Crosswalk {
            x0: cx0 * s,
            x1: cx1 * s,
            far_y: far_walk * s,
            near_y: near_walk * s,
            spread_y: 0.1 * side_a.min(side_b) * s,
        };

        let mut lane_lines = Vec::new();
        for i in 1..n {
            let yb = (road_top + i as f64 * pitch) * s;
            // The boundary between the two directions gets the double centre line.
            lane_lines.push((yb, if i == n_top { 1 } else { 0 }));
        }
        lane_lines.push(((road_top + 5.0) * s, 2));
        lane_lines.push(((road_bottom - 5.0) * s, 2));

        let green = rng.uniform(15.0, 25.0);
        let red = rng.uniform(6.0, 9.0);
        let signal = Signal {
            vehicle_green_s: green,
            amber_s: 2.0,
            vehicle_red_s: red,
            offset_s: rng.uniform(0.0, green + red + 2.0),
        };
        Layout {
            width,
            height,
            scale,
            lanes,
            crosswalk,
            signal,
            bands: bands
                .into_iter()
                .map(|(b, y0, y1)| (b, y0 * s, y1 * s))
                .collect(),
            lane_lines,
            road: (road_top * s, road_bottom * s),
            road_lanes,
        }
    }

    /// The background as luminance, row-major `height × width`.
    pub fn paint_background(&self, rng: &mut Rng) -> Vec<f32> {
        let (w, h, s) = (self.width, self.height, self.scale as f32);
        let mut c = Canvas::new(w, h);
        let seed = rng.next_u64();
        // Per-band base looks, drawn once per sequence.
        let sidewalk_lum = rng.uniform(0.32, 0.5) as f32;
        let tile = rng.uniform(24.0, 38.0) as f32 * s;
        let asphalt = rng.uniform(0.11, 0.2) as f32;
        let bike_lum = rng.uniform(0.18, 0.28) as f32;
        let grass = rng.uniform(0.08, 0.16) as f32;
        let sky = rng.uniform(0.7, 0.95) as f32;
        // Building facades along the far band: (x0, x1, roof y, lum, window pitch).
        let mut buildings = Vec::new();
        let far = self
            .bands
            .iter()
            .find(|b| b.0 == Band::Far)
            .map_or((0.0, 0.0), |b| (b.1, b.2));
        let mut x = -rng.uniform(0.0, 100.0) * s as f64;
        while x < w as f64 {
            let bw = rng.uniform(90.0, 260.0) * s as f64;
            let roof = far.0 + rng.uniform(-0.2, 0.6) * (far.1 - far.0);
            buildings.push((
                x,
                x + bw,
                roof,
                rng.uniform(0.15, 0.6) as f32,
                rng.uniform(24.0, 34.0) * s as f64,
            ));
            x += bw + rng.uniform(0.0, 12.0) * s as f64;
        }
        for y in 0..h {
            let yf = y as f64 + 0.5;
            let band = self
                .bands
                .iter()
                .find(|b| yf >= b.1 && yf < b.2)
                .map_or(Band::Verge, |b| b.0);
            let row = &mut c.lum[y * w..(y + 1) * w];
            for (xi, v) in row.iter_mut().enumerate() {
                let (xf, yf32) = (xi as f32 + 0.5, yf as f32);
                *v = match band {
                    Band::Far => {
                        match buildings
                            .iter()
                            .find(|b| (xf as f64) >= b.0 && (xf as f64) < b.1 && yf >= b.2)
                        {
                            Some(&(bx0, _, roof, lum, pitch)) => {
                                let (u, v2) = (
                                    ((xf as f64 - bx0) % pitch) / pitch,
                                    ((yf - roof) % pitch) / pitch,
                                );
                                let lit = hash01(
                                    ((xf as f64 - bx0) / pitch) as i64,
                                    ((yf - roof) / pitch) as i64,
                                    seed ^ 7,
                                ) < 0.2;
                                if u > 0.25
                                    && u < 0.75
                                    && v2 > 0.2
                                    && v2 < 0.8
                                    && yf - roof > 0.3 * pitch
                                {
                                    if lit {
                                        0.55
                                    } else {
                                        0.06
                                    }
                                } else {
                                    lum * (1.0 + 0.2 * fractal_noise(xf, yf32, 6.0 * s, seed))
                                }
                            }
                            None => sky * (1.0 + 0.05 * fractal_noise(xf, yf32, 80.0 * s, seed)),
                        }
                    }
                    Band::Sidewalk => {
                        let grout = (xf % tile) < 1.2 * s.max(0.8)
                            || (yf32 % (tile * 0.6)) < 1.0 * s.max(0.8);
                        let base = sidewalk_lum
                            * (1.0 + 0.25 * fractal_noise(xf, yf32, 5.0 * s, seed ^ 1));
                        if grout {
                            base * 0.7
                        } else {
                            base
                        }
                    }
                    Band::Kerb => 0.6 * (1.0 + 0.2 * fractal_noise(xf, yf32, 4.0 * s, seed ^ 2)),
                    Band::Road => {
                        let fine = fractal_noise(xf, yf32, 3.0 * s, seed ^ 3);
                        let coarse = fractal_noise(xf, yf32, 60.0 * s, seed ^ 4);
                        asphalt * (1.0 + 0.35 * fine + 0.3 * coarse)
                    }
                    Band::Bike => {
                        bike_lum * (1.0 + 0.3 * fractal_noise(xf, yf32, 3.0 * s, seed ^ 5))
                    }
                    Band::Verge => grass * (1.0 + 0.9 * fractal_noise(xf, yf32, 2.5 * s, seed ^ 6)),
                };
            }
        }
        // The kerb casts a shadow on the road surface below it.
        for &(b, y0, y1) in &self.bands {
            if b == Band::Kerb {
                let y = y1 - 0.35 * (y1 - y0);
                c.fill(
                    (0.0, y as f32, w as f32, y1 as f32),
                    |_, py| sd_rect(0.0, py, -1.0, y as f32, 1.0, y1 as f32, 0.0),
                    |_, _| 0.08,
                );
            }
        }
        self.paint_markings(&mut c, seed);
        c.lum
    }

    fn paint_markings(&self, c: &mut Canvas, seed: u64) {
        let s = self.scale as f32;
        let w = self.width as f32;
        let lw = (3.0 * s).max(1.0);
        let cw = &self.crosswalk;
        let (cx0, cx1) = (cw.x0 as f32, cw.x1 as f32);
        let worn = move |x: f32, y: f32, lum: f32| {
            lum * (0.8 + 0.4 * value_noise(x, y, 4.0 * s, seed ^ 9))
        };
        let bar = |c: &mut Canvas, x0: f32, y0: f32, x1: f32, y1: f32, lum: f32| {
            c.fill(
                (x0, y0, x1, y1),
                |x, y| sd_rect(x, y, x0, y0, x1, y1, 0.0),
                |x, y| worn(x, y, lum),
            );
        };
        for &(y, kind) in &self.lane_lines {
            let y = y as f32;
            match kind {
                0 => {
                    let (dash, gap) = (40.0 * s, 50.0 * s);
                    let mut x = -((seed % 50) as f32) * s;
                    while x < w {
                        let (a, b) = (x, x + dash);
                        // Markings stop at the crossing.
                        if b < cx0 - 8.0 * s || a > cx1 + 8.0 * s {
                            bar(c, a, y - lw * 0.5, b, y + lw * 0.5, 0.75);
                        }
                        x += dash + gap;
                    }
                }
                1 => {
                    for dy in [-2.5 * s, 2.5 * s] {
                        bar(
                            c,
                            0.0,
                            y + dy - lw * 0.5,
                            cx0 - 8.0 * s,
                            y + dy + lw * 0.5,
                            0.55,
                        );
                        bar(
                            c,
                            cx1 + 8.0 * s,
                            y + dy - lw * 0.5,
                            w,
                            y + dy + lw * 0.5,
                            0.55,
                        );
                    }
                }
                _ => {
                    bar(c, 0.0, y - lw * 0.5, cx0 - 8.0 * s, y + lw * 0.5, 0.75);
                    bar(c, cx1 + 8.0 * s, y - lw * 0.5, w, y + lw * 0.5, 0.75);
                }
            }
        }
        // Zebra stripes across the road: bars parallel to the traffic, stacked down the crossing.
        let (rt, rb) = (self.road.0 as f32, self.road.1 as f32);
        let stripe = 12.0 * s;
        let mut y = rt + 4.0 * s;
        while y + stripe < rb - 2.0 * s {
            bar(c, cx0, y, cx1, y + stripe, 0.8);
            y += 2.0 * stripe;
        }
        // Stop lines before the crossing, on the side each lane arrives from.
        for &(y0, y1, dir) in &self.road_lanes {
            let x = if dir > 0.0 {
                cx0 - 12.0 * s
            } else {
                cx1 + 12.0 * s
            };
            bar(
                c,
                x - 2.5 * s,
                y0 as f32 + 2.0 * s,
                x + 2.5 * s,
                y1 as f32 - 2.0 * s,
                0.75,
            );
        }
    }

    /// Street furniture in front of or behind traffic: lamp and signal poles, trees, signs, bollards.
    pub fn props(&self, rng: &mut Rng) -> Vec<Prop> {
        let s = self.scale;
        let ww = self.width as f64 / s;
        let count = |per_1280: f64, rng: &mut Rng| -> usize {
            let mean = per_1280 * ww / 1280.0;
            mean.floor() as usize + usize::from(rng.f64() < mean.fract())
        };
        let sidewalks: Vec<(f64, f64)> = self
            .bands
            .iter()
            .filter(|b| b.0 == Band::Sidewalk)
            .map(|b| (b.1, b.2))
            .collect();
        let (far_side, near_side) = (sidewalks[0], sidewalks[sidewalks.len() - 1]);
        let mut props = Vec::new();
        let cw = self.crosswalk;
        // The signal pole at the near corner of the crossing.
        props.push(Prop::pole(
            cw.x1 + 10.0 * s,
            near_side.0 + 4.0 * s,
            150.0 * s,
            true,
            rng,
        ));
        for _ in 0..count(2.0, rng) {
            props.push(Prop::pole(
                rng.uniform(0.0, self.width as f64),
                near_side.0 + 5.0 * s,
                260.0 * s,
                false,
                rng,
            ));
        }
        for _ in 0..count(2.0, rng) {
            let x = rng.uniform(0.0, self.width as f64);
            if x > cw.x0 - 60.0 * s && x < cw.x1 + 60.0 * s {
                continue;
            }
            props.push(Prop::tree(
                x,
                far_side.0 + 0.3 * (far_side.1 - far_side.0),
                s,
                rng,
            ));
        }
        for _ in 0..count(1.0, rng) {
            props.push(Prop::sign(
                rng.uniform(0.0, self.width as f64),
                near_side.0 + 6.0 * s,
                s,
                rng,
            ));
        }
        for _ in 0..count(3.0, rng) {
            props.push(Prop::bollard(
                rng.uniform(0.0, self.width as f64),
                near_side.0 + 8.0 * s,
                s,
            ));
        }
        props
    }
}

/// A static occluder: its picture and where its foot stands (objects whose feet are lower in the image
/// pass in front of it).
#[derive(Debug, Clone)]
pub struct Prop {
    pub canvas: Canvas,
    /// Foot point (bottom centre) in sensor px.
    pub foot: (f64, f64),
}

impl Prop {
    fn pole(x: f64, foot_y: f64, height: f64, signal: bool, rng: &mut Rng) -> Prop {
        let pw = (height / 45.0).max(1.5);
        let head = if signal { height * 0.09 } else { height * 0.16 };
        let (cw, ch) = ((head * 1.6 + pw).ceil(), height.min(foot_y).max(4.0).ceil());
        let mut c = Canvas::new(cw as usize, ch as usize);
        let (cwf, chf, pwf) = (cw as f32, ch as f32, pw as f32);
        let cx = cwf * 0.5;
        let lum = rng.uniform(0.2, 0.5) as f32;
        c.fill(
            (cx - pwf, 0.0, cx + pwf, chf),
            |px, py| {
                sd_rect(
                    px,
                    py,
                    cx - pwf * 0.5,
                    chf - height as f32,
                    cx + pwf * 0.5,
                    chf,
                    0.0,
                )
            },
            |px, _| lum * (0.8 + 0.4 * ((px - cx) / pwf + 0.5)),
        );
        let top = chf - height as f32;
        if signal {
            let (bw, bh) = (head as f32 * 0.9, head as f32 * 2.4);
            let (x0, y0) = (cx - bw * 0.5, top + 0.02 * height as f32);
            c.fill(
                (x0, y0, x0 + bw, y0 + bh),
                |px, py| sd_rect(px, py, x0, y0, x0 + bw, y0 + bh, bw * 0.15),
                |_, _| 0.04,
            );
            for k in 0..3 {
                let cy = y0 + bh * (0.2 + 0.3 * k as f32);
                let r = bw * 0.28;
                c.fill(
                    (cx - r, cy - r, cx + r, cy + r),
                    |px, py| sd_circle(px, py, cx, cy, r),
                    |_, _| if k == 1 { 0.5 } else { 0.12 },
                );
            }
        } else {
            // Lamp arm and head over the road.
            let (ax1, ay) = (cwf - 1.0, top + pwf);
            c.fill(
                (cx, ay - pwf, ax1, ay + pwf),
                |px, py| sd_rect(px, py, cx, ay - pwf * 0.4, ax1, ay + pwf * 0.4, 0.0),
                |_, _| lum,
            );
            let (hx, hy) = (ax1 - head as f32 * 0.4, ay + pwf);
            c.fill(
                (
                    hx - head as f32 * 0.4,
                    hy - 2.0,
                    hx + head as f32 * 0.4,
                    hy + head as f32 * 0.3,
                ),
                |px, py| sd_ellipse(px, py, hx, hy, head as f32 * 0.4, head as f32 * 0.15),
                |_, _| 0.7,
            );
        }
        Prop {
            canvas: c,
            foot: (x, foot_y),
        }
    }

    fn tree(x: f64, foot_y: f64, s: f64, rng: &mut Rng) -> Prop {
        let crown_w = rng.uniform(60.0, 110.0) * s;
        let crown_h = crown_w * rng.uniform(0.7, 1.0);
        let trunk_h = rng.uniform(40.0, 80.0) * s;
        let height = (trunk_h + crown_h).min(foot_y).max(4.0);
        let (cw, ch) = (crown_w.ceil() as usize + 2, height.ceil() as usize);
        let mut c = Canvas::new(cw, ch);
        let (cwf, chf) = (cw as f32, ch as f32);
        let cx = cwf * 0.5;
        let tw = (8.0 * s) as f32;
        c.fill(
            (cx - tw, 0.0, cx + tw, chf),
            |px, py| {
                sd_rect(
                    px,
                    py,
                    cx - tw * 0.5,
                    chf - trunk_h as f32 - 4.0,
                    cx + tw * 0.5,
                    chf,
                    0.0,
                )
            },
            |_, _| 0.08,
        );
        let (cy, rx, ry) = (
            chf - trunk_h as f32 - crown_h as f32 * 0.45,
            crown_w as f32 * 0.5,
            crown_h as f32 * 0.5,
        );
        let seed = rng.next_u64();
        let leaf = rng.uniform(0.06, 0.14) as f32;
        let cell = (4.0 * s) as f32;
        // Leafy edge: the outline is perturbed by noise, the inside mottled.
        c.fill(
            (cx - rx, cy - ry, cx + rx, cy + ry),
            |px, py| {
                sd_ellipse(px, py, cx, cy, rx * 0.9, ry * 0.9)
                    + 6.0 * s as f32 * fractal_noise(px, py, cell * 2.0, seed)
            },
            |px, py| leaf * (1.0 + 1.2 * fractal_noise(px, py, cell, seed ^ 1)),
        );
        Prop {
            canvas: c,
            foot: (x, foot_y),
        }
    }

    fn sign(x: f64, foot_y: f64, s: f64, rng: &mut Rng) -> Prop {
        let height = (110.0 * s).min(foot_y).max(4.0);
        let plate = 26.0 * s;
        let (cw, ch) = (plate.ceil() as usize + 2, height.ceil() as usize);
        let mut c = Canvas::new(cw, ch);
        let (cwf, chf) = (cw as f32, ch as f32);
        let cx = cwf * 0.5;
        let pw = (2.5 * s).max(1.0) as f32;
        c.fill(
            (cx - pw, 0.0, cx + pw, chf),
            |px, py| {
                sd_rect(
                    px,
                    py,
                    cx - pw * 0.5,
                    chf - height as f32,
                    cx + pw * 0.5,
                    chf,
                    0.0,
                )
            },
            |_, _| 0.4,
        );
        let r = plate as f32 * 0.5;
        let cy = chf - height as f32 + r;
        let round = rng.f64() < 0.5;
        let inner = rng.uniform(0.05, 0.8) as f32;
        c.fill(
            (cx - r, cy - r, cx + r, cy + r),
            |px, py| {
                if round {
                    sd_circle(px, py, cx, cy, r)
                } else {
                    sd_rect(px, py, cx - r, cy - r, cx + r, cy + r, r * 0.1)
                }
            },
            |px, py| {
                if sd_circle(px, py, cx, cy, r * 0.7) < 0.0 {
                    inner
                } else {
                    0.85
                }
            },
        );
        Prop {
            canvas: c,
            foot: (x, foot_y),
        }
    }

    fn bollard(x: f64, foot_y: f64, s: f64) -> Prop {
        let (bw, bh) = ((6.0 * s).max(2.0), (24.0 * s).min(foot_y).max(3.0));
        let mut c = Canvas::new(bw.ceil() as usize, bh.ceil() as usize);
        let (w, h) = (c.w as f32, c.h as f32);
        c.fill(
            (0.0, 0.0, w, h),
            |px, py| sd_rect(px, py, 0.0, 0.0, w, h, w * 0.3),
            |_, py| if py < h * 0.25 { 0.8 } else { 0.15 },
        );
        Prop {
            canvas: c,
            foot: (x, foot_y),
        }
    }
}

/// Slow global illumination change (clouds, dusk): a sinusoid in log intensity, zero at t = 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Illumination {
    pub amplitude: f64,
    pub period_s: f64,
    pub phase: f64,
}

impl Illumination {
    pub const NONE: Illumination = Illumination {
        amplitude: 0.0,
        period_s: 1.0,
        phase: 0.0,
    };

    pub fn random(max_amplitude: f64, rng: &mut Rng) -> Self {
        Self {
            amplitude: rng.uniform(0.4, 1.0) * max_amplitude,
            period_s: rng.uniform(30.0, 90.0),
            phase: rng.uniform(0.0, std::f64::consts::TAU),
        }
    }
    pub fn is_static(&self) -> bool {
        self.amplitude == 0.0
    }
    /// Log-intensity offset at `t_us`.
    pub fn at(&self, t_us: i64) -> f32 {
        if self.is_static() {
            return 0.0;
        }
        let w = std::f64::consts::TAU / self.period_s;
        (self.amplitude * ((t_us as f64 * 1e-6 * w + self.phase).sin() - self.phase.sin())) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_fit_the_frame_and_have_every_lane_kind() {
        for (w, h, s) in [(1280, 720, 1.0), (320, 192, 0.5)] {
            for seed in 0..20 {
                let mut rng = Rng::new(seed);
                let l = Layout::generate(w, h, s, 1.0, &mut rng);
                assert!(l.lanes.iter().filter(|l| l.kind == LaneKind::Road).count() >= 2);
                assert!(l.lanes.iter().any(|l| l.kind == LaneKind::Sidewalk));
                for lane in &l.lanes {
                    assert!(lane.foot_y > 0.0 && lane.foot_y < h as f64, "{lane:?}");
                }
                assert!(l.crosswalk.x0 > 0.0 && l.crosswalk.x1 < w as f64);
            }
        }
    }

    #[test]
    fn signal_gives_pedestrians_green_only_during_vehicle_red() {
        let s = Signal {
            vehicle_green_s: 15.0,
            amber_s: 2.0,
            vehicle_red_s: 9.0,
            offset_s: 3.0,
        };
        for k in 0..2600 {
            let t = k as f64 * 0.01;
            if s.pedestrians(t) == Light::Green {
                assert_eq!(s.vehicles(t), Light::Red, "t={t}");
            }
        }
    }
}
