//! `evdet bench synth`: generator throughput (seconds of recording per second of wall time) and event
//! rates, per preset, as JSON on stdout.

use anyhow::Context;
use evdet_synth::{self as synth, Preset, SplitCounts, SynthConfig};
use std::time::Instant;

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

/// A folder under the system temp dir, removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new(tag: &str) -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let p = std::env::temp_dir().join(format!(
            "evdet_bench_synth_{tag}_{}_{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(Self(p))
    }
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut results = serde_json::Map::new();
    for name in &args.presets {
        let preset: Preset = name.parse().map_err(anyhow::Error::msg)?;
        let mut cfg = SynthConfig::preset(preset);
        cfg.seed = args.seed;
        cfg.duration_s = args.duration_s;
        cfg.jobs = args.jobs;
        cfg.sequences = SplitCounts {
            train: args.sequences,
            val: 0,
            test: 0,
        };
        let dir = ScratchDir::new(name)?;
        eprintln!(
            "{name}: {} x {:.1} s at {}x{} with {} threads ...",
            args.sequences, args.duration_s, cfg.sensor_hw.1, cfg.sensor_hw.0, args.jobs
        );
        let start = Instant::now();
        let s = synth::generate(dir.path(), &cfg, &|_| {})
            .with_context(|| format!("generating preset {name}"))?;
        let wall = start.elapsed().as_secs_f64();
        let recorded: f64 = s.sequences.iter().map(|q| q.duration_s).sum();
        let bytes: u64 = std::fs::read_dir(dir.path().join("train"))?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        let peak = s
            .sequences
            .iter()
            .map(|q| q.peak_event_rate_1s)
            .fold(0.0, f64::max);
        let boxes: u64 = s.sequences.iter().map(|q| q.boxes).sum();
        eprintln!(
            "{name}: {recorded:.1} s of recording in {wall:.1} s = {:.2} s/s; {:.2} M events/s of recording (busiest second {:.2} M)",
            recorded / wall,
            s.events as f64 / recorded / 1e6,
            peak / 1e6
        );
        results.insert(
            name.clone(),
            serde_json::json!({
                "sensor_hw": [cfg.sensor_hw.0, cfg.sensor_hw.1],
                "sequences": args.sequences,
                "duration_s": args.duration_s,
                "jobs": args.jobs,
                "step_us": cfg.step_us,
                "wall_s": wall,
                "recording_s_per_wall_s": recorded / wall,
                "events": s.events,
                "events_per_recording_s": s.events as f64 / recorded,
                "peak_events_per_s": peak,
                "events_per_wall_s": s.events as f64 / wall,
                "boxes_per_recording_s": boxes as f64 / recorded,
                "bytes_written": bytes,
            }),
        );
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::Value::Object(results))?
    );
    Ok(())
}
