//! `evdet convert`: a recording from one file format to another (Prophesee RAW EVT 2.0 / 2.1 / 3.0,
//! `.dat`, eTraM `_td.h5`), streamed in chunks and validated on the way as every reader does; RAW
//! external triggers go to RAW outputs with the events they fall among. The output is written under a
//! temporary name and renamed when complete.

use crate::error::{EventsError, Result};
use crate::evt::DecodeStats;
use crate::h5_events::{ReadStats, GEN4_HW};
use crate::recording::{OpenOptions, Recording, RecordingWriter, WriteFormat};
use std::path::{Path, PathBuf};

/// One conversion.
#[derive(Debug, Clone)]
pub struct ConvertRequest {
    pub input: PathBuf,
    pub output: PathBuf,
    /// The output's format; `None` takes it from the output's name.
    pub format: Option<WriteFormat>,
    /// Replace an existing output.
    pub overwrite: bool,
    /// Sensor size and RAW clock for opening the input.
    pub open: OpenOptions,
}

/// What a conversion read and wrote.
#[derive(Debug, Clone)]
pub struct ConvertSummary {
    pub input: PathBuf,
    pub output: PathBuf,
    /// The input's format, as its reader names it.
    pub input_format: String,
    pub format: WriteFormat,
    pub sensor_hw: (usize, usize),
    pub written: u64,
    pub seconds: f64,
    pub read: ReadStats,
    pub decode: Option<DecodeStats>,
    /// External triggers in the input, and whether the output kept them.
    pub triggers: usize,
    pub triggers_kept: bool,
}

/// The output format of `req`: `--format`, else the output's name.
pub fn output_format(req: &ConvertRequest) -> Result<WriteFormat> {
    req.format
        .or_else(|| WriteFormat::of_path(&req.output))
        .ok_or_else(|| {
            EventsError::format(
                &req.output,
                format!(
                    "cannot tell the output format from the name (name it .raw, .dat or .h5, or give --format {})",
                    WriteFormat::NAMES
                ),
            )
        })
}

/// Converts `req.input` into `req.output`; `on_events(read, expected)` reports progress.
pub fn convert(
    req: &ConvertRequest,
    mut on_events: impl FnMut(u64, u64),
) -> Result<ConvertSummary> {
    let format = output_format(req)?;
    if req.output.exists() && !req.overwrite {
        return Err(EventsError::format(
            &req.output,
            "already exists (use --overwrite to replace it)",
        ));
    }
    if req.output.exists() && same_file(&req.input, &req.output) {
        return Err(EventsError::format(
            &req.output,
            "input and output are the same file",
        ));
    }
    let rec = Recording::open(&req.input, req.open)?;
    let sensor_hw = rec.sensor_hw_or(GEN4_HW)?;
    let expected = rec.event_count_hint();
    let mut stream = rec.stream(sensor_hw, 1 << 20)?;
    let mut writer = RecordingWriter::create(&req.output, format, sensor_hw)?;
    let start = std::time::Instant::now();
    let mut triggers_done = 0;
    while let Some(chunk) = stream.next_chunk()? {
        let triggers = &stream.triggers()[triggers_done..];
        // Triggers up to this chunk's last event go with it; later ones wait for the next chunk.
        let upto = chunk
            .t
            .last()
            .map_or(0, |&last| triggers.partition_point(|tr| tr.t <= last));
        writer.append(&chunk, &triggers[..upto])?;
        triggers_done += upto;
        on_events(stream.stats.events_read, expected);
    }
    let rest = stream.triggers()[triggers_done..].to_vec();
    if !rest.is_empty() {
        writer.append(&Default::default(), &rest)?;
    }
    let written = writer.len();
    writer.finish()?;
    Ok(ConvertSummary {
        input: req.input.clone(),
        output: req.output.clone(),
        input_format: rec.format_name(),
        format,
        sensor_hw,
        written,
        seconds: start.elapsed().as_secs_f64(),
        read: stream.stats,
        decode: stream.decode_stats(),
        triggers: stream.triggers().len(),
        triggers_kept: matches!(
            format,
            WriteFormat::RawEvt2 | WriteFormat::RawEvt3 | WriteFormat::RawEvt21
        ),
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

impl ConvertSummary {
    /// What `evdet convert` prints: speed, what validation repaired or dropped, what RAW decoding
    /// skipped, and triggers the output format cannot keep.
    pub fn lines(&self) -> Vec<String> {
        let (h, w) = self.sensor_hw;
        let decode = match &self.decode {
            Some(d) => format!(
                ", {} RAW words skipped ({} before the first time high, {} unknown), {} time-high \
                 wrap-arounds, {} triggers{}",
                d.before_time_high + d.unknown_words,
                d.before_time_high,
                d.unknown_words,
                d.time_high_loops,
                d.triggers,
                if d.truncated_bytes > 0 {
                    format!(
                        ", {} bytes of a truncated last word ignored",
                        d.truncated_bytes
                    )
                } else {
                    String::new()
                }
            ),
            None => String::new(),
        };
        let mut out = vec![
            format!(
                "{} ({}, {w}x{h}) -> {} ({}): {} events in {:.2} s ({:.1} M/s)",
                self.input.display(),
                self.input_format,
                self.output.display(),
                self.format,
                self.written,
                self.seconds,
                self.written as f64 / self.seconds.max(1e-9) / 1e6
            ),
            format!(
                "  {} outside the sensor dropped, {} decreasing times raised to the running maximum{decode}",
                self.read.dropped_outside_sensor, self.read.timestamps_repaired,
            ),
        ];
        if !self.triggers_kept && self.triggers > 0 {
            out.push(format!(
                "  note: {} external triggers are not kept ({} has no place for them)",
                self.triggers, self.format
            ));
        }
        out
    }
}
