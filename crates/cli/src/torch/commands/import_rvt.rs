//! `evdet import-rvt`: reference PyTorch weights (RVT / eTraM Lightning `.ckpt`, a pickled state
//! dict or safetensors) → an evdet checkpoint folder.

use std::path::PathBuf;

use anyhow::{Context, Result};
use evdet_infer::import::{import_rvt, ImportOptions};
use evdet_model::import::read_model_config;

/// Import RVT or eTraM weights into an evdet checkpoint folder.
///
/// Reads the `state_dict` of a PyTorch-Lightning checkpoint as RVT and eTraM write them (keys
/// prefixed `mdl.`; pickled omegaconf configs and other Python objects beside the tensors are
/// skipped, never executed), a plain pickled state dict, or a safetensors file. The tensors are
/// loaded by name into the detector (RVT's own parameter names), missing and unexpected keys are
/// reported, and the folder OUT gets `model.safetensors` (RVT names), `state.json`, `config.yaml`
/// and, when the file has Adam moments, `optimizer.safetensors`. The model configuration is read
/// from --config, or inferred from the weights' shapes (sizes, FPN stages and depth, classes) with
/// the partition size from --data-hw. `config.yaml` is a complete experiment (--experiment's
/// defaults with that model section and input size), so `evdet eval`, `predict` and fine-tuning
/// (`evdet train model.init_from=OUT`) take the folder as it is; `state.json` says where each part
/// came from.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  evdet import-rvt rvt-b.ckpt --out checkpoints/rvt-b
  evdet import-rvt etram_rvt.ckpt --out ckpt/etram --data-hw 360,640
  evdet import-rvt weights.safetensors --out ckpt/fx --config tests/fixtures/model_3scale/config.json
  evdet eval --checkpoint ckpt/etram --data /data/etram_pre --split test
  evdet train --config experiment/gen4/default.yaml model.init_from=ckpt/etram   # fine-tune")]
pub struct Args {
    /// The weights: a Lightning `.ckpt`, a `torch.save`d state dict, or a `.safetensors` file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Checkpoint folder to write (replaced atomically when it exists).
    #[arg(long, value_name = "CKPT")]
    out: PathBuf,
    /// Model configuration (YAML or JSON; a bare `model` config, or one under `model:` or
    /// `rvt_model_config`). Default: inferred from the weights.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data height,width used to derive the input size and partition size when the configuration
    /// is inferred (RVT's rule: rounded up to a multiple of 64). eTraM/Gen4 downsampled: 360,640.
    #[arg(
        long,
        value_name = "H,W",
        default_value = "360,640",
        value_parser = evdet_cli::recording_args::parse_hw
    )]
    data_hw: (usize, usize),
    /// Write the checkpoint even when the file lacks some model variables (they keep their
    /// initial values).
    #[arg(long)]
    allow_missing: bool,
    /// The experiment whose settings complete the checkpoint's config.yaml (dataset, schedule,
    /// evaluation; its model section is replaced by the weights').
    #[arg(
        long,
        value_name = "FILE",
        default_value = "experiment/gen4/default.yaml"
    )]
    experiment: PathBuf,
    /// Config folder the experiment is read from (default: ./config, else the repository's).
    #[arg(long, value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// Class names of the head, comma-separated (default: the experiment's when their number fits,
    /// else class0, class1, …).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    classes: Option<Vec<String>>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let (h, w) = args.data_hw;
    let config = match &args.config {
        Some(p) => Some(
            read_model_config(p).with_context(|| format!("reading --config {}", p.display()))?,
        ),
        None => None,
    };
    let experiment =
        crate::configs::load_config(&args.experiment, args.config_dir.as_deref(), &[])?;
    let (summary, notes) = import_rvt(
        &args.file,
        &args.out,
        ImportOptions {
            experiment,
            experiment_source: args.experiment.display().to_string(),
            model: config,
            data_hw: [h, w],
            classes: args.classes.clone(),
            allow_missing: args.allow_missing,
        },
    )
    .with_context(|| format!("importing {}", args.file.display()))?;
    for note in &notes {
        eprintln!("note: {note}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    if let Some(note) = &summary.optimizer_note {
        eprintln!("warning: {note}");
    }
    summary.lines().iter().for_each(|l| println!("{l}"));
    Ok(())
}
