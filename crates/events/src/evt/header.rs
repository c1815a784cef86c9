//! The text header of a `.raw` file: `% key value` lines, optionally closed by `% end`. The format
//! comes from `% format EVT3;height=720;width=1280` (Metavision 4+) or the legacy `% evt 3.0`; the
//! sensor size from the format's options, `% geometry WxH`, or the camera's `system_ID`.

use crate::error::{EventsError, Result};
use std::path::Path;

/// Word format of a RAW file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvtFormat {
    Evt2,
    /// `legacy`: the upper 32 bits of each word first (early Gen4/IMX636 kits).
    Evt21 {
        legacy: bool,
    },
    Evt3,
}

impl EvtFormat {
    pub fn word_bytes(&self) -> usize {
        match self {
            EvtFormat::Evt2 => 4,
            EvtFormat::Evt21 { .. } => 8,
            EvtFormat::Evt3 => 2,
        }
    }
    /// The name in `% format` lines.
    pub fn name(&self) -> &'static str {
        match self {
            EvtFormat::Evt2 => "EVT2",
            EvtFormat::Evt21 { .. } => "EVT21",
            EvtFormat::Evt3 => "EVT3",
        }
    }
}

impl std::fmt::Display for EvtFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvtFormat::Evt2 => write!(f, "EVT 2.0"),
            EvtFormat::Evt21 { legacy: true } => write!(f, "EVT 2.1 (legacy word order)"),
            EvtFormat::Evt21 { legacy: false } => write!(f, "EVT 2.1"),
            EvtFormat::Evt3 => write!(f, "EVT 3.0"),
        }
    }
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq)]
pub struct EvtHeader {
    pub format: EvtFormat,
    /// `(height, width)`, when the header says.
    pub sensor_hw: Option<(usize, usize)>,
    /// Every `% key value` line, in order.
    pub fields: Vec<(String, String)>,
}

