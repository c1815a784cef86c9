//! EVT 2.0: 32-bit little-endian words, the type in bits 28–31. `CD_OFF`/`CD_ON` carry one event
//! (y bits 0–10, x bits 11–21, time bits 0–5 in bits 22–27); `EVT_TIME_HIGH` carries time bits 6–33
//! in bits 0–27, so time is 34 bits and wraps every 2³⁴ µs (4.77 h).

use super::time::{check_trigger, start_event, Evt2xClock, Evt2xTime, TimeHighWrap, TimeWords};
use super::{Clock, Sink, Trigger};
use crate::event::EventSlice;

pub const CD_OFF: u32 = 0x0;
pub const CD_ON: u32 = 0x1;
pub const TIME_HIGH: u32 = 0x8;
pub const EXT_TRIGGER: u32 = 0xA;
pub const OTHERS: u32 = 0xE;
pub const CONTINUED: u32 = 0xF;

/// A time high going back by this much or more (µs) is a wrap-around, by less a glitch that time
/// follows backwards (openeb's rule: the whole range but 10 ms).
pub const LOOP_THRESHOLD_US: i64 = ((1 << 28) - 1) * 64 - 10_000;
/// The 34-bit time wraps every 2³⁴ µs.
const WRAP: TimeHighWrap = TimeHighWrap {
    low_bits: 6,
    period_us: 1 << 34,
    threshold_us: LOOP_THRESHOLD_US,
};

#[derive(Clone)]
pub struct Decoder {
    time: Evt2xClock,
    pub last_event: Option<i64>,
}

impl Decoder {
    pub(crate) fn new(clock: Clock) -> Self {
        Self {
            time: Evt2xClock::new(clock),
            last_event: None,
        }
    }

    pub fn now(&self) -> Option<i64> {
        self.time.now()
    }

    pub(crate) fn decode(&mut self, bytes: &[u8], sink: &mut Sink) {
        let words = bytes.chunks_exact(4);
        sink.stats.words += words.len() as u64;
        if sink.emit {
            sink.events.x.reserve(words.len());
            sink.events.y.reserve(words.len());
            sink.events.p.reserve(words.len());
            sink.events.t.reserve(words.len());
        }
        let (w_max, h_max) = (self.time.clock.width, self.time.clock.height);
        for w in words {
            let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            let kind = w >> 28;
            if !self.time.clock.started {
                if kind != TIME_HIGH {
                    sink.stats.before_time_high += 1;
                    continue;
                }
                self.time.start((w & 0x0FFF_FFFF) as i64);
                continue;
            }
            match kind {
                CD_OFF | CD_ON => {
                    let (x, y) = ((w >> 11) & 0x7FF, w & 0x7FF);
                    if x >= w_max || y >= h_max {
                        sink.stats.outside_sensor += 1;
                        continue;
                    }
                    let t = self.time.at(((w >> 22) & 0x3F) as i64);
                    self.last_event = Some(t);
                    sink.event(x as u16, y as u16, kind as u8, t);
                }
                TIME_HIGH => {
                    self.time
                        .time_high((w & 0x0FFF_FFFF) as i64, &WRAP, sink.stats);
                }
                EXT_TRIGGER => {
                    sink.stats.triggers += 1;
                    sink.triggers.push(Trigger {
                        t: self.time.at(((w >> 22) & 0x3F) as i64),
                        id: ((w >> 8) & 0x1F) as u8,
                        p: (w & 1) as u8,
                    });
                }
                OTHERS | CONTINUED => {}
                _ => sink.stats.unknown_words += 1,
            }
        }
    }
}

/// EVT 2.0 encoder: one word per event, a time high whenever time bits 6–33 change.
#[derive(Debug, Clone, Default)]
pub struct Encoder {
    time: Evt2xTime,
}

fn put(out: &mut Vec<u8>, w: u32) {
    out.extend_from_slice(&w.to_le_bytes());
}

impl TimeWords for Encoder {
    fn last_time(&self) -> Option<i64> {
        self.time.time()
    }

    fn set_time(&mut self, t: i64, out: &mut Vec<u8>) {
        self.time.set(t, |th| put(out, (TIME_HIGH << 28) | th));
    }

    fn trigger(&mut self, tr: Trigger, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        check_trigger(&tr, self.time.time(), 5)?;
        self.set_time(tr.t, out);
        put(
            out,
            (EXT_TRIGGER << 28)
                | (((tr.t & 0x3F) as u32) << 22)
                | ((tr.id as u32) << 8)
                | (tr.p as u32 & 1),
        );
        Ok(())
    }
}

impl Encoder {
    pub fn time(&self) -> Option<i64> {
        self.time.time()
    }

    pub fn encode(
        &mut self,
        ev: EventSlice,
        triggers: &mut std::iter::Peekable<impl Iterator<Item = Trigger>>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), String> {
        out.reserve(ev.len() * 4);
        for i in 0..ev.len() {
            start_event(self, ev, i, triggers, out)?;
            put(
                out,
                ((ev.p[i] as u32) << 28)
                    | (((ev.t[i] & 0x3F) as u32) << 22)
                    | ((ev.x[i] as u32) << 11)
                    | ev.y[i] as u32,
            );
        }
        Ok(())
    }
}
