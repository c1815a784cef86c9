//! `evdet eval`: evaluates a checkpoint on a split with both protocols and writes the metrics as JSON.

use anyhow::Context;
use evdet_model::detector::Detector;
use evdet_train::config::ExperimentConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Evaluate a trained checkpoint (both protocols, AP by size and class).
///
/// Examples:
///   evdet eval --run runs/synthetic/mini/4scale_sizeaware_tiny --split test
///   evdet eval --checkpoint runs/etram/size_aware/4scale_sizeaware_100k/checkpoints/best --data /data/etram_pre
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Run folder (uses checkpoints/best, else checkpoints/last).
    #[arg(long, conflicts_with = "checkpoint")]
    pub run: Option<PathBuf>,
    /// Checkpoint folder (with config.yaml).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Preprocessed dataset root (default: the config's dataset.path).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value = "test", value_parser = ["val", "test"])]
    pub split: String,
    /// Post-process confidence threshold (0.001 for reported numbers, as the reference).
    #[arg(long, default_value_t = 0.001)]
    pub confidence_threshold: f64,
    #[arg(long)]
    pub device: Option<String>,
    /// Write the metrics here (default: <checkpoint>/../../eval/<split>_metrics.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Loads a checkpoint folder's config and weights.
pub fn load_checkpoint(
    ckpt: &Path,
    device: tch::Device,
) -> anyhow::Result<(ExperimentConfig, tch::nn::VarStore, Detector)> {
    let yaml = std::fs::read_to_string(ckpt.join("config.yaml")).with_context(|| {
        format!(
            "{}: no config.yaml (is this a checkpoint folder?)",
            ckpt.display()
        )
    })?;
    let cfg = ExperimentConfig::from_value(
        serde_yaml::from_str(&yaml).with_context(|| format!("{}/config.yaml", ckpt.display()))?,
    )?;
    let mcfg = evdet_train::model_setup::model_config(&cfg)?;
    let (mut vs, det) = Detector::build(&mcfg, device).map_err(|e| anyhow::anyhow!("{e}"))?;
    evdet_train::checkpoint::load_weights(&mut vs, ckpt)?;
    Ok((cfg, vs, det))
}

/// Streams `split` through the detector and summarises both protocols (`conf`: post-process threshold).
pub fn evaluate_split(
    det: &Detector,
    cfg: &ExperimentConfig,
    data: &Path,
    split: &str,
    device: tch::Device,
    conf: f64,
) -> anyhow::Result<BTreeMap<String, f64>> {
    let sd = Arc::new(evdet_train::trainer::open_split(cfg, data, split)?);
    let pb = crate::progress::bar(0, "batches");
    pb.set_message(format!("evaluating {split}"));
    let report = evdet_train::evaluate::evaluate(det, sd, cfg, device, conf, 0, |done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    })?;
    pb.finish_and_clear();
    Ok(report.metrics(split))
}

/// Prints the metric table (both protocols side by side) and writes the JSON.
pub fn write_and_print(m: &BTreeMap<String, f64>, json: &Path) -> anyhow::Result<()> {
    let split = m
        .keys()
        .next()
        .and_then(|k| k.split('/').next())
        .unwrap_or("test")
        .to_string();
    println!("{:<22} {:>10} {:>11}", "metric", "prophesee", "unfiltered");
    let stats = [
        "AP",
        "AP50",
        "AP75",
        "AP_S",
        "AP_M",
        "AP_L",
        "AR1",
        "AR10",
        "AR100",
        "AR_S",
        "AR_M",
        "AR_L",
        "AP_small_classes",
    ];
    let get = |p: &str, s: &str| {
        m.get(&format!("{split}/{p}/{s}"))
            .map_or("-".to_string(), |v| format!("{v:.4}"))
    };
    for s in stats {
        println!(
            "{:<22} {:>10} {:>11}",
            s,
            get("prophesee", s),
            get("unfiltered", s)
        );
    }
    let classes: Vec<&str> = m
        .keys()
        .filter_map(|k| k.strip_prefix(&format!("{split}/unfiltered/AP/")))
        .collect();
    for c in classes {
        println!(
            "{:<22} {:>10} {:>11}",
            format!("AP/{c}"),
            get("prophesee", &format!("AP/{c}")),
            get("unfiltered", &format!("AP/{c}"))
        );
    }
    if let Some(parent) = json.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let tmp = json.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(m)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, json).with_context(|| format!("writing {}", json.display()))?;
    println!("metrics written to {}", json.display());
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let ckpt = match (&args.run, &args.checkpoint) {
        (_, Some(c)) => c.clone(),
        (Some(r), None) => ["best", "last"]
            .iter()
            .map(|n| r.join("checkpoints").join(n))
            .find(|p| p.join("model.safetensors").exists())
            .with_context(|| format!("{}: no checkpoints/best or checkpoints/last", r.display()))?,
        (None, None) => anyhow::bail!("give --run RUN_DIR or --checkpoint DIR"),
    };
    let dev0: evdet_model::device::DeviceChoice =
        args.device.as_deref().unwrap_or("auto").parse()?;
    let device = dev0.resolve()?;
    let (cfg, _vs, det) = load_checkpoint(&ckpt, device)?;
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from(&cfg.dataset.path));
    let m = evaluate_split(
        &det,
        &cfg,
        &data,
        &args.split,
        device,
        args.confidence_threshold,
    )?;
    let json = args.json.clone().unwrap_or_else(|| {
        ckpt.parent()
            .and_then(|p| p.parent())
            .unwrap_or(Path::new("."))
            .join("eval")
            .join(format!("{}_metrics.json", args.split))
    });
    write_and_print(&m, &json)
}