impl EvtHeader {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Prophesee cameras by `system_ID` (decimal, as headers write it): the format and sensor size
/// Metavision assumes when a header names neither (openeb's device id list; notes/raw_formats.md).
const SYSTEMS: &[(u32, EvtFormat, (usize, usize))] = &[
    (21, EvtFormat::Evt2, (480, 640)),
    (23, EvtFormat::Evt2, (480, 640)),
    (25, EvtFormat::Evt2, (480, 640)),
    (28, EvtFormat::Evt2, (480, 640)),
    (29, EvtFormat::Evt2, (480, 640)),
    (33, EvtFormat::Evt2, (480, 640)),
    (34, EvtFormat::Evt2, (480, 640)),
    (35, EvtFormat::Evt2, (480, 640)),
    (41, EvtFormat::Evt2, (480, 640)),
    (151, EvtFormat::Evt2, (480, 640)),
    (153, EvtFormat::Evt2, (480, 640)),
    (161, EvtFormat::Evt2, (480, 640)),
    (162, EvtFormat::Evt2, (480, 640)),
    (26, EvtFormat::Evt2, (720, 1280)),
    (31, EvtFormat::Evt2, (720, 1280)),
    (39, EvtFormat::Evt2, (720, 1280)),
    (30, EvtFormat::Evt3, (720, 1280)),
    (46, EvtFormat::Evt3, (720, 1280)),
    (48, EvtFormat::Evt3, (720, 1280)),
    (49, EvtFormat::Evt3, (720, 1280)),
    (50, EvtFormat::Evt3, (720, 1280)),
    (40, EvtFormat::Evt3, (480, 640)),
];

/// EVT 2.1 files without an `endianness` come in the legacy order from Prophesee systems with ids
/// below 0x37 (openeb's rule); other ids cannot be told apart.
const LEGACY_EVT21_BELOW: u32 = 0x37;

/// Parses the header at the start of `bytes`; returns it and the offset of the first word.
pub fn parse(bytes: &[u8], path: &Path) -> Result<(EvtHeader, usize)> {
    let mut pos = 0;
    let mut fields = Vec::new();
    // A header line starts with "% " (Metavision's rule: a '%' followed by anything else is data).
    while bytes.get(pos..pos + 2) == Some(b"% ") {
        let Some(len) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            return Err(EventsError::format(
                path,
                format!("header line at byte {pos} has no end (truncated header?)"),
            ));
        };
        // Latin-1: every byte is one char, so odd bytes never fail the parse.
        let line: String = bytes[pos + 1..pos + len]
            .iter()
            .map(|&b| b as char)
            .collect();
        pos += len + 1;
        let line = line.trim();
        if line == "end" {
            break;
        }
        let (k, v) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        fields.push((k.to_string(), v.trim().to_string()));
    }
    if fields.is_empty() {
        return Err(EventsError::format(
            path,
            "no RAW header (a Prophesee .raw file starts with '% key value' lines)",
        ));
    }
    let get = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let system = get("system_ID").and_then(|s| s.trim().parse::<u32>().ok());
    let known = system.and_then(|id| SYSTEMS.iter().find(|(s, _, _)| *s == id));
    let mut opts: Vec<(&str, &str)> = Vec::new();
    let name = if let Some(f) = get("format") {
        let mut parts = f.split(';');
        let name = parts.next().unwrap_or("").trim();
        opts = parts.filter_map(|p| p.split_once('=')).collect();
        name.to_string()
    } else if let Some(v) = get("evt") {
        format!("EVT{}", v.trim().replace(".0", "").replace('.', ""))
    } else if let Some((_, f, _)) = known {
        f.name().to_string()
    } else {
        return Err(EventsError::format(
            path,
            "the RAW header names no format (expected '% format EVT3;…', '% evt 3.0' or a known \
             Prophesee system_ID)",
        ));
    };
    let opt = |key: &str| {
        opts.iter()
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim())
    };
    let format = match name.to_ascii_uppercase().as_str() {
        "EVT2" | "EVT2.0" => EvtFormat::Evt2,
        "EVT3" | "EVT3.0" => EvtFormat::Evt3,
        "EVT21" | "EVT2.1" => {
            let endianness = opt("endianness").or_else(|| get("endianness"));
            let legacy = match endianness {
                Some("legacy") => true,
                Some("little") => false,
                Some(other) => {
                    return Err(EventsError::format(
                        path,
                        format!("EVT 2.1 endianness '{other}' is unknown (expected legacy or little)"),
                    ))
                }
                None => match system {
                    Some(id) if id > 0 && id < LEGACY_EVT21_BELOW => true,
                    _ => {
                        return Err(EventsError::format(
                            path,
                            format!(
                                "EVT 2.1 without 'endianness' and with {}: cannot tell the word order \
                                 (add 'endianness=little' or 'endianness=legacy' to the format line)",
                                match get("system_ID") {
                                    Some(s) => format!("an unknown system_ID {s}"),
                                    None => "no system_ID".to_string(),
                                }
                            ),
                        ))
                    }
                },
            };
            EvtFormat::Evt21 { legacy }
        }
        other => {
            return Err(EventsError::format(
                path,
                format!("RAW format '{other}' is not one evdet reads (EVT2, EVT21, EVT3)"),
            ))
        }
    };
    let num = |s: &str| {
        s.trim()
            .parse::<usize>()
            .ok()
            .filter(|&v| v > 0 && v <= 1 << 11)
    };
    let sensor_hw = match (opt("height").and_then(num), opt("width").and_then(num)) {
        (Some(h), Some(w)) => Some((h, w)),
        _ => get("geometry")
            .and_then(|g| g.split_once('x'))
            .and_then(|(w, h)| num(h).zip(num(w)))
            .or(known.map(|(_, _, hw)| *hw)),
    };
    Ok((
        EvtHeader {
            format,
            sensor_hw,
            fields,
        },
        pos,
    ))
}

/// The header evdet writes: the Metavision 4 format line plus the legacy keys older readers need.
pub fn render(format: EvtFormat, sensor_hw: (usize, usize)) -> String {
    let (h, w) = sensor_hw;
    let legacy_evt = match format {
        EvtFormat::Evt2 => "2.0",
        EvtFormat::Evt21 { .. } => "2.1",
        EvtFormat::Evt3 => "3.0",
    };
    let endianness = match format {
        EvtFormat::Evt21 { legacy: true } => ";endianness=legacy",
        EvtFormat::Evt21 { legacy: false } => ";endianness=little",
        _ => "",
    };
    format!(
        "% camera_integrator_name evdet\n% evt {legacy_evt}\n% format {};height={h};width={w}{endianness}\n\
         % geometry {w}x{h}\n% integrator_name evdet\n% end\n",
        format.name()
    )
}
