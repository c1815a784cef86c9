//! Finding the `config/` folder and composing an experiment from it, for every command that reads one
//! (`train`, `import-rvt`, `study`).

use anyhow::Context;
use evdet_config::{self as config, ExperimentConfig};
use std::path::{Path, PathBuf};

/// `./config`, or the repository's `config/` next to the binary (`target/release/evdet`).
pub fn config_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(d) = explicit {
        return Ok(d.to_path_buf());
    }
    let here = PathBuf::from("config");
    if here.join("general.yaml").exists() {
        return Ok(here);
    }
    let exe = std::env::current_exe()?;
    for anc in exe.ancestors().skip(1).take(4) {
        if anc.join("config/general.yaml").exists() {
            return Ok(anc.join("config"));
        }
    }
    anyhow::bail!("no config folder found: run from the evdet repository or pass --config-dir")
}

pub fn load_config(
    args_config: &Path,
    dir: Option<&Path>,
    overrides: &[String],
) -> anyhow::Result<ExperimentConfig> {
    let dir = config_dir(dir)?;
    config::load(&dir, args_config, overrides)
        .with_context(|| format!("loading {}", args_config.display()))
}
