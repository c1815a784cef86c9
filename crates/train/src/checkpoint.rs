//! Checkpoint folders (DESIGN.md "Checkpoints"): `model.safetensors` with RVT's parameter names,
//! `optimizer.safetensors`, `recurrent.safetensors` (the per-slot LSTM states of the training streams),
//! `state.json` (step, schedule position, counters, best metric, data position) and the resolved
//! `config.yaml`. Written into a temporary folder and renamed, so a crash never leaves half a checkpoint.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{nn, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
}

fn io(path: &Path, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
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
    /// Number of stream slots whose recurrent states are in `recurrent.safetensors`.
    pub stream_slots: usize,
    /// fp16 loss scale (1 when unused).
    pub loss_scale: f64,
    /// Finite fp16 steps since the loss scale last changed.
    #[serde(default)]
    pub loss_scale_growth_tracker: u64,
    /// fp16 steps skipped because the scaled gradients overflowed.
    #[serde(default)]
    pub amp_skipped: u64,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    pub dir: PathBuf,
    pub state: TrainState,
    pub config_yaml: String,
    pub optimizer: Vec<(String, Tensor)>,
    pub recurrent: Vec<(String, Tensor)>,
}

/// Writes a checkpoint folder atomically (`dir` is replaced when complete).
pub fn save(
    dir: &Path,
    vs: &nn::VarStore,
    optimizer: &[(String, Tensor)],
    recurrent: &[(String, Tensor)],
    state: &TrainState,
    config_yaml: &str,
) -> Result<(), CheckpointError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    vs.save(tmp.join("model.safetensors"))
        .map_err(|e| io(&tmp.join("model.safetensors"), e))?;
    let write = |file: &str, t: &[(String, Tensor)]| -> Result<(), CheckpointError> {
        let p = tmp.join(file);
        let refs: Vec<(&str, Tensor)> = t
            .iter()
            .map(|(n, t)| (n.as_str(), t.to_device(tch::Device::Cpu).contiguous()))
            .collect();
        Tensor::write_safetensors(&refs, &p).map_err(|e| io(&p, e))
    };
    if !optimizer.is_empty() {
        write("optimizer.safetensors", optimizer)?;
    }
    if !recurrent.is_empty() {
        write("recurrent.safetensors", recurrent)?;
    }
    let json = serde_json::to_string_pretty(state).map_err(|e| io(&tmp, e))?;
    std::fs::write(tmp.join("state.json"), json).map_err(|e| io(&tmp, e))?;
    std::fs::write(tmp.join("config.yaml"), config_yaml).map_err(|e| io(&tmp, e))?;
    // Swap in: the old checkpoint stays until the new one is complete.
    let old = parent.join(format!(".{name}.old"));
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
        }
        std::fs::rename(dir, &old).map_err(|e| io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))?;
    if old.exists() {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

/// Reads a checkpoint folder (the model weights are loaded separately into a `VarStore`).
pub fn load(dir: &Path) -> Result<Checkpoint, CheckpointError> {
    let state_path = dir.join("state.json");
    let state: TrainState = match std::fs::read_to_string(&state_path) {
        Ok(s) => serde_json::from_str(&s).map_err(|e| io(&state_path, e))?,
        Err(_) => TrainState::default(),
    };
    let config_yaml = std::fs::read_to_string(dir.join("config.yaml")).unwrap_or_default();
    let read = |file: &str| -> Result<Vec<(String, Tensor)>, CheckpointError> {
        let p = dir.join(file);
        if !p.exists() {
            return Ok(Vec::new());
        }
        Tensor::read_safetensors(&p).map_err(|e| io(&p, e))
    };
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        state,
        config_yaml,
        optimizer: read("optimizer.safetensors")?,
        recurrent: read("recurrent.safetensors")?,
    })
}

/// Loads `model.safetensors` of a checkpoint folder (or a `.safetensors` file) into `vs`.
pub fn load_weights(vs: &mut nn::VarStore, path: &Path) -> Result<(), CheckpointError> {
    let file = if path.is_dir() {
        path.join("model.safetensors")
    } else {
        path.to_path_buf()
    };
    vs.load(&file).map_err(|e| io(&file, e))
}
