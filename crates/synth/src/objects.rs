//! The eTraM class catalogue (DESIGN.md "Classes": 0 pedestrian, 1 car, 2 bicycle, 3 bus, 4 motorbike,
//! 5 truck, 6 tram, 7 wheelchair): box sizes, aspect ratios and speeds at the full 1280×720 resolution,
//! and a painter per class that draws a recognisable side (or front) view — wheels, windows, limbs — so a
//! detector can tell the classes apart from their event silhouettes, not from their size alone.
//!
//! Sizes and speeds are in full-resolution eTraM pixels; the generator multiplies them by the preset's
//! pixel scale (0.5 for `mini`, whose sensor pixels are the network-input pixels of eTraM).

use super::paint::{
    bounds_of, fractal_noise, sd_capsule, sd_circle, sd_convex, sd_ellipse, sd_rect, Canvas,
};
use evdet_events::rng::Rng;
use std::f32::consts::PI;

/// Number of eTraM classes.
pub const NUM_CLASSES: usize = 8;
/// eTraM's 8-class label ids, in order (REFERENCE §5.5).
pub const CLASS_NAMES: [&str; NUM_CLASSES] = [
    "pedestrian",
    "car",
    "bicycle",
    "bus",
    "motorbike",
    "truck",
    "tram",
    "wheelchair",
];

/// An eTraM class; the discriminant is the label file's `class_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Pedestrian = 0,
    Car = 1,
    Bicycle = 2,
    Bus = 3,
    Motorbike = 4,
    Truck = 5,
    Tram = 6,
    Wheelchair = 7,
}

impl Class {
    pub const ALL: [Class; NUM_CLASSES] = [
        Class::Pedestrian,
        Class::Car,
        Class::Bicycle,
        Class::Bus,
        Class::Motorbike,
        Class::Truck,
        Class::Tram,
        Class::Wheelchair,
    ];

    pub fn id(self) -> u32 {
        self as u32
    }
    pub fn from_id(id: u32) -> Option<Self> {
        Self::ALL.get(id as usize).copied()
    }
    pub fn name(self) -> &'static str {
        CLASS_NAMES[self as usize]
    }
    pub fn spec(self) -> &'static ClassSpec {
        &CATALOGUE[self as usize]
    }
    /// Motor vehicles keep car-like headways and obey the vehicle signal.
    pub fn is_motor_vehicle(self) -> bool {
        matches!(
            self,
            Class::Car | Class::Bus | Class::Motorbike | Class::Truck | Class::Tram
        )
    }
}

/// Size, speed and animation of one class, at 1280×720.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassSpec {
    /// Sprite (box) height range, px; nearer objects (lower in the image) are taller.
    pub height: (f64, f64),
    /// Width / height of the sprite at rest.
    pub aspect: (f64, f64),
    /// Width range the aspect is clamped to, px.
    pub width: (f64, f64),
    /// Desired speed range, px/s.
    pub speed: (f64, f64),
    /// Acceleration and comfortable deceleration, px/s².
    pub accel: f64,
    pub decel: f64,
    /// Animation frames (legs, pedals, spokes) and the distance, in sprite heights, of one cycle.
    pub frames: usize,
    pub cycle_heights: f64,
}

/// The catalogue, indexed by class id. About 33 px per metre at 1280×720: a 1.7 m pedestrian is ~55 px,
/// a 4.5 m car ~150 px long; 1.4 m/s walking is ~45 px/s, 40 km/h ~370 px/s.
pub const CATALOGUE: [ClassSpec; NUM_CLASSES] = [
    // pedestrian: 15–40 × 30–90
    ClassSpec {
        height: (30.0, 90.0),
        aspect: (0.36, 0.48),
        width: (15.0, 40.0),
        speed: (30.0, 62.0),
        accel: 40.0,
        decel: 120.0,
        frames: 8,
        cycle_heights: 1.2,
    },
    // car: 80–200 × 50–120
    ClassSpec {
        height: (50.0, 112.0),
        aspect: (1.6, 2.2),
        width: (80.0, 200.0),
        speed: (200.0, 400.0),
        accel: 70.0,
        decel: 110.0,
        frames: 1,
        cycle_heights: 1.0,
    },
    // bicycle (with rider): 30–70 × 30–60
    ClassSpec {
        height: (32.0, 60.0),
        aspect: (0.95, 1.25),
        width: (30.0, 70.0),
        speed: (110.0, 190.0),
        accel: 40.0,
        decel: 90.0,
        frames: 8,
        cycle_heights: 2.4,
    },
    // bus
    ClassSpec {
        height: (110.0, 180.0),
        aspect: (2.3, 3.0),
        width: (250.0, 460.0),
        speed: (170.0, 310.0),
        accel: 40.0,
        decel: 80.0,
        frames: 1,
        cycle_heights: 1.0,
    },
    // motorbike (with rider): 30–70 × 30–60
    ClassSpec {
        height: (32.0, 60.0),
        aspect: (1.1, 1.35),
        width: (34.0, 70.0),
        speed: (200.0, 420.0),
        accel: 90.0,
        decel: 130.0,
        frames: 1,
        cycle_heights: 1.0,
    },
    // truck
    ClassSpec {
        height: (100.0, 170.0),
        aspect: (1.8, 2.5),
        width: (180.0, 380.0),
        speed: (170.0, 320.0),
        accel: 40.0,
        decel: 80.0,
        frames: 1,
        cycle_heights: 1.0,
    },
    // tram
    ClassSpec {
        height: (120.0, 190.0),
        aspect: (3.2, 4.2),
        width: (400.0, 720.0),
        speed: (150.0, 280.0),
        accel: 35.0,
        decel: 70.0,
        frames: 1,
        cycle_heights: 1.0,
    },
    // wheelchair (with user): small
    ClassSpec {
        height: (26.0, 45.0),
        aspect: (0.78, 0.95),
        width: (20.0, 40.0),
        speed: (22.0, 42.0),
        accel: 30.0,
        decel: 90.0,
        frames: 6,
        cycle_heights: 1.6,
    },
];

