//! Prophesee `.dat` event files (Gen1 / 1 Mpx originals): `% ` header lines (latin-1) with `Height` and
//! `Width`, then an event-type byte and an event-size byte, then little-endian 8-byte records
//! `u32 t, i32 v` with x = v & 0x3FFF, y = (v >> 14) & 0x3FFF, p = (v >> 28) & 1. Files without header
//! lines start directly with records.

use crate::error::{EventsError, Result};
use crate::event::EventBatch;
use std::path::Path;

/// A decoded `.dat` file.
#[derive(Debug, Clone, PartialEq)]
pub struct DatFile {
    /// `(height, width)` from the header, if it says.
    pub sensor_hw: Option<(usize, usize)>,
    pub events: EventBatch,
}

/// Reads a whole `.dat` file.
pub fn read_dat(path: &Path) -> Result<DatFile> {
    let bytes = std::fs::read(path).map_err(|e| EventsError::io(path, e))?;
    parse_dat(&bytes, path)
}

/// The header of a `.dat` file: sensor size and where the records start.
fn parse_header(bytes: &[u8], path: &Path) -> Result<(Option<(usize, usize)>, usize)> {
    let mut pos = 0;
    let (mut height, mut width) = (None, None);
    let mut had_header = false;
    while bytes.get(pos) == Some(&b'%') {
        had_header = true;
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i)
            .ok_or_else(|| EventsError::format(path, "header line without end"))?;
        // latin-1: every byte is one char
        let line: String = bytes[pos..end].iter().map(|&b| b as char).collect();
        let mut words = line.trim_start_matches('%').split_whitespace();
        match (
            words.next(),
            words.next().and_then(|v| v.parse::<usize>().ok()),
        ) {
            (Some("Height"), Some(v)) => height = Some(v),
            (Some("Width"), Some(v)) => width = Some(v),
            _ => {}
        }
        pos = end + 1;
    }
    if had_header {
        let (ev_type, ev_size) = match bytes.get(pos..pos + 2) {
            Some(&[t, s]) => (t, s),
            _ => {
                return Err(EventsError::format(
                    path,
                    "missing event type and size bytes after the header",
                ))
            }
        };
        if ev_type != 0 || ev_size != 8 {
            return Err(EventsError::format(
                path,
                format!(
                    "unsupported event type {ev_type} of size {ev_size} (only Event2D, 8 bytes)"
                ),
            ));
        }
        pos += 2;
    }
    Ok((height.zip(width), pos))
}

/// Appends the events of whole 8-byte records.
fn decode_records(body: &[u8], ev: &mut EventBatch) {
    let n = body.len() / 8;
    ev.x.reserve(n);
    ev.y.reserve(n);
    ev.p.reserve(n);
    ev.t.reserve(n);
    for r in body.chunks_exact(8) {
        let t = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        let v = i32::from_le_bytes([r[4], r[5], r[6], r[7]]);
        ev.t.push(t as i64);
        ev.x.push((v & 0x3FFF) as u16);
        ev.y.push(((v >> 14) & 0x3FFF) as u16);
        ev.p.push(((v >> 28) & 1) as u8);
    }
}

/// Decodes the bytes of a `.dat` file; `path` is used in errors only.
pub fn parse_dat(bytes: &[u8], path: &Path) -> Result<DatFile> {
    let (sensor_hw, pos) = parse_header(bytes, path)?;
    let body = &bytes[pos..];
    if !body.len().is_multiple_of(8) {
        return Err(EventsError::format(
            path,
            format!(
                "truncated: {} bytes of records is not a multiple of 8",
                body.len()
            ),
        ));
    }
    let mut events = EventBatch::default();
    decode_records(body, &mut events);
    Ok(DatFile { sensor_hw, events })
}

/// An open `.dat` file, read in chunks by [`DatReader`].
#[derive(Debug, Clone)]
pub struct DatLayout {
    path: std::path::PathBuf,
    pub sensor_hw: Option<(usize, usize)>,
    records_start: u64,
    records: u64,
}

impl DatLayout {
    pub fn open(path: &Path) -> Result<Self> {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| EventsError::io(path, e))?;
        let len = f.metadata().map_err(|e| EventsError::io(path, e))?.len();
        let mut head = Vec::new();
        (&mut f)
            .take(1 << 20)
            .read_to_end(&mut head)
            .map_err(|e| EventsError::io(path, e))?;
        let (sensor_hw, pos) = parse_header(&head, path)?;
        let body = len - pos as u64;
        if !body.is_multiple_of(8) {
            return Err(EventsError::format(
                path,
                format!(
                    "truncated: {body} bytes of records (from byte {pos}) is not a multiple of 8"
                ),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            sensor_hw,
            records_start: pos as u64,
            records: body / 8,
        })
    }

