//! Running a study: every (arm, seed) of a study file as an ordinary `evdet train` run in its own
//! process under `<runs_dir>/<study>/<arm>/seed<k>/`, on parallel slots and devices; each run's state
//! (finished runs are skipped, interrupted ones resume, failed ones are retried); the stamp that keeps a
//! runs folder to one study definition; the training-time estimate; and the summary (`study.json`, the
//! study page). `evdet study` parses its arguments, prints, and calls this.

use crate::aggregate::{add_bootstrap, aggregate, RunRecord, StudyResult};
use crate::file::{StudyFile, StudyFileError};
use evdet_config::ConfigError;
use evdet_run::RunDir;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(
        "no study file {given} (looked at {given} and {tried}); the shipped studies: {shipped}"
    )]
    NoStudyFile {
        given: String,
        tried: String,
        shipped: String,
    },
    #[error(transparent)]
    File(#[from] StudyFileError),
    #[error("the key=value overrides on the command line ({overrides}), applied to {experiment}: {source}")]
    CommandLine {
        overrides: String,
        experiment: String,
        source: ConfigError,
    },
    #[error("{path}: arm '{arm}': {source}")]
    Arm {
        path: String,
        arm: String,
        source: ConfigError,
    },
    #[error("{root} holds the runs of a different study definition (differs in: {keys}); use another study name or runs folder")]
    OtherStudy { root: String, keys: String },
    #[error("no run of study '{study}' has finished yet in {root}: nothing to summarize")]
    NothingFinished { study: String, root: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunnerError + '_ {
    move |source| RunnerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a run of the plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Its test metrics are written.
    Done,
    /// It has a checkpoint to resume from.
    Interrupted,
    Pending,
}

impl RunState {
    pub fn of(dir: &Path) -> Self {
        let run = RunDir::at(dir);
        if run.eval().metrics("test").is_file() {
            RunState::Done
        } else if run.has_last() {
            RunState::Interrupted
        } else {
            RunState::Pending
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            RunState::Done => "done",
            RunState::Interrupted => "interrupted",
            RunState::Pending => "pending",
        }
    }
}

/// How to run a study.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The config folder the experiment is composed from.
    pub config_dir: PathBuf,
    /// `key=value` overrides for every run, after each arm's own.
    pub overrides: Vec<String>,
    /// Runs at a time.
    pub parallel: usize,
    /// Devices dealt to the slots in turn (`cuda:0`, `cpu`); empty: each run's default.
    pub devices: Vec<String>,
    /// Processes per run (`evdet train --nproc N`).
    pub nproc_per_run: usize,
    /// Resamples for the bootstrap over test recordings (0: none).
    pub bootstrap: usize,
    /// The difference seed counts are planned for when a hypothesis names no `effect` (`--effect`).
    pub effect: Option<f64>,
}

/// One run of the plan: its arm and seed, its folder and its `evdet train` arguments.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    pub arm: String,
    pub seed: u64,
    pub dir: PathBuf,
    pub args: Vec<String>,
}

/// What the training of the plan reports, run by run (`i` of `total`, in plan order).
#[derive(Debug)]
pub enum RunEvent<'a> {
    Started {
        i: usize,
        total: usize,
        run: &'a PlannedRun,
        log: &'a Path,
    },
    Done {
        i: usize,
        total: usize,
        run: &'a PlannedRun,
    },
    Failed {
        i: usize,
        total: usize,
        run: &'a PlannedRun,
        message: &'a str,
    },
}

/// A training-time estimate from three timed steps of the first run still to do.
#[derive(Debug, Clone)]
pub struct Estimate {
    pub step_s: f64,
    pub steps_left: u64,
    pub hours: f64,
    pub arm: String,
    pub seed: u64,
}

/// What the summary wrote.
#[derive(Debug)]
pub struct Summary {
    pub result: StudyResult,
    pub json: PathBuf,
    pub page: PathBuf,
}

/// A study ready to run: the file, every arm's config composed, the plan.
#[derive(Debug)]
pub struct Runner {
    pub file: StudyFile,
    pub path: PathBuf,
    /// `<runs_dir>/<study>`.
    pub root: PathBuf,
    pub plan: Vec<PlannedRun>,
    /// `training.max_steps` of every arm.
    pub max_steps: BTreeMap<String, u64>,
    opts: RunnerOptions,
}