/// Box size (w, h) in full-resolution px for an object whose foot is at `depth` (0 = top of the
/// image, far; 1 = bottom, near): depth explains most of the size, the rest is individual variation.
pub fn sample_size(class: Class, depth: f64, rng: &mut Rng) -> (f64, f64) {
    let s = class.spec();
    let q = (0.7 * depth.clamp(0.0, 1.0) + 0.3 * rng.f64()).clamp(0.0, 1.0);
    let h = s.height.0 + q * (s.height.1 - s.height.0);
    let w = (h * rng.uniform(s.aspect.0, s.aspect.1)).clamp(s.width.0, s.width.1);
    (w, h)
}

/// Desired speed in full-resolution px/s.
pub fn sample_speed(class: Class, rng: &mut Rng) -> f64 {
    let s = class.spec();
    rng.uniform(s.speed.0, s.speed.1)
}

/// Which way an object is drawn: side view facing right (mirrored for leftward motion) or front view
/// (pedestrians and wheelchairs crossing towards or away from the camera).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Side,
    Front,
}

/// An object's individual look: colours (luminances), variant and texture seed, fixed at spawn so every
/// animation frame and view shows the same object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    pub body: f32,
    pub second: f32,
    pub third: f32,
    pub skin: f32,
    pub variant: u32,
    pub seed: u64,
}

/// Clothing and paint: mostly dark or mid grey, some light, so most objects contrast with the road.
fn colour(rng: &mut Rng) -> f32 {
    let u = rng.f64();
    (if u < 0.45 {
        rng.uniform(0.03, 0.12)
    } else if u < 0.75 {
        rng.uniform(0.28, 0.5)
    } else {
        rng.uniform(0.6, 0.9)
    }) as f32
}

impl Style {
    pub fn sample(rng: &mut Rng) -> Self {
        Self {
            body: colour(rng),
            second: colour(rng),
            third: colour(rng),
            skin: rng.uniform(0.15, 0.6) as f32,
            variant: rng.below(6) as u32,
            seed: rng.next_u64(),
        }
    }
}

/// Canvas size of a view: the side view is the box; the front view of a walker is narrower.
pub fn view_size(class: Class, view: View, w: f32, h: f32) -> (f32, f32) {
    match (class, view) {
        (Class::Pedestrian, View::Front) => ((0.4 * h).max(3.0), h),
        (Class::Wheelchair, View::Front) => ((0.72 * h).max(3.0), h),
        _ => (w, h),
    }
}

/// Paints one animation frame (`phase` in [0, 1)) of an object facing right, `w`×`h` px. `night` turns
/// lamps into light sources.
pub fn paint(
    class: Class,
    view: View,
    w: f32,
    h: f32,
    phase: f32,
    style: &Style,
    night: bool,
) -> Canvas {
    let (w, h) = view_size(class, view, w, h);
    let mut c = Canvas::new(w.ceil().max(1.0) as usize, h.ceil().max(1.0) as usize);
    let mut p = Pen {
        c: &mut c,
        seed: style.seed,
        night,
    };
    match (class, view) {
        (Class::Pedestrian, View::Side) => pedestrian_side(&mut p, w, h, phase, style),
        (Class::Pedestrian, View::Front) => pedestrian_front(&mut p, w, h, phase, style),
        (Class::Car, _) => car(&mut p, w, h, style),
        (Class::Bicycle, _) => bicycle(&mut p, w, h, phase, style),
        (Class::Bus, _) => bus(&mut p, w, h, style),
        (Class::Motorbike, _) => motorbike(&mut p, w, h, style),
        (Class::Truck, _) => truck(&mut p, w, h, style),
        (Class::Tram, _) => tram(&mut p, w, h, style),
        (Class::Wheelchair, View::Side) => wheelchair_side(&mut p, w, h, phase, style),
        (Class::Wheelchair, View::Front) => wheelchair_front(&mut p, w, h, phase, style),
    }
    c
}

/// Drawing helpers in pixel coordinates; thin lines keep at least ~1 px width so small sprites keep
/// their structure. Shapes take their coordinates positionally (x0, y0, x1, y1, …), as drawing code
/// reads best that way, hence the long argument lists.
struct Pen<'a> {
    c: &'a mut Canvas,
    seed: u64,
    night: bool,
}

