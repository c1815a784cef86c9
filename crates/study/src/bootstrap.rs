//! The bootstrap over test recordings: each run keeps every test frame's ground truth and detections
//! (`eval/test_frames.bin`), so a hypothesis's difference can be recomputed on resampled sets of
//! recordings — the same resample for both arms and every seed — without running the network. The
//! percentile interval of the seed-averaged difference says how much the verdict depends on which
//! recordings happen to be in the test split. Detections are matched to ground truth once per run;
//! a resample only re-accumulates the matched records of the recordings it draws
//! (`evdet_eval::resample`), the same numbers as evaluating it in full.

use crate::stats::bootstrap_ci;
use evdet_eval::frames::{decode_frames, FrameRecord};
use evdet_eval::resample::GroupedMetric;
use evdet_eval::{EvalConfig, Evaluator};
use std::collections::BTreeMap;
use std::path::Path;

/// One run's test frames grouped by recording, with its evaluator settings.
pub struct RunFrames {
    pub eval: EvalConfig,
    pub recordings: BTreeMap<usize, Vec<FrameRecord>>,
}

/// Reads `<run>/eval/test_frames.bin` and the run's `config.yaml`; `None` when either is missing or
/// unreadable (runs finished before the records existed).
pub fn load_run(run: &Path) -> Option<RunFrames> {
    let run = evdet_run::RunDir::at(run);
    let bytes = std::fs::read(run.eval().frames("test")).ok()?;
    let frames = decode_frames(&bytes)?;
    let text = std::fs::read_to_string(run.config()).ok()?;
    let value: serde_norway::Value = serde_norway::from_str(&text).ok()?;
    let cfg = evdet_config::ExperimentConfig::from_value(value).ok()?;
    let mut recordings: BTreeMap<usize, Vec<FrameRecord>> = BTreeMap::new();
    for (_, f) in frames {
        recordings.entry(f.seq).or_default().push(f);
    }
    Some(RunFrames {
        eval: evdet_config::eval_config(&cfg),
        recordings,
    })
}

/// `metric` (`test/<protocol>/<stat>`) of `run` on the recordings `pick` (indices into `ids`).
fn metric_on(run: &RunFrames, ids: &[usize], pick: &[usize], metric: &str) -> f64 {
    let Ok(mut ev) = Evaluator::new(run.eval.clone()) else {
        return f64::NAN;
    };
    for &i in pick {
        for f in run.recordings.get(&ids[i]).into_iter().flatten() {
            ev.add_frame(&f.gt, &f.dt);
        }
    }
    let split = metric.split('/').next().unwrap_or("test");
    ev.summarize()
        .ok()
        .and_then(|r| r.metrics(split).get(metric).copied())
        .unwrap_or(f64::NAN)
}

/// One run's metric on resampled recordings: matched once and re-accumulated per resample where
/// the metric allows ([`GroupedMetric`]), else a full evaluation of each resample.
enum Resampled<'a> {
    Fast(Box<GroupedMetric>),
    Full(&'a RunFrames),
}

impl<'a> Resampled<'a> {
    fn new(run: &'a RunFrames, ids: &[usize], metric: &str) -> Self {
        let groups: Vec<Vec<&FrameRecord>> = ids
            .iter()
            .map(|i| {
                run.recordings
                    .get(i)
                    .map(|f| f.iter().collect())
                    .unwrap_or_default()
            })
            .collect();
        match GroupedMetric::new(&run.eval, &groups, metric) {
            Ok(Some(g)) => Resampled::Fast(Box::new(g)),
            _ => Resampled::Full(run),
        }
    }

    fn value(&self, ids: &[usize], pick: &[usize], metric: &str) -> f64 {
        match self {
            Resampled::Fast(g) => g.value(pick),
            Resampled::Full(run) => metric_on(run, ids, pick, metric),
        }
    }
}

