//! From the runs' test metrics to the study's numbers: per arm and metric the mean, standard deviation
//! and 95 % t interval over seeds; per hypothesis the paired difference against the other arm on the
//! same seeds, its interval, the one-sided p-values of the claim and of its opposite (each also
//! adjusted over the family, Holm by default), the verdict after the adjustment, the power of the
//! seeds run (paired sd, minimal detectable difference, seeds needed) and which runs were missing.

use crate::file::{Hypothesis, StudyFile};
use crate::power::{min_detectable_effect, seeds_needed, TARGET_POWER};
use crate::stats::{one_sided, paired, summarize};
use crate::verdict::{verdict, Op, Verdict};
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
    /// One-sided p-value of the claim as stated (H1: `arm − than` op `margin`; H0 its complement).
    pub p_value: Option<f64>,
    /// `p_value` adjusted over the study's hypotheses (`correction`); the verdict uses this one.
    pub p_holm: Option<f64>,
    /// One-sided p-value of the opposite claim, and adjusted: a refutation needs `p_against_holm ≤ α`.
    pub p_against: Option<f64>,
    pub p_against_holm: Option<f64>,
    /// Which p-values these are, in words.
    pub p_kind: String,
    pub verdict: Verdict,
    /// Sample standard deviation of the paired differences.
    pub sd_diff: Option<f64>,
    /// The level each test is held to at worst under the correction (α/m for Holm): what `mde` and
    /// `seeds_needed` are computed at.
    pub level: f64,
    /// The smallest difference from the margin the seeds run detect with 80 % power.
    pub mde: Option<f64>,
    /// Paired seeds needed to detect `effect` with 80 % power (`null`: no sd yet, or more than
    /// 100 000).
    pub seeds_needed: Option<usize>,
    /// The difference from the margin `seeds_needed` is for, and where it came from.
    pub effect: Option<f64>,
    pub effect_source: String,
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
    /// One-sided level of every verdict, and the family's adjustment.
    pub alpha: f64,
    pub correction: crate::multiplicity::Correction,
    /// `--until-decided`: the looks behind the verdicts (which then come from them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequential: Option<crate::sequential::SequentialResult>,
}

fn metric_of(runs: &[RunRecord], arm: &str, seed: u64, metric: &str) -> Option<f64> {
    runs.iter()
        .find(|r| r.arm == arm && r.seed == seed && r.status == "done")
        .and_then(|r| r.metrics.get(metric).copied())
        .filter(|v| v.is_finite())
}