#[allow(clippy::too_many_arguments)]
impl Pen<'_> {
    fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, r: f32, lum: f32) {
        self.c.fill(
            (x0, y0, x1, y1),
            |x, y| sd_rect(x, y, x0, y0, x1, y1, r),
            |_, _| lum,
        );
    }
    /// A rectangle with a mottled texture (paint, clothing folds, dirt) of relative amplitude `amp`.
    fn rect_tex(
        &mut self,
        x0: f32,
        y0: f32,
        x1: f32,
        y1: f32,
        r: f32,
        lum: f32,
        amp: f32,
        cell: f32,
    ) {
        let s = self.seed;
        self.c.fill(
            (x0, y0, x1, y1),
            |x, y| sd_rect(x, y, x0, y0, x1, y1, r),
            |x, y| lum * (1.0 + 2.0 * amp * fractal_noise(x, y, cell.max(1.0), s)),
        );
    }
    fn circle(&mut self, cx: f32, cy: f32, r: f32, lum: f32) {
        let r = r.max(0.5);
        self.c.fill(
            (cx - r, cy - r, cx + r, cy + r),
            |x, y| sd_circle(x, y, cx, cy, r),
            |_, _| lum,
        );
    }
    fn ring(&mut self, cx: f32, cy: f32, r: f32, thick: f32, lum: f32) {
        let t = (thick * 0.5).max(0.45);
        self.c.fill(
            (cx - r - t, cy - r - t, cx + r + t, cy + r + t),
            |x, y| sd_circle(x, y, cx, cy, r).abs() - t,
            |_, _| lum,
        );
    }
    fn ellipse(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, lum: f32) {
        let (rx, ry) = (rx.max(0.5), ry.max(0.5));
        self.c.fill(
            (cx - rx, cy - ry, cx + rx, cy + ry),
            |x, y| sd_ellipse(x, y, cx, cy, rx, ry),
            |_, _| lum,
        );
    }
    fn line(&mut self, a: (f32, f32), b: (f32, f32), r: f32, lum: f32) {
        let r = r.max(0.45);
        self.c.fill(
            (
                a.0.min(b.0) - r,
                a.1.min(b.1) - r,
                a.0.max(b.0) + r,
                a.1.max(b.1) + r,
            ),
            |x, y| sd_capsule(x, y, a.0, a.1, b.0, b.1, r),
            |_, _| lum,
        );
    }
    fn poly(&mut self, pts: &[(f32, f32)], lum: f32) {
        self.c
            .fill(bounds_of(pts), |x, y| sd_convex(x, y, pts), |_, _| lum);
    }
    fn poly_tex(&mut self, pts: &[(f32, f32)], lum: f32, amp: f32, cell: f32) {
        let s = self.seed;
        self.c.fill(
            bounds_of(pts),
            |x, y| sd_convex(x, y, pts),
            |x, y| lum * (1.0 + 2.0 * amp * fractal_noise(x, y, cell.max(1.0), s)),
        );
    }
    /// A lamp: bright at night (a light source), a pale lens by day.
    fn lamp(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, day: f32, night: f32) {
        let lum = if self.night { night } else { day };
        self.rect(x0, y0, x1, y1, 0.3 * (y1 - y0), lum);
    }
    /// A wheel seen from the side: tyre, rim, hub, and `spokes` lines turned by `angle`.
    fn wheel(&mut self, cx: f32, cy: f32, r: f32, rim: f32, spokes: usize, angle: f32, thin: bool) {
        if thin {
            self.ring(cx, cy, r - 0.06 * r, (0.12 * r).max(0.9), 0.04);
            for k in 0..spokes {
                let a = angle + k as f32 * PI / spokes as f32;
                let (dx, dy) = (a.cos() * r * 0.85, a.sin() * r * 0.85);
                self.line((cx - dx, cy - dy), (cx + dx, cy + dy), 0.04 * r, 0.45);
            }
            self.circle(cx, cy, 0.12 * r, 0.3);
        } else {
            self.circle(cx, cy, r, 0.035);
            self.circle(cx, cy, 0.58 * r, rim);
            for k in 0..spokes {
                let a = angle + k as f32 * 2.0 * PI / spokes as f32;
                self.line(
                    (cx, cy),
                    (cx + a.cos() * 0.5 * r, cy + a.sin() * 0.5 * r),
                    0.06 * r,
                    rim * 0.45,
                );
            }
            self.circle(cx, cy, 0.16 * r, 0.12);
        }
    }
}

