//! `evdet study FILE --until-decided --max-seeds N`: the study's seeds in rounds. The first round
//! runs every arm on the study file's seeds; after each round every hypothesis is looked at
//! ([`crate::sequential`]) and stops once decided; the next round adds seeds only to the arms some
//! undecided hypothesis compares. The study ends when every hypothesis is decided or the seeds are
//! spent. Nothing is kept between invocations but the runs: the looks are recomputed from them, so a
//! killed study resumes like any other.

use crate::aggregate::StudyResult;
use crate::runner::{RunEvent, RunState, Runner, RunnerError, Summary};
use crate::sequential::{extended_seeds, looks, Look, Schedule, SequentialResult};
use crate::verdict::{Op, Verdict};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// How far a sequential study may go.
#[derive(Debug, Clone, Copy)]
pub struct SequentialOptions {
    /// Seeds per arm at most.
    pub max_seeds: usize,
    /// Seeds added per round.
    pub per_round: usize,
}

/// What a look found, for the terminal.
pub struct LookReport<'a> {
    pub round: usize,
    pub seeds: usize,
    pub hypothesis: &'a crate::file::Hypothesis,
    pub look: &'a Look,
}

impl LookReport<'_> {
    pub fn line(&self) -> String {
        let h = self.hypothesis;
        let p = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.2e}"));
        format!(
            "look {} ({} seeds, {} pairs): {} of {} {} {} {:+}: p {} (opposite {}), threshold {:.2e}: {}",
            self.round + 1,
            self.seeds,
            self.look.pairs,
            h.metric,
            h.arm,
            h.op.symbol(),
            h.than,
            h.margin,
            p(self.look.p_claim),
            p(self.look.p_against),
            self.look.threshold,
            self.look.verdict.word()
        )
    }
}

impl Runner {
    /// The schedule of `--until-decided`.
    pub fn schedule(&self, seq: &SequentialOptions) -> Result<Schedule, RunnerError> {
        let m = self.file.hypotheses.len();
        let alpha_each = self.file.correction.worst_level(self.file.alpha, m);
        Schedule::new(
            self.file.seeds.len(),
            seq.per_round,
            seq.max_seeds,
            alpha_each,
        )
        .map_err(RunnerError::Other)
    }

    /// Every hypothesis's looks over the schedule's first `looks_done` looks, from the runs on disk.
    fn looks_so_far(
        &self,
        schedule: &Schedule,
        seeds: &[u64],
        looks_done: usize,
    ) -> Vec<Vec<Look>> {
        let mut cache: BTreeMap<(String, u64), Option<BTreeMap<String, f64>>> = BTreeMap::new();
        let mut metric = |arm: &str, seed: u64, key: &str| -> Option<f64> {
            cache
                .entry((arm.to_string(), seed))
                .or_insert_with(|| {
                    let dir = self.root.join(arm).join(format!("seed{seed}"));
                    (RunState::of(&dir) == RunState::Done).then(|| {
                        evdet_report::run::read_flat_metrics(
                            &evdet_run::RunDir::at(&dir).eval().metrics("test"),
                        )
                        .unwrap_or_default()
                    })
                })
                .as_ref()
                .and_then(|m| m.get(key).copied())
                .filter(|v| v.is_finite())
        };
        self.file
            .hypotheses
            .iter()
            .map(|h| {
                let pairs: Vec<Option<(f64, f64)>> = seeds
                    .iter()
                    .map(|&s| {
                        Some((
                            metric(&h.arm, s, &h.metric)?,
                            metric(&h.than, s, &h.metric)?,
                        ))
                    })
                    .collect();
                let above = matches!(h.op, Op::Greater | Op::GreaterEq);
                looks(schedule, looks_done, above, h.margin, |k| {
                    pairs.get(k).copied().flatten()
                })
            })
            .collect()
    }

