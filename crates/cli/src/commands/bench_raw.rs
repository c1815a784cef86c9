//! `evdet bench raw`: Prophesee RAW decoding and encoding throughput and preprocessing from `.raw`
//! against from `_td.h5` (`evdet_events::bench::raw_codecs`). `scripts/bench_raw.py` times
//! expelliarmus and the `evt3` package on the same file side by side.

use anyhow::Context;
use evdet_events::bench::{self, RawOptions};
use std::path::PathBuf;

/// Measure RAW decoding, encoding and preprocessing from .raw; prints JSON.
///
/// Examples:
///   evdet bench raw                                   # 20 M events, 3 rounds
///   evdet bench raw --keep /tmp/bench_evt3.raw        # keep the EVT 3.0 file for scripts/bench_raw.py
///   evdet bench raw --file /tmp/bench_evt3.raw --decode-only
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Events in the camera-like recording.
    #[arg(long, default_value_t = 20_000_000)]
    events: usize,
    /// Its length in seconds.
    #[arg(long, default_value_t = 6.0)]
    duration_s: f64,
    /// Rounds of each measurement; the median and the range are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Decode this .raw file instead of a generated one (with --decode-only: nothing else).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Only time decoding (of --file, or of the generated EVT 3.0 file).
    #[arg(long)]
    decode_only: bool,
    /// Keep the generated EVT 3.0 file here.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Threads for the preprocessing comparison.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let json = match (&args.file, args.decode_only) {
        (Some(file), true) => serde_json::to_string_pretty(
            &bench::decode_file(file, args.rounds)
                .with_context(|| format!("decoding {}", file.display()))?,
        )?,
        _ => {
            let opts = RawOptions {
                events: args.events,
                duration_s: args.duration_s,
                rounds: args.rounds,
                decode_only: args.decode_only,
                keep: args.keep,
                jobs: args.jobs,
            };
            let scratch = tempfile::tempdir().context("creating a temporary folder")?;
            serde_json::to_string_pretty(
                &bench::raw_codecs(&opts, scratch.path(), &|l| eprintln!("{l}"))
                    .context("benchmarking the RAW codecs")?,
            )?
        }
    };
    println!("{json}");
    Ok(())
}