fn pedestrian_side(p: &mut Pen, w: f32, h: f32, phase: f32, s: &Style) {
    let cx = w * 0.5;
    let leg_r = (0.045 * h).max(0.6);
    let arm_r = (0.032 * h).max(0.5);
    let hip = (cx, 0.53 * h);
    let leg_len = h - hip.1 - leg_r;
    // Leg swing limited by the box width: the widest stride fills the box.
    let max_off = (w * 0.5 - leg_r - 0.5).max(0.0);
    let amp = (max_off / leg_len).clamp(0.0, 0.55).asin();
    let th = amp * (2.0 * PI * phase).sin();
    let foot = |a: f32| (hip.0 + leg_len * a.sin(), hip.1 + leg_len * a.cos());
    let shoulder = (cx + 0.01 * h, 0.24 * h);
    let arm_len = 0.3 * h;
    let hand = |a: f32| {
        (
            shoulder.0 + arm_len * a.sin(),
            shoulder.1 + arm_len * a.cos(),
        )
    };
    let (top, bottom) = (s.body, s.second);
    // Far limbs first and a little darker (shading), then torso and head, then near limbs.
    p.line(hip, foot(-th), leg_r, bottom * 0.8);
    p.line(shoulder, hand(0.8 * th), arm_r, top * 0.8);
    if s.variant.is_multiple_of(3) {
        // Long coat.
        p.poly_tex(
            &[
                (cx - 0.1 * h, 0.2 * h),
                (cx + 0.1 * h, 0.2 * h),
                (cx + 0.12 * h, 0.66 * h),
                (cx - 0.12 * h, 0.66 * h),
            ],
            top,
            0.08,
            0.1 * h,
        );
    } else {
        p.line((cx, 0.22 * h), (cx, 0.5 * h), 0.095 * h, top);
    }
    if s.variant % 2 == 1 {
        // Backpack.
        p.rect_tex(
            cx - 0.17 * h,
            0.26 * h,
            cx - 0.06 * h,
            0.47 * h,
            0.03 * h,
            s.third,
            0.1,
            0.1 * h,
        );
    }
    p.circle(cx + 0.012 * h, 0.088 * h, 0.076 * h, s.skin);
    // Hair or hat: a cap on the back of the head.
    p.ellipse(cx - 0.012 * h, 0.066 * h, 0.07 * h, 0.05 * h, s.third * 0.5);
    p.line(hip, foot(th), leg_r, bottom);
    let f = foot(th);
    p.line((f.0, f.1), (f.0 + 0.07 * h, f.1), leg_r * 0.8, 0.04);
    p.line(shoulder, hand(-0.8 * th), arm_r, top * 1.1);
}

fn pedestrian_front(p: &mut Pen, w: f32, h: f32, phase: f32, s: &Style) {
    let cx = w * 0.5;
    let sw = (2.0 * PI * phase).sin();
    let leg_r = (0.05 * h).max(0.6);
    for (side, lift) in [(-1.0f32, sw.max(0.0)), (1.0, (-sw).max(0.0))] {
        let x = cx + side * 0.065 * h;
        p.line(
            (x, 0.54 * h),
            (x, h - leg_r - 0.06 * h * lift),
            leg_r,
            s.second,
        );
        // Arms swing forward and back, which from the front shortens them.
        let ax = cx + side * 0.15 * h;
        p.line(
            (ax, 0.24 * h),
            (ax + side * 0.01 * h, 0.52 * h - 0.04 * h * lift),
            (0.032 * h).max(0.5),
            s.body * 0.9,
        );
    }
    p.rect_tex(
        cx - 0.125 * h,
        0.19 * h,
        cx + 0.125 * h,
        0.56 * h,
        0.05 * h,
        s.body,
        0.08,
        0.1 * h,
    );
    p.circle(cx, 0.088 * h, 0.076 * h, s.skin);
    p.ellipse(cx, 0.05 * h, 0.07 * h, 0.035 * h, s.third * 0.5);
}

