//! The checkpoint folder (DESIGN.md "Checkpoints"), written and read here and nowhere else: by
//! training, `import-rvt`, `eval`, `predict`, `report` and every later command. Its files:
//! `model.safetensors` (RVT's parameter names, so PyTorch RVT can `load_state_dict` it back),
//! `optimizer.safetensors` (AdamW moments `exp_avg.<name>` / `exp_avg_sq.<name>`),
//! `recurrent.safetensors` (the per-slot LSTM states of the training streams), with `training.ema`
//! `ema.safetensors` (the weights' moving average, which [`open`] loads for inference), `state.json` (step,
//! schedule position, counters, best metric, data position; for an import, where it came from) and
//! the complete resolved experiment `config.yaml`, whatever produced the folder.
//!
//! Writing builds the folder under a temporary name and swaps it in whole (`evdet-atomic`), so a crash
//! never leaves half a checkpoint. Reading is strict: a missing or unreadable `state.json` or
//! `config.yaml` is an error naming the file, never a silent default.
//!
//! The folder verifies itself: `state.json` lists the size and SHA-256 of every other file
//! (`files`), and [`load`] checks them, so a tensor file altered on disk (bit rot, a bad or partial
//! copy) is an error naming the file instead of weights resumed silently. `checkpoints/last` is
//! saved with [`save_keeping`], which keeps the folder it replaces as `checkpoints/previous`: a resume
//! whose `last` fails verification goes on from there ([`load_for_resume`]).

use evdet_config::ExperimentConfig;
use evdet_model::detector::Detector;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use tch::{nn, Tensor};

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const RECURRENT_FILE: &str = "recurrent.safetensors";
/// The exponential moving average of the weights (`training.ema`): what inference uses when present.
pub const EMA_FILE: &str = "ema.safetensors";
/// Written last: a folder that has it is complete (the run folder checks the same name).
pub const STATE_FILE: &str = evdet_run::CHECKPOINT_STATE;
pub const CONFIG_FILE: &str = "config.yaml";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    /// The folder exists but one of its files cannot be used.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    NotFound { path: PathBuf, message: String },
    /// Writing the folder failed (the message names the path).
    #[error("writing a checkpoint: {0}")]
    Write(String),
}

fn io(path: &Path, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl From<std::io::Error> for CheckpointError {
    fn from(e: std::io::Error) -> Self {
        // evdet-atomic's errors already carry the path in their message.
        CheckpointError::Write(e.to_string())
    }
}

/// Everything besides tensors that an exact resume needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Training steps completed (= the data position: plans are functions of the step).
    pub step: u64,
    /// AdamW steps taken (steps with a non-finite loss are skipped).
    pub optimizer_step: u64,
    pub lr: f64,
    pub nonfinite_in_row: u32,
    pub nonfinite_total: u64,
    pub best_metric: Option<f64>,
    pub best_step: Option<u64>,
    pub seed: u64,
    /// Number of stream slots whose recurrent states are in `recurrent.safetensors` (of the global
    /// batch, all processes together).
    pub stream_slots: usize,
    /// Rows per training step over all processes (`WORLD_SIZE × batch_size.train`); a resume on
    /// another world size re-deals them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_batch: Option<usize>,
    /// Processes that trained the run up to this checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world_size: Option<usize>,
    /// fp16 loss scale (1 when unused).
    pub loss_scale: f64,
    /// Finite fp16 steps since the loss scale last changed.
    #[serde(default)]
    pub loss_scale_growth_tracker: u64,
    /// fp16 steps skipped because the scaled gradients overflowed.
    #[serde(default)]
    pub amp_skipped: u64,
    /// Updates behind `ema.safetensors` (`training.ema`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ema_updates: u64,
    /// Lightning's epoch counter of an imported checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    /// For a folder written by `import-rvt`: the source file, what loaded and what did not, and where
    /// each part of `config.yaml` came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<serde_json::Value>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Size and content hash of one file of a checkpoint folder, as `state.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub bytes: u64,
    pub sha256: String,
}

/// `state.json`: the training state and the digests of the folder's other files.
#[derive(Serialize, Deserialize)]
struct StateFile {
    #[serde(flatten)]
    state: TrainState,
    /// Absent in folders written before digests existed; those load unverified.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    files: BTreeMap<String, FileDigest>,
}

/// Size and SHA-256 of a file, read in blocks.
pub fn digest(path: &Path) -> Result<FileDigest, CheckpointError> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    let sha256 = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(FileDigest { bytes, sha256 })
}

