//! A recording of events whatever its file: eTraM/Prophesee `_td.h5`, Prophesee `.raw` (EVT 2.0,
//! 2.1, 3.0) or `.dat`. Every command opens, streams and seeks recordings through this one type, so
//! a format works everywhere once it works here. Streams return validated chunks: events outside
//! the sensor dropped, decreasing times raised to the running maximum (as RVT does), both counted.

use crate::dat;
use crate::error::{EventsError, Result};
use crate::event::EventBatch;
use crate::evt::{DecodeStats, EvtFile, EvtReader, TimeOrigin, Trigger};
use crate::h5_events::{RawEventFile, ReadStats, StreamCursor};
use std::path::{Path, PathBuf};

/// How to open a recording.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OpenOptions {
    /// Sensor size `(height, width)` overriding what the file says (RAW headers may say nothing).
    pub sensor_hw: Option<(usize, usize)>,
    /// Clock of RAW timestamps (other formats store times as they are).
    pub time_origin: TimeOrigin,
}

/// The file formats a recording can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingFormat {
    H5,
    Raw,
    Dat,
}

impl RecordingFormat {
    /// The format a path's name says: `.raw`, `.dat`, or `.h5`.
    pub fn of_path(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        if name.ends_with(".raw") {
            Some(Self::Raw)
        } else if name.ends_with(".dat") {
            Some(Self::Dat)
        } else if name.ends_with(".h5") || name.ends_with(".hdf5") {
            Some(Self::H5)
        } else {
            None
        }
    }
}

enum Inner {
    H5(RawEventFile),
    Evt(EvtFile),
    Dat(dat::DatLayout),
}

/// An open recording.
pub struct Recording {
    path: PathBuf,
    inner: Inner,
    opts: OpenOptions,
}

