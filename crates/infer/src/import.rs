//! `import-rvt` into a complete checkpoint folder: the weights read by `evdet_model::import` (RVT /
//! eTraM Lightning `.ckpt`, a pickled state dict or safetensors), written by [`crate::checkpoint`] with
//! a `config.yaml` that every command can use: the chosen experiment's defaults, the model section
//! given for or inferred from the weights, the input size from `data_hw`, class names fitted to the
//! head. `state.json` records where each part came from.

use crate::checkpoint::{self, CheckpointError, Contents, TrainState};
use evdet_config::ExperimentConfig;
use evdet_model::config::ModelConfig;
use evdet_model::import::{self, ImportError, ImportSummary};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ImportRvtError {
    #[error(transparent)]
    Read(#[from] ImportError),
    #[error(transparent)]
    Write(#[from] CheckpointError),
    #[error("{0}")]
    Config(String),
}

/// What the import needs besides the source file.
pub struct ImportOptions {
    /// The experiment whose defaults complete `config.yaml` (its model section is replaced).
    pub experiment: ExperimentConfig,
    /// Where `experiment` came from, for `state.json`.
    pub experiment_source: String,
    /// The model configuration; `None`: inferred from the weights.
    pub model: Option<ModelConfig>,
    /// Height, width of the network input (before padding): sets the dataset geometry and, for an
    /// inferred model, the partition size.
    pub data_hw: [usize; 2],
    /// Class names for the head; `None`: the experiment's when their number fits the head, else
    /// `class0`, `class1`, ….
    pub classes: Option<Vec<String>>,
    /// Write the folder even when the file lacks some model variables.
    pub allow_missing: bool,
}

/// Reads `source` and writes the checkpoint folder `out`.
pub fn import_rvt(
    source: &Path,
    out: &Path,
    opts: ImportOptions,
) -> Result<(ImportSummary, Vec<String>), ImportRvtError> {
    let src = import::prepare(source, opts.model, opts.data_hw, opts.allow_missing)?;
    let mut notes = Vec::new();
    let mut cfg = opts.experiment;
    let n = src.config.head.num_classes;
    let classes = match opts.classes {
        Some(c) if c.len() == n => c,
        Some(c) => {
            return Err(ImportRvtError::Config(format!(
                "--classes lists {} names but the weights' head predicts {n} classes",
                c.len()
            )))
        }
        None if cfg.dataset.classes.len() == n => cfg.dataset.classes.clone(),
        None => {
            notes.push(format!(
                "the head predicts {n} classes but the experiment's dataset lists {}; they are named class0..class{} (give --classes to name them)",
                cfg.dataset.classes.len(),
                n - 1
            ));
            (0..n).map(|i| format!("class{i}")).collect()
        }
    };
    cfg.dataset.small_classes.retain(|c| classes.contains(c));
    cfg.dataset.classes = classes;
    let factor = if cfg.dataset.downsample_by_factor_2 {
        2
    } else {
        1
    };
    cfg.dataset.resolution_hw = opts.data_hw.map(|x| x * factor);
    cfg.model = serde_norway::to_value(&src.config)
        .map_err(|e| ImportRvtError::Config(format!("model config: {e}")))?;
    let cfg = ExperimentConfig::from_value(
        serde_norway::to_value(&cfg).map_err(|e| ImportRvtError::Config(e.to_string()))?,
    )
    .map_err(|e| ImportRvtError::Config(e.to_string()))?;
    let mut report = src.report_json.clone();
    report["config"] = serde_json::json!({
        "experiment": opts.experiment_source,
        "model": if src.config_inferred { "inferred from the weights' shapes (dim_head from the preset of the same embed_dim)" } else { "given (--config)" },
        "data_hw": opts.data_hw,
        "classes": cfg.dataset.classes,
    });
    let state = TrainState {
        step: src.summary.step.max(0) as u64,
        optimizer_step: src.optimizer_step.max(0) as u64,
        lr: src.lr,
        loss_scale: 1.0,
        epoch: src.summary.epoch,
        imported_from: Some(report),
        ..Default::default()
    };
    checkpoint::save(
        out,
        &Contents {
            model: &src.model,
            optimizer: &src.optimizer,
            ema: &[],
            recurrent: &[],
            state: &state,
            config: &cfg,
        },
    )?;
    let mut summary = src.summary;
    summary.out = out.to_path_buf();
    Ok((summary, notes))
}

/// Fine-tuning's starting point (`model.init_from`): loads the weights of an evdet checkpoint or run
/// folder, or of an RVT / eTraM file (`.ckpt`, state dict, `.safetensors`), into `vs` by name.
/// Variables the source lacks or has with another shape keep their initialisation; the report lists
/// them, and the source tensors the model has no variable for.
pub fn init_from(
    vs: &tch::nn::VarStore,
    path: &Path,
) -> Result<import::LoadReport, ImportRvtError> {
    let tensors = if path.is_dir() {
        let dir = checkpoint::resolve(path)?;
        import::read_safetensors(&dir.join(checkpoint::MODEL_FILE))?
    } else {
        import::read_weights(path)?.tensors
    };
    let report = import::load_matching(vs, &tensors);
    if report.loaded == 0 {
        return Err(ImportRvtError::Config(format!(
            "model.init_from {}: none of its {} tensors fits this model (is it a detector's weights?)",
            path.display(),
            tensors.len()
        )));
    }
    Ok(report)
}
