//! `evdet bench model`: detector forward latency per frame (backbone / FPN / head) and training-step
//! time and memory, as JSON, optionally next to the PyTorch reference's numbers.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use evdet_model::backbone::AttentionImpl;
use evdet_model::config::{ModelConfig, RvtPreset};
use evdet_model::detector::bench::{forward_latency, set_threads, train_step};
use serde_json::{json, Map, Value};

/// Time the detector: forward latency per frame at batch 1 and one training step.
///
/// Forward: eval mode without autograd, LSTM states carried, 2 warm-up frames, median of --reps,
/// split into backbone, FPN and head (convs + decoding), for every preset and FPN variant
/// (3-scale: stages 2-4; 4-scale: stages 1-4). Training step: batch --train-batch, sequence length
/// --seq-len at --train-hw: backbone over the sequence, FPN + head + SimOTA + losses on all frames
/// at once, backward, gradient clipping by value 1.0, AdamW (as RVT trains); peak memory is the
/// process's resident-set high-water mark on CPU. The same measurements of the PyTorch reference
/// come from `scripts/rvt_reference.py --json REF.json`; --reference REF.json adds its
/// numbers and our/reference ratios (below 1 = faster than the reference).
#[derive(clap::Args)]
#[command(after_help = "Examples:
  evdet bench model --threads 2
  evdet bench model --presets tiny --scales 3 --no-train
  RVT_ROOT=/tmp/rvt ~/.evdet/venv/bin/python scripts/rvt_reference.py --threads 2 --json /tmp/ref.json
  evdet bench model --threads 2 --reference /tmp/ref.json > bench_model.json")]
pub struct Args {
    /// Presets to time the forward pass of (tiny, small, base).
    #[arg(long, value_delimiter = ',', default_value = "tiny,small,base")]
    presets: Vec<String>,
    /// FPN variants: 3 (in_stages 2,3,4) and/or 4 (in_stages 1,2,3,4).
    #[arg(long, value_delimiter = ',', default_value = "3,4")]
    scales: Vec<usize>,
    /// Forward input height,width (eTraM ds2 padded: 384,640).
    #[arg(long, value_delimiter = ',', default_value = "384,640")]
    hw: Vec<i64>,
    /// Timed forward frames per configuration (median reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Presets to time a training step of.
    #[arg(long, value_delimiter = ',', default_value = "tiny")]
    train_presets: Vec<String>,
    /// Training input height,width.
    #[arg(long, value_delimiter = ',', default_value = "192,320")]
    train_hw: Vec<i64>,
    /// Training batch size.
    #[arg(long, default_value_t = 2)]
    train_batch: i64,
    /// Training sequence length (frames through the recurrent backbone per step).
    #[arg(long, default_value_t = 5)]
    seq_len: i64,
    /// Timed training steps (median reported; default max(3, reps / 2) as the reference script).
    #[arg(long)]
    train_reps: Option<usize>,
    /// Skip the training step.
    #[arg(long)]
    no_train: bool,
    /// Skip the forward latency (time only the training step).
    #[arg(long)]
    no_forward: bool,
    /// Attention kernel: `fused` (scaled_dot_product_attention, default) or `reference` (RVT's
    /// explicit ops).
    #[arg(long, default_value = "fused", value_parser = ["fused", "reference"])]
    attention: String,
    /// Intra-op CPU threads (the reference numbers use 2).
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// Classes of the head.
    #[arg(long, default_value_t = 8)]
    num_classes: usize,
    #[command(flatten)]
    device: crate::device::DeviceArg,
    /// JSON written by scripts/rvt_reference.py, to compare against.
    #[arg(long, value_name = "REF.json")]
    reference: Option<PathBuf>,
}

fn pair(v: &[i64], flag: &str) -> Result<[i64; 2]> {
    match v {
        [h, w] if *h > 0 && *w > 0 => Ok([*h, *w]),
        _ => bail!("{flag} takes two positive numbers, height,width (got {v:?})"),
    }
}

