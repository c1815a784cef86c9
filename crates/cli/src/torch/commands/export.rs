//! `evdet export`: a checkpoint as a TorchScript or ONNX file for deployment, with explicit
//! recurrent state and a JSON sidecar (`<file>.json`) describing inputs, outputs and the
//! pre/post-processing (see `evdet_infer::export`).

use anyhow::Context;
use evdet_infer::checkpoint;
use evdet_infer::export::{self, ExportFormat, ExportRequest};
use std::path::PathBuf;

/// Export a checkpoint to TorchScript or ONNX with explicit LSTM states, for deployment.
///
/// The file's function: (histogram [N, C, H, W], h1, c1, …, h4, c4) → (detections [N, A, 5+C],
/// h1', c1', …, h4', c4'). States start at zero and are fed back window after window. NMS is not in
/// the graph (the sidecar says why, and the rule that reproduces `evdet predict`).
///
/// Examples:
///   evdet export --checkpoint runs/synthetic/mini/4scale_sizeaware_tiny --out mini.pt
///   evdet export --checkpoint checkpoints/rvt-etram --out rvt.onnx --input-size 384 640
///   evdet export --checkpoint runs/x --out x_fp16.pt --half --device cuda
///
/// Writes FILE and FILE.json (input_shape, state_shapes, output_names, classes, strides, the score
/// rule, pre/post-processing, evdet version, the checkpoint's sha256). ONNX runs Python (EVDET_PYTHON,
/// else ~/.evdet/venv/bin/python) with torch and onnx: `pip install onnx onnxruntime`.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Run folder (checkpoints/best, else last), checkpoint folder, or its model.safetensors.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Output file (.pt for TorchScript, .onnx for ONNX).
    #[arg(long)]
    pub out: PathBuf,
    /// torchscript or onnx (default: from --out's extension).
    #[arg(long)]
    pub format: Option<ExportFormat>,
    /// Network input height and width, multiples of the largest stride (default: the checkpoint's
    /// input rounded up, e.g. 384 640 for eTraM's 360x640).
    #[arg(long, num_args = 2, value_names = ["H", "W"])]
    pub input_size: Option<Vec<usize>>,
    /// Batch size baked into the file (traced shapes are fixed).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// fp16 weights and inputs (with --device cuda).
    #[arg(long)]
    pub half: bool,
    /// ONNX opset.
    #[arg(long, default_value_t = 17)]
    pub opset: u32,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub device: crate::device::DeviceArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let format = match args.format {
        Some(f) => f,
        None => ExportFormat::of_path(&args.out)?,
    };
    export::check_out(&args.out, args.overwrite)?;
    let device = args.device.resolve()?;
    let opened = checkpoint::open(&args.checkpoint, device, |_| -> anyhow::Result<()> {
        Ok(())
    })?;
    let source = opened.dir.clone();
    let req = ExportRequest {
        out: args.out.clone(),
        format,
        input_hw: args.input_size.as_ref().map(|v| (v[0], v[1])),
        batch: args.batch,
        half: args.half,
        device,
        python: export::python(),
        opset: args.opset,
    };
    let side = export::export_checkpoint(opened, &req)
        .with_context(|| format!("exporting {}", source.display()))?;
    side.lines(&source, &req)
        .iter()
        .for_each(|l| println!("{l}"));
    Ok(())
}
