//! EVT 3.0: 16-bit little-endian words, the type in the top 4 bits. CD events are built from state:
//! `EVT_ADDR_Y` sets the row, `EVT_ADDR_X` emits one event, `VECT_BASE_X` sets a column and polarity
//! that `VECT_12`/`VECT_8` masks emit from (bit i → column base + i) and then advance. Time is
//! 24 bits: `EVT_TIME_HIGH` (bits 12–23) and `EVT_TIME_LOW` (bits 0–11), the high part wrapping
//! every 2²⁴ µs = 16.78 s.

use super::{Clock, Sink, Trigger};
use crate::event::EventSlice;

pub const ADDR_Y: u16 = 0x0;
pub const ADDR_X: u16 = 0x2;
pub const VECT_BASE_X: u16 = 0x3;
pub const VECT_12: u16 = 0x4;
pub const VECT_8: u16 = 0x5;
pub const TIME_LOW: u16 = 0x6;
pub const CONTINUED_4: u16 = 0x7;
pub const TIME_HIGH: u16 = 0x8;
pub const EXT_TRIGGER: u16 = 0xA;
pub const OTHERS: u16 = 0xE;
pub const CONTINUED_12: u16 = 0xF;

/// One wrap-around of the 24-bit time (µs).
const LOOP: i64 = 1 << 24;
/// A time high going back by more than this (in 4096 µs units) is a wrap-around, by less a glitch.
pub const LOOP_THRESHOLD: i64 = 1 << 11;

#[derive(Clone)]
pub struct Decoder {
    clock: Clock,
    /// Time-high part of the current time, wrap-arounds included (µs, unshifted).
    high: i64,
    /// Last time-high word value (12 bits).
    th: i64,
    /// Current time (µs, shifted).
    t: i64,
    y: u16,
    y_inside: bool,
    base_x: u32,
    pol: u8,
    pub last_event: Option<i64>,
}

impl Decoder {
    pub(crate) fn new(clock: Clock) -> Self {
        Self {
            clock,
            high: 0,
            th: 0,
            t: 0,
            y: 0,
            y_inside: false,
            base_x: 0,
            pol: 0,
            last_event: None,
        }
    }

    pub fn now(&self) -> Option<i64> {
        self.clock.started.then_some(self.t)
    }

    #[inline(always)]
    fn emit(&mut self, x: u32, p: u8, sink: &mut Sink) {
        if x >= self.clock.width || !self.y_inside {
            sink.stats.outside_sensor += 1;
            return;
        }
        self.last_event = Some(self.t);
        if sink.emit {
            let e = &mut *sink.events;
            e.x.push(x as u16);
            e.y.push(self.y);
            e.p.push(p);
            e.t.push(self.t);
        }
        sink.stats.events += 1;
    }

    fn emit_mask(&mut self, mut mask: u32, sink: &mut Sink) {
        while mask != 0 {
            let i = mask.trailing_zeros();
            self.emit(self.base_x + i, self.pol, sink);
            mask &= mask - 1;
        }
    }

    pub(crate) fn decode(&mut self, bytes: &[u8], sink: &mut Sink) {
        let words = bytes.chunks_exact(2);
        sink.stats.words += words.len() as u64;
        if sink.emit {
            sink.events.x.reserve(words.len());
            sink.events.y.reserve(words.len());
            sink.events.p.reserve(words.len());
            sink.events.t.reserve(words.len());
        }
        for w in words {
            let w = u16::from_le_bytes([w[0], w[1]]);
            let kind = w >> 12;
            if !self.clock.started {
                if kind != TIME_HIGH {
                    sink.stats.before_time_high += 1;
                    continue;
                }
                self.th = (w & 0xFFF) as i64;
                self.high = self.th << 12;
                self.clock.start(self.high);
                self.t = self.high - self.clock.shift;
                continue;
            }
            match kind {
                ADDR_Y => {
                    self.y = w & 0x7FF;
                    self.y_inside = (self.y as u32) < self.clock.height;
                }
                ADDR_X => self.emit((w & 0x7FF) as u32, ((w >> 11) & 1) as u8, sink),
                VECT_BASE_X => {
                    self.base_x = (w & 0x7FF) as u32;
                    self.pol = ((w >> 11) & 1) as u8;
                }
                VECT_12 => {
                    self.emit_mask((w & 0xFFF) as u32, sink);
                    self.base_x += 12;
                }
                VECT_8 => {
                    self.emit_mask((w & 0xFF) as u32, sink);
                    self.base_x += 8;
                }
                TIME_LOW => {
                    self.t = self.high + (w & 0xFFF) as i64 - self.clock.shift;
                }
                TIME_HIGH => {
                    let th = (w & 0xFFF) as i64;
                    if th < self.th {
                        if self.th - th > LOOP_THRESHOLD {
                            self.high += LOOP;
                            sink.stats.time_high_loops += 1;
                        } else {
                            sink.stats.time_high_backwards += 1;
                        }
                    }
                    self.high = (self.high & !(LOOP - 1)) | (th << 12);
                    self.th = th;
                    self.t = self.high - self.clock.shift;
                }
                EXT_TRIGGER => {
                    sink.stats.triggers += 1;
                    sink.triggers.push(Trigger {
                        t: self.t,
                        id: ((w >> 8) & 0xF) as u8,
                        p: (w & 1) as u8,
                    });
                }
                OTHERS | CONTINUED_4 | CONTINUED_12 => {}
                _ => sink.stats.unknown_words += 1,
            }
        }
    }
}