impl Recording {
    /// Opens `path` by its extension (`.raw`, `.dat`, `.h5`).
    pub fn open(path: &Path, opts: OpenOptions) -> Result<Self> {
        let inner = match RecordingFormat::of_path(path) {
            Some(RecordingFormat::Raw) => Inner::Evt(EvtFile::open(path)?),
            Some(RecordingFormat::Dat) => Inner::Dat(dat::DatLayout::open(path)?),
            Some(RecordingFormat::H5) => Inner::H5(RawEventFile::open(path)?),
            None => {
                return Err(EventsError::format(
                    path,
                    "not a recording evdet reads (expected .raw, .dat or _td.h5)",
                ))
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            inner,
            opts,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format, in words (`HDF5`, `EVT 3.0`, `DAT`).
    pub fn format_name(&self) -> String {
        match &self.inner {
            Inner::H5(f) => match f.layout() {
                crate::h5_events::H5Layout::Etram => "HDF5".into(),
                crate::h5_events::H5Layout::Dsec { t_offset } => {
                    format!("DSEC HDF5, t_offset {t_offset} µs")
                }
            },
            Inner::Evt(f) => f.header.format.to_string(),
            Inner::Dat(_) => "DAT".into(),
        }
    }

    pub fn format(&self) -> RecordingFormat {
        match &self.inner {
            Inner::H5(_) => RecordingFormat::H5,
            Inner::Evt(_) => RecordingFormat::Raw,
            Inner::Dat(_) => RecordingFormat::Dat,
        }
    }

    /// The sensor size: the one given when opening, else the file's, else `None`.
    pub fn sensor_hw(&self) -> Option<(usize, usize)> {
        self.opts.sensor_hw.or(match &self.inner {
            Inner::H5(f) => f.stored_sensor_hw(),
            Inner::Evt(f) => f.header.sensor_hw,
            Inner::Dat(d) => d.sensor_hw,
        })
    }

    /// The sensor size, or `default` for formats that may not store one (HDF5, DAT); a RAW file
    /// without one is an error naming the file, since no default is safe for its cameras.
    pub fn sensor_hw_or(&self, default: (usize, usize)) -> Result<(usize, usize)> {
        match (&self.inner, self.sensor_hw()) {
            (_, Some(hw)) => Ok(hw),
            (Inner::Evt(f), None) => f.sensor_hw_or(None),
            _ => Ok(default),
        }
    }

    /// Number of events (exact for HDF5 and DAT, an upper bound for RAW).
    pub fn event_count_hint(&self) -> u64 {
        match &self.inner {
            Inner::H5(f) => f.len() as u64,
            Inner::Evt(f) => f.event_count_hint(),
            Inner::Dat(d) => d.len(),
        }
    }

    /// Streams validated chunks of about `chunk` events for a `sensor_hw` sensor.
    pub fn stream(&self, sensor_hw: (usize, usize), chunk: usize) -> Result<RecordingStream> {
        let inner = match &self.inner {
            Inner::H5(f) => StreamInner::H5(f.clone(), StreamCursor::new(sensor_hw, chunk)),
            Inner::Evt(f) => StreamInner::Evt(Box::new(f.reader(
                sensor_hw,
                self.opts.time_origin,
                // EVT 3.0 packs about one event per word.
                chunk.max(1) * 2,
            )?)),
            Inner::Dat(d) => StreamInner::Dat(d.reader(chunk)?),
        };
        Ok(RecordingStream {
            inner,
            sensor_hw,
            t_max: i64::MIN,
            stats: ReadStats::default(),
        })
    }

    /// First and last event time (µs), `None` for a recording without events. HDF5 and DAT read
    /// two events; RAW decodes the file once, following time only.
    pub fn time_range(&self, sensor_hw: (usize, usize)) -> Result<Option<(i64, i64)>> {
        match &self.inner {
            Inner::H5(f) => {
                if f.is_empty() {
                    return Ok(None);
                }
                let first = f.read_raw_range(0, 1)?[3][0];
                let last = f.read_raw_range(f.len() - 1, f.len())?[3][0];
                Ok(Some((first, last.max(first))))
            }
            Inner::Evt(f) => f.time_range(sensor_hw, self.opts.time_origin),
            Inner::Dat(d) => d.time_range(),
        }
    }
}

/// Events and time span of a whole recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingSummary {
    /// Events inside the sensor.
    pub events: u64,
    /// First and last event time (µs).
    pub time_range: Option<(i64, i64)>,
}

impl Recording {
    /// Counts events and finds the time span. HDF5 and DAT read their sizes (all events counted);
    /// RAW decodes the file once without keeping events (events outside the sensor not counted).
    pub fn summary(&self, sensor_hw: (usize, usize)) -> Result<RecordingSummary> {
        match &self.inner {
            Inner::Evt(f) => {
                let mut r = f.reader(sensor_hw, self.opts.time_origin, 1 << 22)?;
                let first = r.next_chunk()?.and_then(|c| c.t.first().copied());
                let last = r.scan_to_end()?;
                Ok(RecordingSummary {
                    events: r.stats.events,
                    time_range: first.zip(last).map(|(f, l)| (f, l.max(f))),
                })
            }
            _ => Ok(RecordingSummary {
                events: self.event_count_hint(),
                time_range: self.time_range(sensor_hw)?,
            }),
        }
    }
}

enum StreamInner {
    H5(RawEventFile, StreamCursor),
    Evt(Box<EvtReader>),
    Dat(dat::DatReader),
}

/// Chunks of a recording's events, validated (see the module's documentation).
pub struct RecordingStream {
    inner: StreamInner,
    sensor_hw: (usize, usize),
    t_max: i64,
    pub stats: ReadStats,
}

impl RecordingStream {
    /// The next chunk, `None` at the end. Chunks may be empty.
    pub fn next_chunk(&mut self) -> Result<Option<EventBatch>> {
        match &mut self.inner {
            StreamInner::H5(f, cursor) => {
                let r = cursor.next_chunk(f);
                self.stats = cursor.stats;
                r
            }
            StreamInner::Evt(r) => {
                let Some(mut c) = r.next_chunk()? else {
                    self.stats.skipped_words = r.stats.before_time_high + r.stats.unknown_words;
                    self.stats.dropped_outside_sensor = r.stats.outside_sensor;
                    self.stats.truncated_bytes = r.stats.truncated_bytes;
                    return Ok(None);
                };
                // The decoder drops events outside the sensor itself.
                self.stats.events_read = r.stats.events + r.stats.outside_sensor;
                self.stats.dropped_outside_sensor = r.stats.outside_sensor;
                self.stats.skipped_words = r.stats.before_time_high + r.stats.unknown_words;
                repair_time(&mut c.t, &mut self.t_max, &mut self.stats);
                Ok(Some(c))
            }
            StreamInner::Dat(r) => {
                let Some(mut c) = r.next_chunk()? else {
                    return Ok(None);
                };
                self.stats.events_read += c.len() as u64;
                repair_time(&mut c.t, &mut self.t_max, &mut self.stats);
                drop_outside(&mut c, self.sensor_hw, &mut self.stats);
                Ok(Some(c))
            }
        }
    }

    /// Moves on to about time `t` (µs): the next chunk starts at or before the first event at `t`.
    pub fn skip_to(&mut self, t: i64) -> Result<()> {
        match &mut self.inner {
            StreamInner::H5(f, cursor) => cursor.skip_to(f, t),
            StreamInner::Evt(r) => r.skip_to(t),
            StreamInner::Dat(r) => r.skip_to(t),
        }
    }

    /// External triggers met so far (RAW only).
    pub fn triggers(&self) -> &[Trigger] {
        match &self.inner {
            StreamInner::Evt(r) => &r.triggers,
            _ => &[],
        }
    }

    /// The RAW decoder's counts, for RAW recordings.
    pub fn decode_stats(&self) -> Option<DecodeStats> {
        match &self.inner {
            StreamInner::Evt(r) => Some(r.stats),
            _ => None,
        }
    }
}

/// Raises decreasing times to the running maximum (REFERENCE §5.1), counting each.
fn repair_time(t: &mut [i64], t_max: &mut i64, stats: &mut ReadStats) {
    for ti in t.iter_mut() {
        if *ti < *t_max {
            *ti = *t_max;
            stats.timestamps_repaired += 1;
        } else {
            *t_max = *ti;
        }
    }
}

fn drop_outside(c: &mut EventBatch, (h, w): (usize, usize), stats: &mut ReadStats) {
    let keep = |i: usize| (c.x[i] as usize) < w && (c.y[i] as usize) < h;
    if (0..c.len()).all(keep) {
        return;
    }
    let mut out = EventBatch::default();
    for i in 0..c.len() {
        if keep(i) {
            out.x.push(c.x[i]);
            out.y.push(c.y[i]);
            out.p.push(c.p[i]);
            out.t.push(c.t[i]);
        } else {
            stats.dropped_outside_sensor += 1;
        }
    }
    *c = out;
}

/// The file formats evdet writes recordings in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteFormat {
    /// eTraM's `_td.h5` (blosc-zstd).
    #[default]
    H5,
    /// Prophesee RAW, EVT 3.0 (with vector words).
    RawEvt3,
    /// Prophesee RAW, EVT 2.0.
    RawEvt2,
    /// Prophesee RAW, EVT 2.1 (little-endian word order).
    RawEvt21,
    /// Prophesee `.dat` (Event2D).
    Dat,
}

impl WriteFormat {
    pub const NAMES: &'static str = "h5, raw-evt3, raw-evt2, raw-evt21, dat";

