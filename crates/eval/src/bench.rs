//! The COCO evaluator's speed on a COCO-val-sized synthetic case, behind `evdet bench eval`;
//! `scripts/bench_eval_pycocotools.py` times pycocotools on the same files and checks the numbers.

use crate::coco::{CocoEval, CocoOptions, STAT_NAMES};
use crate::coco_json::{load_dt, load_gt};
use crate::error::{EvalError, Result};
use crate::synthetic::{coco_val_like, CaseSpec};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The case evaluated.
#[derive(Debug, Clone, Serialize)]
pub struct CaseSummary {
    pub images: usize,
    pub categories: usize,
    pub gt_boxes: usize,
    pub crowd_boxes: usize,
    pub detections: usize,
    pub seed: u64,
}

/// Evaluating from the written JSON files.
#[derive(Debug, Clone, Serialize)]
pub struct FilesTiming {
    pub dir: PathBuf,
    pub load_json_s: f64,
    pub eval_s: f64,
    pub total_s: f64,
}

/// The result of `coco_eval_speed`.
#[derive(Debug, Clone, Serialize)]
pub struct EvalBenchReport {
    pub bench: &'static str,
    pub case: CaseSummary,
    pub threads: usize,
    pub build_case_s: f64,
    /// Seconds of every timed run: evaluate + accumulate + the 12 summary stats, data in memory.
    pub eval_s: Vec<f64>,
    pub eval_s_best: f64,
    pub eval_s_median: f64,
    pub stats: Vec<f64>,
    pub stat_names: [&'static str; 12],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesTiming>,
}

/// Times COCOeval on the deterministic case `spec`, `repeat` times; with `write_case` also writes the
/// case as COCO JSON (`gt.json`, `dt.json`) and times loading and evaluating those files, whose stats
/// must equal the in-memory ones.
pub fn coco_eval_speed(
    spec: &CaseSpec,
    repeat: usize,
    write_case: Option<&Path>,
) -> Result<EvalBenchReport> {
    let t0 = Instant::now();
    let case = coco_val_like(spec);
    let build_case_s = t0.elapsed().as_secs_f64();
    let (gt, dt) = case.to_coco()?;
    let (gt, dt) = (Arc::new(gt), Arc::new(dt));
    let mut eval_s = Vec::new();
    let mut stats = [0.0; 12];
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        stats = CocoEval::run(&gt, &dt, &CocoOptions::default())?.stats();
        eval_s.push(t.elapsed().as_secs_f64());
    }
    let mut sorted = eval_s.clone();
    sorted.sort_by(f64::total_cmp);
    let files = match write_case {
        None => None,
        Some(dir) => {
            case.write_json(dir)?;
            let t = Instant::now();
            let gt = load_gt(&dir.join("gt.json"))?;
            let dt = load_dt(&gt, &dir.join("dt.json"))?;
            let load_json_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let ev = CocoEval::run(&Arc::new(gt), &Arc::new(dt.coco), &CocoOptions::default())?;
            let eval_s = t.elapsed().as_secs_f64();
            if ev.stats() != stats {
                return Err(EvalError::InvalidInput(format!(
                    "{}: stats from the written JSON differ from the in-memory case",
                    dir.display()
                )));
            }
            Some(FilesTiming {
                dir: dir.to_path_buf(),
                load_json_s,
                eval_s,
                total_s: load_json_s + eval_s,
            })
        }
    };
    Ok(EvalBenchReport {
        bench: "eval",
        case: CaseSummary {
            images: spec.images,
            categories: spec.categories,
            gt_boxes: case.gt.annotations.len(),
            crowd_boxes: case.gt.annotations.iter().filter(|a| a.iscrowd).count(),
            detections: case.dt.len(),
            seed: spec.seed,
        },
        threads: rayon::current_num_threads(),
        build_case_s,
        eval_s_best: sorted[0],
        eval_s_median: sorted[sorted.len() / 2],
        eval_s,
        stats: stats.to_vec(),
        stat_names: STAT_NAMES,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_case_runs_and_round_trips_through_json() {
        let dir = tempfile::tempdir().unwrap();
        let spec = CaseSpec {
            images: 40,
            dets_per_image: 20,
            seed: 1,
            ..Default::default()
        };
        // The written files must give the in-memory stats exactly, or this is an error.
        let r = coco_eval_speed(&spec, 1, Some(dir.path())).unwrap();
        assert!(dir.path().join("gt.json").exists() && dir.path().join("dt.json").exists());
        assert_eq!(r.case.images, 40);
        assert_eq!(r.case.detections, 40 * 20);
        assert!(r.stats[0] > 0.0 && r.stats[0] <= 1.0, "{:?}", r.stats);
        assert!(r.files.is_some());
    }
}
