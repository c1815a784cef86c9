//! Prophesee RAW recordings (`.raw`, what every Prophesee camera and Metavision write): a text header
//! of `% key value` lines, then a stream of EVT 2.0 (32-bit), EVT 2.1 (64-bit) or EVT 3.0 (16-bit)
//! words. Written from Prophesee's published format descriptions; notes/raw_formats.md says where
//! the tools that read these files disagree and why evdet decodes as it does.
//!
//! Reading streams in chunks of bytes (memory bounded on a multi-GB file); every repair is counted in
//! [`DecodeStats`], never silent: events outside the sensor, words before the first time high,
//! unknown words, a truncated last word.

pub mod evt2;
pub mod evt21;
pub mod evt3;
pub mod header;
mod time;

use crate::error::{EventsError, Result};
use crate::event::EventBatch;
pub use header::{EvtFormat, EvtHeader};
use std::io::Read;
use std::path::{Path, PathBuf};
use time::TimeWords;

/// Which clock decoded timestamps are on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeOrigin {
    /// As Metavision presents them by default: sensor time minus the time of the recording's first
    /// time-high word, so a recording starts near 0 µs (what eTraM's HDF5 files and labels use).
    #[default]
    Metavision,
    /// The sensor's own clock, unshifted.
    Sensor,
}

impl std::str::FromStr for TimeOrigin {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "metavision" => Ok(Self::Metavision),
            "sensor" => Ok(Self::Sensor),
            other => Err(format!(
                "unknown time origin '{other}' (expected metavision or sensor)"
            )),
        }
    }
}

/// An external trigger edge, kept apart from the CD events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Trigger {
    /// Time in µs, on the same clock as the events.
    pub t: i64,
    /// Trigger channel.
    pub id: u8,
    /// Edge: 1 rising, 0 falling.
    pub p: u8,
}

/// What decoding met besides the events it returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DecodeStats {
    /// Words decoded (all types).
    pub words: u64,
    /// CD events inside the sensor, returned.
    pub events: u64,
    /// CD events whose x or y lies outside the sensor, dropped.
    pub outside_sensor: u64,
    /// Words before the first time high (their time is unknown), skipped.
    pub before_time_high: u64,
    /// EVT 3.0 events met before any row address (their row is unknown), dropped.
    pub without_row: u64,
    /// Words of a type the format does not define, skipped.
    pub unknown_words: u64,
    /// Times the time-high counter wrapped around (EVT 3.0: every 16.78 s).
    pub time_high_loops: u64,
    /// Time-high words going backwards by less than a wrap-around, decoded as is.
    pub time_high_backwards: u64,
    /// External trigger edges, returned apart from the events.
    pub triggers: u64,
    /// Bytes of an incomplete last word, ignored.
    pub truncated_bytes: u64,
}

/// Sensor bounds and clock shared by the three decoders.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// Sensor width and height: events at x ≥ width or y ≥ height are dropped.
    pub width: u32,
    pub height: u32,
    pub origin: TimeOrigin,
    /// Subtracted from every time; set at the first time high.
    pub shift: i64,
    pub started: bool,
}

impl Clock {
    pub fn new(sensor_hw: (usize, usize), origin: TimeOrigin) -> Self {
        Self {
            width: sensor_hw.1.min(u32::MAX as usize) as u32,
            height: sensor_hw.0.min(u32::MAX as usize) as u32,
            origin,
            shift: 0,
            started: false,
        }
    }
    /// Called at the first time high with its time in µs.
    pub fn start(&mut self, t: i64) {
        self.started = true;
        if self.origin == TimeOrigin::Metavision {
            self.shift = t;
        }
    }
}

/// Output of one decode call.
pub(crate) struct Sink<'a> {
    pub events: &'a mut EventBatch,
    pub triggers: &'a mut Vec<Trigger>,
    pub stats: &'a mut DecodeStats,
    /// False while seeking: time is followed, CD events are not materialised.
    pub emit: bool,
}

