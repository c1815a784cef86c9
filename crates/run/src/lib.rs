//! The run folder, `<runs_dir>/<project>/<group>/<experiment_id>/`: every file a run writes is named
//! here and nowhere else, and whoever reads or writes one asks [`RunDir`] for its path.
//!
//! ```text
//! <run>/
//! ├── config.yaml               the resolved experiment, written at the start of every session
//! ├── metrics.jsonl             one JSON object per logged step and validation (`step` + metric keys)
//! ├── events.out.tfevents.*     the same scalars for TensorBoard (one file per session)
//! ├── reproducibility.json      CPU model, ISA, threads, kernel variables, SHA-256 of the final weights
//! ├── init_from.json            what `model.init_from` loaded and what kept its initialisation
//! ├── .lock                     held by the one `evdet train` writing here (its PID inside)
//! ├── checkpoints/
//! │   ├── last/                 where training resumes from (a checkpoint folder: evdet_infer::checkpoint)
//! │   ├── previous/             the `last` before the latest save: the fallback of a damaged `last`
//! │   ├── last.damaged/         a `last` that failed verification, kept for inspection
//! │   └── best/                 the best validation metric so far (`validation.best_metric`)
//! ├── eval/                     see [`EvalDir`]
//! └── report.html               `evdet report`'s page of this run
//! ```
//!
//! A checkpoint folder outside a run (an import) keeps its evaluations in its own `eval/`, laid out
//! the same way ([`EvalDir`]).

mod lock;

pub use lock::{RunLock, RunLockError, LOCK_FILE};

use std::path::{Path, PathBuf};

const CONFIG: &str = "config.yaml";
const METRICS_LOG: &str = "metrics.jsonl";
const REPRODUCIBILITY: &str = "reproducibility.json";
const INIT_FROM: &str = "init_from.json";
const CHECKPOINTS: &str = "checkpoints";
const EVAL: &str = "eval";
const REPORT: &str = "report.html";
/// The file a checkpoint folder writes last: a folder that has it is complete.
pub const CHECKPOINT_STATE: &str = "state.json";

/// The named checkpoints of a run, in the order `eval` and `predict` prefer them.
pub const PREFERRED_CHECKPOINTS: [&str; 2] = ["best", "last"];

/// A run folder (see the module doc). [`RunDir::at`] only names paths; [`RunDir::lock`] also holds
/// the folder's lock, for as long as the value lives, so "who may write here" and "where things are"
/// are one value.
#[derive(Debug)]
pub struct RunDir {
    root: PathBuf,
    _lock: Option<RunLock>,
}

impl RunDir {
    /// The run folder `root`, for reading (nothing is created or locked).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        RunDir {
            root: root.into(),
            _lock: None,
        }
    }

    /// The run folder of an experiment: `<runs_dir>/<project>/<group>/<experiment_id>`.
    pub fn of_experiment(runs_dir: &str, project: &str, group: &str, experiment_id: &str) -> Self {
        Self::at(
            Path::new(runs_dir)
                .join(project)
                .join(group)
                .join(experiment_id),
        )
    }

    /// The run folder `root`, created when missing and locked for this process: the one writer.
    pub fn lock(root: impl Into<PathBuf>) -> Result<Self, RunLockError> {
        let root = root.into();
        let lock = RunLock::acquire(&root)?;
        Ok(RunDir {
            root,
            _lock: Some(lock),
        })
    }

    /// The run a checkpoint folder belongs to: `<run>/checkpoints/<name>` → `<run>`, when `<run>`
    /// has a training log (an imported checkpoint folder belongs to none).
    pub fn of_checkpoint(checkpoint: &Path) -> Option<Self> {
        checkpoint
            .parent()
            .filter(|p| p.file_name() == Some(std::ffi::OsStr::new(CHECKPOINTS)))
            .and_then(Path::parent)
            .filter(|r| r.join(METRICS_LOG).exists())
            .map(Self::at)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this process holds the folder's lock.
    pub fn is_locked(&self) -> bool {
        self._lock.is_some()
    }

    /// `config.yaml`.
    pub fn config(&self) -> PathBuf {
        self.root.join(CONFIG)
    }

    /// `metrics.jsonl`.
    pub fn metrics_log(&self) -> PathBuf {
        self.root.join(METRICS_LOG)
    }

    /// `reproducibility.json`.
    pub fn reproducibility(&self) -> PathBuf {
        self.root.join(REPRODUCIBILITY)
    }

    /// `init_from.json`.
    pub fn init_from(&self) -> PathBuf {
        self.root.join(INIT_FROM)
    }

    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join(CHECKPOINTS)
    }

    /// `checkpoints/<name>` (`last`, `best`, `previous`).
    pub fn checkpoint(&self, name: &str) -> PathBuf {
        self.checkpoints().join(name)
    }

    /// `checkpoints/last`.
    pub fn last(&self) -> PathBuf {
        self.checkpoint("last")
    }

    /// `checkpoints/best`.
    pub fn best(&self) -> PathBuf {
        self.checkpoint("best")
    }

    /// `checkpoints/previous`.
    pub fn previous(&self) -> PathBuf {
        self.checkpoint("previous")
    }

    /// `checkpoints/last.damaged`.
    pub fn damaged_last(&self) -> PathBuf {
        self.checkpoint("last.damaged")
    }

    /// Whether training can resume here: `checkpoints/last` is complete.
    pub fn has_last(&self) -> bool {
        self.last().join(CHECKPOINT_STATE).is_file()
    }

    /// `eval/`.
    pub fn eval(&self) -> EvalDir {
        EvalDir::at(self.root.join(EVAL))
    }

    /// `report.html`.
    pub fn report(&self) -> PathBuf {
        self.root.join(REPORT)
    }
}