/// Checks every file `state.json` lists against its size and hash.
fn verify(dir: &Path, files: &BTreeMap<String, FileDigest>) -> Result<(), CheckpointError> {
    use rayon::prelude::*;
    files.par_iter().try_for_each(|(name, want)| {
        let p = dir.join(name);
        if !p.is_file() {
            return Err(invalid(&p, "listed in state.json but missing"));
        }
        let got = digest(&p)?;
        if got.bytes != want.bytes {
            return Err(invalid(
                &p,
                format!(
                    "{} bytes, state.json says {} (truncated or an incomplete copy)",
                    got.bytes, want.bytes
                ),
            ));
        }
        if got.sha256 != want.sha256 {
            return Err(invalid(
                &p,
                format!(
                    "content does not match its SHA-256 in state.json ({} ≠ {}): the file was altered after it was written (bit rot, a bad copy)",
                    &got.sha256[..12],
                    &want.sha256[..12]
                ),
            ));
        }
        Ok(())
    })
}

/// What goes into a checkpoint folder.
pub struct Contents<'a> {
    /// Every model variable (parameters and BatchNorm buffers) by RVT name, e.g.
    /// `evdet_model::import::named_tensors(&vs)`.
    pub model: &'a [(String, Tensor)],
    /// Optimizer tensors (none: no file).
    pub optimizer: &'a [(String, Tensor)],
    /// Recurrent stream states (none: no file).
    pub recurrent: &'a [(String, Tensor)],
    /// The weights' moving average, by the model's names (none: no file).
    pub ema: &'a [(String, Tensor)],
    pub state: &'a TrainState,
    pub config: &'a ExperimentConfig,
}

/// Writes the checkpoint folder `dir` atomically (an existing one is replaced only once the new one
/// is complete).
pub fn save(dir: &Path, c: &Contents) -> Result<(), CheckpointError> {
    evdet_atomic::replace_dir(dir, |tmp| fill(tmp, c))
}

/// As [`save`], keeping the folder it replaces as `keep` (the trainer's `last` → `previous`), so that
/// a damaged `dir` has a complete predecessor to fall back to.
pub fn save_keeping(dir: &Path, keep: &Path, c: &Contents) -> Result<(), CheckpointError> {
    evdet_atomic::replace_dir_keeping(dir, keep, |tmp| fill(tmp, c))
}

fn fill(tmp: &Path, c: &Contents) -> Result<(), CheckpointError> {
    {
        let write = |file: &str, t: &[(String, Tensor)]| -> Result<(), CheckpointError> {
            let p = tmp.join(file);
            let cpu: Vec<(&str, Tensor)> = t
                .iter()
                .map(|(n, t)| (n.as_str(), t.to_device(tch::Device::Cpu).contiguous()))
                .collect();
            Tensor::write_safetensors(&cpu, &p).map_err(|e| io(&p, e))
        };
        write(MODEL_FILE, c.model)?;
        if !c.optimizer.is_empty() {
            write(OPTIMIZER_FILE, c.optimizer)?;
        }
        if !c.recurrent.is_empty() {
            write(RECURRENT_FILE, c.recurrent)?;
        }
        if !c.ema.is_empty() {
            write(EMA_FILE, c.ema)?;
        }
        let p = tmp.join(CONFIG_FILE);
        std::fs::write(&p, c.config.to_yaml()).map_err(|e| io(&p, e))?;
        let mut files = BTreeMap::new();
        for name in [
            MODEL_FILE,
            OPTIMIZER_FILE,
            RECURRENT_FILE,
            EMA_FILE,
            CONFIG_FILE,
        ] {
            let p = tmp.join(name);
            if p.is_file() {
                files.insert(name.to_string(), digest(&p)?);
            }
        }
        let state = StateFile {
            state: c.state.clone(),
            files,
        };
        let json = serde_json::to_string_pretty(&state).map_err(|e| io(tmp, e))?;
        let p = tmp.join(STATE_FILE);
        std::fs::write(&p, json).map_err(|e| io(&p, e))
    }
}

/// A checkpoint folder's state, configuration and training tensors (the model weights are loaded
/// into a `VarStore` by [`load_weights`] or [`open`]).
pub struct Checkpoint {
    pub dir: PathBuf,
    pub state: TrainState,
    pub config: ExperimentConfig,
    pub optimizer: Vec<(String, Tensor)>,
    pub recurrent: Vec<(String, Tensor)>,
    /// The weights' moving average (empty without `training.ema`).
    pub ema: Vec<(String, Tensor)>,
    /// SHA-256 of `model.safetensors` as `state.json` records it and [`load`] verified (`None` for
    /// folders written before digests existed).
    pub model_sha256: Option<String>,
    /// SHA-256 of `ema.safetensors`, when there is one.
    pub ema_sha256: Option<String>,
}

