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

/// Decodes the bytes of a `.dat` file; `path` is used in errors only.
pub fn parse_dat(bytes: &[u8], path: &Path) -> Result<DatFile> {
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
    let n = body.len() / 8;
    let mut ev = EventBatch {
        x: Vec::with_capacity(n),
        y: Vec::with_capacity(n),
        p: Vec::with_capacity(n),
        t: Vec::with_capacity(n),
    };
    for r in body.chunks_exact(8) {
        let t = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        let v = i32::from_le_bytes([r[4], r[5], r[6], r[7]]);
        ev.t.push(t as i64);
        ev.x.push((v & 0x3FFF) as u16);
        ev.y.push(((v >> 14) & 0x3FFF) as u16);
        ev.p.push(((v >> 28) & 1) as u8);
    }
    let sensor_hw = height.zip(width);
    Ok(DatFile {
        sensor_hw,
        events: ev,
    })
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
