//! eTraM / Prophesee Gen4 raw event files `<seq>_td.h5` (REFERENCE §5.1): group `events` with 1-D
//! datasets `x`, `y`, `p`, `t` of any integer type, optional scalar `height`/`width`, compressed with
//! blosc (filter 32001, any compressor), gzip or nothing. Read in chunks so a one-hour recording is never
//! held whole; a streaming writer produces the same layout (used by `evdet synth` and the benchmarks).
//!
//! DSEC's `events/left/events.h5` uses the same `events/{x,y,p,t}` names, with times relative to a
//! root `t_offset` (µs) and a root `ms_to_idx` index: recognised by those two datasets, read with
//! `t_offset` added (its labels are in absolute time) and a 640×480 sensor. eTraM's and RVT's files may
//! have `ms_to_idx` as well, never `t_offset`; a `t_offset` without `ms_to_idx` is refused rather than
//! guessed at.

use crate::error::{EventsError, Result};
use crate::event::EventBatch;
use hdf5::types::{IntSize, TypeDescriptor};
use std::path::{Path, PathBuf};

/// Gen4 / eTraM sensor size used when a file has no `height`/`width` (REFERENCE §5.1).
pub const GEN4_HW: (usize, usize) = (720, 1280);
/// Gen1 sensor size.
pub const GEN1_HW: (usize, usize) = (240, 304);
/// DSEC's event camera (640×480).
pub const DSEC_HW: (usize, usize) = (480, 640);

/// Which layout of `events/{x,y,p,t}` a file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H5Layout {
    /// eTraM / Prophesee Gen1, Gen4 (`<seq>_td.h5`): absolute times.
    Etram,
    /// DSEC (`events.h5` with `ms_to_idx` and `t_offset`): stored times + `t_offset`.
    Dsec { t_offset: i64 },
}

const FIELDS: [&str; 4] = ["x", "y", "p", "t"];

/// An open raw event file (cloning shares the open file).
#[derive(Clone)]
pub struct RawEventFile {
    path: PathBuf,
    datasets: [hdf5::Dataset; 4],
    len: usize,
    sensor_hw: Option<(usize, usize)>,
    layout: H5Layout,
}