/// The study file `given`: as a path, else under the config folder.
pub fn find_study_file(given: &Path, config_dir: &Path) -> Result<PathBuf, RunnerError> {
    if given.is_file() {
        return Ok(given.to_path_buf());
    }
    let path = config_dir.join(given);
    if path.is_file() {
        return Ok(path);
    }
    let mut shipped: Vec<String> = std::fs::read_dir(config_dir.join("study"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.ends_with(".yaml").then(|| format!("study/{n}"))
                })
                .collect()
        })
        .unwrap_or_default();
    shipped.sort();
    Err(RunnerError::NoStudyFile {
        given: given.display().to_string(),
        tried: path.display().to_string(),
        shipped: if shipped.is_empty() {
            "none".into()
        } else {
            shipped.join(", ")
        },
    })
}

/// The `evdet train` runs of `runs` ((arm, seed) pairs) of `file` under `root`.
fn plan_runs(
    file: &StudyFile,
    opts: &RunnerOptions,
    root: &Path,
    runs: Vec<(String, u64)>,
) -> Vec<PlannedRun> {
    let runs_parent = root.parent().unwrap_or(Path::new(".")).to_path_buf();
    runs.into_iter()
        .map(|(arm, seed)| {
            let mut a = vec![
                "--config".to_string(),
                file.experiment.clone(),
                "--config-dir".into(),
                opts.config_dir.display().to_string(),
            ];
            if opts.nproc_per_run > 1 {
                a.extend(["--nproc".into(), opts.nproc_per_run.to_string()]);
            }
            a.extend(file.arms[&arm].iter().cloned());
            a.extend(opts.overrides.iter().cloned());
            a.extend([
                format!("reproduce.seed={seed}"),
                format!("logging.runs_dir={}", runs_parent.display()),
                format!("logging.project={}", file.study),
                format!("logging.group={arm}"),
                format!("logging.experiment_id=seed{seed}"),
            ]);
            PlannedRun {
                dir: root.join(&arm).join(format!("seed{seed}")),
                arm,
                seed,
                args: a,
            }
        })
        .collect()
}

impl Runner {
    /// Reads the study file at `path` and composes every arm's config (an override of a missing key
    /// fails here, before anything trains; a command-line typo is the command line's, not an arm's).
    pub fn prepare(path: &Path, opts: RunnerOptions) -> Result<Self, RunnerError> {
        let file = StudyFile::load(path)?;
        let experiment = Path::new(&file.experiment);
        if !opts.overrides.is_empty() {
            evdet_config::load(&opts.config_dir, experiment, &opts.overrides).map_err(
                |source| RunnerError::CommandLine {
                    overrides: opts.overrides.join(" "),
                    experiment: file.experiment.clone(),
                    source,
                },
            )?;
        }
        let mut runs_dir = None;
        let mut max_steps = BTreeMap::new();
        for (arm, overrides) in &file.arms {
            let all: Vec<String> = overrides.iter().chain(&opts.overrides).cloned().collect();
            let cfg = evdet_config::load(&opts.config_dir, experiment, &all).map_err(|source| {
                RunnerError::Arm {
                    path: path.display().to_string(),
                    arm: arm.clone(),
                    source,
                }
            })?;
            max_steps.insert(arm.clone(), cfg.training.max_steps);
            runs_dir.get_or_insert(cfg.logging.runs_dir);
        }
        let root = PathBuf::from(runs_dir.unwrap_or_else(|| "runs".into())).join(&file.study);
        let plan = plan_runs(&file, &opts, &root, file.runs());
        Ok(Runner {
            file,
            path: path.to_path_buf(),
            root,
            plan,
            max_steps,
            opts,
        })
    }

    /// This study restricted to `seeds` and `arms`: the runs a round of a sequential study trains
    /// and summarizes (the study file on disk and its stamp are unchanged).
    pub fn restricted(&self, seeds: &[u64], arms: &[String]) -> Runner {
        let mut file = self.file.clone();
        file.seeds = seeds.to_vec();
        let runs = file
            .runs()
            .into_iter()
            .filter(|(a, _)| arms.contains(a))
            .collect();
        let plan = plan_runs(&file, &self.opts, &self.root, runs);
        Runner {
            file,
            path: self.path.clone(),
            root: self.root.clone(),
            plan,
            max_steps: self.max_steps.clone(),
            opts: self.opts.clone(),
        }
    }

    /// How the study runs.
    pub fn options(&self) -> &RunnerOptions {
        &self.opts
    }

    /// Runs at a time.
    pub fn parallel(&self) -> usize {
        self.opts.parallel.max(1)
    }

    /// The device of the slot that runs plan entry `i` (empty: the run's default).
    pub fn device_of(&self, i: usize) -> &str {
        match self.opts.devices.as_slice() {
            [] => "",
            d => &d[i % self.parallel() % d.len()],
        }
    }

