//! Sprites as the renderer uses them: log intensity premultiplied by coverage, padded by one transparent
//! pixel so bilinear sampling at any sub-pixel offset needs no bounds checks, plus the tight box of the
//! silhouette (the label box) and the foot point that sits on the object's ground row.

use super::objects::{self, Class, Style, View};
use super::paint::Canvas;
use super::scene::Photometry;

/// Integer pixel rectangle `[x0, x1) × [y0, y1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

impl Rect {
    pub fn is_empty(&self) -> bool {
        self.x0 >= self.x1 || self.y0 >= self.y1
    }
    pub fn union(&self, o: &Rect) -> Rect {
        if self.is_empty() {
            return *o;
        }
        if o.is_empty() {
            return *self;
        }
        Rect {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }
    pub fn clip(&self, w: usize, h: usize) -> Rect {
        Rect {
            x0: self.x0.max(0),
            y0: self.y0.max(0),
            x1: self.x1.min(w as i32),
            y1: self.y1.min(h as i32),
        }
    }
    pub fn area(&self) -> i64 {
        if self.is_empty() {
            0
        } else {
            (self.x1 - self.x0) as i64 * (self.y1 - self.y0) as i64
        }
    }
}

/// One picture of an object, ready to composite.
#[derive(Debug, Clone)]
pub struct SpriteFrame {
    /// Unpadded size.
    pub w: usize,
    pub h: usize,
    /// Padded `(h + 2) × (w + 2)`: coverage × log intensity, and coverage.
    pub pv: Vec<f32>,
    pub a: Vec<f32>,
    /// Foot point (bottom centre) in unpadded sprite coordinates.
    pub anchor: (f64, f64),
    /// Tight box of the pixels at least half covered, `(x0, y0, x1, y1)`, unpadded coordinates.
    pub bbox: (f64, f64, f64, f64),
    /// Per destination row offset `y − iy` (0..=h), the spans of `x − ix` where moving the sprite by less
    /// than a pixel can change the composited value by more than about `2·FLAT_EPS`: outlines, edges,
    /// texture. Elsewhere the sprite is flat and the pixels under it keep their values while it moves.
    /// Spans closer than [`SPAN_JOIN`] are joined: a few extra pixels cost less than a longer span list.
    pub active: Vec<Vec<(i32, i32)>>,
}

/// Log-intensity difference between neighbouring sprite pixels below which a region counts as flat.
/// Far below the contrast threshold (~0.2), so skipping flat pixels only delays the rare event of a
/// smooth gradient until the next full refresh of the object.
pub const FLAT_EPS: f32 = 0.03;

/// Active spans separated by at most this many flat pixels are merged.
pub const SPAN_JOIN: i32 = 4;

/// The [`SpriteFrame::active`] spans. A padded pixel is an edge when its 3×3 neighbourhood is not flat;
/// destination row offset `dy` samples padded rows `dy` and `dy + 1`, column offset `dx` padded columns
/// `dx` and `dx + 1`, so `dx` is active when either tap in either row is an edge. A destination pixel
/// whose taps are all non-edge, before and after a shift of under a pixel, mixes values within about
/// `2·FLAT_EPS` of each other.
fn active_spans(pv: &[f32], a: &[f32], pw: usize, ph: usize) -> Vec<Vec<(i32, i32)>> {
    let mut edge = vec![false; pw * ph];
    for r in 0..ph {
        for c in 0..pw {
            let i = r * pw + c;
            'n: for rr in r.saturating_sub(1)..(r + 2).min(ph) {
                for cc in c.saturating_sub(1)..(c + 2).min(pw) {
                    let j = rr * pw + cc;
                    if (pv[j] - pv[i]).abs() > FLAT_EPS || (a[j] - a[i]).abs() > 0.02 {
                        edge[i] = true;
                        break 'n;
                    }
                }
            }
        }
    }
    (0..ph - 1)
        .map(|dy| {
            let mut spans: Vec<(i32, i32)> = Vec::new();
            let mut start: Option<i32> = None;
            // dx runs over -1..pw (taps dx and dx + 1 within the padded row).
            for dx in -1..=pw as i32 {
                let tap = |c: i32| {
                    c >= 0
                        && (c as usize) < pw
                        && (edge[dy * pw + c as usize] || edge[(dy + 1) * pw + c as usize])
                };
                let on = dx < pw as i32 && (tap(dx) || tap(dx + 1));
                match (on, start) {
                    (true, None) => start = Some(dx),
                    (false, Some(s0)) => {
                        match spans.last_mut() {
                            Some(last) if s0 - last.1 <= SPAN_JOIN => last.1 = dx,
                            _ => spans.push((s0, dx)),
                        }
                        start = None;
                    }
                    _ => {}
                }
            }
            spans
        })
        .collect()
}

impl SpriteFrame {
    pub fn from_canvas(c: &Canvas, ph: Photometry) -> Self {
        let (w, h) = (c.w, c.h);
        let pw = w + 2;
        let mut pv = vec![0.0; pw * (h + 2)];
        let mut a = vec![0.0; pw * (h + 2)];
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for y in 0..h {
            for x in 0..w {
                let al = c.alpha[y * w + x];
                let i = (y + 1) * pw + x + 1;
                a[i] = al;
                pv[i] = al * ph.log(c.lum[y * w + x]);
                if al >= 0.5 {
                    x0 = x0.min(x);
                    y0 = y0.min(y);
                    x1 = x1.max(x + 1);
                    y1 = y1.max(y + 1);
                }
            }
        }
        let bbox = if x0 == usize::MAX {
            (0.0, 0.0, 0.0, 0.0)
        } else {
            (x0 as f64, y0 as f64, x1 as f64, y1 as f64)
        };
        let active = active_spans(&pv, &a, pw, h + 2);
        Self {
            w,
            h,
            pv,
            a,
            anchor: (w as f64 * 0.5, h as f64),
            bbox,
            active,
        }
    }

