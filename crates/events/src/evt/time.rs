//! Time in the three EVT formats, shared by their decoders and encoders: unwrapping time-high words
//! over wrap-arounds, writing them (forward steps, and the last value before a wrap-around), the
//! 28-bit time high of EVT 2.0 / 2.1, and what every encoder checks and writes before an event.

use super::{check_event, Clock, DecodeStats, Trigger};
use crate::event::EventSlice;

/// How a format's time-high words wrap around.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeHighWrap {
    /// Time bits below the time high (EVT 2.x: 6, EVT 3.0: 12).
    pub low_bits: u32,
    /// One wrap-around of the whole time (µs).
    pub period_us: i64,
    /// A time high going back by this much or more (µs) is a wrap-around, by less a glitch that
    /// time follows backwards.
    pub threshold_us: i64,
}

impl TimeHighWrap {
    /// The unwrapped time high (µs) after the word `new`, the previous word being `prev` and its
    /// unwrapped time high `high`.
    #[inline(always)]
    pub fn next(&self, high: i64, prev: i64, new: i64, stats: &mut DecodeStats) -> i64 {
        let mut high = high;
        if new < prev {
            if (prev - new) << self.low_bits >= self.threshold_us {
                high += self.period_us;
                stats.time_high_loops += 1;
            } else {
                stats.time_high_backwards += 1;
            }
        }
        (high & !(self.period_us - 1)) | (new << self.low_bits)
    }
}

/// The decoding clock of EVT 2.0 / 2.1: the sensor's clock, the unwrapped time high (µs, unshifted)
/// and the last time-high word (28 bits of 64 µs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Evt2xClock {
    pub clock: Clock,
    high: i64,
    th: i64,
}

impl Evt2xClock {
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            high: 0,
            th: 0,
        }
    }

    /// The time of the last time high (µs, shifted), once the clock has started.
    pub fn now(&self) -> Option<i64> {
        self.clock.started.then_some(self.high - self.clock.shift)
    }

    /// The first time-high word starts the clock.
    pub fn start(&mut self, th: i64) {
        self.th = th;
        self.high = th << 6;
        self.clock.start(self.high);
    }

    /// A later time-high word.
    #[inline(always)]
    pub fn time_high(&mut self, th: i64, wrap: &TimeHighWrap, stats: &mut DecodeStats) {
        self.high = wrap.next(self.high, self.th, th, stats);
        self.th = th;
    }

    /// The time (µs, shifted) of a word whose low 6 time bits are `low`.
    #[inline(always)]
    pub fn at(&self, low: i64) -> i64 {
        self.high + low - self.clock.shift
    }
}

/// Time-high words from `from` to `to` (units of the time high, unwrapped; `from` already written):
/// forward steps of at most `max_step`, and across a wrap-around the last value before it, so every
/// reader's wrap-around rule sees a drop of the whole range. `put_th` gets each word's `bits`-bit value.
pub(crate) fn step_time_high(
    from: i64,
    to: i64,
    bits: u32,
    max_step: i64,
    mut put_th: impl FnMut(i64),
) {
    let period = 1i64 << bits;
    let mut h = from;
    while h < to {
        let wrap = (h / period + 1) * period;
        let next = if to < wrap {
            to.min(h + max_step)
        } else if h < wrap - 1 {
            (wrap - 1).min(h + max_step)
        } else {
            wrap
        };
        h = next;
        put_th(h & (period - 1));
    }
}

/// The time state of an EVT 2.0 / 2.1 encoder: time high of 64 µs units in 28 bits.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Evt2xTime {
    /// Time high of the last time-high word, in 64 µs units, unwrapped.
    high: Option<i64>,
    t: Option<i64>,
}

impl Evt2xTime {
    /// Writes, through `put_th`, the time-high words that bring the stream to `t` (µs). The first is
    /// 0, so that Metavision's shift is 0 and both clocks decode the encoded times.
    pub fn set(&mut self, t: i64, mut put_th: impl FnMut(u32)) {
        let u = t >> 6;
        let h = self.high.unwrap_or_else(|| {
            put_th(0);
            0
        });
        if h != u {
            step_time_high(h, u, 28, 1 << 28, |th| put_th(th as u32));
        }
        self.high = Some(u);
        self.t = Some(t);
    }

    /// The last time encoded.
    pub fn time(&self) -> Option<i64> {
        self.t
    }
}

/// A trigger may not go back in time, and its id must fit the format's `id_bits`.
pub(crate) fn check_trigger(tr: &Trigger, last_t: Option<i64>, id_bits: u32) -> Result<(), String> {
    if last_t.is_some_and(|t| tr.t < t) || tr.t < 0 {
        return Err(format!("trigger at {} µs goes back in time", tr.t));
    }
    if u32::from(tr.id) >= 1 << id_bits {
        return Err(format!(
            "trigger id {} does not fit in {id_bits} bits",
            tr.id
        ));
    }
    Ok(())
}

/// The parts of an encoder that every event needs before its own words.
pub(crate) trait TimeWords {
    /// The last time encoded.
    fn last_time(&self) -> Option<i64>;
    /// Writes the time words that bring the stream to `t`.
    fn set_time(&mut self, t: i64, out: &mut Vec<u8>);
    /// Writes one trigger word (checked).
    fn trigger(&mut self, tr: Trigger, out: &mut Vec<u8>) -> Result<(), String>;
}

/// Before event `i`: the triggers due at or before it, the checks of the event (time order,
/// 11-bit coordinates, polarity), its time words.
pub(crate) fn start_event<E: TimeWords>(
    enc: &mut E,
    ev: EventSlice,
    i: usize,
    triggers: &mut std::iter::Peekable<impl Iterator<Item = Trigger>>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let t = ev.t[i];
    while let Some(tr) = triggers.next_if(|tr| tr.t <= t) {
        enc.trigger(tr, out)?;
    }
    check_event(ev, i, enc.last_time(), 0x7FF)?;
    enc.set_time(t, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_step_back_is_a_wrap_around_and_a_small_one_a_glitch() {
        let wrap = TimeHighWrap {
            low_bits: 6,
            period_us: 1 << 34,
            threshold_us: ((1 << 28) - 1) * 64 - 10_000,
        };
        let mut stats = DecodeStats::default();
        let top = (1i64 << 28) - 1;
        let high = wrap.next(top << 6, top, 0, &mut stats);
        assert_eq!(high, 1 << 34);
        assert_eq!(stats.time_high_loops, 1);
        let back = wrap.next(high + (100 << 6), 100, 90, &mut stats);
        assert_eq!(back, (1 << 34) + (90 << 6));
        assert_eq!(stats.time_high_backwards, 1);
    }

    #[test]
    fn time_high_words_step_forward_and_mark_the_wrap_around() {
        let mut words = Vec::new();
        step_time_high(4090, 4096 + 3, 12, 2, |th| words.push(th));
        assert_eq!(words, [4092, 4094, 4095, 0, 2, 3]);
    }

    #[test]
    fn triggers_are_checked_against_time_and_id_width() {
        let tr = |t, id| Trigger { t, id, p: 1 };
        assert!(check_trigger(&tr(5, 15), Some(5), 4).is_ok());
        assert!(check_trigger(&tr(4, 0), Some(5), 4)
            .unwrap_err()
            .contains("back in time"));
        assert!(check_trigger(&tr(5, 16), None, 4)
            .unwrap_err()
            .contains("4 bits"));
        assert!(check_trigger(&tr(5, 31), None, 5).is_ok());
    }
}
