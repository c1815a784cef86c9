//! EVT 3.0: 16-bit little-endian words, the type in the top 4 bits. CD events are built from state:
//! `EVT_ADDR_Y` sets the row, `EVT_ADDR_X` emits one event, `VECT_BASE_X` sets a column and polarity
//! that `VECT_12`/`VECT_8` masks emit from (bit i → column base + i) and then advance. Time is
//! 24 bits: `EVT_TIME_HIGH` (bits 12–23) and `EVT_TIME_LOW` (bits 0–11), the high part wrapping
//! every 2²⁴ µs = 16.78 s.

use super::time::{check_trigger, start_event, step_time_high, TimeHighWrap, TimeWords};
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

/// A time high going back by this much or more (in 4096 µs units) is a wrap-around, by less a
/// glitch that time follows backwards (openeb's rule).
pub const LOOP_THRESHOLD: i64 = 1 << 11;
/// The 24-bit time wraps every 2²⁴ µs.
const WRAP: TimeHighWrap = TimeHighWrap {
    low_bits: 12,
    period_us: 1 << 24,
    threshold_us: LOOP_THRESHOLD << 12,
};
/// The largest forward time-high step the encoder writes: readers that accept only small steps
/// (faery: < 4094) read evdet's files too.
const MAX_STEP: i64 = 1024;