/// The study's statistics from its runs; `effect` (`--effect`) is the difference from the margin
/// seed counts are planned for when a hypothesis names none.
pub fn aggregate(file: &StudyFile, runs: Vec<RunRecord>, effect: Option<f64>) -> StudyResult {
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
    let m = file.hypotheses.len();
    let level = file.correction.worst_level(file.alpha, m);
    let tests: Vec<Tested> = file
        .hypotheses
        .iter()
        .map(|h| test(h, &runs, &file.seeds, level, effect))
        .collect();
    let p_claim = file
        .correction
        .adjust(&tests.iter().map(|t| t.p_claim).collect::<Vec<_>>());
    let p_against = file
        .correction
        .adjust(&tests.iter().map(|t| t.p_against).collect::<Vec<_>>());
    let hypotheses = tests
        .into_iter()
        .zip(p_claim.into_iter().zip(p_against))
        .map(|(t, (adj, adj_against))| HypothesisResult {
            p_holm: adj,
            p_against_holm: adj_against,
            verdict: verdict(adj, adj_against, file.alpha),
            ..t.result
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
        alpha: file.alpha,
        correction: file.correction,
        sequential: None,
    }
}

/// One hypothesis tested on its own, before the family's adjustment.
struct Tested {
    result: HypothesisResult,
    p_claim: Option<f64>,
    p_against: Option<f64>,
}

fn test(
    h: &Hypothesis,
    runs: &[RunRecord],
    seeds: &[u64],
    level: f64,
    effect: Option<f64>,
) -> Tested {
    let (mut a, mut b, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    for &s in seeds {
        match (
            metric_of(runs, &h.arm, s, &h.metric),
            metric_of(runs, &h.than, s, &h.metric),
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
    // The claim's side: `>`/`>=` claim the difference above the margin, `<`/`<=` below.
    let above = matches!(h.op, Op::Greater | Op::GreaterEq);
    let (p_claim, p_against) = match one_sided(&a, &b, h.margin) {
        Some((greater, less)) if above => (Some(greater), Some(less)),
        Some((greater, less)) => (Some(less), Some(greater)),
        None => (None, None),
    };
    let sd_diff = p.and_then(|_| {
        let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
        crate::stats::sd(&d)
    });
    let mean_diff = p.map(|p| p.mean_diff);
    let (effect, effect_source) = match (h.effect, effect) {
        (Some(e), _) => (Some(e), "the hypothesis's effect".to_string()),
        (None, Some(e)) => (Some(e), "--effect".to_string()),
        _ if h.margin != 0.0 => (Some(h.margin.abs()), "|margin|".to_string()),
        _ => (
            mean_diff.map(|d| (d - h.margin).abs()),
            "the observed difference".to_string(),
        ),
    };
    let usable_sd = sd_diff.filter(|s| *s > 0.0);
    let mde = usable_sd.map(|sd| min_detectable_effect(a.len(), level, TARGET_POWER) * sd);
    let needed = match (usable_sd, effect) {
        (Some(sd), Some(e)) => seeds_needed(e / sd, level, TARGET_POWER),
        _ => None,
    };
    let note = match (a.len(), missing.is_empty()) {
        (0, _) => "no seed has both runs finished".to_string(),
        (1, _) => "one seed: no interval can be given".to_string(),
        (_, false) => format!(
            "{} paired seeds; runs missing for seeds {missing:?}",
            a.len()
        ),
        (n, true) => format!("{n} paired seeds"),
    };
    let side = if above { ">" } else { "<" };
    Tested {
        p_claim,
        p_against,
        result: HypothesisResult {
            hypothesis: h.clone(),
            n_pairs: a.len(),
            mean_diff,
            ci95_low: ci.map(|c| c.0),
            ci95_high: ci.map(|c| c.1),
            p_value: p_claim,
            p_holm: None,
            p_against,
            p_against_holm: None,
            p_kind: format!(
                "one-sided paired t: H1 {} − {} {side} {}",
                h.arm, h.than, h.margin
            ),
            verdict: Verdict::Inconclusive,
            sd_diff,
            level,
            mde: mde.filter(|v| v.is_finite()),
            seeds_needed: needed,
            effect,
            effect_source,
            bootstrap_ci95_low: None,
            bootstrap_ci95_high: None,
            bootstrap_note: "not computed".into(),
            missing_seeds: missing,
            note,
        },
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
            aggregate(&f, runs, None).hypotheses[0].verdict
        };
        assert_eq!(table([0.33, 0.35, 0.34]), Verdict::Supported);
        assert_eq!(table([0.27, 0.29, 0.28]), Verdict::Refuted);
        assert_eq!(table([0.33, 0.30, 0.32]), Verdict::Inconclusive);

        let one = aggregate(
            &file(&[0]),
            vec![run("base", 0, Some(0.3)), run("new", 0, Some(0.4))],
            None,
        );
        let h = &one.hypotheses[0];
        assert_eq!(
            (h.verdict, h.n_pairs, h.ci95_low),
            (Verdict::Inconclusive, 1, None)
        );
        assert_eq!(h.note, "one seed: no interval can be given");
        assert_eq!(one.arms["new"]["m"].ci95_low, None);
    }

    /// Two claims each at one-sided p ≈ 0.018: each alone is supported at 0.025; as a family of two,
    /// Holm's smallest adjusted p is 0.037 and neither verdict stands.
    #[test]
    fn holm_takes_back_verdicts_a_family_cannot_afford() {
        let text = |correction: &str| {
            format!(
                r#"
study: s
experiment: e.yaml
seeds: [0, 1, 2, 3]
baseline: base
correction: {correction}
arms: {{base: [a=1], new: [a=2]}}
hypotheses:
  - {{metric: m, arm: new, op: ">", than: base}}
  - {{metric: k, arm: new, op: ">", than: base, effect: 0.01}}
"#
            )
        };
        let base = [0.30, 0.32, 0.31, 0.33];
        let diff = [0.012, 0.03, 0.02, 0.008];
        let mut runs = Vec::new();
        for s in 0..4 {
            for (arm, add) in [("base", 0.0), ("new", diff[s])] {
                let v = base[s] + add;
                runs.push(RunRecord {
                    arm: arm.into(),
                    seed: s as u64,
                    status: "done".into(),
                    metrics: [("m".to_string(), v), ("k".to_string(), v)].into(),
                });
            }
        }
        let none = aggregate(
            &StudyFile::parse(&text("none")).unwrap(),
            runs.clone(),
            None,
        );
        let holm = aggregate(&StudyFile::parse(&text("holm")).unwrap(), runs, None);
        for h in &none.hypotheses {
            // scipy: ttest_rel(new, base, alternative="greater") = 0.018334548548860442.
            let p = h.p_value.unwrap();
            assert!((p - 0.018334548548860442).abs() < 1e-12, "{p}");
            assert_eq!(h.p_holm, Some(p));
            assert_eq!(h.verdict, Verdict::Supported);
            assert!(h.p_kind.starts_with("one-sided"), "{}", h.p_kind);
        }
        for h in &holm.hypotheses {
            assert!((h.p_holm.unwrap() - 2.0 * 0.018334548548860442).abs() < 1e-12);
            assert_eq!(h.verdict, Verdict::Inconclusive);
            // Power at Holm's worst level, α/2.
            assert_eq!(h.level, 0.0125);
            assert!(h.mde.unwrap() > h.mean_diff.unwrap(), "{:?}", h.mde);
        }
        // Seeds for the hypothesis's own effect, else the observed difference.
        assert_eq!(holm.hypotheses[1].effect, Some(0.01));
        assert_eq!(holm.hypotheses[0].effect_source, "the observed difference");
        let needed = holm.hypotheses[1].seeds_needed.unwrap();
        let sd = holm.hypotheses[1].sd_diff.unwrap();
        assert_eq!(
            Some(needed),
            crate::power::seeds_needed(0.01 / sd, 0.0125, 0.8)
        );
        assert!(needed > 4);
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
        let r = aggregate(&f, runs, None);
        let h = &r.hypotheses[0];
        assert_eq!(h.missing_seeds, vec![1]);
        assert_eq!(h.n_pairs, 2);
        assert!(h.note.contains("runs missing for seeds [1]"), "{}", h.note);
        assert_eq!(r.arms["new"]["m"].n, 2);
        assert!((r.arms["base"]["m"].mean - 0.31).abs() < 1e-12);
    }
}