impl RawEventFile {
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(EventsError::format(path, "file not found"));
        }
        let file = hdf5::File::open(path).map_err(|e| {
            EventsError::hdf5(
                path,
                format!("cannot open as HDF5 (truncated or not an h5 file?): {e}"),
            )
        })?;
        let group = file.group("events").map_err(|_| {
            EventsError::format(
                path,
                "no group 'events' (expected events/x, events/y, events/p, events/t)",
            )
        })?;
        let ds = |name: &str| -> Result<hdf5::Dataset> {
            let d = group
                .dataset(name)
                .map_err(|_| EventsError::field(path, &format!("events/{name}"), "missing"))?;
            let ty = d
                .dtype()
                .and_then(|t| t.to_descriptor())
                .map_err(|e| EventsError::hdf5(path, e))?;
            if !matches!(ty, TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_)) {
                return Err(EventsError::field(
                    path,
                    &format!("events/{name}"),
                    format!("has type {ty}, expected an integer type"),
                ));
            }
            if d.ndim() != 1 {
                return Err(EventsError::field(
                    path,
                    &format!("events/{name}"),
                    format!("has shape {:?}, expected 1-D", d.shape()),
                ));
            }
            Ok(d)
        };
        let datasets = [ds("x")?, ds("y")?, ds("p")?, ds("t")?];
        let len = datasets[3].size();
        for (d, name) in datasets.iter().zip(FIELDS) {
            if d.size() != len {
                return Err(EventsError::field(
                    path,
                    &format!("events/{name}"),
                    format!("has {} events but events/t has {len}", d.size()),
                ));
            }
        }
        let scalar = |name: &str| -> Result<Option<usize>> {
            match group.dataset(name) {
                Ok(d) => {
                    let v: i64 = d.read_scalar().map_err(|e| {
                        EventsError::field(path, &format!("events/{name}"), e.to_string())
                    })?;
                    if v <= 0 || v > 65_535 {
                        return Err(EventsError::field(
                            path,
                            &format!("events/{name}"),
                            format!("invalid sensor size {v}"),
                        ));
                    }
                    Ok(Some(v as usize))
                }
                Err(_) => Ok(None),
            }
        };
        let mut sensor_hw = match (scalar("height")?, scalar("width")?) {
            (Some(h), Some(w)) => Some((h, w)),
            _ => None,
        };
        // eTraM's and RVT's files may carry `ms_to_idx` too; only DSEC's have `t_offset`.
        let layout = match (file.dataset("t_offset"), file.dataset("ms_to_idx")) {
            (Err(_), _) => H5Layout::Etram,
            (Ok(off), Ok(_)) => {
                let t_offset: i64 = off
                    .read_scalar()
                    .map_err(|e| EventsError::field(path, "t_offset", e.to_string()))?;
                sensor_hw.get_or_insert(DSEC_HW);
                H5Layout::Dsec { t_offset }
            }
            (Ok(_), Err(_)) => {
                return Err(EventsError::format(
                    path,
                    "has DSEC's root `t_offset` but not its `ms_to_idx`: is it a DSEC events.h5 (times relative to t_offset) or an eTraM _td.h5 (absolute times)? Refusing to guess",
                ))
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            datasets,
            len,
            sensor_hw,
            layout,
        })
    }

    /// The file's layout (eTraM's, or DSEC's with its time offset).
    pub fn layout(&self) -> H5Layout {
        self.layout
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// `height`/`width` stored in the file, if any.
    pub fn stored_sensor_hw(&self) -> Option<(usize, usize)> {
        self.sensor_hw
    }

    /// Streams the events in chunks of `chunk` events, validated and repaired (see [`EventStream`]).
    pub fn stream(&self, sensor_hw: (usize, usize), chunk: usize) -> EventStream<'_> {
        EventStream {
            file: self,
            cursor: StreamCursor::new(sensor_hw, chunk),
            stats: ReadStats::default(),
        }
    }

    /// Field `k` of events `[start, end)` as i64; times in absolute µs (DSEC's `t_offset` added).
    fn read_field(&self, k: usize, start: usize, end: usize) -> Result<Vec<i64>> {
        let mut v = self.read_stored(k, start, end)?;
        if let (3, H5Layout::Dsec { t_offset }) = (k, self.layout) {
            for t in &mut v {
                *t = t.saturating_add(t_offset);
            }
        }
        Ok(v)
    }

    fn read_stored(&self, k: usize, start: usize, end: usize) -> Result<Vec<i64>> {
        let d = &self.datasets[k];
        if let Some(r) = read_blosc_range_parallel(d, start, end) {
            return r.map_err(|e| {
                EventsError::field(
                    &self.path,
                    &format!("events/{}", FIELDS[k]),
                    format!("events {start}..{end}: {e}"),
                )
            });
        }
        // Never through HDF5's blosc filter, which trusts what a corrupt file says.
        if crate::blosc_guard::is_blosc(d) {
            let field = || format!("events/{}", FIELDS[k]);
            let (size, signed) = int_layout(d)
                .ok_or_else(|| EventsError::field(&self.path, &field(), "not an integer type"))?;
            let bytes = crate::blosc_guard::read_hyperslab(d, &[start], &[end]).map_err(|e| {
                EventsError::field(&self.path, &field(), format!("events {start}..{end}: {e}"))
            })?;
            return Ok(decode_ints(&bytes, size, signed));
        }
        read_int_range(d, start, end).map_err(|e| {
            EventsError::field(
                &self.path,
                &format!("events/{}", FIELDS[k]),
                format!("read of events {start}..{end} failed: {e}"),
            )
        })
    }

    /// Reads events `[start, end)` converted to i64, times absolute (no validation or repair).
    pub fn read_raw_range(&self, start: usize, end: usize) -> Result<[Vec<i64>; 4]> {
        Ok([
            self.read_field(0, start, end)?,
            self.read_field(1, start, end)?,
            self.read_field(2, start, end)?,
            self.read_field(3, start, end)?,
        ])
    }
}

use crate::blosc_guard::MAX_CHUNK_BYTES;

