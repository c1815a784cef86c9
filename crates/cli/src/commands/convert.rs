//! `evdet convert IN OUT`: a recording from one file format to another (Prophesee RAW EVT 2.0 /
//! 2.1 / 3.0, `.dat`, eTraM `_td.h5`), streamed in chunks, so users who prefer HDF5 get it without
//! Metavision and synthetic or converted recordings exist as real camera files.

use anyhow::{bail, Context};
use evdet_events::h5_events::GEN4_HW;
use evdet_events::recording::{Recording, RecordingWriter, WriteFormat};
use std::path::PathBuf;

/// Convert a recording between Prophesee RAW (EVT 2.0, 2.1, 3.0), .dat and eTraM's _td.h5.
///
/// The input format comes from its name (.raw, .dat, .h5) and, for RAW, its header; the output's
/// from its name or --format. Events are validated on the way as every evdet reader does: events
/// outside the sensor are dropped and decreasing times raised to the running maximum, both counted.
/// RAW external triggers are carried to RAW outputs. The output is written under a temporary name
/// and renamed when complete.
///
/// Examples:
///   evdet convert recording.raw recording_td.h5                 # a camera file to eTraM's HDF5 layout
///   evdet convert data/mini_raw/test/mini_test_000_td.h5 mini_test_000.raw   # EVT 3.0
///   evdet convert rec_td.h5 rec.raw --format raw-evt2
///   evdet convert old_camera.raw rec_td.h5 --sensor-size 480x640 --time-origin sensor
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Recording to read (.raw, .dat, _td.h5).
    pub input: PathBuf,
    /// File to write; its name gives the format (.raw = EVT 3.0) unless --format says.
    pub output: PathBuf,
    /// Output format: h5, raw-evt3, raw-evt2, raw-evt21 or dat.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<WriteFormat>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub recording: crate::recording_args::RecordingArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let format = match args.format.or_else(|| WriteFormat::of_path(&args.output)) {
        Some(f) => f,
        None => bail!(
            "cannot tell the output format from {} (name it .raw, .dat or .h5, or give --format {})",
            args.output.display(),
            WriteFormat::NAMES
        ),
    };
    if args.output.exists() && !args.overwrite {
        bail!(
            "{} already exists (use --overwrite to replace it)",
            args.output.display()
        );
    }
    if args.input.canonicalize().ok() == args.output.canonicalize().ok() && args.output.exists() {
        bail!("input and output are the same file");
    }
    let rec = Recording::open(&args.input, args.recording.open_options())?;
    let sensor_hw = rec.sensor_hw_or(GEN4_HW)?;
    let mut stream = rec.stream(sensor_hw, 1 << 20)?;
    let mut writer = RecordingWriter::create(&args.output, format, sensor_hw)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let pb = crate::progress::bar(rec.event_count_hint(), "events");
    pb.set_message(format!("{} -> {format}", rec.format_name()));
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
        pb.set_position(stream.stats.events_read);
    }
    let rest = stream.triggers()[triggers_done..].to_vec();
    if !rest.is_empty() {
        writer.append(&Default::default(), &rest)?;
    }
    let written = writer.len();
    writer.finish()?;
    pb.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let st = stream.stats;
    println!(
        "{} ({}, {}x{}) -> {} ({format}): {written} events in {secs:.2} s ({:.1} M/s)",
        args.input.display(),
        rec.format_name(),
        sensor_hw.1,
        sensor_hw.0,
        args.output.display(),
        written as f64 / secs.max(1e-9) / 1e6
    );
    println!(
        "  {} outside the sensor dropped, {} decreasing times raised to the running maximum{}",
        st.dropped_outside_sensor,
        st.timestamps_repaired,
        match stream.decode_stats() {
            Some(d) =>
                format!(
                ", {} RAW words skipped ({} before the first time high, {} unknown), {} time-high \
                 wrap-arounds, {} triggers{}",
                d.before_time_high + d.unknown_words,
                d.before_time_high,
                d.unknown_words,
                d.time_high_loops,
                d.triggers,
                if d.truncated_bytes > 0 {
                    format!(", {} bytes of a truncated last word ignored", d.truncated_bytes)
                } else {
                    String::new()
                }
            ),
            None => String::new(),
        }
    );
    if !matches!(
        format,
        WriteFormat::RawEvt2 | WriteFormat::RawEvt3 | WriteFormat::RawEvt21
    ) && !stream.triggers().is_empty()
    {
        println!(
            "  note: {} external triggers are not kept ({format} has no place for them)",
            stream.triggers().len()
        );
    }
    Ok(())
}