fn car(p: &mut Pen, w: f32, h: f32, s: &Style) {
    let rw = 0.2 * h;
    let wy = h - rw;
    let (wx1, wx2) = (0.19 * w, 0.8 * w);
    let variant = s.variant % 3;
    let yb = if variant == 2 { 0.38 * h } else { 0.45 * h };
    let body = s.body;
    let cabin: [(f32, f32); 4] = match variant {
        0 => [
            (0.2 * w, yb + 1.0),
            (0.33 * w, 0.02 * h),
            (0.66 * w, 0.02 * h),
            (0.84 * w, yb + 1.0),
        ],
        1 => [
            (0.04 * w, yb + 1.0),
            (0.1 * w, 0.04 * h),
            (0.62 * w, 0.02 * h),
            (0.82 * w, yb + 1.0),
        ],
        _ => [
            (0.02 * w, yb + 1.0),
            (0.03 * w, 0.01 * h),
            (0.7 * w, 0.01 * h),
            (0.86 * w, yb + 1.0),
        ],
    };
    p.poly_tex(&cabin, body, 0.05, 0.3 * h);
    p.rect_tex(0.0, yb, w, h - 0.13 * h, 0.11 * h, body, 0.05, 0.3 * h);
    // Windows: the cabin inset, split by the B pillar; glass is dark with a paler reflection band.
    let inset = |pt: (f32, f32), k: f32| (pt.0 + k * (0.5 * w - pt.0) * 0.12, pt.1 + 0.07 * h * k);
    let (a, b, c, d) = (
        inset(cabin[0], 1.0),
        inset(cabin[1], 1.0),
        inset(cabin[2], 1.0),
        inset(cabin[3], 1.0),
    );
    let (a, d) = ((a.0, yb - 0.02 * h), (d.0, yb - 0.02 * h));
    let mid = 0.52 * w;
    let glass = if p.night { 0.03 } else { 0.07 };
    let frac = |p0: (f32, f32), p1: (f32, f32), x: f32| {
        p0.1 + (p1.1 - p0.1) * ((x - p0.0) / (p1.0 - p0.0 + 1e-6)).clamp(0.0, 1.0)
    };
    let top_y = frac(b, c, mid);
    p.poly(
        &[a, b, (mid - 0.015 * w, top_y), (mid - 0.015 * w, a.1)],
        glass,
    );
    p.poly(
        &[(mid + 0.015 * w, top_y), c, d, (mid + 0.015 * w, d.1)],
        glass,
    );
    p.poly(
        &[
            (0.42 * w, yb - 0.03 * h),
            (0.47 * w, 0.1 * h),
            (0.5 * w, 0.1 * h),
            (0.45 * w, yb - 0.03 * h),
        ],
        glass * 2.5,
    );
    // Door seams and handles.
    p.line(
        (mid, yb + 0.04 * h),
        (mid, h - 0.2 * h),
        0.012 * h,
        body * 0.45,
    );
    p.rect(
        mid - 0.09 * w,
        yb + 0.08 * h,
        mid - 0.05 * w,
        yb + 0.11 * h,
        0.01 * h,
        body * 1.4 + 0.05,
    );
    // Bumpers and sill.
    p.rect(0.0, h - 0.26 * h, 0.07 * w, h - 0.14 * h, 0.03 * h, 0.05);
    p.rect(0.93 * w, h - 0.26 * h, w, h - 0.14 * h, 0.03 * h, 0.05);
    p.rect(
        0.25 * w,
        h - 0.19 * h,
        0.75 * w,
        h - 0.14 * h,
        0.01 * h,
        body * 0.5,
    );
    // Lamps: headlight at the front (right), tail light at the back.
    p.lamp(
        0.955 * w,
        yb + 0.05 * h,
        0.998 * w,
        yb + 0.15 * h,
        0.85,
        6.0,
    );
    p.lamp(0.003 * w, yb + 0.04 * h, 0.035 * w, yb + 0.14 * h, 0.2, 1.5);
    for wx in [wx1, wx2] {
        p.circle(wx, wy, rw * 1.12, 0.03);
        p.wheel(
            wx,
            wy,
            rw,
            0.3 + 0.25 * (s.variant % 2) as f32,
            5,
            0.3,
            false,
        );
    }
}

fn bus(p: &mut Pen, w: f32, h: f32, s: &Style) {
    let body = 0.35 + 0.55 * (s.body.clamp(0.0, 1.0));
    p.rect_tex(0.0, 0.02 * h, w, 0.9 * h, 0.07 * h, body, 0.04, 0.25 * h);
    p.rect(0.06 * w, 0.0, 0.55 * w, 0.05 * h, 0.02 * h, body * 0.8);
    // A row of large windows; lit from inside at night.
    let glass = if p.night { 0.9 } else { 0.07 };
    let (x0, x1) = (0.025 * w, 0.9 * w);
    let n = ((x1 - x0) / (0.55 * h)).round().max(4.0) as usize;
    let pitch = (x1 - x0) / n as f32;
    for k in 0..n {
        let a = x0 + k as f32 * pitch;
        p.rect(
            a + 0.02 * h,
            0.13 * h,
            a + pitch - 0.02 * h,
            0.5 * h,
            0.025 * h,
            glass,
        );
    }
    p.poly(
        &[
            (0.945 * w, 0.07 * h),
            (0.998 * w, 0.1 * h),
            (0.998 * w, 0.62 * h),
            (0.945 * w, 0.62 * h),
        ],
        glass * 0.8,
    );
    // Doors (front and middle), split in two leaves.
    for dx in [0.81 * w, 0.42 * w] {
        let dw = 0.075 * w;
        p.rect(
            dx,
            0.13 * h,
            dx + dw,
            0.88 * h,
            0.01 * h,
            glass * 1.2 + 0.02,
        );
        p.line(
            (dx + dw * 0.5, 0.13 * h),
            (dx + dw * 0.5, 0.88 * h),
            0.012 * h,
            body * 0.6,
        );
    }
    p.rect(0.0, 0.55 * h, w, 0.61 * h, 0.0, s.second);
    p.rect(0.0, 0.84 * h, w, 0.9 * h, 0.0, 0.08);
    p.lamp(0.9 * w, 0.03 * h, 0.985 * w, 0.09 * h, 0.75, 3.0);
    p.lamp(0.975 * w, 0.7 * h, 0.998 * w, 0.78 * h, 0.85, 6.0);
    p.lamp(0.002 * w, 0.68 * h, 0.015 * w, 0.78 * h, 0.2, 1.5);
    let r = 0.115 * h;
    for wx in [0.16 * w, 0.8 * w] {
        p.circle(wx, h - r, r * 1.15, 0.03);
        p.wheel(wx, h - r, r, 0.5, 6, 0.0, false);
    }
}