/// EVT 3.0 encoder: events in time order in, words out. Runs of consecutive events on one row with
/// one polarity and one time stamp, at increasing columns, become vector words; the decoded order
/// is the encoded order.
#[derive(Debug, Clone, Default)]
pub struct Encoder {
    /// Time-high of the last time-high word, in 4096 µs units, unwrapped.
    high: Option<i64>,
    /// Time of the last time-low word (µs).
    t: Option<i64>,
    y: Option<u16>,
}

fn put(out: &mut Vec<u8>, kind: u16, payload: u16) {
    out.extend_from_slice(&((kind << 12) | payload).to_le_bytes());
}

impl Encoder {
    /// Emits time words for `t` (µs, ≥ the last time encoded).
    fn set_time(&mut self, t: i64, out: &mut Vec<u8>) {
        let u = t >> 12;
        let mut h = match self.high {
            Some(h) => h,
            None => {
                // The first time high is 0, so that Metavision's shift (the first time high) is 0 and
                // both clocks decode to the times encoded.
                put(out, TIME_HIGH, 0);
                0
            }
        };
        if h != u {
            // Steps of less than the decoder's wrap-around threshold keep the unwrapping exact.
            while u - h > LOOP_THRESHOLD - 1 {
                h += LOOP_THRESHOLD - 1;
                put(out, TIME_HIGH, (h & 0xFFF) as u16);
            }
            h = u;
            put(out, TIME_HIGH, (h & 0xFFF) as u16);
            self.t = None;
        }
        self.high = Some(h);
        if self.t != Some(t) {
            put(out, TIME_LOW, (t & 0xFFF) as u16);
            self.t = Some(t);
        }
    }

    /// The last time encoded.
    pub fn time(&self) -> Option<i64> {
        self.t
    }

    /// Appends the words of `ev` (and of the triggers due before each event) to `out`. Errors on a
    /// time going backwards or a coordinate that does not fit in 11 bits.
    pub fn encode(
        &mut self,
        ev: EventSlice,
        triggers: &mut std::iter::Peekable<impl Iterator<Item = Trigger>>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), String> {
        let n = ev.len();
        let mut i = 0;
        while i < n {
            let t = ev.t[i];
            while let Some(tr) = triggers.next_if(|tr| tr.t <= t) {
                self.trigger(tr, out)?;
            }
            super::check_event(ev, i, self.t, 0x7FF)?;
            self.set_time(t, out);
            let (x, y, p) = (ev.x[i], ev.y[i], ev.p[i]);
            if self.y != Some(y) {
                put(out, ADDR_Y, y);
                self.y = Some(y);
            }
            // A run: same time, row and polarity, columns increasing.
            let mut j = i + 1;
            while j < n
                && ev.t[j] == t
                && ev.y[j] == y
                && ev.p[j] == p
                && ev.x[j] > ev.x[j - 1]
                && ev.x[j] <= 0x7FF
            {
                j += 1;
            }
            if j - i == 1 {
                put(out, ADDR_X, ((p as u16 & 1) << 11) | x);
                i += 1;
                continue;
            }
            let mut base = x as u32;
            put(out, VECT_BASE_X, ((p as u16 & 1) << 11) | x);
            let mut k = i;
            while k < j {
                let mut mask = 0u16;
                let mut m = k;
                while m < j && (ev.x[m] as u32) < base + 12 {
                    mask |= 1 << (ev.x[m] as u32 - base);
                    m += 1;
                }
                if m < j && ev.x[m] as u32 >= base + 24 {
                    // A gap of a whole vector: start again from the next column.
                    put(out, VECT_12, mask);
                    base = ev.x[m] as u32;
                    put(out, VECT_BASE_X, ((p as u16 & 1) << 11) | ev.x[m]);
                } else if m == j && mask < 0x100 {
                    put(out, VECT_8, mask);
                    base += 8;
                } else {
                    put(out, VECT_12, mask);
                    base += 12;
                }
                k = m;
            }
            i = j;
        }
        Ok(())
    }

    /// Appends one trigger word.
    pub fn trigger(&mut self, tr: Trigger, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        if self.t.is_some_and(|t| tr.t < t) || tr.t < 0 {
            return Err(format!("trigger at {} µs goes back in time", tr.t));
        }
        if tr.id > 0xF {
            return Err(format!("trigger id {} does not fit in 4 bits", tr.id));
        }
        self.set_time(tr.t, out);
        put(out, EXT_TRIGGER, ((tr.id as u16) << 8) | (tr.p as u16 & 1));
        Ok(())
    }
}
