//! `evdet bench eval`: COCO evaluation speed on a COCO-val-sized synthetic case.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use evdet_eval::coco_json::{load_dt, load_gt};
use evdet_eval::synthetic::{coco_val_like, CaseSpec};
use evdet_eval::{CocoEval, CocoOptions, STAT_NAMES};
use serde_json::json;

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
    let t0 = Instant::now();
    let case = coco_val_like(&spec);
    let build_s = t0.elapsed().as_secs_f64();
    let (gt, dt) = case.to_coco().context("building the synthetic case")?;
    let (gt, dt) = (Arc::new(gt), Arc::new(dt));

    let mut times = Vec::new();
    let mut stats = [0.0; 12];
    for _ in 0..args.repeat.max(1) {
        let t = Instant::now();
        let ev = CocoEval::run(&gt, &dt, &CocoOptions::default())
            .context("evaluating the synthetic case")?;
        stats = ev.stats();
        times.push(t.elapsed().as_secs_f64());
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);

    let mut out = json!({
        "bench": "eval",
        "case": {
            "images": spec.images,
            "categories": spec.categories,
            "gt_boxes": case.gt.annotations.len(),
            "crowd_boxes": case.gt.annotations.iter().filter(|a| a.iscrowd).count(),
            "detections": case.dt.len(),
            "seed": spec.seed,
        },
        "threads": rayon::current_num_threads(),
        "build_case_s": build_s,
        "eval_s": times,
        "eval_s_best": sorted[0],
        "eval_s_median": sorted[sorted.len() / 2],
        "stats": stats.to_vec(),
        "stat_names": STAT_NAMES,
    });

    if let Some(dir) = &args.write_case {
        case.write_json(dir)
            .with_context(|| format!("writing the case to {}", dir.display()))?;
        let t = Instant::now();
        let gt = load_gt(&dir.join("gt.json"))?;
        let dt = load_dt(&gt, &dir.join("dt.json"))?;
        let load_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let ev = CocoEval::run(&Arc::new(gt), &Arc::new(dt.coco), &CocoOptions::default())?;
        let eval_s = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            ev.stats() == stats,
            "stats from the written JSON differ from the in-memory case"
        );
        out["files"] = json!({
            "dir": dir.display().to_string(),
            "load_json_s": load_s,
            "eval_s": eval_s,
            "total_s": load_s + eval_s,
        });
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_case_runs_and_round_trips_through_json() {
        let dir = tempfile::tempdir().unwrap();
        let args = Args {
            images: 40,
            dets_per_image: 20,
            seed: 1,
            repeat: 1,
            write_case: Some(dir.path().to_path_buf()),
        };
        // `run` checks that the written files give the in-memory stats exactly.
        run(args).unwrap();
        assert!(dir.path().join("gt.json").exists() && dir.path().join("dt.json").exists());
    }
}
