//! The synthetic datasets an experiment can ask for (`dataset.synthesize`): generated with
//! `evdet-synth` and preprocessed on first use, so the main job needs no download.

use evdet_config::ExperimentConfig;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    #[error("dataset.path {path} has no train/ folder: preprocess the dataset first (evdet preprocess --raw RAW --out {path})")]
    Missing { path: String },
    #[error("dataset.path {path} has no train/ folder (does it exist?). The synthetic '{preset}' sample is generated on first use only into its own folder, dataset.synthesize.path = {sample}: drop the dataset.path override to use it, or preprocess a dataset into {path} (evdet preprocess --raw RAW --out {path})")]
    NotTheSample {
        path: String,
        preset: String,
        sample: String,
    },
    #[error("dataset.synthesize.preset: {0}")]
    Preset(String),
    #[error("generating {path}: {source}")]
    Generate {
        path: PathBuf,
        source: evdet_events::EventsError,
    },
    #[error("preprocessing {path}: {source}")]
    Preprocess {
        path: PathBuf,
        source: evdet_events::EventsError,
    },
}

/// The preprocessed dataset of `cfg`: `dataset.path` when it has a `train/` folder; else, for a
/// synthetic dataset, the `evdet synth` preset generated into `dataset.synthesize.raw_path` (unless
/// there) and preprocessed into `dataset.path`. `say` hears each step before it starts.
pub fn ensure(cfg: &ExperimentConfig, say: impl Fn(&str)) -> Result<PathBuf, SyntheticError> {
    let path = PathBuf::from(&cfg.dataset.path);
    if path.join("train").is_dir() {
        return Ok(path);
    }
    let syn = &cfg.dataset.synthesize;
    if syn.preset.is_empty() {
        return Err(SyntheticError::Missing {
            path: path.display().to_string(),
        });
    }
    if !syn.path.is_empty() && Path::new(&syn.path) != path {
        return Err(SyntheticError::NotTheSample {
            path: path.display().to_string(),
            preset: syn.preset.clone(),
            sample: syn.path.clone(),
        });
    }
    let raw = PathBuf::from(&syn.raw_path);
    if !raw.join("test").is_dir() {
        say(&format!(
            "generating the synthetic '{}' sample in {} (evdet synth) ...",
            syn.preset,
            raw.display()
        ));
        let preset: evdet_synth::Preset = syn.preset.parse().map_err(SyntheticError::Preset)?;
        let mut sc = evdet_synth::SynthConfig::preset(preset);
        sc.seed = syn.seed;
        if !syn.sequences.is_empty() {
            sc.sequences = syn.sequences.parse().map_err(|e| {
                SyntheticError::Preset(format!("dataset.synthesize.sequences: {e}"))
            })?;
        }
        evdet_synth::generate(&raw, &sc, &|_| {}).map_err(|source| SyntheticError::Generate {
            path: raw.clone(),
            source,
        })?;
    }
    say(&format!(
        "preprocessing {} into {} ...",
        raw.display(),
        path.display()
    ));
    let pcfg = evdet_events::preprocess::PreprocessConfig {
        downsample_by_factor_2: Some(cfg.dataset.downsample_by_factor_2),
        ..Default::default()
    };
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let splits: Vec<String> = ["train", "val", "test"].map(String::from).to_vec();
    evdet_events::preprocess::preprocess(&raw, &path, &splits, &pcfg, jobs, &|_| {}).map_err(
        |source| SyntheticError::Preprocess {
            path: raw.clone(),
            source,
        },
    )?;
    Ok(path)
}