    /// Every run's state, in plan order.
    pub fn states(&self) -> Vec<RunState> {
        self.plan.iter().map(|p| RunState::of(&p.dir)).collect()
    }

    /// The runs folder remembers the study it belongs to (`study.yaml`): another study file, or other
    /// run-wide overrides, must not mix their runs in. `stamp` writes the stamp when there is none.
    pub fn check_stamp(&self, stamp: bool) -> Result<(), RunnerError> {
        let path = self.root.join("study.yaml");
        let yaml = |e: serde_norway::Error| RunnerError::Other(format!("{}: {e}", path.display()));
        let mine = serde_norway::to_value(
            serde_json::json!({"file": self.file, "overrides": self.opts.overrides}),
        )
        .map_err(yaml)?;
        if let Ok(text) = std::fs::read_to_string(&path) {
            let mut theirs: serde_norway::Value = serde_norway::from_str(&text).map_err(yaml)?;
            // Stamps written before a study file had `alpha` and `correction` meant their defaults.
            if let Some(file) = theirs.get_mut("file").and_then(|f| f.as_mapping_mut()) {
                for (key, default) in [
                    ("alpha", serde_norway::Value::from(0.025)),
                    ("correction", serde_norway::Value::from("holm")),
                ] {
                    if !file.contains_key(key) {
                        file.insert(key.into(), default);
                    }
                }
            }
            if theirs != mine {
                let keys: Vec<String> = evdet_config::differing_keys(&theirs, &mine)
                    .into_iter()
                    .map(|d| d.key)
                    .collect();
                return Err(RunnerError::OtherStudy {
                    root: self.root.display().to_string(),
                    keys: keys.join(", "),
                });
            }
            return Ok(());
        }
        if stamp {
            let text = serde_norway::to_string(&mine).map_err(yaml)?;
            evdet_atomic::write(&path, text.as_bytes()).map_err(io(&path))?;
        }
        Ok(())
    }

    /// Seconds per training step of the first run still to do (three steps in a temporary runs folder
    /// with `exe train`, the median of the last two: the first pays for warm-up), extrapolated to every
    /// run left. `None` when every run is done.
    pub fn estimate(
        &self,
        exe: &Path,
        states: &[RunState],
    ) -> Option<Result<Estimate, RunnerError>> {
        let todo: Vec<&PlannedRun> = self
            .plan
            .iter()
            .zip(states)
            .filter(|(_, &st)| st != RunState::Done)
            .map(|(p, _)| p)
            .collect();
        let first = todo.first()?;
        let timed = time_steps(exe, first, self.root.parent().unwrap_or(Path::new(".")));
        Some(timed.map(|step_s| {
            let steps_left: u64 = todo.iter().map(|p| self.max_steps[&p.arm]).sum();
            Estimate {
                step_s,
                steps_left,
                hours: step_s * steps_left as f64 / self.parallel() as f64 / 3600.0,
                arm: first.arm.clone(),
                seed: first.seed,
            }
        }))
    }