/// Reads a checkpoint folder; every file it names must be readable.
pub fn load(dir: &Path) -> Result<Checkpoint, CheckpointError> {
    if !dir.join(MODEL_FILE).is_file() {
        return Err(CheckpointError::NotFound {
            path: dir.to_path_buf(),
            message: format!("no {MODEL_FILE}: not a checkpoint folder"),
        });
    }
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| io(&state_path, e))?;
    let StateFile { state, files } =
        serde_json::from_str(&text).map_err(|e| invalid(&state_path, e))?;
    verify(dir, &files)?;
    let model_sha256 = files.get(MODEL_FILE).map(|d| d.sha256.clone());
    let ema_sha256 = files.get(EMA_FILE).map(|d| d.sha256.clone());
    let config = read_config(&dir.join(CONFIG_FILE))?;
    let read = |file: &str| -> Result<Vec<(String, Tensor)>, CheckpointError> {
        let p = dir.join(file);
        if !p.exists() {
            return Ok(Vec::new());
        }
        Tensor::read_safetensors(&p).map_err(|e| invalid(&p, e))
    };
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        state,
        config,
        optimizer: read(OPTIMIZER_FILE)?,
        recurrent: read(RECURRENT_FILE)?,
        ema: read(EMA_FILE)?,
        model_sha256,
        ema_sha256,
    })
}

/// The checkpoint a run resumes from: `checkpoints/last` when it loads and verifies, else
/// `checkpoints/previous` (the one `last` replaced), with a message saying what was wrong with `last`.
/// `Ok(None)` when the run has no checkpoint yet; an error when the checkpoints it has all fail.
pub fn load_for_resume(
    run: &evdet_run::RunDir,
) -> Result<Option<(Checkpoint, Option<String>)>, CheckpointError> {
    let ckpts = run.checkpoints();
    let (last, previous) = (run.last(), run.previous());
    if !last.exists() && !previous.exists() {
        return Ok(None);
    }
    let last_err = match load(&last) {
        Ok(ck) => return Ok(Some((ck, None))),
        Err(e) => e,
    };
    if !previous.exists() {
        return Err(last_err);
    }
    match load(&previous) {
        Ok(ck) => {
            let msg = format!(
                "{}: cannot resume from it ({last_err}); resuming from {} (step {}) instead",
                last.display(),
                previous.display(),
                ck.state.step
            );
            Ok(Some((ck, Some(msg))))
        }
        Err(prev_err) => Err(invalid(
            &ckpts,
            format!("no checkpoint to resume from: {last_err}; {prev_err}"),
        )),
    }
}

/// The complete experiment configuration of a checkpoint (or run) folder's `config.yaml`.
pub fn read_config(path: &Path) -> Result<ExperimentConfig, CheckpointError> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let value: serde_norway::Value = serde_norway::from_str(&text).map_err(|e| invalid(path, e))?;
    ExperimentConfig::from_value(value).map_err(|e| invalid(path, e))
}

/// Loads `model.safetensors` of a checkpoint folder (or a `.safetensors` file) into `vs`; every
/// variable of `vs` must be in the file with its shape.
pub fn load_weights(vs: &mut nn::VarStore, path: &Path) -> Result<(), CheckpointError> {
    let file = if path.is_dir() {
        path.join(MODEL_FILE)
    } else {
        path.to_path_buf()
    };
    vs.load(&file).map_err(|e| invalid(&file, e))
}

/// A run folder (its `checkpoints/best`, else `checkpoints/last`), a checkpoint folder, or a
/// checkpoint's `model.safetensors` → the checkpoint folder.
pub fn resolve(p: &Path) -> Result<PathBuf, CheckpointError> {
    if p.is_file() {
        let dir = p.parent().unwrap_or(Path::new("."));
        if dir.join(CONFIG_FILE).exists() {
            return Ok(dir.to_path_buf());
        }
        return Err(CheckpointError::NotFound {
            path: p.to_path_buf(),
            message: format!("no {CONFIG_FILE} beside this file (give a run or checkpoint folder)"),
        });
    }
    if p.join(MODEL_FILE).exists() {
        return Ok(p.to_path_buf());
    }
    let run = evdet_run::RunDir::at(p);
    evdet_run::PREFERRED_CHECKPOINTS
        .iter()
        .map(|n| run.checkpoint(n))
        .find(|c| c.join(MODEL_FILE).exists())
        .ok_or_else(|| CheckpointError::NotFound {
            path: p.to_path_buf(),
            message: format!("neither a checkpoint folder ({MODEL_FILE}) nor a run folder with checkpoints/best or checkpoints/last"),
        })
}

