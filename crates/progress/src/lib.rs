//! Progress of long work: a bar when stderr is a terminal, plain lines when it is not.
//!
//! SLURM logs, `nohup`, CI and `evdet study`'s children have no terminal, and indicatif draws nothing
//! there; so outside a terminal a [`Progress`] prints one plain line (position / total, percent, the
//! current message, rate, ETA) at most every [`interval`] and one when the work ends, as Lightning and
//! ultralytics do. `EVDET_PROGRESS_INTERVAL_S` sets the interval (default 10 s; 0 prints every update).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The interval between plain progress lines: `EVDET_PROGRESS_INTERVAL_S`, else 10 s.
pub fn interval() -> Duration {
    std::env::var("EVDET_PROGRESS_INTERVAL_S")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(Duration::from_secs(10), Duration::from_secs_f64)
}

/// A bar counting `total` units of `unit`, with rate and ETA (plain lines outside a terminal).
pub fn bar(total: u64, unit: &str) -> Progress {
    if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(total);
        let template = format!("{{spinner}} {{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, ETA {{eta}})");
        pb.set_style(
            ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress {
            bar: Some(pb),
            plain: Mutex::new(Plain::new(total, unit)),
        }
    } else {
        Progress {
            bar: None,
            plain: Mutex::new(Plain::new(total, unit)),
        }
    }
}

/// A progress display that prints nothing at all (e.g. on the non-zero ranks of a parallel run).
pub fn hidden() -> Progress {
    let mut plain = Plain::new(0, "");
    plain.silent = true;
    Progress {
        bar: Some(ProgressBar::hidden()),
        plain: Mutex::new(plain),
    }
}

/// See the module doc. Every method takes `&self`, so closures called from worker threads can share it.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: Mutex<Plain>,
}

struct Plain {
    unit: String,
    message: String,
    pos: u64,
    len: u64,
    /// Where this process started counting (a resumed run starts past 0): the rate counts from here.
    start_pos: Option<u64>,
    started: Instant,
    last_line: Option<Instant>,
    interval: Duration,
    silent: bool,
}

impl Plain {
    fn new(len: u64, unit: &str) -> Self {
        Plain {
            unit: unit.to_string(),
            message: String::new(),
            pos: 0,
            len,
            start_pos: None,
            started: Instant::now(),
            last_line: None,
            interval: interval(),
            silent: false,
        }
    }

    fn line(&self, done: bool) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let counted = self.pos.saturating_sub(self.start_pos.unwrap_or(0));
        let rate = if elapsed > 0.0 {
            counted as f64 / elapsed
        } else {
            0.0
        };
        let mut s = String::new();
        if !self.message.is_empty() {
            s.push_str(self.message.trim_end());
            s.push_str(": ");
        }
        if self.len > 0 {
            s.push_str(&format!(
                "{}/{} {} ({:.0}%)",
                self.pos,
                self.len,
                self.unit,
                100.0 * self.pos as f64 / self.len as f64
            ));
        } else {
            s.push_str(&format!("{} {}", self.pos, self.unit));
        }
        s.push_str(&format!(", {} {}/s", format_rate(rate), self.unit));
        if done {
            s.push_str(&format!(", done in {}", format_duration(elapsed)));
        } else if self.len > self.pos && rate > 0.0 {
            let eta = (self.len - self.pos) as f64 / rate;
            s.push_str(&format!(", ETA {}", format_duration(eta)));
        }
        s
    }

    /// Prints a line when the interval has passed since the last one (the first update of the work
    /// only starts the clock, so a quick job prints nothing but its end).
    fn maybe_print(&mut self) {
        if self.silent {
            return;
        }
        let now = Instant::now();
        let due = match self.last_line {
            None => now.duration_since(self.started) >= self.interval,
            Some(t) => now.duration_since(t) >= self.interval,
        };
        if due {
            self.last_line = Some(now);
            eprintln!("{}", self.line(false));
        }
    }
}

fn format_rate(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else if r >= 1.0 {
        format!("{r:.2}")
    } else {
        format!("{r:.3}")
    }
}

/// `1h02m03s`, `4m05s`, `7.2s`.
pub fn format_duration(s: f64) -> String {
    if !s.is_finite() {
        return "?".into();
    }
    let whole = s.round() as u64;
    if whole >= 3600 {
        format!("{}h{:02}m{:02}s", whole / 3600, whole / 60 % 60, whole % 60)
    } else if whole >= 60 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        format!("{s:.1}s")
    }
}

impl Progress {
    fn plain(&self) -> std::sync::MutexGuard<'_, Plain> {
        // A panic while printing a progress line must not hide the real error behind a poisoned lock.
        self.plain.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_position(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
            return;
        }
        let mut p = self.plain();
        if p.start_pos.is_none() {
            p.start_pos = Some(pos);
        }
        p.pos = pos;
        p.maybe_print();
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
            return;
        }
        let mut p = self.plain();
        p.start_pos.get_or_insert(0);
        p.pos += n;
        p.maybe_print();
    }

    pub fn set_length(&self, len: u64) {
        if let Some(b) = &self.bar {
            b.set_length(len);
        }
        self.plain().len = len;
    }

    pub fn set_message(&self, msg: impl Into<String>) {
        let msg = msg.into();
        if let Some(b) = &self.bar {
            b.set_message(msg);
            return;
        }
        self.plain().message = msg;
    }

    /// Prints a line above the bar (plainly outside a terminal).
    pub fn println(&self, line: impl AsRef<str>) {
        match &self.bar {
            Some(b) => b.println(line.as_ref()),
            None => eprintln!("{}", line.as_ref()),
        }
    }

    /// Removes the bar; outside a terminal prints the last line, with the time the work took.
    pub fn finish_and_clear(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
            return;
        }
        let p = self.plain();
        if !p.silent && p.start_pos.is_some() {
            eprintln!("{}", p.line(true));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_say_position_rate_and_eta() {
        let mut p = Plain::new(400, "steps");
        p.message = "loss 3.210 ".into();
        p.start_pos = Some(100);
        p.pos = 200;
        p.started = Instant::now() - Duration::from_secs(50);
        let l = p.line(false);
        assert!(
            l.starts_with("loss 3.210: 200/400 steps (50%), 2.00 steps/s, ETA 1m40s"),
            "{l}"
        );
        let l = p.line(true);
        assert!(l.ends_with("done in 50.0s"), "{l}");
        p.len = 0;
        assert!(p.line(false).starts_with("loss 3.210: 200 steps, 2.00"));
    }

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(format_duration(7.24), "7.2s");
        assert_eq!(format_duration(245.0), "4m05s");
        assert_eq!(format_duration(3723.0), "1h02m03s");
        assert_eq!(format_duration(f64::INFINITY), "?");
    }
}
