//! `evdet study FILE --emit slurm`: a study too large for one machine as a SLURM job array. One array
//! task per (arm, seed) runs `evdet study FILE --only ARM/SEED` (the run, trained like any other, on
//! `--nproc-per-run` GPUs through SLURM's environment, which training reads), and a job that depends
//! on the whole array aggregates (`--no-train`). Every task writes into the one study folder on a
//! shared filesystem; each run's lock keeps two tasks off the same run.

use crate::runner::{Runner, RunnerError};
use std::path::{Path, PathBuf};

/// What `--emit slurm` wrote.
#[derive(Debug, Clone)]
pub struct SlurmFiles {
    /// The job array: one task per run of the plan.
    pub array: PathBuf,
    /// The aggregation, after every task (`--dependency=afterany`).
    pub aggregate: PathBuf,
    /// Submits both: `bash submit.sh`.
    pub submit: PathBuf,
    pub tasks: usize,
}

/// How the tasks call evdet: the executable, the study file and the arguments every call repeats
/// (config folder, `key=value` overrides, processes per run).
#[derive(Debug, Clone)]
pub struct SlurmCommand {
    pub exe: PathBuf,
    pub study_file: PathBuf,
    pub config_dir: PathBuf,
    pub overrides: Vec<String>,
    pub nproc_per_run: usize,
}