    /// Runs the study in rounds until every hypothesis is decided or `seq.max_seeds` seeds are spent,
    /// then writes study.json and the page with the looks behind each verdict. `on_look` hears every
    /// look of every hypothesis still undecided before it.
    pub fn until_decided(
        &self,
        exe: &Path,
        seq: &SequentialOptions,
        on_event: &(dyn Fn(RunEvent) + Sync),
        on_look: &dyn Fn(&LookReport),
    ) -> Result<(Summary, usize), RunnerError> {
        let schedule = self.schedule(seq)?;
        let seeds = extended_seeds(&self.file.seeds, schedule.max_seeds);
        let decided = |ls: &[Look]| {
            ls.last()
                .is_some_and(|l| l.verdict != Verdict::Inconclusive)
        };
        let mut requested: BTreeSet<(String, u64)> = BTreeSet::new();
        let mut failed: BTreeMap<(String, u64), String> = BTreeMap::new();
        let mut done_looks = 0;
        while done_looks < schedule.looks.len() {
            let before = self.looks_so_far(&schedule, &seeds, done_looks);
            if done_looks > 0 && before.iter().all(|l| decided(l)) {
                break;
            }
            // The first round runs every arm; later ones only those an undecided hypothesis compares.
            let arms: Vec<String> = if done_looks == 0 {
                self.file.arms.keys().cloned().collect()
            } else {
                let mut a: Vec<String> = self
                    .file
                    .hypotheses
                    .iter()
                    .zip(&before)
                    .filter(|(_, l)| !decided(l))
                    .flat_map(|(h, _)| [h.arm.clone(), h.than.clone()])
                    .collect();
                a.sort();
                a.dedup();
                a
            };
            let n = schedule.looks[done_looks];
            let round = self.restricted(&seeds[..n], &arms);
            requested.extend(round.plan.iter().map(|p| (p.arm.clone(), p.seed)));
            let states = round.states();
            let round_failed = round.train(exe, &states, on_event)?;
            for (i, p) in round.plan.iter().enumerate() {
                let key = (p.arm.clone(), p.seed);
                match round_failed.get(&i) {
                    Some(m) => {
                        failed.insert(key, m.clone());
                    }
                    None => {
                        failed.remove(&key);
                    }
                }
            }
            done_looks += 1;
            let after = self.looks_so_far(&schedule, &seeds, done_looks);
            for ((h, ls), prior) in self.file.hypotheses.iter().zip(&after).zip(&before) {
                if decided(prior) {
                    continue;
                }
                if let Some(look) = ls.last().filter(|l| l.seeds == n) {
                    on_look(&LookReport {
                        round: done_looks - 1,
                        seeds: n,
                        hypothesis: h,
                        look,
                    });
                }
            }
        }
        let looks = self.looks_so_far(&schedule, &seeds, done_looks);
        let used = schedule.looks[done_looks.max(1) - 1];
        let mut fin = self.restricted(
            &seeds[..used],
            &self.file.arms.keys().cloned().collect::<Vec<_>>(),
        );
        fin.plan
            .retain(|p| requested.contains(&(p.arm.clone(), p.seed)));
        let failed_idx: BTreeMap<usize, String> = fin
            .plan
            .iter()
            .enumerate()
            .filter_map(|(i, p)| failed.get(&(p.arm.clone(), p.seed)).map(|m| (i, m.clone())))
            .collect();
        let m = self.file.hypotheses.len();
        let result = SequentialResult {
            method: SequentialResult::method(self.file.alpha, m, schedule.alpha_each),
            schedule,
            seeds,
            looks_done: done_looks,
            looks,
        };
        let summary = fin.summarize_with(&failed_idx, true, |r| apply_sequential(r, result))?;
        Ok((summary, failed.len()))
    }
}

/// Verdicts from the looks: a hypothesis is decided by the look that crossed, else inconclusive
/// with the seeds it reached (the fixed-sample p-values stay in study.json for reading, not for
/// deciding).
pub fn apply_sequential(result: &mut StudyResult, seq: SequentialResult) {
    for (h, ls) in result.hypotheses.iter_mut().zip(&seq.looks) {
        let last = ls.last();
        h.verdict = last.map_or(Verdict::Inconclusive, |l| l.verdict);
        h.note = match last {
            Some(l) if l.verdict != Verdict::Inconclusive => format!(
                "{}; sequential: {} at look {} ({} seeds, p ≤ {:.2e})",
                h.note,
                l.verdict.word(),
                ls.len(),
                l.seeds,
                l.threshold
            ),
            Some(l) => format!(
                "{}; sequential: undecided after {} looks ({} seeds of at most {})",
                h.note,
                ls.len(),
                l.seeds,
                seq.schedule.max_seeds
            ),
            None => format!("{}; sequential: no look yet", h.note),
        };
    }
    result.sequential = Some(seq);
}
