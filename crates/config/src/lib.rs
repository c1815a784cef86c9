//! Experiment configuration: composition of YAML files (`compose`) and the typed view the trainer reads
//! (`schema`). The model section stays a YAML value here and is typed by the model crate.

pub mod compose;
pub mod diff;
pub mod schema;

pub use compose::{get_path, ConfigError, ConfigRoot};
pub use diff::{differing_keys, KeyDiff};
pub use schema::*;

use std::path::{Path, PathBuf};

/// The config folder: `explicit` (`--config-dir`), else `./config`, else the repository's `config/`
/// next to the running binary (`target/release/evdet`).
pub fn find_dir(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(d) = explicit {
        return Ok(d.to_path_buf());
    }
    let here = PathBuf::from("config");
    if here.join("general.yaml").exists() {
        return Ok(here);
    }
    let exe = std::env::current_exe().map_err(|_| ConfigError::NoConfigDir)?;
    exe.ancestors()
        .skip(1)
        .take(4)
        .map(|a| a.join("config"))
        .find(|c| c.join("general.yaml").exists())
        .ok_or(ConfigError::NoConfigDir)
}

/// Composes `file` under the config root and types it.
pub fn load(
    root: &Path,
    file: &Path,
    overrides: &[String],
) -> Result<ExperimentConfig, ConfigError> {
    let composed = ConfigRoot::new(root).compose(file, overrides)?;
    ExperimentConfig::from_value(composed.value)
}

/// The evaluator settings of an experiment's dataset.
pub fn eval_config(cfg: &ExperimentConfig) -> evdet_eval::EvalConfig {
    let (h, w) = cfg.dataset.input_hw();
    let mut e = evdet_eval::EvalConfig::new(cfg.dataset.classes.clone())
        .with_small_classes(cfg.dataset.small_classes.clone());
    e.camera = if cfg.dataset.eval.camera == "gen1" {
        evdet_eval::Camera::Gen1
    } else {
        evdet_eval::Camera::Gen4
    };
    e.filter_downsampled_by_2 = cfg.dataset.eval.filter_downsampled_by_2;
    e.height = h as u32;
    e.width = w as u32;
    e
}
