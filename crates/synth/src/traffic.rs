//! Road users and how they move: each object follows a path (a straight lane, or sidewalk → crossing →
//! sidewalk for pedestrians who cross), with its speed from the Intelligent Driver Model (IDM) so that
//! vehicles keep their distance, queue and stop at the stop line on red and start again on green;
//! pedestrians wait at the kerb for their green and now and then stop on the sidewalk. Stopped objects do
//! not move at all, so they emit (almost) no events, as in real recordings.
//!
//! Arrivals are Poisson per lane; objects enter beyond the image edge and are removed after leaving it.
//! The traffic is simulated for a while before recording starts, so the first frame is already busy.

use super::objects::{self, Class, Style};
use super::scene::{Lane, LaneKind, Layout, Light, Signal};
use super::sprite::{Facing, Rect, SpriteSet};
use evdet_events::rng::Rng;
use std::sync::Arc;

/// A polyline path of axis-parallel segments.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pts: Vec<(f64, f64)>,
    cum: Vec<f64>,
}

impl Path {
    pub fn new(pts: Vec<(f64, f64)>) -> Self {
        let mut cum = vec![0.0];
        for w in pts.windows(2) {
            let d = ((w[1].0 - w[0].0).powi(2) + (w[1].1 - w[0].1).powi(2)).sqrt();
            cum.push(cum[cum.len() - 1] + d);
        }
        Self { pts, cum }
    }
    pub fn len(&self) -> f64 {
        *self.cum.last().unwrap_or(&0.0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() <= 0.0
    }
    /// Position and facing at arc length `s` (clamped to the path).
    pub fn at(&self, s: f64) -> ((f64, f64), Facing) {
        let s = s.clamp(0.0, self.len());
        let mut i = self.cum.partition_point(|&c| c <= s).saturating_sub(1);
        i = i.min(self.pts.len().saturating_sub(2));
        let (a, b) = (self.pts[i], self.pts[i + 1]);
        let seg = (self.cum[i + 1] - self.cum[i]).max(1e-9);
        let f = ((s - self.cum[i]) / seg).clamp(0.0, 1.0);
        ((a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f), facing(a, b))
    }
    /// Facings along the path (the sprite views an object on it needs).
    pub fn facings(&self) -> Vec<Facing> {
        let mut v: Vec<Facing> = Vec::new();
        for w in self.pts.windows(2) {
            let f = facing(w[0], w[1]);
            if !v.contains(&f) {
                v.push(f);
            }
        }
        v
    }
}

fn facing(a: (f64, f64), b: (f64, f64)) -> Facing {
    if (b.0 - a.0).abs() >= (b.1 - a.1).abs() {
        if b.0 >= a.0 {
            Facing::Right
        } else {
            Facing::Left
        }
    } else {
        Facing::Front
    }
}

/// Which light an object obeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obeys {
    Vehicles,
    Pedestrians,
    Nothing,
}

/// One road user.
#[derive(Debug, Clone)]
pub struct Agent {
    pub track_id: u32,
    pub class: Class,
    pub lane: usize,
    pub path: Path,
    /// Arc length along the path (of the foot point) and speed, sensor px and px/s.
    pub s: f64,
    pub v: f64,
    pub v0: f64,
    pub accel: f64,
    pub decel: f64,
    /// Sprite size (side view), sensor px.
    pub w: f64,
    pub h: f64,
    pub style: Style,
    /// Arc length at which its signal applies, and for whom.
    pub stop_s: Option<f64>,
    pub obeys: Obeys,
    /// Decided to go through amber/red (too close to stop) or already crossing.
    pub committed: bool,
    /// (until time, stop position) of a pause on the sidewalk.
    pub pause: Option<(f64, f64)>,
    pub next_pause: f64,
    /// Distance travelled, drives the animation.
    pub travelled: f64,
    /// Pictures, painted when the object is first drawn.
    pub sprites: Option<Arc<SpriteSet>>,
    /// What was drawn at the previous step: (rect, change key) — the renderer's dirty tracking.
    pub drawn: Option<(Rect, DrawKey)>,
    /// Foot position at the start of the present step (labels interpolate inside a step).
    pub prev_foot: (f64, f64),
}