/// The fast path for blosc-compressed 1-D integer datasets (eTraM's and RVT's files): the compressed
/// chunks are copied out under the HDF5 lock, then decompressed and converted on all threads. `None`
/// when the dataset is laid out otherwise (the caller then reads it with `blosc_guard`).
fn read_blosc_range_parallel(
    d: &hdf5::Dataset,
    start: usize,
    end: usize,
) -> Option<std::result::Result<Vec<i64>, String>> {
    use rayon::prelude::*;
    let chunk = match d.chunk().as_deref() {
        Some(&[c]) if c > 0 => c,
        _ => return None,
    };
    if !matches!(d.filters().as_slice(), [hdf5::filters::Filter::Blosc(..)]) || start >= end {
        return None;
    }
    let (size, signed) = int_layout(d)?;
    let (first, last) = (start / chunk, (end - 1) / chunk);
    let mut raw = Vec::with_capacity(last - first + 1);
    // A decoded chunk past blosc's own limit is a corrupt file, not a reason to allocate it.
    if (chunk as u64).saturating_mul(size as u64) > MAX_CHUNK_BYTES {
        return Some(Err(format!(
            "chunks of {chunk} values of {size} bytes (corrupt file)"
        )));
    }
    for c in first..=last {
        let (mask, buf) = match crate::blosc_guard::read_raw_chunk(d, &[(c * chunk) as u64]) {
            Ok(Some(found)) => found,
            Ok(None) => return None, // an unwritten chunk (fill value): the general path has it
            Err(e) => return Some(Err(format!("event {}: {e}", c * chunk))),
        };
        raw.push((c, mask, buf));
    }
    let parts: std::result::Result<Vec<Vec<i64>>, String> = raw
        .par_iter()
        .map(|(c, mask, buf)| {
            let plain;
            let bytes: &[u8] = if mask & 1 != 0 {
                buf // the filter was skipped for this chunk: stored as is
            } else {
                plain = crate::blosc_guard::decompress(buf, chunk * size)
                    .map_err(|e| format!("event {}: {e}", c * chunk))?;
                &plain
            };
            let lo = start.max(c * chunk) - c * chunk;
            let hi = end.min((c + 1) * chunk) - c * chunk;
            let bytes = bytes
                .get(lo * size..hi * size)
                .ok_or_else(|| format!("short chunk at event {}", c * chunk))?;
            Ok(decode_ints(bytes, size, signed))
        })
        .collect();
    Some(parts.map(|p| p.concat()))
}

/// Byte size and signedness of an integer dataset.
fn int_layout(d: &hdf5::Dataset) -> Option<(usize, bool)> {
    match d.dtype().ok()?.to_descriptor().ok()? {
        TypeDescriptor::Integer(s) => Some((s as usize, true)),
        TypeDescriptor::Unsigned(s) => Some((s as usize, false)),
        _ => None,
    }
}

fn decode_ints(b: &[u8], size: usize, signed: bool) -> Vec<i64> {
    match (size, signed) {
        (1, false) => b.iter().map(|&v| v as i64).collect(),
        (1, true) => b.iter().map(|&v| v as i8 as i64).collect(),
        (2, false) => b
            .chunks_exact(2)
            .map(|v| u16::from_le_bytes([v[0], v[1]]) as i64)
            .collect(),
        (2, true) => b
            .chunks_exact(2)
            .map(|v| i16::from_le_bytes([v[0], v[1]]) as i64)
            .collect(),
        (4, false) => b
            .chunks_exact(4)
            .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as i64)
            .collect(),
        (4, true) => b
            .chunks_exact(4)
            .map(|v| i32::from_le_bytes([v[0], v[1], v[2], v[3]]) as i64)
            .collect(),
        // u64 above i64::MAX wraps negative and is then caught by the range checks downstream
        _ => b
            .chunks_exact(8)
            .map(|v| i64::from_le_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]))
            .collect(),
    }
}