/// Percentile 95 % interval of the mean over `pairs` (one per seed: arm run, other run) of
/// `metric(arm) − metric(other)`, over `rounds` resamples of the test recordings; `None` with fewer
/// than two recordings, where every resample is the same one and an interval would only repeat the
/// observed difference.
pub fn paired_difference_ci(
    pairs: &[(&RunFrames, &RunFrames)],
    metric: &str,
    rounds: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    let ids: Vec<usize> = pairs.first()?.0.recordings.keys().copied().collect();
    if ids.len() < 2 {
        return None;
    }
    let prepared: Vec<(Resampled, Resampled)> = pairs
        .iter()
        .map(|(a, b)| {
            (
                Resampled::new(a, &ids, metric),
                Resampled::new(b, &ids, metric),
            )
        })
        .collect();
    bootstrap_ci(ids.len(), rounds, seed, |pick| {
        let diffs: Vec<f64> = prepared
            .iter()
            .map(|(a, b)| a.value(&ids, pick, metric) - b.value(&ids, pick, metric))
            .collect();
        diffs.iter().sum::<f64>() / diffs.len() as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use evdet_eval::BBox;

    /// Three recordings of two frames with one car each; `hits` says which recordings the run
    /// detects perfectly (the others: no detection).
    fn run(hits: [bool; 3]) -> RunFrames {
        let mut eval = EvalConfig::new(vec!["car".into()]);
        eval.height = 200;
        eval.width = 300;
        let mut recordings = BTreeMap::new();
        for (seq, &hit) in hits.iter().enumerate() {
            let frames = (0..2)
                .map(|k| {
                    let t = 50_000 * (k as i64 + 1) + seq as i64 * 1_000_000;
                    let gt = BBox::gt(t, 40.0, 50.0, 60.0, 40.0, 0);
                    FrameRecord {
                        seq,
                        repr: k,
                        t,
                        gt: vec![gt],
                        dt: if hit {
                            vec![BBox::det(t, 40.0, 50.0, 60.0, 40.0, 0, 0.9)]
                        } else {
                            vec![]
                        },
                        dt_score: if hit { vec![0.9] } else { vec![] },
                    }
                })
                .collect();
            recordings.insert(seq, frames);
        }
        RunFrames { eval, recordings }
    }

    #[test]
    fn the_interval_follows_which_recordings_are_drawn() {
        let (all, none) = (run([true; 3]), run([false; 3]));
        let m = "test/unfiltered/AP50";
        // Perfect against nothing on every resample: the difference is 1 whatever is drawn.
        let ci = paired_difference_ci(&[(&all, &none)], m, 50, 1).unwrap();
        assert!(
            (ci.0 - 1.0).abs() < 1e-9 && (ci.1 - 1.0).abs() < 1e-9,
            "{ci:?}"
        );
        // Right on one recording in three: resamples without it give 0, with only it 1.
        let one = run([true, false, false]);
        let ci = paired_difference_ci(&[(&one, &none)], m, 400, 1).unwrap();
        assert!(ci.0 < 0.05 && ci.1 > 0.5, "{ci:?}");
        // Same resamples for the same seed: deterministic.
        assert_eq!(
            ci,
            paired_difference_ci(&[(&one, &none)], m, 400, 1).unwrap()
        );
        // One recording: every resample is that recording, so there is no interval to give.
        let mut single = run([true, false, false]);
        single.recordings.retain(|&k, _| k == 0);
        let mut other = run([false; 3]);
        other.recordings.retain(|&k, _| k == 0);
        assert_eq!(paired_difference_ci(&[(&single, &other)], m, 50, 1), None);
    }

    #[test]
    fn matching_once_gives_the_full_evaluation_s_interval() {
        let (one, none, all) = (
            run([true, false, false]),
            run([false; 3]),
            run([true, true, false]),
        );
        let pairs = [(&one, &none), (&all, &one)];
        for m in [
            "test/unfiltered/AP50",
            "test/prophesee/AP",
            "test/unfiltered/AP/car",
        ] {
            let fast = paired_difference_ci(&pairs, m, 100, 5).unwrap();
            let ids: Vec<usize> = one.recordings.keys().copied().collect();
            let full = bootstrap_ci(ids.len(), 100, 5, |pick| {
                let d: Vec<f64> = pairs
                    .iter()
                    .map(|(a, b)| metric_on(a, &ids, pick, m) - metric_on(b, &ids, pick, m))
                    .collect();
                d.iter().sum::<f64>() / d.len() as f64
            })
            .unwrap();
            assert_eq!(fast, full, "{m}");
        }
    }
}