    /// The file name of sequence `name` in this format.
    pub fn file_name(&self, name: &str) -> String {
        match self {
            WriteFormat::H5 => format!("{name}_td.h5"),
            WriteFormat::RawEvt3 | WriteFormat::RawEvt2 | WriteFormat::RawEvt21 => {
                format!("{name}.raw")
            }
            WriteFormat::Dat => format!("{name}_td.dat"),
        }
    }

    /// The format a file name asks for (`.raw` is EVT 3.0).
    pub fn of_path(path: &Path) -> Option<Self> {
        Some(match RecordingFormat::of_path(path)? {
            RecordingFormat::H5 => Self::H5,
            RecordingFormat::Raw => Self::RawEvt3,
            RecordingFormat::Dat => Self::Dat,
        })
    }
}

impl std::str::FromStr for WriteFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "h5" => Self::H5,
            "raw-evt3" | "raw" | "evt3" => Self::RawEvt3,
            "raw-evt2" | "evt2" => Self::RawEvt2,
            "raw-evt21" | "evt21" => Self::RawEvt21,
            "dat" => Self::Dat,
            other => {
                return Err(format!(
                    "unknown format '{other}' (expected one of {})",
                    Self::NAMES
                ))
            }
        })
    }
}

impl std::fmt::Display for WriteFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriteFormat::H5 => "h5",
            WriteFormat::RawEvt3 => "raw-evt3",
            WriteFormat::RawEvt2 => "raw-evt2",
            WriteFormat::RawEvt21 => "raw-evt21",
            WriteFormat::Dat => "dat",
        })
    }
}

/// A streaming writer of any [`WriteFormat`]; each writes under a temporary name and renames in
/// `finish`.
pub enum RecordingWriter {
    H5(crate::h5_events::RawEventWriter),
    Evt(crate::evt::EvtWriter),
    Dat(dat::DatWriter),
}

impl RecordingWriter {
    pub fn create(path: &Path, format: WriteFormat, sensor_hw: (usize, usize)) -> Result<Self> {
        use crate::evt::{EvtFormat, EvtWriter};
        Ok(match format {
            WriteFormat::H5 => Self::H5(crate::h5_events::RawEventWriter::create(
                path,
                sensor_hw,
                crate::h5_events::Compression::BloscZstd(1),
            )?),
            WriteFormat::RawEvt3 => Self::Evt(EvtWriter::create(path, EvtFormat::Evt3, sensor_hw)?),
            WriteFormat::RawEvt2 => Self::Evt(EvtWriter::create(path, EvtFormat::Evt2, sensor_hw)?),
            WriteFormat::RawEvt21 => Self::Evt(EvtWriter::create(
                path,
                EvtFormat::Evt21 { legacy: false },
                sensor_hw,
            )?),
            WriteFormat::Dat => Self::Dat(dat::DatWriter::create(path, sensor_hw)?),
        })
    }

    /// Appends events in time order (and, for RAW, the triggers among them).
    pub fn append(&mut self, ev: &EventBatch, triggers: &[Trigger]) -> Result<()> {
        match self {
            Self::H5(w) => w.append(ev),
            Self::Evt(w) => w.append(ev, triggers),
            Self::Dat(w) => w.append(ev),
        }
    }

    /// Events written so far.
    pub fn len(&self) -> u64 {
        match self {
            Self::H5(w) => w.len() as u64,
            Self::Evt(w) => w.len(),
            Self::Dat(w) => w.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn finish(self) -> Result<()> {
        match self {
            Self::H5(w) => w.finish(),
            Self::Evt(w) => w.finish(),
            Self::Dat(w) => w.finish(),
        }
    }
}