/// Everything that changes an object's pixels: integer origin, sub-pixel offset, facing and frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrawKey {
    pub ix: i32,
    pub iy: i32,
    pub fx: u16,
    pub fy: u16,
    pub facing: Facing,
    pub frame: u16,
}

impl Agent {
    pub fn foot(&self) -> (f64, f64) {
        self.path.at(self.s).0
    }
    pub fn facing(&self) -> Facing {
        self.path.at(self.s).1
    }
    /// Animation phase in [0, 1).
    pub fn phase(&self) -> f64 {
        let cycle = self.class.spec().cycle_heights * self.h;
        (self.travelled / cycle.max(1e-6)).rem_euclid(1.0)
    }
    /// Half the extent along a horizontal path (for gaps between followers).
    fn half_len(&self) -> f64 {
        self.w * 0.5
    }
}

/// An arrival waiting for room to enter its lane.
#[derive(Debug, Clone)]
struct Arrival {
    class: Class,
    w: f64,
    h: f64,
    v0: f64,
    style: Style,
}

/// All road users of a sequence.
pub struct Traffic {
    pub agents: Vec<Agent>,
    lanes: Vec<Lane>,
    signal: Signal,
    crosswalk: super::scene::Crosswalk,
    width: f64,
    height: f64,
    scale: f64,
    next_arrival: Vec<f64>,
    waiting: Vec<Vec<Arrival>>,
    next_track: u32,
    rng: Rng,
}

/// IDM time headway (s) and the minimum gap (full-resolution px) for vehicles and for walkers.
const HEADWAY_VEHICLE: f64 = 1.1;
const HEADWAY_WALKER: f64 = 0.5;
const GAP_VEHICLE: f64 = 55.0;
const GAP_WALKER: f64 = 8.0;
/// At most this many arrivals wait per lane (a jammed lane drops further arrivals).
const MAX_WAITING: usize = 3;

impl Traffic {
    pub fn new(layout: &Layout, rng: Rng, t_s: f64) -> Self {
        let mut t = Self {
            agents: Vec::new(),
            lanes: layout.lanes.clone(),
            signal: layout.signal,
            crosswalk: layout.crosswalk,
            width: layout.width as f64,
            height: layout.height as f64,
            scale: layout.scale,
            next_arrival: Vec::new(),
            waiting: vec![Vec::new(); layout.lanes.len()],
            next_track: 1,
            rng,
        };
        t.next_arrival = (0..t.lanes.len())
            .map(|i| t_s + exp_interval(&mut t.rng, t.lanes[i].rate))
            .collect();
        t
    }

    /// Simulates from `t_s` to `t_end_s` in coarse steps (before recording: fills the street).
    pub fn warm_up(&mut self, t_s: f64, t_end_s: f64) {
        let dt: f64 = 0.02;
        let mut t = t_s;
        while t < t_end_s - 1e-9 {
            let step = dt.min(t_end_s - t);
            self.step(t, step);
            t += step;
        }
    }

    /// Advances every object from `t_s` by `dt` seconds, lets new ones enter and removes those gone.
    pub fn step(&mut self, t_s: f64, dt: f64) {
        for a in &mut self.agents {
            a.prev_foot = a.foot();
        }
        self.arrivals(t_s + dt);
        let acc = self.accelerations(t_s);
        for (a, (acc, hold)) in self.agents.iter_mut().zip(acc) {
            let mut v = (a.v + acc * dt).max(0.0);
            // IDM approaches a stop asymptotically; a crawl close behind an obstacle becomes a full stop
            // (until the obstacle moves away or turns green), so waiting objects stand still and stay quiet.
            if hold && v < 0.1 * a.v0 {
                v = 0.0;
            }
            let ds = v * dt;
            a.v = v;
            a.s += ds;
            a.travelled += ds;
        }
        self.agents.retain(|a| a.s < a.path.len());
    }