    /// Number of events.
    pub fn len(&self) -> u64 {
        self.records
    }
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    fn read_records(&self, f: &mut std::fs::File, from: u64, n: u64) -> Result<Vec<u8>> {
        use std::io::{Read, Seek};
        let io = |e| EventsError::io(&self.path, e);
        f.seek(std::io::SeekFrom::Start(self.records_start + from * 8))
            .map_err(io)?;
        let mut buf = vec![0u8; (n * 8) as usize];
        f.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    }

    /// First and last event time as stored.
    pub fn time_range(&self) -> Result<Option<(i64, i64)>> {
        if self.records == 0 {
            return Ok(None);
        }
        let mut f = std::fs::File::open(&self.path).map_err(|e| EventsError::io(&self.path, e))?;
        let t = |b: Vec<u8>| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64;
        let first = t(self.read_records(&mut f, 0, 1)?);
        let last = t(self.read_records(&mut f, self.records - 1, 1)?);
        Ok(Some((first, last.max(first))))
    }

    /// A reader from the first record, `chunk` records at a time.
    pub fn reader(&self, chunk: usize) -> Result<DatReader> {
        let file = std::fs::File::open(&self.path).map_err(|e| EventsError::io(&self.path, e))?;
        Ok(DatReader {
            layout: self.clone(),
            file,
            pos: 0,
            chunk: chunk.max(1) as u64,
        })
    }
}

/// Chunked reading of a `.dat` file.
pub struct DatReader {
    layout: DatLayout,
    file: std::fs::File,
    pos: u64,
    chunk: u64,
}

impl DatReader {
    pub fn next_chunk(&mut self) -> Result<Option<EventBatch>> {
        if self.pos >= self.layout.records {
            return Ok(None);
        }
        let n = self.chunk.min(self.layout.records - self.pos);
        let buf = self.layout.read_records(&mut self.file, self.pos, n)?;
        self.pos += n;
        let mut ev = EventBatch::default();
        decode_records(&buf, &mut ev);
        Ok(Some(ev))
    }

    /// Moves to the first record at or after `t` (µs), by bisection on the stored times.
    pub fn skip_to(&mut self, t: i64) -> Result<()> {
        let (mut lo, mut hi) = (self.pos, self.layout.records);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let b = self.layout.read_records(&mut self.file, mid, 1)?;
            if (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64) < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        self.pos = lo;
        Ok(())
    }
}

/// Writes events as a `.dat` file (Event2D records, `% Height`/`% Width` header), under a temporary
/// name renamed when complete. Times must fit in 32 bits and coordinates in 14.
pub fn write_dat(path: &Path, ev: &EventBatch, sensor_hw: (usize, usize)) -> Result<()> {
    let mut w = DatWriter::create(path, sensor_hw)?;
    w.append(ev)?;
    w.finish()
}

/// Streaming `.dat` writer.
pub struct DatWriter {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    events: u64,
}

impl DatWriter {
    pub fn create(path: &Path, sensor_hw: (usize, usize)) -> Result<Self> {
        use std::io::Write;
        let tmp = evdet_atomic::tmp_path(path);
        let f = std::fs::File::create(&tmp).map_err(|e| EventsError::io(&tmp, e))?;
        let mut file = std::io::BufWriter::with_capacity(1 << 20, f);
        let header = format!(
            "% Data file containing Event2D events.\n% Version 2\n% Height {}\n% Width {}\n",
            sensor_hw.0, sensor_hw.1
        );
        file.write_all(header.as_bytes())
            .and_then(|()| file.write_all(&[0, 8]))
            .map_err(|e| EventsError::io(&tmp, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            file,
            events: 0,
        })
    }

    /// Events written so far.
    pub fn len(&self) -> u64 {
        self.events
    }
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    pub fn append(&mut self, ev: &EventBatch) -> Result<()> {
        use std::io::Write;
        let mut buf = Vec::with_capacity(ev.len() * 8);
        for i in 0..ev.len() {
            let (t, x, y, p) = (ev.t[i], ev.x[i], ev.y[i], ev.p[i]);
            if !(0..=u32::MAX as i64).contains(&t) || x > 0x3FFF || y > 0x3FFF || p > 1 {
                return Err(EventsError::format(
                    &self.path,
                    format!(
                        "event {} (x {x}, y {y}, p {p}, t {t}) does not fit a .dat record \
                         (32-bit time, 14-bit coordinates)",
                        self.events + i as u64
                    ),
                ));
            }
            let v = (x as u32) | ((y as u32) << 14) | ((p as u32) << 28);
            buf.extend_from_slice(&(t as u32).to_le_bytes());
            buf.extend_from_slice(&v.to_le_bytes());
        }
        self.events += ev.len() as u64;
        self.file
            .write_all(&buf)
            .map_err(|e| EventsError::io(&self.tmp, e))
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_truncated_records() {
        let err = parse_dat(&[1, 2, 3], Path::new("x.dat"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.dat") && err.contains("truncated"), "{err}");
        let err = parse_dat(b"% Height 10\n", Path::new("h.dat"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("event type"), "{err}");
    }
}
