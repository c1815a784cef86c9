//! `evdet preprocess`: raw recordings → RVT's preprocessed layout, in parallel and resumable.

use evdet_events::preprocess::{self, DatasetKind, PreprocessConfig};
use std::path::PathBuf;

/// Turn raw recordings (_td.h5, Prophesee .raw or _td.dat, beside _bbox.npy) into RVT's layout.
///
/// Input: `RAW/<split>/<seq>_bbox.npy` with `<seq>_td.h5`, `<seq>.raw` (EVT 2.0/2.1/3.0) or
/// `<seq>_td.dat` beside it; the same recording in any of them gives byte-identical output.
///
/// Output: `OUT/<split>/<seq>/{labels_v2, event_representations_v2/stacked_histogram_dt=50_nbins=10}`,
/// readable by evdet and by the PyTorch reference. Finished sequences are skipped on a re-run, so an
/// interrupted run resumes where it stopped.
///
/// Examples:
///   evdet preprocess --raw data/etram_raw --out data/etram --dataset gen4 --jobs 2
///   evdet preprocess --raw data/mini_raw --out data/mini --downsample-by-factor-2 false
///   evdet preprocess --raw eTraM --out eTraM_3cls --dataset gen4 --class-map etram8to3
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Raw dataset folder holding train/, val/, test/.
    #[arg(long)]
    pub raw: PathBuf,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Label frame that boxes are clipped to: gen4 = 1280x720 whatever the sensor, gen1 = 304x240
    /// (and Prophesee's box filter), auto = the sensor size stored in each file.
    #[arg(long, default_value = "auto")]
    pub dataset: String,
    /// Duration of each event window in milliseconds (windows end every 50 ms).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub dt_ms: u32,
    /// Time bins per polarity.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub nbins: u64,
    /// Counts per cell are clipped to this value (after uint8 wrap-around, as RVT).
    #[arg(long, default_value_t = 10)]
    pub count_cutoff: u8,
    /// RVT's ds2: true keeps odd rows and columns (the dataset config's `downsample_by_factor_2`);
    /// default: true for gen4 and for sensors at least 1280 wide.
    #[arg(long, value_name = "true|false")]
    pub downsample_by_factor_2: Option<bool>,
    /// Threads, used across and within sequences.
    #[arg(long, default_value_t = default_jobs())]
    pub jobs: usize,
    /// Comma-separated splits to process.
    #[arg(long, default_value = "train,val,test", value_delimiter = ',')]
    pub splits: Vec<String>,
    /// Remap raw class ids: `etram8to3` (pedestrian / vehicle / micromobility) or pairs like `0:0,1:1,3:1`;
    /// ids not listed are dropped.
    #[arg(long)]
    pub class_map: Option<String>,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub recording: crate::recording_args::RecordingArgs,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dataset: DatasetKind = args.dataset.parse().map_err(anyhow::Error::msg)?;
    let cfg = PreprocessConfig {
        dataset,
        dt_ms: args.dt_ms,
        nbins: args.nbins as usize,
        count_cutoff: args.count_cutoff,
        downsample_by_factor_2: args.downsample_by_factor_2,
        class_map: args
            .class_map
            .as_deref()
            .map(|m| preprocess::parse_class_map(m).map_err(anyhow::Error::msg))
            .transpose()?
            .unwrap_or_default(),
        open: args.recording.open_options(),
        ..Default::default()
    };
    let (n, total) = preprocess::expected_events(&args.raw, &args.splits, cfg.open)?;
    let pb = crate::progress::bar(total, "events");
    pb.set_message(format!("{n} sequences"));
    let start = std::time::Instant::now();
    let summary =
        preprocess::preprocess(&args.raw, &args.out, &args.splits, &cfg, args.jobs, &|n| {
            pb.inc(n)
        })?;
    pb.finish_and_clear();
    summary
        .lines(start.elapsed().as_secs_f64())
        .iter()
        .for_each(|l| println!("{l}"));
    if let Some(w) = summary.truncated_warning() {
        eprintln!("{w}");
    }
    crate::write_json(args.json.as_deref(), &summary)
}
