//! `evdet convert IN OUT`: a recording from one file format to another (Prophesee RAW EVT 2.0 /
//! 2.1 / 3.0, `.dat`, eTraM `_td.h5`), streamed in chunks, so users who prefer HDF5 get it without
//! Metavision and synthetic or converted recordings exist as real camera files.

use evdet_events::convert::{self, ConvertRequest};
use evdet_events::recording::WriteFormat;
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
    let req = ConvertRequest {
        input: args.input,
        output: args.output,
        format: args.format,
        overwrite: args.overwrite,
        open: args.recording.open_options(),
    };
    let format = convert::output_format(&req)?;
    let pb = crate::progress::bar(0, "events");
    pb.set_message(format!("{} -> {format}", req.input.display()));
    let summary = convert::convert(&req, |read, expected| {
        pb.set_length(expected);
        pb.set_position(read);
    })?;
    pb.finish_and_clear();
    summary.lines().iter().for_each(|l| println!("{l}"));
    Ok(())
}