    /// Coverage of the unpadded pixel containing sprite coordinates (u, v); 0 outside.
    pub fn alpha_at(&self, u: f64, v: f64) -> f32 {
        if u < 0.0 || v < 0.0 || u >= self.w as f64 || v >= self.h as f64 {
            return 0.0;
        }
        self.a[(v as usize + 1) * (self.w + 2) + u as usize + 1]
    }

    /// Where the sprite lands when its foot is at `foot`: the integer origin and the sub-pixel offset.
    pub fn placement(&self, foot: (f64, f64)) -> Placement {
        let (ox, oy) = (foot.0 - self.anchor.0, foot.1 - self.anchor.1);
        let (ix, iy) = (ox.floor(), oy.floor());
        Placement {
            ox,
            oy,
            ix: ix as i32,
            iy: iy as i32,
            fx: (ox - ix) as f32,
            fy: (oy - iy) as f32,
        }
    }

    /// Pixels a placement can touch (bilinear sampling reaches one pixel further right and down).
    pub fn rect(&self, p: &Placement) -> Rect {
        Self::rect_at(self.w, self.h, p.ix, p.iy)
    }

    fn rect_at(w: usize, h: usize, ix: i32, iy: i32) -> Rect {
        Rect {
            x0: ix,
            y0: iy,
            x1: ix + w as i32 + 1,
            y1: iy + h as i32 + 1,
        }
    }

    /// Adds to `rows` (one span list per image row) the pixels that may change when the sprite moves from
    /// integer origin `from` to `to` (each by less than a pixel from the other).
    pub fn add_active_spans(
        &self,
        from: (i32, i32),
        to: (i32, i32),
        rows: &mut [Vec<(i32, i32)>],
        width: usize,
    ) {
        if from.1 != to.1 {
            // A vertical move: each placement on its own.
            self.add_active_spans(from, from, rows, width);
            self.add_active_spans(to, to, rows, width);
            return;
        }
        let (ix0, ix1, iy) = (from.0.min(to.0), from.0.max(to.0), to.1);
        let (y0, y1) = (iy.max(0), (iy + self.h as i32 + 1).min(rows.len() as i32));
        for y in y0..y1 {
            let row = &mut rows[y as usize];
            for &(a, b) in &self.active[(y - iy) as usize] {
                let (x0, x1) = ((a + ix0).max(0), (b + ix1).min(width as i32));
                if x0 < x1 {
                    row.push((x0, x1));
                }
            }
        }
    }
}

/// A sprite's position: top-left corner `(ox, oy)` in sensor px, split into integer and fraction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub ox: f64,
    pub oy: f64,
    pub ix: i32,
    pub iy: i32,
    pub fx: f32,
    pub fy: f32,
}

/// Which picture set a heading uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Facing {
    Right,
    Left,
    Front,
}

/// All pictures of one object: animation frames for each facing it needs.
#[derive(Debug, Clone, Default)]
pub struct SpriteSet {
    pub right: Vec<SpriteFrame>,
    pub left: Vec<SpriteFrame>,
    pub front: Vec<SpriteFrame>,
}

impl SpriteSet {
    /// Paints the frames of `class` at `w`×`h` sensor px for the facings in `need`.
    pub fn build(
        class: Class,
        w: f64,
        h: f64,
        style: &Style,
        need: &[Facing],
        night: bool,
        ph: Photometry,
    ) -> Self {
        let frames = class.spec().frames.max(1);
        let mut set = SpriteSet::default();
        for &f in need {
            let view = if f == Facing::Front {
                View::Front
            } else {
                View::Side
            };
            let pics: Vec<SpriteFrame> = (0..frames)
                .map(|k| {
                    let c = objects::paint(
                        class,
                        view,
                        w as f32,
                        h as f32,
                        k as f32 / frames as f32,
                        style,
                        night,
                    );
                    let c = if f == Facing::Left { c.mirrored() } else { c };
                    SpriteFrame::from_canvas(&c, ph)
                })
                .collect();
            match f {
                Facing::Right => set.right = pics,
                Facing::Left => set.left = pics,
                Facing::Front => set.front = pics,
            }
        }
        set
    }

    /// The frame for a facing and an animation phase in [0, 1); falls back to any painted facing.
    pub fn frame(&self, facing: Facing, phase: f64) -> (&SpriteFrame, usize) {
        let list = match facing {
            Facing::Right if !self.right.is_empty() => &self.right,
            Facing::Left if !self.left.is_empty() => &self.left,
            Facing::Front if !self.front.is_empty() => &self.front,
            _ => [&self.right, &self.left, &self.front]
                .into_iter()
                .find(|l| !l.is_empty())
                .unwrap_or(&self.right),
        };
        let k = ((phase.rem_euclid(1.0) * list.len() as f64) as usize)
            .min(list.len().saturating_sub(1));
        (&list[k], k)
    }
}