impl Sink<'_> {
    /// One CD event inside the sensor: counted, and materialised unless seeking.
    #[inline(always)]
    pub fn event(&mut self, x: u16, y: u16, p: u8, t: i64) {
        self.stats.events += 1;
        if self.emit {
            let e = &mut *self.events;
            e.x.push(x);
            e.y.push(y);
            e.p.push(p);
            e.t.push(t);
        }
    }
}

/// The decoder of a file's format, with its state between chunks.
#[derive(Clone)]
pub(crate) enum Decoder {
    Evt2(evt2::Decoder),
    Evt21(evt21::Decoder),
    Evt3(evt3::Decoder),
}

impl Decoder {
    pub fn new(format: EvtFormat, clock: Clock) -> Self {
        match format {
            EvtFormat::Evt2 => Self::Evt2(evt2::Decoder::new(clock)),
            EvtFormat::Evt21 { legacy } => Self::Evt21(evt21::Decoder::new(clock, legacy)),
            EvtFormat::Evt3 => Self::Evt3(evt3::Decoder::new(clock)),
        }
    }
    /// Decodes `bytes`, a whole number of words.
    pub fn decode(&mut self, bytes: &[u8], sink: &mut Sink) {
        match self {
            Self::Evt2(d) => d.decode(bytes, sink),
            Self::Evt21(d) => d.decode(bytes, sink),
            Self::Evt3(d) => d.decode(bytes, sink),
        }
    }
    /// The current time (µs, shifted as decoded events are), `None` before the first time high.
    pub fn now(&self) -> Option<i64> {
        match self {
            Self::Evt2(d) => d.now(),
            Self::Evt21(d) => d.now(),
            Self::Evt3(d) => d.now(),
        }
    }
    /// The time of the last CD event inside the sensor met so far, kept or not.
    pub fn last_event_time(&self) -> Option<i64> {
        match self {
            Self::Evt2(d) => d.last_event,
            Self::Evt21(d) => d.last_event,
            Self::Evt3(d) => d.last_event,
        }
    }
}

/// An open `.raw` file: its header, and where the words begin.
#[derive(Debug, Clone)]
pub struct EvtFile {
    path: PathBuf,
    pub header: EvtHeader,
    data_start: u64,
    file_len: u64,
}