fn truck(p: &mut Pen, w: f32, h: f32, s: &Style) {
    let boxlum = 0.25 + 0.6 * s.body.clamp(0.0, 1.0);
    // Cargo box with vertical ribs.
    let rib = (0.04 * h).max(2.0);
    p.c.fill(
        (0.0, 0.0, 0.73 * w, 0.8 * h),
        |x, y| sd_rect(x, y, 0.0, 0.0, 0.73 * w, 0.8 * h, 0.02 * h),
        |x, _| boxlum * (1.0 + 0.08 * (2.0 * PI * x / rib).sin()),
    );
    if s.variant.is_multiple_of(2) {
        p.rect_tex(
            0.08 * w,
            0.18 * h,
            0.55 * w,
            0.52 * h,
            0.04 * h,
            s.second,
            0.15,
            0.15 * h,
        );
    } else {
        p.rect(0.0, 0.6 * h, 0.73 * w, 0.68 * h, 0.0, s.second);
    }
    let cab = s.third;
    p.rect_tex(
        0.755 * w,
        0.16 * h,
        w,
        0.86 * h,
        0.07 * h,
        cab,
        0.05,
        0.2 * h,
    );
    let glass = if p.night { 0.03 } else { 0.07 };
    p.poly(
        &[
            (0.86 * w, 0.21 * h),
            (0.985 * w, 0.21 * h),
            (0.996 * w, 0.48 * h),
            (0.84 * w, 0.48 * h),
        ],
        glass,
    );
    p.rect(0.775 * w, 0.22 * h, 0.83 * w, 0.46 * h, 0.02 * h, glass);
    p.rect(0.01 * w, 0.78 * h, 0.99 * w, 0.86 * h, 0.01 * h, 0.05);
    p.lamp(0.975 * w, 0.64 * h, 0.998 * w, 0.74 * h, 0.85, 6.0);
    p.lamp(0.002 * w, 0.68 * h, 0.015 * w, 0.76 * h, 0.2, 1.5);
    let r = 0.105 * h;
    for wx in [0.1 * w, 0.22 * w, 0.87 * w] {
        p.circle(wx, h - r, r * 1.1, 0.03);
        p.wheel(wx, h - r, r, 0.45, 6, 0.5, false);
    }
}

fn tram(p: &mut Pen, w: f32, h: f32, s: &Style) {
    let body = 0.45 + 0.45 * s.body.clamp(0.0, 1.0);
    let shell = [
        (0.02 * w, 0.1 * h),
        (0.98 * w, 0.1 * h),
        (w, 0.36 * h),
        (w, 0.93 * h),
        (0.0, 0.93 * h),
        (0.0, 0.36 * h),
    ];
    p.poly_tex(&shell, body, 0.03, 0.3 * h);
    let glass = if p.night { 0.8 } else { 0.07 };
    // Continuous window band with pillars.
    let pitch = 0.3 * h;
    let (x0, x1) = (0.03 * w, 0.97 * w);
    let n = ((x1 - x0) / pitch).floor().max(3.0) as usize;
    let pitch = (x1 - x0) / n as f32;
    for k in 0..n {
        let a = x0 + k as f32 * pitch;
        p.rect(
            a + 0.015 * h,
            0.22 * h,
            a + pitch - 0.015 * h,
            0.56 * h,
            0.02 * h,
            glass,
        );
    }
    p.rect(0.0, 0.62 * h, w, 0.7 * h, 0.0, s.second * 0.6);
    p.rect(0.0, 0.85 * h, w, 0.93 * h, 0.0, 0.06);
    // Three articulated sections: bellows between them, two doors each.
    for k in 0..3 {
        let (a, b) = (k as f32 * w / 3.0, (k + 1) as f32 * w / 3.0);
        for d in [0.3, 0.7] {
            let dx = a + d * (b - a);
            p.rect(
                dx - 0.02 * w,
                0.2 * h,
                dx + 0.02 * w,
                0.9 * h,
                0.01 * h,
                glass * 1.2 + 0.02,
            );
        }
        if k > 0 {
            p.rect(a - 0.005 * w, 0.12 * h, a + 0.005 * w, 0.93 * h, 0.0, 0.04);
        }
    }
    // Pantograph and roof equipment.
    p.rect(0.33 * w, 0.055 * h, 0.44 * w, 0.1 * h, 0.01 * h, body * 0.7);
    let (l, r, top) = (
        (0.46 * w, 0.1 * h),
        (0.54 * w, 0.1 * h),
        (0.5 * w, 0.012 * h),
    );
    p.line(l, top, 0.008 * h, 0.15);
    p.line(r, top, 0.008 * h, 0.15);
    p.line(
        (0.47 * w, 0.012 * h),
        (0.53 * w, 0.012 * h),
        0.008 * h,
        0.15,
    );
    p.lamp(0.985 * w, 0.72 * h, 0.999 * w, 0.8 * h, 0.85, 6.0);
    p.lamp(0.001 * w, 0.72 * h, 0.015 * w, 0.8 * h, 0.2, 1.5);
    for bx in [0.12 * w, 0.5 * w, 0.88 * w] {
        for dx in [-0.025 * w, 0.025 * w] {
            p.circle(bx + dx, 0.93 * h, 0.06 * h, 0.05);
        }
    }
}

