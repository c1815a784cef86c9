//! EVT 2.1: 64-bit words, the type in bits 60–63. `EVT_NEG`/`EVT_POS` carry a vector of up to 32
//! events of one polarity on one row: time bits 0–5 in bits 54–59, x (a multiple of 32) in bits
//! 43–53, y in bits 32–42 and a 32-bit mask in bits 0–31 (bit i → column x + i). `EVT_TIME_HIGH`
//! carries time bits 6–33 in bits 32–59. The little-endian variant stores the word as one
//! little-endian u64; the legacy one (early Gen4/IMX636 evaluation kits) stores its upper 32 bits
//! first, each half little-endian.

use super::time::{check_trigger, start_event, Evt2xClock, Evt2xTime, TimeHighWrap, TimeWords};
use super::{Clock, Sink, Trigger};
use crate::event::EventSlice;

pub const EVT_NEG: u64 = 0x0;
pub const EVT_POS: u64 = 0x1;
pub const TIME_HIGH: u64 = 0x8;
pub const EXT_TRIGGER: u64 = 0xA;
pub const OTHERS: u64 = 0xE;
pub const CONTINUED: u64 = 0xF;

/// A time high going back by the whole range (µs) is a wrap-around, anything less a glitch that
/// time follows backwards (openeb's rule).
pub const LOOP_THRESHOLD_US: i64 = ((1 << 28) - 1) * 64;
/// The 34-bit time wraps every 2³⁴ µs.
const WRAP: TimeHighWrap = TimeHighWrap {
    low_bits: 6,
    period_us: 1 << 34,
    threshold_us: LOOP_THRESHOLD_US,
};

/// The 64-bit word at the start of `b` (8 bytes).
#[inline(always)]
pub fn word(b: &[u8], legacy: bool) -> u64 {
    let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
    let hi = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as u64;
    if legacy {
        (lo << 32) | hi
    } else {
        (hi << 32) | lo
    }
}

/// The bytes of a 64-bit word.
pub fn bytes(w: u64, legacy: bool) -> [u8; 8] {
    let (a, b) = if legacy {
        ((w >> 32) as u32, w as u32)
    } else {
        (w as u32, (w >> 32) as u32)
    };
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&a.to_le_bytes());
    out[4..].copy_from_slice(&b.to_le_bytes());
    out
}

#[derive(Clone)]
pub struct Decoder {
    time: Evt2xClock,
    legacy: bool,
    pub last_event: Option<i64>,
}

impl Decoder {
    pub(crate) fn new(clock: Clock, legacy: bool) -> Self {
        Self {
            time: Evt2xClock::new(clock),
            legacy,
            last_event: None,
        }
    }

    pub fn now(&self) -> Option<i64> {
        self.time.now()
    }

    pub(crate) fn decode(&mut self, bytes: &[u8], sink: &mut Sink) {
        let words = bytes.chunks_exact(8);
        sink.stats.words += words.len() as u64;
        let (w_max, h_max) = (self.time.clock.width, self.time.clock.height);
        for b in words {
            let w = word(b, self.legacy);
            let kind = w >> 60;
            if !self.time.clock.started {
                if kind != TIME_HIGH {
                    sink.stats.before_time_high += 1;
                    continue;
                }
                self.time.start(((w >> 32) & 0x0FFF_FFFF) as i64);
                continue;
            }
            match kind {
                EVT_NEG | EVT_POS => {
                    let t = self.time.at(((w >> 54) & 0x3F) as i64);
                    let (x0, y) = (((w >> 43) & 0x7FF) as u32, ((w >> 32) & 0x7FF) as u32);
                    let mut mask = (w & 0xFFFF_FFFF) as u32;
                    if y >= h_max {
                        sink.stats.outside_sensor += mask.count_ones() as u64;
                        continue;
                    }
                    while mask != 0 {
                        let x = x0 + mask.trailing_zeros();
                        mask &= mask - 1;
                        if x >= w_max {
                            sink.stats.outside_sensor += 1;
                            continue;
                        }
                        self.last_event = Some(t);
                        sink.event(x as u16, y as u16, kind as u8, t);
                    }
                }
                TIME_HIGH => {
                    self.time
                        .time_high(((w >> 32) & 0x0FFF_FFFF) as i64, &WRAP, sink.stats);
                }
                EXT_TRIGGER => {
                    sink.stats.triggers += 1;
                    sink.triggers.push(Trigger {
                        t: self.time.at(((w >> 54) & 0x3F) as i64),
                        id: ((w >> 40) & 0x1F) as u8,
                        p: ((w >> 32) & 1) as u8,
                    });
                }
                OTHERS | CONTINUED => {}
                _ => sink.stats.unknown_words += 1,
            }
        }
    }
}

/// EVT 2.1 encoder: consecutive events with one time, row and polarity inside one 32-column block
/// share a vector word.
#[derive(Debug, Clone, Default)]
pub struct Encoder {
    pub legacy: bool,
    time: Evt2xTime,
}

impl TimeWords for Encoder {
    fn last_time(&self) -> Option<i64> {
        self.time.time()
    }

    fn set_time(&mut self, t: i64, out: &mut Vec<u8>) {
        let legacy = self.legacy;
        self.time.set(t, |th| {
            out.extend_from_slice(&bytes((TIME_HIGH << 60) | ((th as u64) << 32), legacy))
        });
    }

    fn trigger(&mut self, tr: Trigger, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        check_trigger(&tr, self.time.time(), 5)?;
        self.set_time(tr.t, out);
        self.put(
            out,
            (EXT_TRIGGER << 60)
                | (((tr.t & 0x3F) as u64) << 54)
                | ((tr.id as u64) << 40)
                | ((tr.p as u64 & 1) << 32),
        );
        Ok(())
    }
}

impl Encoder {
    pub fn new(legacy: bool) -> Self {
        Self {
            legacy,
            ..Default::default()
        }
    }

    fn put(&self, out: &mut Vec<u8>, w: u64) {
        out.extend_from_slice(&bytes(w, self.legacy));
    }

    pub fn time(&self) -> Option<i64> {
        self.time.time()
    }

    pub fn encode(
        &mut self,
        ev: EventSlice,
        triggers: &mut std::iter::Peekable<impl Iterator<Item = Trigger>>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), String> {
        let n = ev.len();
        let mut i = 0;
        while i < n {
            start_event(self, ev, i, triggers, out)?;
            let (t, y, p) = (ev.t[i], ev.y[i], ev.p[i]);
            let x0 = ev.x[i] & !31;
            let mut mask = 1u32 << (ev.x[i] - x0);
            let mut j = i + 1;
            while j < n
                && ev.t[j] == t
                && ev.y[j] == y
                && ev.p[j] == p
                && ev.x[j] > ev.x[j - 1]
                && ev.x[j] < x0 + 32
            {
                mask |= 1 << (ev.x[j] - x0);
                j += 1;
            }
            self.put(
                out,
                ((p as u64) << 60)
                    | (((t & 0x3F) as u64) << 54)
                    | ((x0 as u64) << 43)
                    | ((y as u64) << 32)
                    | mask as u64,
            );
            i = j;
        }
        Ok(())
    }
}
