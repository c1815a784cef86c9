//! Experiment configuration: composition of YAML files (`compose`) and the typed view the trainer reads
//! (`schema`). The model section stays a YAML value here and is typed by the model crate.

pub mod compose;
pub mod schema;

pub use compose::{get_path, ConfigError, ConfigRoot};
pub use schema::*;

use std::path::Path;

/// Composes `file` under the config root and types it.
pub fn load(
    root: &Path,
    file: &Path,
    overrides: &[String],
) -> Result<ExperimentConfig, ConfigError> {
    let composed = ConfigRoot::new(root).compose(file, overrides)?;
    ExperimentConfig::from_value(composed.value)
}
