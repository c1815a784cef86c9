//! `evdet export`: a checkpoint as a TorchScript or ONNX file for deployment, with explicit
//! recurrent state and a JSON sidecar (`<file>.json`) describing inputs, outputs and the
//! pre/post-processing (see `evdet_infer::export`).

use anyhow::{bail, Context};
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

/// The format an output name asks for: `.pt` / `.pth` / `.torchscript` → TorchScript, `.onnx` → ONNX;
/// any other name is refused rather than filled with TorchScript under a misleading extension.
fn format_of(out: &std::path::Path) -> anyhow::Result<ExportFormat> {
    let ext = out
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("onnx") => Ok(ExportFormat::Onnx),
        Some("pt" | "pth" | "torchscript" | "ts") => Ok(ExportFormat::TorchScript),
        other => bail!(
            "{}: cannot tell the format from {}; evdet exports TorchScript (.pt) and ONNX (.onnx) — name the file so, or give --format torchscript|onnx (TensorRT, TFLite, OpenVINO and CoreML convert from the ONNX file)",
            out.display(),
            other.map_or("a name without extension".to_string(), |e| format!("the extension .{e}"))
        ),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let format = match args.format {
        Some(f) => f,
        None => format_of(&args.out)?,
    };
    if args.out.exists() && !args.overwrite {
        bail!(
            "{} already exists (use --overwrite to replace it)",
            args.out.display()
        );
    }
    if args.out.is_dir() {
        bail!("{} is a folder; give a file name", args.out.display());
    }
    let device = args.device.resolve()?;
    let opened = checkpoint::open(&args.checkpoint, device, |_| -> anyhow::Result<()> {
        Ok(())
    })?;
    let input_hw = args.input_size.as_ref().map(|v| (v[0], v[1]));
    let det = opened.detector;
    // The detector's tensors are the store's variables: converting the store converts them.
    let mut vs = opened.vs;
    if args.half {
        vs.half();
    }
    // Weights become constants of the traced graph, which must not require grad.
    vs.freeze();
    let req = ExportRequest {
        out: args.out.clone(),
        format,
        input_hw,
        batch: args.batch,
        half: args.half,
        device,
        python: evdet_infer::export::python(),
        opset: args.opset,
    };
    let side = export::export(&det, &opened.config, &opened.dir, &req)
        .with_context(|| format!("exporting {}", opened.dir.display()))?;
    let sidecar = export::sidecar_path(&args.out);
    println!(
        "{} ({}, input {:?} {}, {} states, detections {:?}) -> {}",
        opened.dir.display(),
        match format {
            ExportFormat::TorchScript => "TorchScript".to_string(),
            ExportFormat::Onnx => format!("ONNX opset {}", args.opset),
        },
        side.input_shape,
        side.dtype,
        side.state_shapes.len(),
        side.detections_shape,
        args.out.display()
    );
    println!("sidecar -> {}", sidecar.display());
    drop(vs);
    Ok(())
}
