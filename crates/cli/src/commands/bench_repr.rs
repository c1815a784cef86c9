//! `evdet bench repr`: stacked-histogram and end-to-end preprocessing throughput
//! (`evdet_events::bench::histogram_and_preprocess`).

use anyhow::Context;
use evdet_events::bench::{self, ReprOptions};
use std::path::PathBuf;

/// Measure histogram and preprocessing throughput; prints JSON.
///
/// Example:
///   evdet bench repr --events 20000000 --jobs 2
///   evdet bench repr --raw /tmp/ref_bench/raw   # a recording kept by an earlier --save-raw
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Events per synthetic recording.
    #[arg(long, default_value_t = 20_000_000)]
    events: usize,
    /// Recording length in seconds (20 M events over 6 s is the reference benchmark's density).
    #[arg(long, default_value_t = 6.0)]
    duration_s: f64,
    /// Threads for the "all threads" figures and for preprocessing.
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    jobs: usize,
    /// Preprocess this raw dataset folder (train/rec_*) instead of writing a synthetic one.
    #[arg(long)]
    raw: Option<PathBuf>,
    /// Keep the synthetic raw recording in this folder (reused by later runs with --raw).
    #[arg(long)]
    save_raw: Option<PathBuf>,
    /// Skip the histogram measurements (preprocessing only).
    #[arg(long)]
    skip_histogram: bool,
    /// Repetitions of each histogram measurement. The best is reported, and the median beside it: on a
    /// shared machine, neighbours' use of the L3 cache and memory moves single runs by ±30 %.
    #[arg(long, default_value_t = 9)]
    repeat: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = ReprOptions {
        events: args.events,
        duration_s: args.duration_s,
        jobs: args.jobs,
        raw: args.raw,
        save_raw: args.save_raw,
        skip_histogram: args.skip_histogram,
        repeat: args.repeat,
    };
    let scratch = tempfile::tempdir().context("creating a temporary folder")?;
    let report = bench::histogram_and_preprocess(&opts, scratch.path(), &|l| eprintln!("{l}"))
        .context("benchmarking the histogram and preprocessing")?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
