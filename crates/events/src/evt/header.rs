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

/// Cameras whose headers name no geometry: `system_ID` → (height, width, EVT 2.1 legacy order).
/// From Prophesee's published camera list (see notes/raw_formats.md).
const SYSTEMS: &[(u32, (usize, usize), bool)] = &[];

/// Parses the header at the start of `bytes`; returns it and the offset of the first word.
pub fn parse(bytes: &[u8], path: &Path) -> Result<(EvtHeader, usize)> {
    let mut pos = 0;
    let mut fields = Vec::new();
    while bytes.get(pos) == Some(&b'%') {
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
    let mut opts: Vec<(&str, &str)> = Vec::new();
    let name = if let Some(f) = get("format") {
        let mut parts = f.split(';');
        let name = parts.next().unwrap_or("").trim();
        opts = parts.filter_map(|p| p.split_once('=')).collect();
        name.to_string()
    } else if let Some(v) = get("evt") {
        format!("EVT{}", v.trim().replace(".0", "").replace('.', ""))
    } else {
        return Err(EventsError::format(
            path,
            "the RAW header names no format (expected '% format EVT3;…' or '% evt 3.0')",
        ));
    };
    let opt = |key: &str| {
        opts.iter()
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim())
    };
    let system = get("system_ID").and_then(|s| s.trim().parse::<u32>().ok());
    let known = system.and_then(|id| SYSTEMS.iter().find(|(s, _, _)| *s == id));
    let format = match name.to_ascii_uppercase().as_str() {
        "EVT2" => EvtFormat::Evt2,
        "EVT3" => EvtFormat::Evt3,
        "EVT21" => {
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
                None => match known {
                    Some((_, _, legacy)) => *legacy,
                    None => {
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
            .or(known.map(|(_, hw, _)| *hw)),
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
