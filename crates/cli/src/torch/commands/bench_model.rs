//! `evdet bench model`: detector forward latency per frame (backbone / FPN / head) and training-step
//! time and memory, as JSON, optionally next to the PyTorch reference's numbers.

use std::path::PathBuf;

use anyhow::{Context, Result};
use evdet_model::backbone::AttentionImpl;
use evdet_model::detector::bench::{run_model_bench, ModelBenchOptions};

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
  evdet bench model --no-forward --precision bf16      # the training step under bf16 autocast
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
    #[arg(long, default_value = "384,640", value_parser = evdet_cli::recording_args::parse_hw)]
    hw: (usize, usize),
    /// Timed forward frames per configuration (median reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Presets to time a training step of.
    #[arg(long, value_delimiter = ',', default_value = "tiny")]
    train_presets: Vec<String>,
    /// Training input height,width.
    #[arg(long, default_value = "192,320", value_parser = evdet_cli::recording_args::parse_hw)]
    train_hw: (usize, usize),
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
    #[arg(long, default_value = "fused", value_name = "fused|reference")]
    attention: AttentionImpl,
    /// Autocast of the forward pass (latency and training step): fp32, bf16 or fp16 (the loss stays float32).
    /// bf16 pays on CPUs with bf16 units (`lscpu`: avx512_bf16, amx_bf16) and on recent GPUs.
    #[arg(long, default_value = "fp32", value_name = "fp32|bf16|fp16")]
    precision: evdet_model::amp::Precision,
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

/// `(h, w)` as the model's sizes.
fn pair((h, w): (usize, usize)) -> [i64; 2] {
    [h as i64, w as i64]
}

pub fn run(args: Args) -> Result<()> {
    let reference: Option<serde_json::Value> = match &args.reference {
        Some(p) => Some(
            serde_json::from_str(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{}: not JSON", p.display()))?,
        ),
        None => None,
    };
    let opts = ModelBenchOptions {
        presets: args.presets,
        scales: args.scales,
        hw: pair(args.hw),
        reps: args.reps,
        train_presets: args.train_presets,
        train_hw: pair(args.train_hw),
        train_batch: args.train_batch,
        seq_len: args.seq_len,
        train_reps: args.train_reps,
        forward: !args.no_forward,
        train: !args.no_train,
        attention: args.attention,
        precision: args.precision,
        threads: args.threads,
        num_classes: args.num_classes,
        device: args.device.resolve()?,
    };
    let pb = crate::progress::bar(opts.runs() as u64, "runs");
    let mut started = false;
    let out = run_model_bench(&opts, reference.as_ref(), &mut |what| {
        if std::mem::replace(&mut started, true) {
            pb.inc(1);
        }
        pb.set_message(what.to_string());
    })?;
    pb.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