fn read_int_range(d: &hdf5::Dataset, start: usize, end: usize) -> hdf5::Result<Vec<i64>> {
    macro_rules! read {
        ($t:ty) => {
            d.read_slice_1d::<$t, _>(start..end)?
                .iter()
                .map(|&v| v as i64)
                .collect()
        };
    }
    let desc = d.dtype()?.to_descriptor()?;
    Ok(match desc {
        TypeDescriptor::Integer(IntSize::U1) => read!(i8),
        TypeDescriptor::Integer(IntSize::U2) => read!(i16),
        TypeDescriptor::Integer(IntSize::U4) => read!(i32),
        TypeDescriptor::Integer(IntSize::U8) => read!(i64),
        TypeDescriptor::Unsigned(IntSize::U1) => read!(u8),
        TypeDescriptor::Unsigned(IntSize::U2) => read!(u16),
        TypeDescriptor::Unsigned(IntSize::U4) => read!(u32),
        TypeDescriptor::Unsigned(IntSize::U8) => {
            let v = d.read_slice_1d::<u64, _>(start..end)?;
            if let Some(bad) = v.iter().find(|&&x| x > i64::MAX as u64) {
                return Err(hdf5::Error::from(format!(
                    "value {bad} does not fit in int64"
                )));
            }
            v.iter().map(|&x| x as i64).collect()
        }
        other => return Err(hdf5::Error::from(format!("unsupported type {other}"))),
    })
}

/// What reading changed: events outside the sensor are dropped, decreasing timestamps raised to the
/// running maximum (as RVT does), both counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReadStats {
    pub events_read: u64,
    pub dropped_outside_sensor: u64,
    pub timestamps_repaired: u64,
    /// RAW words skipped: before the first time high, or of no known type.
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped_words: u64,
    /// RAW: bytes of an incomplete last word, ignored (the file was cut: an interrupted recording
    /// or copy).
    #[serde(skip_serializing_if = "is_zero")]
    pub truncated_bytes: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl ReadStats {
    pub fn add(&mut self, o: &ReadStats) {
        self.events_read += o.events_read;
        self.dropped_outside_sensor += o.dropped_outside_sensor;
        self.timestamps_repaired += o.timestamps_repaired;
        self.skipped_words += o.skipped_words;
        self.truncated_bytes += o.truncated_bytes;
    }
}

/// Chunked, validated reading of a raw event file.
pub struct EventStream<'f> {
    file: &'f RawEventFile,
    cursor: StreamCursor,
    pub stats: ReadStats,
}

impl EventStream<'_> {
    /// The next chunk of events, or `None` at the end (see [`StreamCursor::next_chunk`]).
    pub fn next_chunk(&mut self) -> Result<Option<EventBatch>> {
        let r = self.cursor.next_chunk(self.file);
        self.stats = self.cursor.stats;
        r
    }
}

/// The reading position of a stream over a file, kept apart from the file so that a reader owning
/// the file can keep its position beside it.
#[derive(Debug, Clone)]
pub struct StreamCursor {
    pos: usize,
    chunk: usize,
    t_max: i64,
    sensor_hw: (usize, usize),
    pub stats: ReadStats,
}

impl StreamCursor {
    /// A cursor at the first event, reading `chunk` events at a time for a `sensor_hw` sensor.
    pub fn new(sensor_hw: (usize, usize), chunk: usize) -> Self {
        Self {
            pos: 0,
            chunk: chunk.max(1),
            t_max: i64::MIN,
            sensor_hw,
            stats: ReadStats::default(),
        }
    }

    /// Moves to the first event at or after `t` (µs), by bisection on the stored times (which the
    /// preprocessing assumes sorted; a repaired file may land a few events early, never late).
    pub fn skip_to(&mut self, file: &RawEventFile, t: i64) -> Result<()> {
        let (mut lo, mut hi) = (self.pos, file.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if file.read_field(3, mid, mid + 1)?[0] < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        self.pos = lo;
        Ok(())
    }

    /// The next chunk of `file`'s events, or `None` at the end. Polarity {0,1} or {-1,1} becomes {0,1};
    /// any other value is an error naming the file and event index.
    pub fn next_chunk(&mut self, file: &RawEventFile) -> Result<Option<EventBatch>> {
        if self.pos >= file.len {
            return Ok(None);
        }
        let start = self.pos;
        let end = (start + self.chunk).min(file.len);
        self.pos = end;
        let [x, y, p, t] = file.read_raw_range(start, end)?;
        let (h, w) = (self.sensor_hw.0 as i64, self.sensor_hw.1 as i64);
        let mut out = EventBatch {
            x: Vec::with_capacity(x.len()),
            y: Vec::with_capacity(x.len()),
            p: Vec::with_capacity(x.len()),
            t: Vec::with_capacity(x.len()),
        };
        for i in 0..t.len() {
            let pol = match p[i] {
                0 | -1 => 0u8,
                1 => 1u8,
                v => {
                    return Err(EventsError::field(
                        file.path(),
                        "events/p",
                        format!("event {} has polarity {v}; expected 0/1 or -1/1", start + i),
                    ))
                }
            };
            // REFERENCE §5.1: RVT makes time non-decreasing with the running maximum.
            let mut ti = t[i];
            if ti < self.t_max {
                ti = self.t_max;
                self.stats.timestamps_repaired += 1;
            } else {
                self.t_max = ti;
            }
            if x[i] < 0 || x[i] >= w || y[i] < 0 || y[i] >= h {
                self.stats.dropped_outside_sensor += 1;
                continue;
            }
            out.x.push(x[i] as u16);
            out.y.push(y[i] as u16);
            out.p.push(pol);
            out.t.push(ti);
        }
        self.stats.events_read += t.len() as u64;
        Ok(Some(out))
    }
}

/// Compression of written event files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip(u8),
    /// blosc + zstd with byte shuffle, as eTraM's and RVT's files (`hdf5plugin` opts (0,0,0,0,clevel,1,5)).
    BloscZstd(u8),
}