/// A word for bash, single-quoted unless it is plain.
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl SlurmCommand {
    /// `evdet study FILE --config-dir DIR [--nproc-per-run N] overrides… ` then `extra`.
    fn line(&self, extra: &[String]) -> String {
        let mut words = vec![
            absolute(&self.exe).display().to_string(),
            "study".into(),
            absolute(&self.study_file).display().to_string(),
            "--config-dir".into(),
            absolute(&self.config_dir).display().to_string(),
        ];
        if self.nproc_per_run > 1 {
            words.extend(["--nproc-per-run".into(), self.nproc_per_run.to_string()]);
        }
        words.extend(self.overrides.iter().cloned());
        words.extend(extra.iter().cloned());
        words
            .iter()
            .map(|w| {
                if w.starts_with('"') {
                    w.clone()
                } else {
                    quote(w)
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Runner {
    /// Writes `array.sh`, `aggregate.sh` and `submit.sh` into `<study folder>/slurm/`; the tasks call
    /// `exe` on the study file with this runner's config folder, overrides and processes per run.
    pub fn emit_slurm(&self, exe: &Path) -> Result<SlurmFiles, RunnerError> {
        let opts = self.options();
        let cmd = &SlurmCommand {
            exe: exe.to_path_buf(),
            study_file: self.path.clone(),
            config_dir: opts.config_dir.clone(),
            overrides: opts.overrides.clone(),
            nproc_per_run: opts.nproc_per_run,
        };
        let dir = self.root.join("slurm");
        std::fs::create_dir_all(&dir).map_err(|e| RunnerError::Io {
            path: dir.clone(),
            source: e,
        })?;
        let name = format!("evdet-{}", self.file.study);
        let logs = absolute(&dir);
        let tasks: Vec<String> = self
            .plan
            .iter()
            .map(|p| quote(&format!("{}/{}", p.arm, p.seed)))
            .collect();
        // Each run's processes get a GPU each (the default device `auto` counts: a cluster's nodes
        // have GPUs), none when the runs are pinned to the CPU. One SLURM task per run: with
        // --nproc-per-run N the run starts its N ranks itself (`evdet train --nproc N`).
        let on_cpu = cmd.overrides.iter().any(|o| o == "hardware.device=cpu");
        let gpus = if on_cpu {
            String::new()
        } else {
            format!("#SBATCH --gpus-per-task={}\n", cmd.nproc_per_run.max(1))
        };
        let array = format!(
            "#!/bin/bash\n\
             # {n} runs of study '{study}': one array task per arm/seed (written by evdet study --emit slurm).\n\
             # Locally: SLURM_ARRAY_TASK_ID=k bash array.sh runs task k.\n\
             #SBATCH --job-name={name}\n\
             #SBATCH --array=0-{last}\n\
             #SBATCH --ntasks=1\n\
             {gpus}\
             #SBATCH --output={logs}/%A_%a.log\n\
             set -euo pipefail\n\
             RUNS=({runs})\n\
             RUN=\"${{RUNS[${{SLURM_ARRAY_TASK_ID:?set by SLURM: the task index}}]}}\"\n\
             exec {line}\n",
            n = tasks.len(),
            study = self.file.study,
            last = tasks.len().saturating_sub(1),
            logs = logs.display(),
            runs = tasks.join(" "),
            line = cmd.line(&["--only".into(), "\"$RUN\"".into()]),
        );
        let aggregate = format!(
            "#!/bin/bash\n\
             # Statistics and verdicts of study '{study}' once every task of the array has ended.\n\
             #SBATCH --job-name={name}-aggregate\n\
             #SBATCH --ntasks=1\n\
             #SBATCH --output={logs}/aggregate_%j.log\n\
             set -euo pipefail\n\
             exec {line}\n",
            study = self.file.study,
            logs = logs.display(),
            line = cmd.line(&["--no-train".into()]),
        );
        let submit = format!(
            "#!/bin/bash\n\
             # Submits the array, then the aggregation to run after it (whatever became of each task).\n\
             set -euo pipefail\n\
             cd \"$(dirname \"$0\")\"\n\
             jid=$(sbatch --parsable array.sh)\n\
             sbatch --dependency=afterany:\"${{jid%%;*}}\" aggregate.sh\n\
             echo \"submitted array $jid and its aggregation; logs in {logs}\"\n",
            logs = logs.display(),
        );
        let write = |file: &str, text: &str| -> Result<PathBuf, RunnerError> {
            let p = dir.join(file);
            evdet_atomic::write(&p, text.as_bytes()).map_err(|e| RunnerError::Io {
                path: p.clone(),
                source: e,
            })?;
            Ok(p)
        };
        Ok(SlurmFiles {
            array: write("array.sh", &array)?,
            aggregate: write("aggregate.sh", &aggregate)?,
            submit: write("submit.sh", &submit)?,
            tasks: tasks.len(),
        })
    }

    /// The study restricted to the one run `ARM/SEED` names (`--only`, an array task's run).
    pub fn only(&self, which: &str) -> Result<Runner, RunnerError> {
        let (arm, seed) = which.rsplit_once('/').ok_or_else(|| {
            RunnerError::Other(format!("--only {which}: give ARM/SEED, e.g. 3scale/0"))
        })?;
        let seed: u64 = seed
            .parse()
            .map_err(|_| RunnerError::Other(format!("--only {which}: '{seed}' is not a seed")))?;
        self.plan
            .iter()
            .find(|p| p.arm == arm && p.seed == seed)
            .map(|p| self.restricted(&[p.seed], std::slice::from_ref(&p.arm)))
            .ok_or_else(|| {
                RunnerError::Other(format!(
                    "--only {which}: not a run of study '{}' (arms: {}; seeds: {:?})",
                    self.file.study,
                    self.file
                        .arms
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.file.seeds
                ))
            })
    }
}

impl SlurmFiles {
    /// What `--emit slurm` prints: the files and how to submit them (or run a task locally).
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!("{} tasks: {}", self.tasks, self.array.display()),
            format!("aggregation: {}", self.aggregate.display()),
            format!("submit both: bash {}", self.submit.display()),
            format!(
                "(one task here, without SLURM: SLURM_ARRAY_TASK_ID=0 bash {})",
                self.array.display()
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_bash() {
        assert_eq!(
            quote("model.fpn.in_stages=[2,3,4]"),
            "'model.fpn.in_stages=[2,3,4]'"
        );
        assert_eq!(quote("training.max_steps=200"), "training.max_steps=200");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
