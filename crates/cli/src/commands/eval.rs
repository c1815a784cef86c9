//! `evdet eval`: evaluates a checkpoint on a split with both protocols and writes the metrics as JSON,
//! the data behind every report plot, and sample pictures of predictions beside ground truth.

use anyhow::Context;
use evdet_eval::{BBox as EvalBox, EvalReport, Evaluator};
use evdet_events::layout;
use evdet_model::detector::Detector;
use evdet_report::picture::{self, DrawBox};
use evdet_train::config::ExperimentConfig;
use evdet_train::data::SplitData;
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

/// A labelled frame kept as a picture for the report: its place, ground truth and confident detections.
pub struct SampleFrame {
    pub seq: usize,
    pub repr: usize,
    pub t: i64,
    pub gt: Vec<EvalBox>,
    pub dt: Vec<EvalBox>,
}

/// Detections whose objectness × class confidence is below this are not drawn in the sample pictures.
const SAMPLE_DRAW_THRESHOLD: f32 = 0.3;
/// Sample pictures per evaluation.
const NUM_SAMPLES: usize = 6;

/// The outcome of evaluating one split.
pub struct SplitEvaluation {
    pub split: String,
    pub metrics: BTreeMap<String, f64>,
    pub report: EvalReport,
    pub data: Arc<SplitData>,
    /// Labelled frames with ground truth (detections above the drawing threshold only, their
    /// `class_confidence` replaced by objectness × class confidence, the score drawn).
    pub frames: Vec<SampleFrame>,
}

/// Streams `split` through the detector and summarises both protocols (`conf`: post-process threshold).
pub fn evaluate_split(
    det: &Detector,
    cfg: &ExperimentConfig,
    data: &Path,
    split: &str,
    device: tch::Device,
    conf: f64,
) -> anyhow::Result<SplitEvaluation> {
    let sd = Arc::new(evdet_train::trainer::open_split(cfg, data, split)?);
    let pb = crate::progress::bar(0, "batches");
    pb.set_message(format!("evaluating {split}"));
    let mut ev = Evaluator::new(evdet_train::evaluate::eval_config(cfg))?;
    let mut frames = Vec::new();
    evdet_train::evaluate::run_stream(
        det,
        sd.clone(),
        cfg,
        device,
        conf,
        0,
        |f| {
            ev.add_frame(&f.gt, &f.dt);
            if !f.gt.is_empty() {
                frames.push(SampleFrame {
                    seq: f.seq,
                    repr: f.repr,
                    t: f.t,
                    gt: f.gt,
                    dt: f
                        .dt
                        .into_iter()
                        .zip(f.dt_score)
                        .filter(|(_, s)| *s >= SAMPLE_DRAW_THRESHOLD)
                        .map(|(d, s)| EvalBox {
                            class_confidence: s,
                            ..d
                        })
                        .collect(),
                });
            }
        },
        |done, total| {
            pb.set_length(total as u64);
            pb.set_position(done as u64);
        },
    )?;
    pb.finish_and_clear();
    let report = ev.summarize()?;
    frames.sort_by_key(|f| (f.seq, f.repr));
    Ok(SplitEvaluation {
        split: split.to_string(),
        metrics: report.metrics(split),
        report,
        data: sd,
        frames,
    })
}