/// Two-link leg from `hip` to `foot`, knee bent towards +x (forward).
fn knee(hip: (f32, f32), foot: (f32, f32), seg: f32) -> (f32, f32) {
    let (dx, dy) = (foot.0 - hip.0, foot.1 - hip.1);
    let d = (dx * dx + dy * dy).sqrt().max(1e-3);
    let half = (d * 0.5).min(seg);
    let off = (seg * seg - half * half).max(0.0).sqrt();
    let (mx, my) = (hip.0 + dx * 0.5, hip.1 + dy * 0.5);
    // Perpendicular pointing forward (positive x).
    let (mut px, mut py) = (-dy / d, dx / d);
    if px < 0.0 {
        px = -px;
        py = -py;
    }
    (mx + px * off, my + py * off)
}

fn bicycle(p: &mut Pen, w: f32, h: f32, phase: f32, s: &Style) {
    let r = (0.21 * w).min(0.3 * h);
    let rear = (r + 0.01 * w, h - r);
    let front = (w - r - 0.01 * w, h - r);
    let bb = (0.47 * w, h - r * 0.95);
    let seat = (0.4 * w, h - 2.25 * r);
    let head = (0.72 * w, seat.1 + 0.03 * h);
    let bar = (0.7 * w, seat.1 - 0.05 * h);
    let a = 2.0 * PI * phase;
    let crank = 0.38 * r;
    let pedal = |a: f32| (bb.0 + crank * a.cos(), bb.1 + crank * a.sin());
    let hip = (seat.0 + 0.01 * w, seat.1 - 0.04 * h);
    let seg = 0.55 * ((hip.0 - bb.0).powi(2) + (hip.1 - bb.1).powi(2)).sqrt() + 0.3 * crank;
    let leg_r = (0.04 * h).max(0.6);
    let spin = phase * PI * 0.5;
    // Far leg behind the frame.
    let fp = pedal(a + PI);
    p.line(hip, knee(hip, fp, seg), leg_r, s.second * 0.8);
    p.line(knee(hip, fp, seg), fp, leg_r, s.second * 0.8);
    p.wheel(rear.0, rear.1, r, 0.4, 2, spin, true);
    p.wheel(front.0, front.1, r, 0.4, 2, spin + 0.4, true);
    let frame = 0.2 + 0.6 * s.third;
    let fr = (0.025 * h).max(0.5);
    for (a0, b0) in [
        (rear, seat),
        (seat, bb),
        (bb, rear),
        (bb, head),
        (seat, head),
        (head, front),
    ] {
        p.line(a0, b0, fr, frame);
    }
    p.line(head, bar, fr, 0.1);
    // Rider leaning forward; helmet or hair.
    let shoulder = (0.58 * w, 0.21 * h);
    p.line(hip, shoulder, 0.08 * h, s.body);
    p.circle(
        0.63 * w,
        0.1 * h,
        0.08 * h,
        if s.variant.is_multiple_of(2) {
            s.skin
        } else {
            0.75
        },
    );
    p.line(shoulder, bar, (0.03 * h).max(0.5), s.body * 0.9);
    let np = pedal(a);
    let k = knee(hip, np, seg);
    p.line(hip, k, leg_r, s.second);
    p.line(k, np, leg_r, s.second);
}

fn motorbike(p: &mut Pen, w: f32, h: f32, s: &Style) {
    let r = (0.19 * w).min(0.25 * h);
    let rear = (r + 0.02 * w, h - r);
    let front = (w - r - 0.02 * w, h - r);
    p.wheel(rear.0, rear.1, r, 0.55, 5, 0.2, false);
    p.wheel(front.0, front.1, r, 0.55, 5, 0.9, false);
    p.line((0.8 * w, 0.36 * h), front, (0.03 * h).max(0.5), 0.5);
    p.line(
        (0.33 * w, 0.8 * h),
        (0.06 * w, 0.7 * h),
        (0.03 * h).max(0.5),
        0.6,
    );
    p.rect_tex(
        0.34 * w,
        0.56 * h,
        0.62 * w,
        0.82 * h,
        0.03 * h,
        0.08,
        0.2,
        0.06 * h,
    );
    p.poly_tex(
        &[
            (0.16 * w, 0.48 * h),
            (0.5 * w, 0.4 * h),
            (0.76 * w, 0.36 * h),
            (0.8 * w, 0.6 * h),
            (0.58 * w, 0.66 * h),
            (0.25 * w, 0.64 * h),
        ],
        s.body,
        0.06,
        0.1 * h,
    );
    p.lamp(0.83 * w, 0.38 * h, 0.9 * w, 0.48 * h, 0.85, 6.0);
    // Rider: hunched, helmet with visor.
    let hip = (0.42 * w, 0.4 * h);
    let shoulder = (0.6 * w, 0.17 * h);
    p.line(hip, shoulder, 0.085 * h, s.second);
    let kn = (0.6 * w, 0.5 * h);
    let ft = (0.5 * w, 0.7 * h);
    let lr = (0.045 * h).max(0.6);
    p.line(hip, kn, lr, s.second * 0.9);
    p.line(kn, ft, lr, s.second * 0.9);
    p.line(
        shoulder,
        (0.76 * w, 0.33 * h),
        (0.03 * h).max(0.5),
        s.second,
    );
    let helmet = if s.variant.is_multiple_of(2) {
        0.05
    } else {
        0.8
    };
    p.circle(0.66 * w, 0.105 * h, 0.1 * h, helmet);
    p.rect(0.69 * w, 0.07 * h, 0.76 * w, 0.13 * h, 0.02 * h, 0.03);
}

