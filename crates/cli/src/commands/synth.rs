//! `evdet synth`: writes a synthetic eTraM-like raw dataset, or (`--describe`) summarises any raw dataset.

use anyhow::{bail, Context};
use evdet_synth::{self as synth, Preset, SplitCounts, SynthConfig};
use std::path::PathBuf;

/// Generate a synthetic eTraM-like traffic event dataset, or describe a raw dataset.
///
/// A static camera watches a street with sidewalks, lanes and a signalled zebra crossing. Objects of the 8
/// eTraM classes (0 pedestrian, 1 car, 2 bicycle, 3 bus, 4 motorbike, 5 truck, 6 tram, 7 wheelchair) enter
/// and leave the view, follow each other, stop at the signal and occlude each other. Events come from a
/// contrast-threshold pixel model on log intensity (per-pixel thresholds, refractory period, background
/// noise, hot pixels); labels are taken at 30 Hz with stable track ids.
///
/// Output: OUT/{train,val,test}/<seq>_td.h5 (blosc-zstd; or <seq>.raw / <seq>_td.dat with --format) +
/// <seq>_bbox.npy, the raw eTraM layout that `evdet preprocess` reads. The same --seed gives
/// byte-identical files.
#[derive(clap::Args)]
#[command(after_help = "Presets (defaults):
  mini   320x192 sensor used without downsampling; objects have the sizes eTraM objects have in the
         network input (half their 1280x720 size): a narrower view of the same street.
         train=4,val=1,test=1 sequences of 20 s, denser traffic (1.6); 15-25 s on 2 cores.
  etram  1280x720 Gen4 sensor (RVT downsamples it by 2). train=2,val=1,test=1 sequences of 10 s;
         about 1 s of recording per second of wall time on 2 cores, 1-3 M events/s.
  night  etram at night: lower contrast, 6x background noise, more hot pixels, lit lamps and
         windows, lighter traffic (0.6), no illumination drift.
  All: 1 ms simulation step, contrast threshold 0.25 (night 0.28), refractory 100 us, labels at
  30 Hz (t = k * 33333 us), slow illumination drift unless --no-illumination.

Examples:
  evdet synth --out data/mini_raw
  evdet synth --out data/etram_raw --preset etram --seed 7 --sequences train=8,val=2,test=2
  evdet synth --out /tmp/quick --preset mini --sequences train=1 --duration-s 2
  evdet synth --out data/mini_raw_evt3 --format raw-evt3       # Prophesee .raw files, as a camera writes
  evdet synth --describe data/mini_raw
  evdet synth --describe /data/eTraM/h5 --json etram_stats.json")]
pub struct Args {
    /// Output folder (train/, val/ and test/ are created in it).
    #[arg(long, value_name = "DIR", required_unless_present = "describe")]
    pub out: Option<PathBuf>,
    /// Describe the raw dataset in DIR (real or synthetic) instead of generating: per split and class the
    /// box counts and small/medium/large mix (network-input px), and event rates.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    pub describe: Option<PathBuf>,
    /// etram, mini or night (see below).
    #[arg(long, default_value = "mini")]
    pub preset: Preset,
    /// Random seed; the same seed gives the same files.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sequences per split, e.g. train=4,val=1,test=1 (splits left out get none). Default: the preset's.
    #[arg(long, value_name = "SPLIT=N,...")]
    pub sequences: Option<SplitCounts>,
    /// Length of each sequence in seconds (at least 0.2). Default: the preset's.
    #[arg(long, value_name = "S")]
    pub duration_s: Option<f64>,
    /// Traffic density: multiplies every lane's arrival rate. Default: the preset's.
    #[arg(long, value_name = "F")]
    pub density: Option<f64>,
    /// Keep the light constant (no slow global illumination change).
    #[arg(long)]
    pub no_illumination: bool,
    /// Threads (sequences in parallel, and image rows within a sequence). Default: all cores.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Replace sequence files that already exist in OUT.
    #[arg(long)]
    pub overwrite: bool,
    /// Also write the summary (or the description) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// File format of the recordings: h5 (<seq>_td.h5, eTraM's), raw-evt3 / raw-evt2 / raw-evt21
    /// (<seq>.raw, as Prophesee cameras write) or dat (<seq>_td.dat).
    #[arg(long, default_value = "h5", value_name = "FORMAT")]
    pub format: evdet_events::recording::WriteFormat,
    #[command(flatten)]
    pub recording: crate::recording_args::RecordingArgs,
}

/// The configuration the arguments ask for.
pub fn config(args: &Args) -> SynthConfig {
    let mut cfg = SynthConfig::preset(args.preset);
    cfg.seed = args.seed;
    if let Some(s) = args.sequences {
        cfg.sequences = s;
    }
    if let Some(d) = args.duration_s {
        cfg.duration_s = d;
    }
    if let Some(d) = args.density {
        cfg.density = d;
    }
    if args.no_illumination {
        cfg.illumination = 0.0;
    }
    if let Some(j) = args.jobs {
        cfg.jobs = j;
    }
    cfg.overwrite = args.overwrite;
    cfg.format = args.format;
    cfg
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(dir) = &args.describe {
        let d = synth::describe(dir, args.recording.open_options())
            .with_context(|| format!("describing {}", dir.display()))?;
        d.lines().iter().for_each(|l| println!("{l}"));
        return crate::write_json(args.json.as_deref(), &d);
    }
    let Some(out) = &args.out else {
        bail!("give --out DIR to generate, or --describe DIR")
    };
    let cfg = config(&args);
    cfg.validate(out).map_err(anyhow::Error::from)?;
    let total_ms = (cfg.duration_s * 1000.0).round() as u64 * cfg.sequences.total() as u64;
    let pb = crate::progress::bar(total_ms / 1000, "s recorded");
    pb.set_message(format!(
        "{} {} sequences",
        cfg.sequences.total(),
        cfg.preset.name()
    ));
    let done = std::sync::atomic::AtomicU64::new(0);
    let summary = synth::generate(out, &cfg, &|ms| {
        let before = done.fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
        pb.set_position((before + ms) / 1000);
    })
    .with_context(|| format!("generating a synthetic dataset in {}", out.display()))?;
    pb.finish_and_clear();
    summary.lines().iter().for_each(|l| println!("{l}"));
    crate::write_json(args.json.as_deref(), &summary)
}