/// An evaluation folder: a run's `eval/`, or an imported checkpoint's.
///
/// ```text
/// eval/
/// ├── <split>_metrics.json     the metrics (`<split>/<protocol>/<stat>` keys) and `"checkpoint"`
/// ├── <split>_analysis.json    what the report's plots are drawn from (PR curves, size bins, confusion)
/// ├── <split>_frames.bin       every labelled frame's boxes (the bootstrap over recordings)
/// └── samples/
///     ├── <split>_samples.json the index of the sample pictures
///     └── *.png
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalDir {
    dir: PathBuf,
}

/// The kinds of file in an [`EvalDir`], by the suffix after `<split>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalFile {
    Metrics,
    Analysis,
    Frames,
    SamplesIndex,
}

impl EvalFile {
    const ALL: [EvalFile; 4] = [
        EvalFile::Metrics,
        EvalFile::Analysis,
        EvalFile::Frames,
        EvalFile::SamplesIndex,
    ];

    fn suffix(self) -> &'static str {
        match self {
            EvalFile::Metrics => "_metrics.json",
            EvalFile::Analysis => "_analysis.json",
            EvalFile::Frames => "_frames.bin",
            EvalFile::SamplesIndex => "_samples.json",
        }
    }

    /// The file name of this kind for `split` (`test_metrics.json`).
    pub fn name(self, split: &str) -> String {
        format!("{split}{}", self.suffix())
    }

    /// What a file name is: its kind and split (`val_analysis.json` → `(Analysis, "val")`).
    pub fn parse(name: &str) -> Option<(EvalFile, &str)> {
        Self::ALL
            .iter()
            .find_map(|k| name.strip_suffix(k.suffix()).map(|split| (*k, split)))
            .filter(|(_, split)| !split.is_empty())
    }
}

impl EvalDir {
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        EvalDir { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<split>_metrics.json`.
    pub fn metrics(&self, split: &str) -> PathBuf {
        self.dir.join(EvalFile::Metrics.name(split))
    }

    /// `<split>_analysis.json`.
    pub fn analysis(&self, split: &str) -> PathBuf {
        self.dir.join(EvalFile::Analysis.name(split))
    }

    /// `<split>_frames.bin`.
    pub fn frames(&self, split: &str) -> PathBuf {
        self.dir.join(EvalFile::Frames.name(split))
    }

    /// `samples/`.
    pub fn samples_dir(&self) -> PathBuf {
        self.dir.join("samples")
    }

    /// `samples/<split>_samples.json`.
    pub fn samples_index(&self, split: &str) -> PathBuf {
        self.samples_dir().join(EvalFile::SamplesIndex.name(split))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_of_the_layout() {
        let r = RunDir::of_experiment("runs", "synthetic", "mini", "t");
        assert_eq!(r.root(), Path::new("runs/synthetic/mini/t"));
        assert_eq!(r.config(), Path::new("runs/synthetic/mini/t/config.yaml"));
        assert_eq!(
            r.metrics_log(),
            Path::new("runs/synthetic/mini/t/metrics.jsonl")
        );
        assert_eq!(
            r.last(),
            Path::new("runs/synthetic/mini/t/checkpoints/last")
        );
        assert_eq!(
            r.previous(),
            Path::new("runs/synthetic/mini/t/checkpoints/previous")
        );
        let e = r.eval();
        assert_eq!(
            e.metrics("test"),
            Path::new("runs/synthetic/mini/t/eval/test_metrics.json")
        );
        assert_eq!(
            e.frames("val"),
            Path::new("runs/synthetic/mini/t/eval/val_frames.bin")
        );
        assert_eq!(
            e.samples_index("test"),
            Path::new("runs/synthetic/mini/t/eval/samples/test_samples.json")
        );
        assert_eq!(r.report(), Path::new("runs/synthetic/mini/t/report.html"));
    }

    #[test]
    fn eval_file_names_parse_back() {
        for kind in EvalFile::ALL {
            assert_eq!(EvalFile::parse(&kind.name("val")), Some((kind, "val")));
        }
        assert_eq!(EvalFile::parse("_metrics.json"), None);
        assert_eq!(EvalFile::parse("notes.txt"), None);
    }

    #[test]
    fn a_checkpoint_belongs_to_the_run_whose_log_is_beside_it() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("r");
        std::fs::create_dir_all(run.join("checkpoints/best")).unwrap();
        assert!(RunDir::of_checkpoint(&run.join("checkpoints/best")).is_none());
        std::fs::write(run.join("metrics.jsonl"), "").unwrap();
        let found = RunDir::of_checkpoint(&run.join("checkpoints/best")).unwrap();
        assert_eq!(found.root(), run);
        assert!(RunDir::of_checkpoint(&d.path().join("import")).is_none());
    }

    #[test]
    fn the_writer_holds_the_lock_while_the_value_lives() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("run");
        let w = RunDir::lock(&root).unwrap();
        assert!(w.is_locked() && root.join(LOCK_FILE).is_file());
        assert!(RunDir::lock(&root).is_err());
        drop(w);
        assert!(RunDir::lock(&root).is_ok());
    }
}