    /// Each object's acceleration, and whether it is close enough behind an obstacle to stand.
    fn accelerations(&mut self, t_s: f64) -> Vec<(f64, bool)> {
        let n = self.agents.len();
        let mut acc = vec![(0.0, false); n];
        // Followers: per interacting lane, order by progress (x · direction).
        let mut order: Vec<usize> = (0..n)
            .filter(|&i| {
                matches!(
                    self.lanes[self.agents[i].lane].kind,
                    LaneKind::Road | LaneKind::Bike
                )
            })
            .collect();
        order.sort_by(|&i, &j| {
            let (a, b) = (&self.agents[i], &self.agents[j]);
            a.lane
                .cmp(&b.lane)
                .then(
                    (b.foot().0 * self.lanes[b.lane].dir)
                        .total_cmp(&(a.foot().0 * self.lanes[a.lane].dir)),
                )
                .then(a.track_id.cmp(&b.track_id))
        });
        let mut leader: Vec<Option<usize>> = vec![None; n];
        for w in order.windows(2) {
            if self.agents[w[0]].lane == self.agents[w[1]].lane {
                leader[w[1]] = Some(w[0]);
            }
        }
        let veh_light = self.signal.vehicles(t_s);
        let ped_light = self.signal.pedestrians(t_s);
        for i in 0..n {
            let (gap_min, headway) = {
                let a = &self.agents[i];
                if a.class.is_motor_vehicle() || self.lanes[a.lane].kind == LaneKind::Bike {
                    (GAP_VEHICLE * self.scale, HEADWAY_VEHICLE)
                } else {
                    (GAP_WALKER * self.scale, HEADWAY_WALKER)
                }
            };
            let mut obstacles: Vec<(f64, f64, f64)> = Vec::new(); // (gap, leader speed, minimum gap)
            if let Some(l) = leader[i] {
                let (a, b) = (&self.agents[i], &self.agents[l]);
                let dir = self.lanes[a.lane].dir;
                let gap = (b.foot().0 - a.foot().0) * dir - b.half_len() - a.half_len();
                obstacles.push((gap, b.v, gap_min));
            }
            let a = &mut self.agents[i];
            // Signals.
            if let Some(stop) = a.stop_s {
                let front = if a.obeys == Obeys::Vehicles {
                    a.s + a.half_len()
                } else {
                    a.s
                };
                let light = match a.obeys {
                    Obeys::Vehicles => veh_light,
                    Obeys::Pedestrians => ped_light,
                    Obeys::Nothing => Light::Green,
                };
                if front <= stop + 0.5 && !a.committed {
                    let gap = stop - front;
                    match light {
                        Light::Green => {
                            if a.obeys == Obeys::Pedestrians {
                                a.committed = true;
                            }
                        }
                        _ => {
                            // Too close to stop comfortably: go through (drivers do on amber).
                            let needed = a.v * a.v / (2.0 * gap.max(0.1));
                            if a.obeys == Obeys::Vehicles
                                && needed > 1.8 * a.decel
                                && gap < a.v * 1.5
                            {
                                a.committed = true;
                            } else {
                                obstacles.push((gap, 0.0, 0.5));
                            }
                        }
                    }
                } else if front > stop + 0.5 {
                    a.committed = false;
                    a.stop_s = None;
                }
            }
            // Pauses on the sidewalk.
            if self.lanes[a.lane].kind == LaneKind::Sidewalk {
                match a.pause {
                    Some((until, stop_at)) if t_s < until => {
                        obstacles.push((stop_at - a.s, 0.0, 0.2))
                    }
                    Some(_) => {
                        a.pause = None;
                        a.next_pause = t_s + exp_interval(&mut self.rng, 1.0 / 30.0);
                    }
                    None if t_s >= a.next_pause => {
                        let until = t_s + self.rng.uniform(1.5, 6.0);
                        a.pause = Some((until, a.s + a.v * a.v / (2.0 * a.decel) + 1.0));
                    }
                    None => {}
                }
            }
            let free = idm(a.v, a.v0, a.accel, a.decel, headway, None);
            let a_min = obstacles
                .iter()
                .map(|&(gap, vl, s0)| {
                    idm(a.v, a.v0, a.accel, a.decel, headway, Some((gap, vl, s0)))
                })
                .fold(free, f64::min);
            let hold = obstacles
                .iter()
                .any(|&(gap, vl, s0)| vl < 0.05 * a.v0 && gap < s0 + 0.05 * a.v0 * headway);
            acc[i] = (a_min, hold);
        }
        acc
    }