/// Which weights produced a result: the checkpoint folder, its training step and the SHA-256 of its
/// `model.safetensors`. Every metrics file and prediction folder records it (`"checkpoint"`), and the
/// commands print it, so a number can always be traced back to the weights behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub path: PathBuf,
    pub step: u64,
    /// SHA-256 of the weights file used: `model.safetensors`, or `ema.safetensors` when `ema`.
    pub sha256: String,
    /// The weights are the run's moving average (`training.ema`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ema: bool,
}

impl Provenance {
    /// The provenance of the checkpoint folder `dir` at `step`, with `known` the SHA-256 of its
    /// `model.safetensors` when [`load`] has verified it already (else the file is hashed).
    pub fn of(dir: &Path, step: u64, known: Option<String>) -> Result<Self, CheckpointError> {
        let sha256 = match known {
            Some(s) => s,
            None => digest(&dir.join(MODEL_FILE))?.sha256,
        };
        Ok(Provenance {
            path: dir.to_path_buf(),
            step,
            sha256,
            ema: false,
        })
    }

    /// The provenance of the weights [`open`] uses from the checkpoint folder `dir`: its moving
    /// average when it has one, else `model.safetensors`.
    pub fn of_checkpoint(dir: &Path, step: u64) -> Result<Self, CheckpointError> {
        let ema = dir.join(EMA_FILE);
        if !ema.is_file() {
            return Self::of(dir, step, None);
        }
        Ok(Provenance {
            path: dir.to_path_buf(),
            step,
            sha256: digest(&ema)?.sha256,
            ema: true,
        })
    }

    /// `checkpoint runs/x/checkpoints/best (step 3, sha256 1a2b3c4d5e6f…)`, with `EMA weights`
    /// when the moving average is used.
    pub fn describe(&self) -> String {
        format!(
            "checkpoint {} (step {}, {}sha256 {}…)",
            self.path.display(),
            self.step,
            if self.ema { "EMA weights, " } else { "" },
            &self.sha256[..self.sha256.len().min(12)]
        )
    }
}

/// A checkpoint ready for inference: its configuration, state and the detector with its weights.
pub struct Opened {
    pub dir: PathBuf,
    /// `dir`, its step and the hash of its weights.
    pub provenance: Provenance,
    pub config: ExperimentConfig,
    pub state: TrainState,
    pub vs: nn::VarStore,
    pub detector: Detector,
}

/// Resolves `path` ([`resolve`]), reads the folder and builds its detector on `device`. `adapt` may
/// change the configuration first (e.g. fit the input size to the data it will see).
pub fn open<E: From<CheckpointError>>(
    path: &Path,
    device: tch::Device,
    adapt: impl FnOnce(&mut ExperimentConfig) -> Result<(), E>,
) -> Result<Opened, E> {
    let dir = resolve(path)?;
    let ck = load(&dir)?;
    let mut config = ck.config;
    adapt(&mut config)?;
    let bad_config = |e: &dyn std::fmt::Display| invalid(&dir.join(CONFIG_FILE), e);
    let mcfg = crate::model_setup::model_config(&config).map_err(|e| bad_config(&e))?;
    let (mut vs, detector) = Detector::build(&mcfg, device).map_err(|e| bad_config(&e))?;
    load_weights(&mut vs, &dir)?;
    // `load` verified the weights against state.json's digest: no second pass over the file.
    let mut provenance = Provenance::of(&dir, ck.state.step, ck.model_sha256)?;
    // A run that kept a moving average is evaluated, predicted and exported with it.
    if !ck.ema.is_empty() {
        let p = dir.join(EMA_FILE);
        // Only floating variables are averaged; any other keeps the model's value.
        vs.load_partial(&p).map_err(|e| invalid(&p, e))?;
        provenance.ema = true;
        provenance.sha256 = match ck.ema_sha256 {
            Some(s) => s,
            None => digest(&p)?.sha256,
        };
    }
    Ok(Opened {
        provenance,
        dir,
        config,
        state: ck.state,
        vs,
        detector,
    })
}