fn model(preset: &str, scales: usize, hw: [i64; 2], num_classes: usize) -> Result<ModelConfig> {
    let p: RvtPreset = preset
        .parse()
        .with_context(|| format!("--presets {preset}"))?;
    let cfg = ModelConfig::preset(p, num_classes, [hw[0] as usize, hw[1] as usize]);
    Ok(match scales {
        3 => cfg,
        4 => cfg.four_scale(),
        s => bail!("--scales {s}: use 3 or 4"),
    })
}

pub fn run(args: Args) -> Result<()> {
    let device = args.device.resolve()?;
    let hw = pair(&args.hw, "--hw")?;
    let train_hw = pair(&args.train_hw, "--train-hw")?;
    set_threads(args.threads);
    let reference: Option<Value> = match &args.reference {
        Some(p) => Some(
            serde_json::from_str(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{}: not JSON", p.display()))?,
        ),
        None => None,
    };

    let attention = if args.attention == "reference" {
        AttentionImpl::Reference
    } else {
        AttentionImpl::Fused
    };
    let forward_runs = if args.no_forward {
        0
    } else {
        args.presets.len() * args.scales.len()
    };
    let total = (forward_runs
        + if args.no_train {
            0
        } else {
            args.train_presets.len()
        }) as u64;
    let pb = crate::progress::bar(total, "runs");
    let mut forward = Map::new();
    for &scales in if args.no_forward {
        &[][..]
    } else {
        &args.scales[..]
    } {
        let mut per = Map::new();
        for preset in &args.presets {
            pb.set_message(format!("{preset} {scales}-scale forward"));
            let cfg = model(preset, scales, hw, args.num_classes)?;
            let t = forward_latency(&cfg, hw, device, args.reps, attention)
                .with_context(|| format!("timing the {preset} {scales}-scale forward"))?;
            per.insert(preset.clone(), serde_json::to_value(t)?);
            pb.inc(1);
        }
        forward.insert(format!("{scales}scale"), Value::Object(per));
    }
    let mut train = Map::new();
    if !args.no_train {
        let reps = args.train_reps.unwrap_or((args.reps / 2).max(3));
        for preset in &args.train_presets {
            pb.set_message(format!("{preset} training step"));
            let cfg = model(preset, 3, train_hw, args.num_classes)?;
            let t = train_step(
                &cfg,
                train_hw,
                args.train_batch,
                args.seq_len,
                device,
                reps,
                attention,
            )
            .with_context(|| format!("timing the {preset} training step"))?;
            train.insert(preset.clone(), serde_json::to_value(t)?);
            pb.inc(1);
        }
    }
    pb.finish_and_clear();

    let mut out = json!({
        "bench": "model",
        "engine": evdet_model::device::engine_summary(),
        "device": format!("{device:?}"),
        "threads": args.threads,
        "attention": args.attention,
        "forward_hw": hw,
        "forward": forward,
        "train_step": train,
    });
    if let Some(r) = reference {
        out["reference"] = r.clone();
        out["ratio_vs_reference"] = ratios(&out, &r);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// ours / reference for every number both have (the reference script times the 3-scale model).
fn ratios(ours: &Value, r: &Value) -> Value {
    let mut fwd = Map::new();
    if let (Some(o), Some(rf)) = (
        ours["forward"]["3scale"].as_object(),
        r["forward_384x640"].as_object(),
    ) {
        for (preset, t) in o {
            let mut m = Map::new();
            for key in ["backbone_ms", "fpn_ms", "head_ms", "total_ms"] {
                if let (Some(a), Some(b)) = (
                    t[key].as_f64(),
                    rf.get(preset).and_then(|x| x[key].as_f64()),
                ) {
                    m.insert(key.into(), json!(a / b));
                }
            }
            fwd.insert(preset.clone(), Value::Object(m));
        }
    }
    let mut tr = Map::new();
    if let Some(o) = ours["train_step"].as_object() {
        for (preset, t) in o {
            if let (Some(a), Some(b)) = (
                t["step_ms"].as_f64(),
                r["train_step"][preset]["step_ms"].as_f64(),
            ) {
                tr.insert(preset.clone(), json!(a / b));
            }
        }
    }
    json!({"forward_3scale": fwd, "train_step": tr})
}