#[derive(Clone)]
pub struct Decoder {
    clock: Clock,
    /// Time-high part of the current time, wrap-arounds included (µs, unshifted).
    high: i64,
    /// Last time-high word value (12 bits).
    th: i64,
    /// Last time-low word value (12 bits).
    low: i64,
    /// Current time (µs, shifted).
    t: i64,
    y: u16,
    y_inside: bool,
    /// Whether a row address was met since the first time high.
    have_row: bool,
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
            low: 0,
            t: 0,
            y: 0,
            y_inside: false,
            have_row: false,
            base_x: 0,
            pol: 0,
            last_event: None,
        }
    }

    pub fn now(&self) -> Option<i64> {
        self.clock.started.then_some(self.t)
    }

    /// Waits for the first time high: words before it are skipped (their time is unknown). Returns
    /// the bytes left after it.
    fn start<'b>(&mut self, bytes: &'b [u8], sink: &mut Sink) -> &'b [u8] {
        for (i, w) in bytes.chunks_exact(2).enumerate() {
            let w = u16::from_le_bytes([w[0], w[1]]);
            if w >> 12 != TIME_HIGH {
                sink.stats.before_time_high += 1;
                continue;
            }
            // Metavision's origin is the time high before the first one (openeb's decoder starts
            // its clock one time-high step early), so shifted times start in 4096..8191 µs.
            let th = (w & 0xFFF) as i64;
            self.clock.start((th - 1).max(0) << 12);
            self.th = th;
            self.high = th << 12;
            self.low = 0;
            self.t = self.high - self.clock.shift;
            return &bytes[2 * (i + 1)..];
        }
        &[]
    }

    pub(crate) fn decode(&mut self, bytes: &[u8], sink: &mut Sink) {
        sink.stats.words += (bytes.len() / 2) as u64;
        let bytes = if self.clock.started {
            bytes
        } else {
            self.start(bytes, sink)
        };
        // Blocks of words whose events (at most 12 per word) fit the space reserved for them, so
        // the hot loop writes without growing vectors.
        const BLOCK_WORDS: usize = 2048;
        for block in bytes.chunks(2 * BLOCK_WORDS) {
            if sink.emit {
                let e = &mut *sink.events;
                let need = block.len() / 2 * 12;
                e.x.reserve(need);
                e.y.reserve(need);
                e.p.reserve(need);
                e.t.reserve(need);
            }
            self.decode_block(block, sink);
        }
    }

    /// Decodes whole words into the space `decode` reserved (none when not emitting).
    fn decode_block(&mut self, block: &[u8], sink: &mut Sink) {
        let emit = sink.emit;
        let (w_max, h_max, shift) = (self.clock.width, self.clock.height, self.clock.shift);
        // State in locals (registers) for the loop, written back after it.
        let (mut high, mut th, mut low, mut t) = (self.high, self.th, self.low, self.t);
        let (mut y, mut y_inside, mut have_row) = (self.y, self.y_inside, self.have_row);
        let (mut base_x, mut pol) = (self.base_x, self.pol);
        let mut last = self.last_event;
        let (mut inside, mut outside, mut no_row) = (0u64, 0u64, 0u64);
        let e = &mut *sink.events;
        let len0 = e.t.len();
        // Raw pointers past the events already there: the hot loop writes at most 12 events per
        // word into the space `decode` reserved, without a bounds check per field.
        let (xs, ys) = (e.x.spare_capacity_mut(), e.y.spare_capacity_mut());
        let (ps, ts) = (e.p.spare_capacity_mut(), e.t.spare_capacity_mut());
        let room = xs.len().min(ys.len()).min(ps.len()).min(ts.len());
        assert!(
            !emit || room >= block.len() / 2 * 12,
            "decode reserves 12 events per word"
        );
        let (xs, ys) = (xs.as_mut_ptr(), ys.as_mut_ptr());
        let (ps, ts) = (ps.as_mut_ptr(), ts.as_mut_ptr());
        let mut k = 0usize;
        macro_rules! write_at {
            ($k:expr, $x:expr, $p:expr) => {
                // SAFETY: $k < 12 · words of this block ≤ `room`, checked above.
                unsafe {
                    (*xs.add($k)).write($x);
                    (*ys.add($k)).write(y);
                    (*ps.add($k)).write($p);
                    (*ts.add($k)).write(t);
                }
            };
        }
        macro_rules! event {
            ($x:expr, $p:expr) => {{
                let x: u32 = $x;
                if x < w_max && y_inside {
                    if emit {
                        write_at!(k, x as u16, $p);
                        k += 1;
                    }
                    inside += 1;
                    last = Some(t);
                } else if have_row {
                    outside += 1;
                } else {
                    no_row += 1;
                }
            }};
        }
        for w in block.chunks_exact(2) {
            let w = u16::from_le_bytes([w[0], w[1]]);
            match w >> 12 {
                ADDR_X => event!((w & 0x7FF) as u32, ((w >> 11) & 1) as u8),
                ADDR_Y => {
                    have_row = true;
                    y = w & 0x7FF;
                    y_inside = (y as u32) < h_max;
                }
                TIME_LOW => {
                    low = (w & 0xFFF) as i64;
                    t = high + low - shift;
                }
                VECT_BASE_X => {
                    base_x = (w & 0x7FF) as u32;
                    pol = ((w >> 11) & 1) as u8;
                }
                VECT_12 | VECT_8 => {
                    let (mask, step) = if w >> 12 == VECT_12 {
                        ((w & 0xFFF) as u32, 12)
                    } else {
                        ((w & 0xFF) as u32, 8)
                    };
                    // Columns past the sensor's edge, or a row outside it, drop their bits.
                    let fits = if base_x >= w_max {
                        0
                    } else {
                        u32::MAX >> (32 - (w_max - base_x).min(32))
                    };
                    let keep = if y_inside { mask & fits } else { 0 };
                    if keep != mask {
                        let dropped = (mask & !keep).count_ones() as u64;
                        if have_row {
                            outside += dropped;
                        } else {
                            no_row += dropped;
                        }
                    }
                    if keep != 0 {
                        last = Some(t);
                        if emit {
                            // Branch-free compaction: every candidate column is written, and
                            // the slot advances only past the kept ones.
                            for i in 0..12u32 {
                                write_at!(k, (base_x + i) as u16, pol);
                                k += ((keep >> i) & 1) as usize;
                            }
                        } else {
                            inside += keep.count_ones() as u64;
                        }
                    }
                    base_x += step;
                }
                TIME_HIGH => {
                    let new = (w & 0xFFF) as i64;
                    high = WRAP.next(high, th, new, sink.stats);
                    // A repeated time high keeps the time low; a new one starts it at 0.
                    if new != th {
                        low = 0;
                    }
                    th = new;
                    t = high + low - shift;
                }
                EXT_TRIGGER => {
                    sink.stats.triggers += 1;
                    sink.triggers.push(Trigger {
                        t,
                        id: ((w >> 8) & 0xF) as u8,
                        p: (w & 1) as u8,
                    });
                }
                OTHERS | CONTINUED_4 | CONTINUED_12 => {}
                _ => sink.stats.unknown_words += 1,
            }
        }
        if emit {
            // Single events counted themselves; vector events are the rest of what was written.
            inside = k as u64;
        }
        // SAFETY: the first k slots of each vector's spare capacity were written above.
        unsafe {
            e.x.set_len(len0 + k);
            e.y.set_len(len0 + k);
            e.p.set_len(len0 + k);
            e.t.set_len(len0 + k);
        }
        (self.high, self.th, self.low, self.t) = (high, th, low, t);
        (self.y, self.y_inside, self.have_row) = (y, y_inside, have_row);
        (self.base_x, self.pol) = (base_x, pol);
        self.last_event = last;
        sink.stats.events += inside;
        sink.stats.outside_sensor += outside;
        sink.stats.without_row += no_row;
    }
}

