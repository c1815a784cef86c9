//! `evdet bench synth`: generator throughput per preset (`evdet_synth::bench::generator_speed`).

use anyhow::Context;
use evdet_synth::bench::{generator_speed, SynthBenchOptions};
use evdet_synth::Preset;

/// Time the synthetic data generator; prints JSON.
#[derive(clap::Args)]
#[command(
    after_help = "Each preset writes --sequences sequences of --duration-s seconds into a temporary folder
(deleted afterwards) and reports seconds of recording per second of wall time and event rates.
One sequence measures a single long recording (image rows in parallel); several also run
sequences in parallel, as a dataset is generated.

Examples:
  evdet bench synth
  evdet bench synth --presets etram --duration-s 20 --jobs 2
  evdet bench synth --presets mini --sequences 6 --duration-s 20"
)]
pub struct Args {
    /// Comma-separated presets to time.
    #[arg(long, default_value = "etram,mini,night", value_delimiter = ',')]
    presets: Vec<String>,
    /// Seconds of recording per sequence.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Sequences per preset (all in the train split).
    #[arg(long, default_value_t = 1)]
    sequences: usize,
    /// Threads.
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    jobs: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let presets = args
        .presets
        .iter()
        .map(|name| name.parse::<Preset>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let opts = SynthBenchOptions {
        presets,
        duration_s: args.duration_s,
        sequences: args.sequences,
        jobs: args.jobs,
        seed: args.seed,
    };
    let scratch = tempfile::tempdir().context("creating a temporary folder")?;
    let report = generator_speed(&opts, scratch.path(), &|l| eprintln!("{l}"))
        .context("benchmarking the generator")?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
