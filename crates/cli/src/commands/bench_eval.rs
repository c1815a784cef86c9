//! `evdet bench eval`: COCO evaluation speed on a COCO-val-sized synthetic case
//! (`evdet_eval::bench::coco_eval_speed`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use evdet_eval::synthetic::CaseSpec;

/// Time the COCO evaluator on a synthetic COCO-val-sized case.
///
/// The case is deterministic (5 000 images, about 36 000 ground-truth boxes over 80 classes,
/// 100 detections per image by default). Timed: COCOeval's evaluate + accumulate + the 12 summary
/// stats, on data already in memory, best of --repeat runs; with --write-case also loading the
/// written JSON files. Prints one JSON object; `scripts/bench_eval_pycocotools.py` times
/// pycocotools on the same files and checks that the numbers are identical.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  evdet bench eval
  mkdir -p /tmp/evalcase && evdet bench eval --write-case /tmp/evalcase > /tmp/evalcase/evdet.json
  /root/.evdet/venv/bin/python scripts/bench_eval_pycocotools.py /tmp/evalcase --evdet /tmp/evalcase/evdet.json")]
pub struct Args {
    /// Images in the case.
    #[arg(long, default_value_t = 5000)]
    images: usize,
    /// Detections per image.
    #[arg(long, default_value_t = 100)]
    dets_per_image: usize,
    /// Seed of the case.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Timed runs (the best and the median are reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Write the case as COCO JSON (DIR/gt.json, DIR/dt.json) and also time evaluating from those files.
    #[arg(long, value_name = "DIR")]
    write_case: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let spec = CaseSpec {
        images: args.images,
        dets_per_image: args.dets_per_image,
        seed: args.seed,
        ..Default::default()
    };
    let report = evdet_eval::bench::coco_eval_speed(&spec, args.repeat, args.write_case.as_deref())
        .context("benchmarking COCO evaluation")?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