    /// Trains every run not done yet with `exe train …`, `parallel` at a time; each run's output goes to
    /// `<root>/<arm>/seed<k>.log`. Returns the runs that failed (plan index → why).
    pub fn train(
        &self,
        exe: &Path,
        states: &[RunState],
        on_event: &(dyn Fn(RunEvent) + Sync),
    ) -> Result<BTreeMap<usize, String>, RunnerError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let parallel = self.parallel();
        let queue: Mutex<VecDeque<usize>> = Mutex::new(
            (0..self.plan.len())
                .filter(|&i| states[i] != RunState::Done)
                .collect(),
        );
        let failed = Mutex::new(BTreeMap::new());
        let cpu_share =
            (std::thread::available_parallelism().map_or(1, |n| n.get()) / parallel).max(1);
        let sets_threads = self
            .opts
            .overrides
            .iter()
            .any(|o| o.starts_with("hardware.cpu_threads="));
        let total = self.plan.len();
        std::thread::scope(|s| {
            for slot in 0..parallel {
                let (queue, failed) = (&queue, &failed);
                let dev = self.device_of(slot).to_string();
                s.spawn(move || loop {
                    let Some(i) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
                    else {
                        return;
                    };
                    let p = &self.plan[i];
                    let mut cmd = Command::new(exe);
                    cmd.arg("train").args(&p.args);
                    // A study that is killed takes its training run along (the run resumes next time).
                    // SAFETY: prctl is async-signal-safe.
                    unsafe {
                        use std::os::unix::process::CommandExt;
                        cmd.pre_exec(|| {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                            Ok(())
                        });
                    }
                    if !dev.is_empty() {
                        cmd.args(["--device", &dev]);
                    }
                    if parallel > 1 && !sets_threads && !dev.starts_with("cuda") {
                        cmd.arg(format!("hardware.cpu_threads={cpu_share}"));
                    }
                    let log = self.root.join(&p.arm).join(format!("seed{}.log", p.seed));
                    let outcome = std::fs::create_dir_all(log.parent().unwrap_or(&self.root))
                        .and_then(|_| std::fs::File::create(&log))
                        .and_then(|f| {
                            let f2 = f.try_clone()?;
                            on_event(RunEvent::Started {
                                i,
                                total,
                                run: p,
                                log: &log,
                            });
                            cmd.stdout(f).stderr(f2).status()
                        });
                    let msg = match outcome {
                        Ok(st) if st.success() => None,
                        Ok(st) => Some(format!(
                            "evdet train exited with {st} (see {})",
                            log.display()
                        )),
                        Err(e) => Some(format!("could not start evdet train: {e}")),
                    };
                    match msg {
                        None => on_event(RunEvent::Done { i, total, run: p }),
                        Some(m) => {
                            on_event(RunEvent::Failed {
                                i,
                                total,
                                run: p,
                                message: &m,
                            });
                            failed
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(i, m);
                        }
                    }
                });
            }
        });
        Ok(failed.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    /// The statistics of the finished runs (`failed` runs marked so): `study.json` and the study page
    /// in the runs folder. `require_one` refuses when no run has finished.
    pub fn summarize(
        &self,
        failed: &BTreeMap<usize, String>,
        require_one: bool,
    ) -> Result<Summary, RunnerError> {
        self.summarize_with(failed, require_one, |_| {})
    }

    /// As [`Runner::summarize`], with `adjust` applied to the result before it is written.
    pub fn summarize_with(
        &self,
        failed: &BTreeMap<usize, String>,
        require_one: bool,
        adjust: impl FnOnce(&mut crate::aggregate::StudyResult),
    ) -> Result<Summary, RunnerError> {
        // study.json lists runs arm by arm (name order), seeds in file order, whatever order they ran in.
        let mut order: Vec<usize> = (0..self.plan.len()).collect();
        let seed_pos = |s: u64| self.file.seeds.iter().position(|&x| x == s);
        let plan = &self.plan;
        order.sort_by(|&a, &b| {
            (&plan[a].arm, seed_pos(plan[a].seed)).cmp(&(&plan[b].arm, seed_pos(plan[b].seed)))
        });
        let records: Vec<RunRecord> = order
            .into_iter()
            .map(|i| {
                let p = &plan[i];
                let status = if failed.contains_key(&i) {
                    "failed"
                } else if RunState::of(&p.dir) == RunState::Done {
                    "done"
                } else {
                    "pending"
                };
                RunRecord {
                    arm: p.arm.clone(),
                    seed: p.seed,
                    status: status.into(),
                    metrics: if status == "done" {
                        // The numbers only: the file also names the checkpoint evaluated.
                        evdet_report::run::read_flat_metrics(
                            &RunDir::at(&p.dir).eval().metrics("test"),
                        )
                        .unwrap_or_default()
                    } else {
                        BTreeMap::new()
                    },
                }
            })
            .collect();
        if require_one && !records.iter().any(|r| r.status == "done") {
            return Err(RunnerError::NothingFinished {
                study: self.file.study.clone(),
                root: self.root.display().to_string(),
            });
        }
        let mut result = aggregate(&self.file, records, self.opts.effect);
        add_bootstrap(&mut result, &self.root, self.opts.bootstrap, 0);
        adjust(&mut result);
        let json = self.root.join("study.json");
        let text = serde_json::to_string_pretty(&result)
            .map_err(|e| RunnerError::Other(format!("{}: {e}", json.display())))?;
        evdet_atomic::write(&json, text.as_bytes()).map_err(io(&json))?;
        let page = self.root.join("study.html");
        let value = serde_json::to_value(&result)
            .map_err(|e| RunnerError::Other(format!("{}: {e}", page.display())))?;
        let html = evdet_report::study_page::study_page(&value, |arm, seed| {
            RunDir::at(self.root.join(arm).join(format!("seed{seed}")))
                .report()
                .is_file()
        });
        evdet_atomic::write(&page, html.as_bytes()).map_err(io(&page))?;
        Ok(Summary { result, json, page })
    }
}

/// Seconds per training step of `run` (three steps of `exe train` in a temporary runs folder that
/// stands for `runs_parent`), the median of the last two.
fn time_steps(exe: &Path, run: &PlannedRun, runs_parent: &Path) -> Result<f64, RunnerError> {
    let tmp = tempfile::tempdir().map_err(io(&std::env::temp_dir()))?;
    let out = Command::new(exe)
        .arg("train")
        .arg("--no-test")
        .args(&run.args)
        .args([
            "training.max_steps=3",
            "logging.log_every_n_steps=1",
            "validation.val_check_interval=100000",
            "validation.limit_val_batches=1",
        ])
        .arg(format!("logging.runs_dir={}", tmp.path().display()))
        .output()
        .map_err(io(exe))?;
    if !out.status.success() {
        return Err(RunnerError::Other(format!(
            "the timing run failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let rel = run.dir.strip_prefix(runs_parent).unwrap_or(&run.dir);
    let log = RunDir::at(tmp.path().join(rel)).metrics_log();
    let text = std::fs::read_to_string(&log).map_err(io(&log))?;
    let mut times: Vec<f64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["step"].as_u64().is_some_and(|s| s > 1))
        .filter_map(|v| {
            Some(v["train/compute_time_s"].as_f64()? + v["train/data_time_s"].as_f64()?)
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
        .get(times.len() / 2)
        .copied()
        .ok_or_else(|| RunnerError::Other("the timing run logged no step times".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
    }

    fn options(overrides: &[&str]) -> RunnerOptions {
        RunnerOptions {
            config_dir: config_dir(),
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            parallel: 2,
            devices: vec!["cuda:0".into(), "cuda:1".into()],
            nproc_per_run: 1,
            bootstrap: 0,
            effect: None,
        }
    }

    /// Every shipped study file parses and every arm's config composes (its overrides name real keys).
    #[test]
    fn every_shipped_study_prepares() {
        let d = tempfile::tempdir().unwrap();
        let runs = format!("logging.runs_dir={}", d.path().display());
        let mut n = 0;
        for e in std::fs::read_dir(config_dir().join("study")).unwrap() {
            let path = e.unwrap().path();
            let r = Runner::prepare(&path, options(&[&runs]))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(r.plan.len(), r.file.arms.len() * r.file.seeds.len());
            n += 1;
        }
        assert!(n >= 4, "{n} study files");
    }

    #[test]
    fn the_plan_has_every_arm_and_seed_with_its_arguments() {
        let d = tempfile::tempdir().unwrap();
        let runs = format!("logging.runs_dir={}", d.path().display());
        let path = config_dir().join("study/size_aware_mini.yaml");
        let r = Runner::prepare(&path, options(&[&runs])).unwrap();
        assert_eq!(r.plan.len(), r.file.arms.len() * r.file.seeds.len());
        assert_eq!(r.root, d.path().join("size_aware_mini"));
        let p = &r.plan[0];
        assert!(p.dir.starts_with(&r.root) && p.dir.ends_with(format!("seed{}", p.seed)));
        for want in [
            format!("reproduce.seed={}", p.seed),
            format!("logging.group={}", p.arm),
            runs.clone(),
        ] {
            assert!(p.args.contains(&want), "{want} not in {:?}", p.args);
        }
        assert!(r.states().iter().all(|&s| s == RunState::Pending));
        assert_eq!(
            (r.device_of(0), r.device_of(1), r.device_of(2)),
            ("cuda:0", "cuda:1", "cuda:0")
        );
        assert_eq!(r.max_steps.values().copied().max(), Some(200));
        // Nothing finished: no summary.
        let e = r.summarize(&BTreeMap::new(), true).unwrap_err().to_string();
        assert!(
            e.contains("no run of study 'size_aware_mini' has finished"),
            "{e}"
        );
    }

    #[test]
    fn a_runs_folder_belongs_to_one_study_definition() {
        let d = tempfile::tempdir().unwrap();
        let runs = format!("logging.runs_dir={}", d.path().display());
        let path = config_dir().join("study/size_aware_mini.yaml");
        Runner::prepare(&path, options(&[&runs]))
            .unwrap()
            .check_stamp(true)
            .unwrap();
        let other = Runner::prepare(&path, options(&[&runs, "training.max_steps=5"])).unwrap();
        let e = other.check_stamp(true).unwrap_err().to_string();
        assert!(
            e.contains("different study definition") && e.contains("overrides"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_command_line_the_arm_or_the_file() {
        let path = config_dir().join("study/size_aware_mini.yaml");
        let e = Runner::prepare(&path, options(&["training.max_stesp=5"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("command line") && !e.contains("arm '"), "{e}");
        let e = find_study_file(Path::new("study/nope.yaml"), &config_dir())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no study file study/nope.yaml") && e.contains("study/size_aware_mini.yaml"),
            "{e}"
        );
    }
}