/// EVT 3.0 encoder: events in time order in, words out; the decoded order is the encoded order.
/// Runs of at least four consecutive events on one row with one polarity and one time stamp, at
/// increasing columns within 32, become a vector: `VECT_BASE_X` then the 12-12-8 group of words
/// Metavision's decoder expects (it reads a `VECT_12` as the start of such a group), never past the
/// sensor's right edge.
#[derive(Debug, Clone)]
pub struct Encoder {
    width: u32,
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
    /// An encoder for a sensor `width` columns wide.
    pub fn new(width: usize) -> Self {
        Self {
            width: width.min(2048) as u32,
            high: None,
            t: None,
            y: None,
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
        out.reserve(n * 2);
        let mut i = 0;
        while i < n {
            start_event(self, ev, i, triggers, out)?;
            let (t, x, y, p) = (ev.t[i], ev.x[i], ev.y[i], ev.p[i]);
            if self.y != Some(y) {
                put(out, ADDR_Y, y);
                self.y = Some(y);
            }
            // A run: same time, row and polarity, columns increasing within a 32-column group that
            // fits the sensor.
            let base = (x as u32).min(self.width.saturating_sub(32));
            let mut j = i + 1;
            while j < n
                && ev.t[j] == t
                && ev.y[j] == y
                && ev.p[j] == p
                && ev.x[j] > ev.x[j - 1]
                && (ev.x[j] as u32) < base + 32
            {
                j += 1;
            }
            if j - i < 4 || self.width < 32 || base > x as u32 {
                put(out, ADDR_X, ((p as u16 & 1) << 11) | x);
                i += 1;
                continue;
            }
            let mut mask = 0u32;
            for &xk in &ev.x[i..j] {
                mask |= 1 << (xk as u32 - base);
            }
            put(out, VECT_BASE_X, ((p as u16 & 1) << 11) | base as u16);
            put(out, VECT_12, (mask & 0xFFF) as u16);
            put(out, VECT_12, ((mask >> 12) & 0xFFF) as u16);
            put(out, VECT_8, ((mask >> 24) & 0xFF) as u16);
            i = j;
        }
        Ok(())
    }
}

impl TimeWords for Encoder {
    fn last_time(&self) -> Option<i64> {
        self.t
    }

    /// Emits time words for `t` (µs, ≥ the last time encoded).
    fn set_time(&mut self, t: i64, out: &mut Vec<u8>) {
        let u = t >> 12;
        let h = match self.high {
            Some(h) => h,
            None => {
                // The first time high is 0, so that Metavision's shift is 0 and both clocks
                // decode to the times encoded.
                put(out, TIME_HIGH, 0);
                0
            }
        };
        if h != u {
            step_time_high(h, u, 12, MAX_STEP, |th| put(out, TIME_HIGH, th as u16));
            self.t = None;
        }
        self.high = Some(u);
        if self.t != Some(t) {
            put(out, TIME_LOW, (t & 0xFFF) as u16);
            self.t = Some(t);
        }
    }

    /// Appends one trigger word.
    fn trigger(&mut self, tr: Trigger, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        check_trigger(&tr, self.t, 4)?;
        self.set_time(tr.t, out);
        put(out, EXT_TRIGGER, ((tr.id as u16) << 8) | (tr.p as u16 & 1));
        Ok(())
    }
}