/// Streaming writer of a raw event file; written under a temporary name and renamed by `finish`.
pub struct RawEventWriter {
    path: PathBuf,
    tmp: PathBuf,
    file: hdf5::File,
    datasets: [hdf5::Dataset; 4],
    len: usize,
}

impl RawEventWriter {
    pub fn create(
        path: &Path,
        sensor_hw: (usize, usize),
        compression: Compression,
    ) -> Result<Self> {
        let tmp = evdet_atomic::tmp_path(path);
        let file = crate::layout::create_h5_untimed(&tmp)
            .map_err(|e| EventsError::hdf5(&tmp, format!("cannot create: {e}")))?;
        let h5 = |e: hdf5::Error| EventsError::hdf5(&tmp, e);
        let group = file
            .create_group_builder()
            .obj_track_times(false)
            .create("events")
            .map_err(h5)?;
        macro_rules! ds {
            ($t:ty, $name:expr) => {{
                let mut b = group.new_dataset::<$t>().chunk(16384).shape(0..);
                b = match compression {
                    Compression::None => b,
                    Compression::Gzip(l) => b.deflate(l),
                    Compression::BloscZstd(l) => b.blosc_zstd(l, hdf5::filters::BloscShuffle::Byte),
                };
                b.create($name).map_err(h5)?
            }};
        }
        let datasets = [ds!(u16, "x"), ds!(u16, "y"), ds!(u8, "p"), ds!(i64, "t")];
        for (name, v) in [("height", sensor_hw.0), ("width", sensor_hw.1)] {
            group
                .new_dataset::<i64>()
                .create(name)
                .and_then(|d| d.write_scalar(&(v as i64)))
                .map_err(h5)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            file,
            datasets,
            len: 0,
        })
    }

    pub fn append(&mut self, ev: &EventBatch) -> Result<()> {
        let n = ev.len();
        if n == 0 {
            return Ok(());
        }
        let (a, b) = (self.len, self.len + n);
        let h5 = |e: hdf5::Error| EventsError::hdf5(&self.tmp, e);
        for d in &self.datasets {
            d.resize(b).map_err(h5)?;
        }
        self.datasets[0].write_slice(&ev.x, a..b).map_err(h5)?;
        self.datasets[1].write_slice(&ev.y, a..b).map_err(h5)?;
        self.datasets[2].write_slice(&ev.p, a..b).map_err(h5)?;
        self.datasets[3].write_slice(&ev.t, a..b).map_err(h5)?;
        self.len = b;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Closes the file and moves it to its final name.
    pub fn finish(self) -> Result<()> {
        let Self {
            path,
            tmp,
            file,
            datasets,
            ..
        } = self;
        drop(datasets);
        file.close().map_err(|e| EventsError::hdf5(&tmp, e))?;
        evdet_atomic::commit(&tmp, &path).map_err(EventsError::Write)
    }
}

/// Writes a whole event file at once.
pub fn write_raw_events(
    path: &Path,
    ev: &EventBatch,
    sensor_hw: (usize, usize),
    compression: Compression,
) -> Result<()> {
    let mut w = RawEventWriter::create(path, sensor_hw, compression)?;
    w.append(ev)?;
    w.finish()
}
