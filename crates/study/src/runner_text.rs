//! What `evdet study` prints of a runner's work: the plan, each run's start and end, the time
//! estimate, and the closing lines. Text lives with the types it describes; the command prints it.

use crate::runner::{Estimate, RunEvent, RunState, Runner, Summary};

impl Runner {
    /// The plan: arms × seeds, where, how many at a time, then one line per run with its state and
    /// device.
    pub fn plan_lines(&self, states: &[RunState]) -> Vec<String> {
        let mut out = vec![format!(
            "study {}: {} arms × {} seeds = {} runs in {} ({} at a time)",
            self.file.study,
            self.file.arms.len(),
            self.file.seeds.len(),
            self.plan.len(),
            self.root.display(),
            self.parallel()
        )];
        for (i, p) in self.plan.iter().enumerate() {
            let dev = self.device_of(i);
            out.push(format!(
                "  {:<24} seed {:<4} {:<12} {}",
                p.arm,
                p.seed,
                states.get(i).map_or("", |s| s.word()),
                if dev.is_empty() {
                    "default device"
                } else {
                    dev
                }
            ));
        }
        out
    }
}

impl RunEvent<'_> {
    /// `[i/total] arm seed s: training (log: …)`, `…: done`, `…: FAILED: why`.
    pub fn line(&self) -> String {
        let (i, total, run) = match *self {
            RunEvent::Started { i, total, run, .. }
            | RunEvent::Done { i, total, run }
            | RunEvent::Failed { i, total, run, .. } => (i, total, run),
        };
        let what = match self {
            RunEvent::Started { log, .. } => format!("training (log: {})", log.display()),
            RunEvent::Done { .. } => "done".into(),
            RunEvent::Failed { message, .. } => format!("FAILED: {message}"),
        };
        format!("[{}/{total}] {} seed {}: {what}", i + 1, run.arm, run.seed)
    }
}

impl Estimate {
    /// The estimate with what it rests on, for `parallel` runs at a time.
    pub fn line(&self, parallel: usize) -> String {
        format!(
            "estimated: {:.2} s per training step (3 timed steps of {} seed {}) × {} steps left / {parallel} at a time ≈ {:.1} h of training, evaluations not included",
            self.step_s, self.arm, self.seed, self.steps_left, self.hours
        )
    }
}

impl Summary {
    /// The table of verdicts, where the files are, and (`no_train`) how many of `total` runs have
    /// finished.
    pub fn lines(&self, no_train: bool, total: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        out.extend(self.result.table_lines());
        out.push(format!("study.json: {}", self.json.display()));
        out.push(format!("study page: {}", self.page.display()));
        if no_train {
            let done = self
                .result
                .runs
                .iter()
                .filter(|r| r.status == "done")
                .count();
            out.push(if done < total {
                format!(
                    "{done} of {total} runs finished; the others count as pending (run without --no-train to continue the study)"
                )
            } else {
                format!("all {total} runs finished")
            });
        }
        out
    }
}