fn wheelchair_side(p: &mut Pen, w: f32, h: f32, phase: f32, s: &Style) {
    let r = 0.3 * h;
    let hub = (0.38 * w, h - r);
    let frame = 0.5;
    let fr = (0.018 * h).max(0.5);
    p.line((0.24 * w, 0.56 * h), (0.7 * w, 0.56 * h), fr, frame);
    p.line((0.2 * w, 0.2 * h), (0.25 * w, 0.57 * h), fr, frame);
    p.line((0.2 * w, 0.2 * h), (0.08 * w, 0.23 * h), fr, 0.1);
    p.line((0.68 * w, 0.57 * h), (0.8 * w, 0.88 * h), fr, frame);
    p.line((0.78 * w, 0.89 * h), (0.9 * w, 0.89 * h), fr, frame);
    p.circle(0.84 * w, h - 0.06 * h, 0.06 * h, 0.05);
    // User: torso, head, thighs forward, shins down to the footrest.
    p.line((0.33 * w, 0.52 * h), (0.36 * w, 0.24 * h), 0.09 * h, s.body);
    p.circle(0.4 * w, 0.1 * h, 0.085 * h, s.skin);
    let lr = (0.06 * h).max(0.6);
    p.line((0.34 * w, 0.52 * h), (0.7 * w, 0.5 * h), lr, s.second);
    p.line(
        (0.7 * w, 0.52 * h),
        (0.77 * w, 0.85 * h),
        lr * 0.85,
        s.second,
    );
    p.wheel(hub.0, hub.1, r, 0.5, 2, phase * PI * 0.5, true);
    p.ring(hub.0, hub.1, 0.82 * r, (0.02 * h).max(0.6), 0.55);
    p.line(
        (0.37 * w, 0.28 * h),
        (0.46 * w, 0.55 * h),
        (0.03 * h).max(0.5),
        s.body * 1.1,
    );
}

fn wheelchair_front(p: &mut Pen, w: f32, h: f32, phase: f32, s: &Style) {
    let cx = w * 0.5;
    let bob = 0.01 * h * (2.0 * PI * phase).sin();
    for side in [-1.0f32, 1.0] {
        p.ellipse(cx + side * 0.4 * w, 0.72 * h, 0.06 * w, 0.28 * h, 0.05);
        p.line(
            (cx + side * 0.3 * w, 0.2 * h),
            (cx + side * 0.3 * w, 0.62 * h),
            (0.02 * h).max(0.5),
            0.5,
        );
        p.line(
            (cx + side * 0.12 * w, 0.58 * h),
            (cx + side * 0.14 * w, 0.9 * h),
            (0.05 * h).max(0.6),
            s.second,
        );
    }
    p.rect_tex(
        cx - 0.24 * w,
        0.22 * h + bob,
        cx + 0.24 * w,
        0.6 * h,
        0.05 * h,
        s.body,
        0.08,
        0.1 * h,
    );
    p.circle(cx, 0.1 * h + bob, 0.085 * h, s.skin);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_paints_a_solid_silhouette_filling_its_box() {
        let mut rng = Rng::new(1);
        for class in Class::ALL {
            let (w, h) = sample_size(class, 0.5, &mut rng);
            let style = Style::sample(&mut rng);
            let c = paint(class, View::Side, w as f32, h as f32, 0.25, &style, false);
            let solid = c.alpha.iter().filter(|&&a| a > 0.5).count() as f64;
            let fill = solid / (c.w * c.h) as f64;
            assert!(fill > 0.15 && fill < 0.98, "{class:?}: {fill}");
            // Tight box close to the requested size.
            let cols: Vec<usize> = (0..c.w)
                .filter(|&x| (0..c.h).any(|y| c.alpha[y * c.w + x] > 0.5))
                .collect();
            let rows: Vec<usize> = (0..c.h)
                .filter(|&y| (0..c.w).any(|x| c.alpha[y * c.w + x] > 0.5))
                .collect();
            let bw = (cols.last().unwrap() - cols[0] + 1) as f64;
            let bh = (rows.last().unwrap() - rows[0] + 1) as f64;
            assert!(
                bw > 0.75 * w && bw <= w + 1.5,
                "{class:?}: width {bw} vs {w}"
            );
            assert!(
                bh > 0.85 * h && bh <= h + 1.5,
                "{class:?}: height {bh} vs {h}"
            );
        }
    }

    #[test]
    fn sizes_stay_in_class_ranges() {
        let mut rng = Rng::new(2);
        for class in Class::ALL {
            let s = class.spec();
            for _ in 0..200 {
                let (w, h) = sample_size(class, rng.f64(), &mut rng);
                assert!(
                    w >= s.width.0 && w <= s.width.1 && h >= s.height.0 && h <= s.height.1,
                    "{class:?} {w}x{h}"
                );
            }
        }
    }
}