    fn arrivals(&mut self, t_s: f64) {
        for li in 0..self.lanes.len() {
            while self.next_arrival[li] <= t_s {
                let lane = self.lanes[li].clone();
                if self.waiting[li].len() < MAX_WAITING {
                    let arrival = self.draw_arrival(&lane);
                    self.waiting[li].push(arrival);
                }
                self.next_arrival[li] += exp_interval(&mut self.rng, lane.rate);
            }
            while !self.waiting[li].is_empty() {
                let arrival = self.waiting[li][0].clone();
                if !self.try_enter(li, &arrival) {
                    break;
                }
                self.waiting[li].remove(0);
            }
        }
    }

    fn draw_arrival(&mut self, lane: &Lane) -> Arrival {
        let total: f64 = lane.mix.iter().sum();
        let mut u = self.rng.f64() * total;
        let mut class = Class::Car;
        for (i, &m) in lane.mix.iter().enumerate() {
            if u < m {
                class = Class::ALL[i];
                break;
            }
            u -= m;
        }
        let depth = lane.foot_y / self.height;
        let (w, h) = objects::sample_size(class, depth, &mut self.rng);
        let v0 = objects::sample_speed(class, &mut self.rng) * self.scale;
        let style = Style::sample(&mut self.rng);
        Arrival {
            class,
            w: w * self.scale,
            h: h * self.scale,
            v0,
            style,
        }
    }

    /// Puts an arrival at the start of its lane if there is room; false if it must wait.
    fn try_enter(&mut self, li: usize, a: &Arrival) -> bool {
        let lane = &self.lanes[li];
        let spec = a.class.spec();
        let margin = a.w * 0.5 + 2.0;
        let (w, scale) = (self.width, self.scale);
        let mut v = a.v0 * self.rng.uniform(0.9, 1.0);
        let mut obeys = Obeys::Nothing;
        let mut stop_s = None;
        let path = match lane.kind {
            LaneKind::Road | LaneKind::Bike => {
                let (x0, x1) = if lane.dir > 0.0 {
                    (-margin, w + margin)
                } else {
                    (w + margin, -margin)
                };
                // Room behind the last object of the lane?
                let start = x0 * lane.dir;
                let last = self
                    .agents
                    .iter()
                    .filter(|b| b.lane == li)
                    .map(|b| (b.foot().0 * lane.dir - b.half_len(), b.v))
                    .min_by(|p, q| p.0.total_cmp(&q.0));
                if let Some((rear, lv)) = last {
                    let room = rear - (start + a.w * 0.5);
                    if room < GAP_VEHICLE * scale {
                        return false;
                    }
                    if room < 3.0 * a.v0 {
                        v = v.min(lv);
                    }
                }
                obeys = Obeys::Vehicles;
                stop_s = lane.stop_x.map(|sx| (sx - x0) * lane.dir);
                let y = lane.foot_y + self.rng.uniform(-lane.spread_y, lane.spread_y);
                Path::new(vec![(x0, y), (x1, y)])
            }
            LaneKind::Sidewalk => {
                let (x0, x1) = if lane.dir > 0.0 {
                    (-margin, w + margin)
                } else {
                    (w + margin, -margin)
                };
                let y = lane.foot_y + self.rng.uniform(-lane.spread_y, lane.spread_y);
                Path::new(vec![(x0, y), (x1, y)])
            }
            LaneKind::Crossing => {
                let cw = self.crosswalk;
                let from_left = self.rng.f64() < 0.5;
                let exit_left = self.rng.f64() < 0.5;
                let far_to_near = self.rng.f64() < 0.5;
                let (ya, yb) = if far_to_near {
                    (cw.far_y, cw.near_y)
                } else {
                    (cw.near_y, cw.far_y)
                };
                let ya = ya + self.rng.uniform(-cw.spread_y, cw.spread_y);
                let yb = yb + self.rng.uniform(-cw.spread_y, cw.spread_y);
                let cx = cw.x0 + (cw.x1 - cw.x0) * self.rng.uniform(0.2, 0.8);
                let xs = if from_left { -margin } else { w + margin };
                let xe = if exit_left { -margin } else { w + margin };
                obeys = Obeys::Pedestrians;
                stop_s = Some((cx - xs).abs());
                Path::new(vec![(xs, ya), (cx, ya), (cx, yb), (xe, yb)])
            }
        };
        let track_id = self.next_track;
        self.next_track += 1;
        let next_pause = exp_interval(&mut self.rng, 1.0 / 30.0);
        let foot = path.at(0.0).0;
        self.agents.push(Agent {
            track_id,
            class: a.class,
            lane: li,
            path,
            s: 0.0,
            v,
            v0: a.v0,
            accel: spec.accel * scale,
            decel: spec.decel * scale,
            w: a.w,
            h: a.h,
            style: a.style,
            stop_s,
            obeys,
            committed: false,
            pause: None,
            next_pause,
            travelled: self.rng.uniform(0.0, 10.0) * a.h,
            sprites: None,
            drawn: None,
            prev_foot: foot,
        });
        true
    }
}

