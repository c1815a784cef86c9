//! `evdet eval`: evaluates a checkpoint on a split with both protocols and writes the metrics as JSON,
//! the data behind every report plot, and sample pictures of predictions beside ground truth.

use crate::evaluation::{evaluate_split, write_all};
use evdet_infer::evaluate;
use evdet_model::postprocess::PostprocessConfig;
use std::path::PathBuf;

/// Evaluate a trained or imported checkpoint (both protocols, AP by size and class).
///
/// The checkpoint's config.yaml says how the data is read; when the preprocessed data has another
/// input size (another sensor, with or without downsampling), the size is taken from the data and a
/// note says so. Labels of a class the head does not predict are an error.
///
/// Examples:
///   evdet eval --run runs/synthetic/mini/4scale_sizeaware_tiny --split test
///   evdet eval --checkpoint runs/etram/size_aware/4scale_sizeaware_100k/checkpoints/best --data /data/etram_pre
///   evdet import-rvt rvt-etram.ckpt --out ckpt/rvt && evdet eval --checkpoint ckpt/rvt --data /data/etram_pre
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Run folder (uses checkpoints/best, else checkpoints/last).
    #[arg(
        long,
        conflicts_with = "checkpoint",
        required_unless_present = "checkpoint"
    )]
    pub run: Option<PathBuf>,
    /// Checkpoint folder (trained, or written by import-rvt), or its model.safetensors.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Preprocessed dataset root (default: the config's dataset.path).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The split to evaluate.
    #[arg(long, default_value = "test", value_parser = ["val", "test"])]
    pub split: String,
    /// Post-process confidence threshold (0.001 for reported numbers, as the reference).
    #[arg(long, default_value_t = PostprocessConfig::REPORTED.confidence_threshold)]
    pub confidence_threshold: f64,
    #[command(flatten)]
    pub device: crate::device::DeviceArg,
    /// Write the metrics here (default: <run>/eval/<split>_metrics.json for a run's checkpoint,
    /// <checkpoint>/eval/<split>_metrics.json for any other checkpoint folder, e.g. an imported one).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let path = args
        .checkpoint
        .as_ref()
        .or(args.run.as_ref())
        .ok_or_else(|| anyhow::anyhow!("give --run RUN_DIR or --checkpoint DIR"))?;
    let device = args.device.resolve()?;
    let (opened, data, note) =
        evaluate::open_with_split(path, device, args.data.as_deref(), &args.split)?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    eprintln!("evaluating {}", opened.provenance.describe());
    let ev = evaluate_split(
        &opened.detector,
        &opened.config,
        data,
        &args.split,
        device,
        args.confidence_threshold,
    )?;
    let json = args
        .json
        .clone()
        .unwrap_or_else(|| evaluate::default_metrics_path(&opened.dir, &args.split));
    write_all(&ev, &opened.config, &json, &opened.provenance)
}
