//! From the runs' test metrics to the study's numbers: per arm and metric the mean, standard deviation
//! and 95 % t interval over seeds; per hypothesis the paired difference against the other arm on the
//! same seeds, its interval, p-value and verdict, and which runs were missing.

use crate::file::{Hypothesis, StudyFile};
use crate::stats::{paired, summarize};
use crate::verdict::{verdict, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;

/// What became of one (arm, seed) run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub arm: String,
    pub seed: u64,
    /// `done` (test metrics written), `failed` (the run ended with an error), `pending` (not run yet).
    pub status: String,
    /// Its test metrics (`test/<protocol>/<stat>` …); empty unless done.
    pub metrics: BTreeMap<String, f64>,
}

/// One metric of one arm over its seeds (plain numbers; `null` where no interval can be given).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmMetric {
    pub n: usize,
    pub mean: f64,
    pub sd: Option<f64>,
    pub ci95_low: Option<f64>,
    pub ci95_high: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HypothesisResult {
    #[serde(flatten)]
    pub hypothesis: Hypothesis,
    /// Seeds with the metric in both arms.
    pub n_pairs: usize,
    /// Mean of `arm − than` over those seeds.
    pub mean_diff: Option<f64>,
    pub ci95_low: Option<f64>,
    pub ci95_high: Option<f64>,
    pub p_value: Option<f64>,
    pub verdict: Verdict,
    /// Percentile 95 % interval of the seed-averaged difference over resampled test recordings
    /// (`null` when not computed: see `bootstrap_note`).
    pub bootstrap_ci95_low: Option<f64>,
    pub bootstrap_ci95_high: Option<f64>,
    pub bootstrap_note: String,
    /// Seeds of either arm without a finished run.
    pub missing_seeds: Vec<u64>,
    /// Why the verdict is what it is, in words.
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudyResult {
    pub study: String,
    pub experiment: String,
    pub seeds: Vec<u64>,
    pub baseline: String,
    pub runs: Vec<RunRecord>,
    /// Arm → metric → statistics over seeds.
    pub arms: BTreeMap<String, BTreeMap<String, ArmMetric>>,
    pub hypotheses: Vec<HypothesisResult>,
}

fn metric_of(runs: &[RunRecord], arm: &str, seed: u64, metric: &str) -> Option<f64> {
    runs.iter()
        .find(|r| r.arm == arm && r.seed == seed && r.status == "done")
        .and_then(|r| r.metrics.get(metric).copied())
        .filter(|v| v.is_finite())
}

/// The study's statistics from its runs.
pub fn aggregate(file: &StudyFile, runs: Vec<RunRecord>) -> StudyResult {
    let mut arms = BTreeMap::new();
    for arm in file.arms.keys() {
        let mut keys: Vec<&String> = runs
            .iter()
            .filter(|r| &r.arm == arm && r.status == "done")
            .flat_map(|r| r.metrics.keys())
            .collect();
        keys.sort();
        keys.dedup();
        let mut per_metric = BTreeMap::new();
        for k in keys {
            let values: Vec<f64> = file
                .seeds
                .iter()
                .filter_map(|&s| metric_of(&runs, arm, s, k))
                .collect();
            if values.is_empty() {
                continue;
            }
            let s = summarize(&values);
            per_metric.insert(
                k.clone(),
                ArmMetric {
                    n: s.n,
                    mean: s.mean,
                    sd: s.sd,
                    ci95_low: s.ci95.map(|c| c.0),
                    ci95_high: s.ci95.map(|c| c.1),
                },
            );
        }
        arms.insert(arm.clone(), per_metric);
    }
    let hypotheses = file
        .hypotheses
        .iter()
        .map(|h| {
            let (mut a, mut b, mut missing) = (Vec::new(), Vec::new(), Vec::new());
            for &s in &file.seeds {
                match (
                    metric_of(&runs, &h.arm, s, &h.metric),
                    metric_of(&runs, &h.than, s, &h.metric),
                ) {
                    (Some(x), Some(y)) => {
                        a.push(x);
                        b.push(y);
                    }
                    _ => missing.push(s),
                }
            }
            let p = (!a.is_empty()).then(|| paired(&a, &b));
            let ci = p.and_then(|p| p.ci95);
            let v = verdict(h.op, h.margin, ci);
            let note = match (a.len(), missing.is_empty()) {
                (0, _) => "no seed has both runs finished".to_string(),
                (1, _) => "one seed: no interval can be given".to_string(),
                (_, false) => format!(
                    "{} paired seeds; runs missing for seeds {missing:?}",
                    a.len()
                ),
                (n, true) => format!("{n} paired seeds"),
            };
            HypothesisResult {
                hypothesis: h.clone(),
                n_pairs: a.len(),
                mean_diff: p.map(|p| p.mean_diff),
                ci95_low: ci.map(|c| c.0),
                ci95_high: ci.map(|c| c.1),
                p_value: p.and_then(|p| p.p_value),
                verdict: v,
                bootstrap_ci95_low: None,
                bootstrap_ci95_high: None,
                bootstrap_note: "not computed".into(),
                missing_seeds: missing,
                note,
            }
        })
        .collect();
    StudyResult {
        study: file.study.clone(),
        experiment: file.experiment.clone(),
        seeds: file.seeds.clone(),
        baseline: file.baseline.clone(),
        runs,
        arms,
        hypotheses,
    }
}

/// Adds each hypothesis's bootstrap interval over test recordings (`rounds` resamples), from the
/// runs' `eval/test_frames.bin` under `root/<arm>/seed<k>`.
pub fn add_bootstrap(result: &mut StudyResult, root: &std::path::Path, rounds: usize, seed: u64) {
    use crate::bootstrap::{load_run, paired_difference_ci, RunFrames};
    let mut cache: BTreeMap<(String, u64), Option<RunFrames>> = BTreeMap::new();
    let done = |arm: &str, s: u64| {
        result
            .runs
            .iter()
            .any(|r| r.arm == arm && r.seed == s && r.status == "done")
    };
    for hi in 0..result.hypotheses.len() {
        let h = result.hypotheses[hi].hypothesis.clone();
        let seeds: Vec<u64> = result
            .seeds
            .iter()
            .copied()
            .filter(|&s| done(&h.arm, s) && done(&h.than, s))
            .collect();
        for &s in &seeds {
            for arm in [&h.arm, &h.than] {
                cache
                    .entry((arm.clone(), s))
                    .or_insert_with(|| load_run(&root.join(arm).join(format!("seed{s}"))));
            }
        }
        let pairs: Option<Vec<(&RunFrames, &RunFrames)>> = seeds
            .iter()
            .map(|&s| {
                Some((
                    cache[&(h.arm.clone(), s)].as_ref()?,
                    cache[&(h.than.clone(), s)].as_ref()?,
                ))
            })
            .collect();
        let out = &mut result.hypotheses[hi];
        match pairs {
            _ if rounds == 0 => out.bootstrap_note = "off (--bootstrap 0)".into(),
            None => out.bootstrap_note = "a run has no eval/test_frames.bin".into(),
            Some(p) if p.is_empty() => out.bootstrap_note = "no paired runs".into(),
            Some(p) => match paired_difference_ci(&p, &h.metric, rounds, seed) {
                Some((lo, hi)) => {
                    out.bootstrap_ci95_low = Some(lo);
                    out.bootstrap_ci95_high = Some(hi);
                    out.bootstrap_note = format!(
                        "{rounds} resamples of the test recordings, {} seed(s)",
                        p.len()
                    );
                }
                None => {
                    let n = p[0].0.recordings.len();
                    out.bootstrap_note = format!(
                        "the test split has {n} recording(s): resampling recordings cannot vary it, so no bootstrap interval"
                    )
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(seeds: &[u64]) -> StudyFile {
        StudyFile::parse(&format!(
            r#"
study: s
experiment: e.yaml
seeds: {seeds:?}
baseline: base
arms: {{base: [a=1], new: [a=2]}}
hypotheses:
  - {{metric: m, arm: new, op: ">", than: base}}
"#
        ))
        .unwrap()
    }

    fn run(arm: &str, seed: u64, m: Option<f64>) -> RunRecord {
        RunRecord {
            arm: arm.into(),
            seed,
            status: if m.is_some() { "done" } else { "failed" }.into(),
            metrics: m.map(|v| [("m".to_string(), v)].into()).unwrap_or_default(),
        }
    }

    #[test]
    fn supported_refuted_inconclusive_and_single_seed() {
        let f = file(&[0, 1, 2]);
        let table = |new: [f64; 3]| {
            let base = [0.30, 0.32, 0.31];
            let mut runs = Vec::new();
            for s in 0..3 {
                runs.push(run("base", s, Some(base[s as usize])));
                runs.push(run("new", s, Some(new[s as usize])));
            }
            aggregate(&f, runs).hypotheses[0].verdict
        };
        assert_eq!(table([0.33, 0.35, 0.34]), Verdict::Supported);
        assert_eq!(table([0.27, 0.29, 0.28]), Verdict::Refuted);
        assert_eq!(table([0.33, 0.30, 0.32]), Verdict::Inconclusive);

        let one = aggregate(
            &file(&[0]),
            vec![run("base", 0, Some(0.3)), run("new", 0, Some(0.4))],
        );
        let h = &one.hypotheses[0];
        assert_eq!(
            (h.verdict, h.n_pairs, h.ci95_low),
            (Verdict::Inconclusive, 1, None)
        );
        assert_eq!(h.note, "one seed: no interval can be given");
        assert_eq!(one.arms["new"]["m"].ci95_low, None);
    }

    #[test]
    fn failed_runs_are_named_in_the_verdict() {
        let f = file(&[0, 1, 2]);
        let runs = vec![
            run("base", 0, Some(0.30)),
            run("new", 0, Some(0.33)),
            run("base", 1, Some(0.32)),
            run("new", 1, None),
            run("base", 2, Some(0.31)),
            run("new", 2, Some(0.34)),
        ];
        let r = aggregate(&f, runs);
        let h = &r.hypotheses[0];
        assert_eq!(h.missing_seeds, vec![1]);
        assert_eq!(h.n_pairs, 2);
        assert!(h.note.contains("runs missing for seeds [1]"), "{}", h.note);
        assert_eq!(r.arms["new"]["m"].n, 2);
        assert!((r.arms["base"]["m"].mean - 0.31).abs() < 1e-12);
    }
}