/// Time to the next Poisson arrival at `rate` per second.
fn exp_interval(rng: &mut Rng, rate: f64) -> f64 {
    if rate <= 0.0 {
        return f64::INFINITY;
    }
    -(1.0 - rng.f64()).ln() / rate
}

/// Intelligent Driver Model acceleration with an optional obstacle `(gap, its speed, minimum gap)`.
fn idm(v: f64, v0: f64, a: f64, b: f64, headway: f64, obstacle: Option<(f64, f64, f64)>) -> f64 {
    let free = 1.0 - (v / v0.max(1e-6)).powi(4);
    let inter = match obstacle {
        Some((gap, vl, s0)) => {
            let s_star = s0 + (v * headway + v * (v - vl) / (2.0 * (a * b).sqrt())).max(0.0);
            (s_star / gap.max(0.05)).powi(2)
        }
        None => 0.0,
    };
    (a * (free - inter)).max(-4.0 * b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_positions_and_facings() {
        let p = Path::new(vec![(0.0, 0.0), (10.0, 0.0), (10.0, 5.0), (0.0, 5.0)]);
        assert_eq!(p.len(), 25.0);
        assert_eq!(p.at(4.0), ((4.0, 0.0), Facing::Right));
        assert_eq!(p.at(12.0), ((10.0, 2.0), Facing::Front));
        assert_eq!(p.at(20.0), ((5.0, 5.0), Facing::Left));
        assert_eq!(
            p.facings(),
            vec![Facing::Right, Facing::Front, Facing::Left]
        );
    }

    #[test]
    fn vehicles_stop_on_red_and_never_overlap() {
        let mut rng = Rng::new(3);
        let layout = Layout::generate(1280, 720, 1.0, 1.5, &mut rng);
        let mut traffic = Traffic::new(&layout, Rng::new(4), -60.0);
        traffic.warm_up(-60.0, 0.0);
        let mut stopped = 0;
        let mut t = 0.0;
        while t < 60.0 {
            traffic.step(t, 0.02);
            t += 0.02;
            let mut road: Vec<&Agent> = traffic
                .agents
                .iter()
                .filter(|a| layout.lanes[a.lane].kind == LaneKind::Road)
                .collect();
            stopped += road.iter().filter(|a| a.v == 0.0).count();
            road.sort_by(|a, b| a.lane.cmp(&b.lane).then(a.foot().0.total_cmp(&b.foot().0)));
            for w in road.windows(2) {
                if w[0].lane == w[1].lane {
                    let gap = w[1].foot().0 - w[0].foot().0 - w[0].half_len() - w[1].half_len();
                    assert!(gap > -1.0, "overlap {gap} at t={t}");
                }
            }
        }
        assert!(stopped > 0, "no vehicle ever waited at the signal");
    }
}