impl EvtFile {
    /// Opens `path` and parses its header.
    pub fn open(path: &Path) -> Result<Self> {
        let mut f = std::fs::File::open(path).map_err(|e| EventsError::io(path, e))?;
        let file_len = f.metadata().map_err(|e| EventsError::io(path, e))?.len();
        if file_len == 0 {
            return Err(EventsError::format(
                path,
                "empty file (0 bytes): not a RAW recording",
            ));
        }
        // Headers are a few hundred bytes; 1 MiB bounds a file that is all '%' lines.
        let mut head = Vec::new();
        (&mut f)
            .take(1 << 20)
            .read_to_end(&mut head)
            .map_err(|e| EventsError::io(path, e))?;
        let (header, data_start) = header::parse(&head, path)?;
        Ok(Self {
            path: path.to_path_buf(),
            header,
            data_start: data_start as u64,
            file_len,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The sensor size: `given` (the user's `--sensor-size`) over the header's; an error naming the
    /// file when neither says.
    pub fn sensor_hw_or(&self, given: Option<(usize, usize)>) -> Result<(usize, usize)> {
        given.or(self.header.sensor_hw).ok_or_else(|| {
            EventsError::format(
                &self.path,
                "the RAW header gives no sensor size (no format height/width, geometry or known \
                 system_ID): give it with --sensor-size HxW",
            )
        })
    }

    /// Bytes of event words.
    pub fn data_len(&self) -> u64 {
        self.file_len - self.data_start
    }
    /// An upper bound on the CD events (one per word; EVT 2.1 vectors aside).
    pub fn event_count_hint(&self) -> u64 {
        self.data_len() / self.header.format.word_bytes() as u64
    }

    /// A reader from the first word, decoding `chunk_bytes` at a time (rounded to whole words).
    pub fn reader(
        &self,
        sensor_hw: (usize, usize),
        origin: TimeOrigin,
        chunk_bytes: usize,
    ) -> Result<EvtReader> {
        let mut file =
            std::fs::File::open(&self.path).map_err(|e| EventsError::io(&self.path, e))?;
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(self.data_start))
            .map_err(|e| EventsError::io(&self.path, e))?;
        let wb = self.header.format.word_bytes();
        Ok(EvtReader {
            path: self.path.clone(),
            file,
            decoder: Decoder::new(self.header.format, Clock::new(sensor_hw, origin)),
            word_bytes: wb,
            buf: vec![0; (chunk_bytes / wb).max(1) * wb],
            carry: 0,
            offset: self.data_start,
            eof: false,
            stats: DecodeStats::default(),
            triggers: Vec::new(),
            events: EventBatch::default(),
        })
    }

    /// First and last event time (µs), by one decoding pass that follows time without keeping
    /// events. `None` when the file holds no event inside the sensor.
    pub fn time_range(
        &self,
        sensor_hw: (usize, usize),
        origin: TimeOrigin,
    ) -> Result<Option<(i64, i64)>> {
        let mut r = self.reader(sensor_hw, origin, 1 << 22)?;
        let Some(first) = r.next_chunk()?.and_then(|c| c.t.first().copied()) else {
            return Ok(None);
        };
        Ok(r.scan_to_end()?.map(|last| (first, last.max(first))))
    }
}

/// Streaming decoder over a `.raw` file.
pub struct EvtReader {
    path: PathBuf,
    file: std::fs::File,
    decoder: Decoder,
    word_bytes: usize,
    buf: Vec<u8>,
    /// Bytes of an incomplete word kept at the front of `buf` for the next read.
    carry: usize,
    /// File offset of `buf[0]`.
    offset: u64,
    eof: bool,
    pub stats: DecodeStats,
    /// External triggers met so far.
    pub triggers: Vec<Trigger>,
    /// Decoded events not yet returned.
    events: EventBatch,
}

impl EvtReader {
    /// The next non-empty chunk of events, `None` at the end of the file.
    pub fn next_chunk(&mut self) -> Result<Option<EventBatch>> {
        while self.events.is_empty() {
            if !self.advance(true)? {
                return Ok(None);
            }
        }
        Ok(Some(std::mem::take(&mut self.events)))
    }

    /// Like [`next_chunk`](Self::next_chunk) into `out` (cleared first), reusing its memory: no
    /// allocation per chunk once `out` has grown. False at the end of the file.
    pub fn next_chunk_into(&mut self, out: &mut EventBatch) -> Result<bool> {
        out.clear();
        std::mem::swap(out, &mut self.events);
        while out.is_empty() {
            std::mem::swap(out, &mut self.events);
            let more = self.advance(true);
            std::mem::swap(out, &mut self.events);
            if !more? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Skips to the buffer holding the first event at or after `t` (µs): buffers whose time ends
    /// before `t` are decoded for their time only, without materialising their events. The next
    /// [`next_chunk`](Self::next_chunk) returns events from at or before `t` on.
    pub fn skip_to(&mut self, t: i64) -> Result<()> {
        self.events = EventBatch::default();
        loop {
            let n = self.fill()?;
            if n == 0 {
                return Ok(());
            }
            let whole = n - n % self.word_bytes;
            let saved = (self.decoder.clone(), self.stats, self.triggers.len());
            self.decode(whole, false);
            if self.decoder.now().is_none_or(|now| now < t) {
                self.compact(n, whole);
                continue;
            }
            // This buffer reaches t: decode it again, keeping its events.
            (self.decoder, self.stats) = (saved.0, saved.1);
            self.triggers.truncate(saved.2);
            self.decode(whole, true);
            self.compact(n, whole);
            return Ok(());
        }
    }

    /// Decodes the rest of the file, keeping nothing (the counts in `stats` grow); returns the time
    /// of the last event inside the sensor, if any.
    pub fn scan_to_end(&mut self) -> Result<Option<i64>> {
        while self.advance(false)? {}
        Ok(self.decoder.last_event_time())
    }

    /// Reads and decodes one buffer; false at the end of the file.
    fn advance(&mut self, emit: bool) -> Result<bool> {
        let n = self.fill()?;
        if n == 0 {
            return Ok(false);
        }
        let whole = n - n % self.word_bytes;
        self.decode(whole, emit);
        self.compact(n, whole);
        Ok(true)
    }

    /// Fills `buf` after the carried bytes; returns the bytes available (0 at the end).
    fn fill(&mut self) -> Result<usize> {
        let mut n = self.carry;
        while !self.eof && n < self.buf.len() {
            match self.file.read(&mut self.buf[n..]) {
                Ok(0) => self.eof = true,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(EventsError::io(
                        &self.path,
                        std::io::Error::new(
                            e.kind(),
                            format!("reading at byte {}: {e}", self.offset + n as u64),
                        ),
                    ))
                }
            }
        }
        if self.eof && n < self.word_bytes {
            // An incomplete last word (a truncated file): counted, not decoded.
            self.stats.truncated_bytes += n as u64;
            self.carry = 0;
            return Ok(0);
        }
        Ok(n)
    }

    fn decode(&mut self, whole: usize, emit: bool) {
        let mut sink = Sink {
            events: &mut self.events,
            triggers: &mut self.triggers,
            stats: &mut self.stats,
            emit,
        };
        self.decoder.decode(&self.buf[..whole], &mut sink);
    }

    /// Moves the bytes of an incomplete word to the front.
    fn compact(&mut self, n: usize, whole: usize) {
        self.buf.copy_within(whole..n, 0);
        self.carry = n - whole;
        self.offset += whole as u64;
    }
}

/// Checks event `i` before encoding: time not going back (nor negative), coordinates within
/// `max_coord`, polarity 0 or 1.
pub(crate) fn check_event(
    ev: crate::event::EventSlice,
    i: usize,
    last_t: Option<i64>,
    max_coord: u16,
) -> std::result::Result<(), String> {
    let t = ev.t[i];
    if t < 0 {
        return Err(format!("event {i} has a negative time {t} µs"));
    }
    if let Some(l) = last_t.filter(|&l| t < l) {
        return Err(format!(
            "event {i} at {t} µs comes after one at {l} µs: RAW files need events in time order"
        ));
    }
    if ev.x[i] > max_coord || ev.y[i] > max_coord {
        return Err(format!(
            "event {i} at ({}, {}) does not fit the format's {}-bit coordinates",
            ev.x[i],
            ev.y[i],
            16 - max_coord.leading_zeros()
        ));
    }
    if ev.p[i] > 1 {
        return Err(format!(
            "event {i} has polarity {} (expected 0 or 1)",
            ev.p[i]
        ));
    }
    Ok(())
}

enum Encoder {
    Evt2(evt2::Encoder),
    Evt21(evt21::Encoder),
    Evt3(evt3::Encoder),
}

/// Streaming writer of a `.raw` file: header, then the words of each appended batch. Written under
/// a temporary name and renamed by [`finish`](Self::finish), so a killed run leaves no `.raw` that
/// looks whole.
pub struct EvtWriter {
    path: PathBuf,
    tmp: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    encoder: Encoder,
    words: Vec<u8>,
    events: u64,
}

impl EvtWriter {
    pub fn create(path: &Path, format: EvtFormat, sensor_hw: (usize, usize)) -> Result<Self> {
        if sensor_hw.0 > 2048 || sensor_hw.1 > 2048 || sensor_hw.0 == 0 || sensor_hw.1 == 0 {
            return Err(EventsError::format(
                path,
                format!(
                    "a {}×{} sensor does not fit RAW's 11-bit coordinates",
                    sensor_hw.1, sensor_hw.0
                ),
            ));
        }
        let tmp = evdet_atomic::tmp_path(path);
        let f = std::fs::File::create(&tmp).map_err(|e| EventsError::io(&tmp, e))?;
        let mut file = std::io::BufWriter::with_capacity(1 << 20, f);
        use std::io::Write;
        file.write_all(header::render(format, sensor_hw).as_bytes())
            .map_err(|e| EventsError::io(&tmp, e))?;
        let encoder = match format {
            EvtFormat::Evt2 => Encoder::Evt2(evt2::Encoder::default()),
            EvtFormat::Evt21 { legacy } => Encoder::Evt21(evt21::Encoder::new(legacy)),
            EvtFormat::Evt3 => Encoder::Evt3(evt3::Encoder::new(sensor_hw.1)),
        };
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            file,
            encoder,
            words: Vec::new(),
            events: 0,
        })
    }

    /// Appends events (in time order, continuing the previous batch) and the triggers among them.
    pub fn append(&mut self, ev: &EventBatch, triggers: &[Trigger]) -> Result<()> {
        self.append_slice(ev.as_slice(), triggers)
    }

    pub fn append_slice(
        &mut self,
        ev: crate::event::EventSlice,
        triggers: &[Trigger],
    ) -> Result<()> {
        self.words.clear();
        let mut trig = triggers.iter().copied().peekable();
        let r = match &mut self.encoder {
            Encoder::Evt2(e) => e.encode(ev, &mut trig, &mut self.words),
            Encoder::Evt21(e) => e.encode(ev, &mut trig, &mut self.words),
            Encoder::Evt3(e) => e.encode(ev, &mut trig, &mut self.words),
        };
        let r = r.and_then(|()| {
            // Triggers after the batch's last event.
            trig.try_for_each(|tr| match &mut self.encoder {
                Encoder::Evt2(e) => e.trigger(tr, &mut self.words),
                Encoder::Evt21(e) => e.trigger(tr, &mut self.words),
                Encoder::Evt3(e) => e.trigger(tr, &mut self.words),
            })
        });
        r.map_err(|m| {
            EventsError::format(
                &self.path,
                format!("cannot encode event {} on: {m}", self.events),
            )
        })?;
        self.events += ev.len() as u64;
        use std::io::Write;
        self.file
            .write_all(&self.words)
            .map_err(|e| EventsError::io(&self.tmp, e))
    }

    /// Events written so far.
    pub fn len(&self) -> u64 {
        self.events
    }
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// Flushes the file to disk and moves it to its final name.
    pub fn finish(self) -> Result<()> {
        let f = self
            .file
            .into_inner()
            .map_err(|e| EventsError::io(&self.tmp, e.into_error()))?;
        f.sync_all().map_err(|e| EventsError::io(&self.tmp, e))?;
        drop(f);
        evdet_atomic::commit(&self.tmp, &self.path).map_err(EventsError::Write)
    }
}

/// Writes whole events (and triggers) to a `.raw` file.
pub fn write_evt(
    path: &Path,
    format: EvtFormat,
    sensor_hw: (usize, usize),
    ev: &EventBatch,
    triggers: &[Trigger],
) -> Result<()> {
    let mut w = EvtWriter::create(path, format, sensor_hw)?;
    w.append(ev, triggers)?;
    w.finish()
}

/// A whole decoded `.raw` file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    pub events: EventBatch,
    pub triggers: Vec<Trigger>,
    pub stats: DecodeStats,
}

/// Decodes a whole `.raw` file (tests and small files; use [`EvtFile::reader`] for recordings).
pub fn read_evt(
    path: &Path,
    sensor_hw: Option<(usize, usize)>,
    origin: TimeOrigin,
) -> Result<Decoded> {
    let f = EvtFile::open(path)?;
    let hw = f.sensor_hw_or(sensor_hw)?;
    let mut r = f.reader(hw, origin, 1 << 22)?;
    let mut events = EventBatch::default();
    while let Some(c) = r.next_chunk()? {
        events.extend(&c);
    }
    Ok(Decoded {
        events,
        triggers: std::mem::take(&mut r.triggers),
        stats: r.stats,
    })
}