/// Writes what the plots of a report are drawn from: `<split>_analysis.json` (per protocol: AP by
/// class and size bin, the small-class group, PR curves, confusion matrix) and sample pictures
/// (prediction beside ground truth) with their index `samples/<split>_samples.json`.
pub fn write_analysis(
    ev: &SplitEvaluation,
    cfg: &ExperimentConfig,
    eval_dir: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(eval_dir)
        .with_context(|| format!("creating {}", eval_dir.display()))?;
    let (h, w) = cfg.dataset.input_hw();
    let analysis = serde_json::json!({
        "split": ev.split,
        "frame_hw": [h, w],
        "prophesee": ev.report.prophesee.analysis,
        "unfiltered": ev.report.unfiltered.analysis,
    });
    let path = eval_dir.join(format!("{}_analysis.json", ev.split));
    write_json_atomic(&path, &analysis)?;

    let samples_dir = eval_dir.join("samples");
    std::fs::create_dir_all(&samples_dir)
        .with_context(|| format!("creating {}", samples_dir.display()))?;
    let n = ev.frames.len();
    let picks: Vec<usize> = if n <= NUM_SAMPLES {
        (0..n).collect()
    } else {
        // Evenly spread over the split (frames are in sequence order).
        (0..NUM_SAMPLES)
            .map(|i| i * (n - 1) / (NUM_SAMPLES - 1))
            .collect()
    };
    let mut index = Vec::new();
    for (k, &i) in picks.iter().enumerate() {
        let f = &ev.frames[i];
        let seq = &ev.data.sequences[f.seq];
        let (hist, shape) = layout::read_repr_range(&seq.paths.repr_h5, f.repr, f.repr + 1)?;
        let chw = (shape[1], shape[2], shape[3]);
        let to_draw = |b: &[EvalBox], scored: bool| -> Vec<DrawBox> {
            b.iter()
                .map(|b| {
                    let score = scored.then_some(b.class_confidence);
                    DrawBox::from_xywh(b.x, b.y, b.w, b.h, b.class_id as usize, score)
                })
                .collect()
        };
        let gt = to_draw(&f.gt, false);
        let img = super::predict::frame_picture(
            &hist,
            chw,
            &to_draw(&f.dt, true),
            Some(&gt),
            &cfg.dataset.classes,
        )?;
        let file = format!("{}_{k:03}.png", ev.split);
        picture::save_png(&img, &samples_dir.join(&file))?;
        index.push(serde_json::json!({
            "file": file,
            "sequence": seq.name,
            "t_us": f.t,
            "num_gt": f.gt.len(),
            "num_dt": f.dt.len(),
        }));
    }
    write_json_atomic(
        &samples_dir.join(format!("{}_samples.json", ev.split)),
        &serde_json::Value::Array(index),
    )
}

fn write_json_atomic(path: &Path, v: &impl serde::Serialize) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(v)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
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
    let stats = evdet_eval::STAT_NAMES
        .iter()
        .copied()
        .chain(["AP_small_classes", "agnostic/AP"]);
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
    write_json_atomic(json, m)?;
    println!("metrics written to {}", json.display());
    Ok(())
}

/// A run folder (its `checkpoints/best`, else `last`), a checkpoint folder, or a checkpoint's
/// `model.safetensors` → the checkpoint folder.
pub fn resolve_checkpoint(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_file() {
        let dir = p.parent().unwrap_or(Path::new("."));
        if dir.join("config.yaml").exists() {
            return Ok(dir.to_path_buf());
        }
        anyhow::bail!(
            "{}: no config.yaml beside this file (give a run or checkpoint folder)",
            p.display()
        );
    }
    if p.join("model.safetensors").exists() {
        return Ok(p.to_path_buf());
    }
    ["best", "last"]
        .iter()
        .map(|n| p.join("checkpoints").join(n))
        .find(|c| c.join("model.safetensors").exists())
        .with_context(|| {
            format!(
                "{}: neither a checkpoint folder (model.safetensors) nor a run folder with checkpoints/best or checkpoints/last",
                p.display()
            )
        })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let ckpt = match (&args.run, &args.checkpoint) {
        (_, Some(c)) => resolve_checkpoint(c)?,
        (Some(r), None) => resolve_checkpoint(r)?,
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
    let ev = evaluate_split(
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
    write_and_print(&ev.metrics, &json)?;
    let eval_dir = json.parent().unwrap_or(Path::new("."));
    write_analysis(&ev, &cfg, eval_dir)?;
    println!(
        "plot data and sample pictures written to {}",
        eval_dir.display()
    );
    Ok(())
}
