//! Finding the `config/` folder and composing an experiment from it, for every command that reads one
//! (`train`, `import-rvt`, `study`).

use anyhow::Context;
use evdet_config::{self as config, ExperimentConfig};
use std::path::{Path, PathBuf};

/// The config folder (`evdet_config::find_dir`).
pub fn config_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    Ok(config::find_dir(explicit)?)
}

/// The experiment `args_config` composed from the config folder with `overrides`.
pub fn load_config(
    args_config: &Path,
    dir: Option<&Path>,
    overrides: &[String],
) -> anyhow::Result<ExperimentConfig> {
    let dir = config_dir(dir)?;
    config::load(&dir, args_config, overrides)
        .with_context(|| format!("loading {}", args_config.display()))
}
