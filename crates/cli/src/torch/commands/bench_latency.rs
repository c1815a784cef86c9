//! `evdet bench latency`: streaming inference at batch 1 in evdet, TorchScript and ONNX Runtime
//! (`evdet_infer::latency`). `scripts/bench_latency.py` puts the PyTorch reference's eager forward
//! beside it in one run.

use anyhow::{Context, Result};
use evdet_infer::latency::{streaming_latency, LatencyOptions};
use std::path::PathBuf;

/// Per-window streaming latency: histogram, eager, TorchScript, ONNX Runtime; prints JSON.
///
/// Examples:
///   evdet bench latency                                 # tiny, small, base at 384x640, 2 threads
///   evdet bench latency --presets tiny --windows 100 --no-onnx
///   evdet bench latency --device cuda --half            # on a GPU machine, fp16
///
/// The histograms (window length, bins, downsampling, sensor size) are those of --config's dataset.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// RVT model sizes to time.
    #[arg(long, value_delimiter = ',', default_value = "tiny,small,base")]
    presets: Vec<String>,
    /// Network input height,width (eTraM's ds2 360x640 padded: 384,640).
    #[arg(long, default_value = "384,640", value_parser = evdet_cli::recording_args::parse_hw)]
    hw: (usize, usize),
    /// Timed windows per engine (after --warmup untimed ones).
    #[arg(long, default_value_t = 40)]
    windows: usize,
    /// Untimed windows first.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Intra-op threads of libtorch and ONNX Runtime.
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// Events per second of the synthetic camera stream (eTraM-like: about 3 M/s).
    #[arg(long, default_value_t = 3_300_000)]
    event_rate: usize,
    /// Skip ONNX Runtime (no Python needed).
    #[arg(long)]
    no_onnx: bool,
    /// fp16 weights and inputs (CUDA only; ONNX Runtime stays on CPU float32 and is skipped).
    #[arg(long)]
    half: bool,
    /// Experiment whose dataset sets the histograms: sensor size, window length, bins, downsampling.
    #[arg(long, default_value = "experiment/gen4/default.yaml")]
    config: PathBuf,
    /// The config folder (default: ./config, else the one next to the binary's repository).
    #[arg(long)]
    config_dir: Option<PathBuf>,
    #[command(flatten)]
    device: crate::device::DeviceArg,
}

pub fn run(args: Args) -> Result<()> {
    let device = args.device.resolve()?;
    let input_hw = [args.hw.0, args.hw.1];
    let cfg = crate::configs::load_config(&args.config, args.config_dir.as_deref(), &[])?;
    let window = evdet_infer::infer::window_params(&cfg).context("--config")?;
    let [sh, sw] = cfg.dataset.resolution_hw;
    let opts = LatencyOptions {
        presets: args.presets,
        input_hw,
        sensor_hw: (sh, sw),
        window,
        windows: args.windows,
        warmup: args.warmup,
        threads: args.threads,
        event_rate: args.event_rate,
        onnx_python: (!args.no_onnx).then(evdet_infer::export::python),
        half: args.half,
        device,
    };
    let scratch = tempfile::tempdir().context("creating a temporary folder")?;
    let pb = crate::progress::bar(opts.presets.len() as u64, "presets");
    let mut started = false;
    let result = streaming_latency(&opts, scratch.path(), &mut |preset| {
        if std::mem::replace(&mut started, true) {
            pb.inc(1);
        }
        pb.set_message(preset.to_string());
    })
    .context("timing streaming inference (give --no-onnx to skip ONNX Runtime)")?;
    pb.inc(1);
    pb.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
