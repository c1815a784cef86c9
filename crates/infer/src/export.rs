//! Deployment files: the detector's streaming step as TorchScript, traced from this Rust model
//! through `evdet-jit` with its weights frozen in, and as ONNX, converted from the TorchScript file
//! by `torch.onnx.export` in a small embedded Python script. Both take the histogram and the LSTM
//! states and return the decoded head outputs and the new states; a JSON sidecar (`<file>.json`)
//! says how to feed and read them.
//!
//! NMS stays outside the graph, deliberately: its output size depends on the data (a traced graph
//! would bake one size in), ONNX's `NonMaxSuppression` is not torchvision's class-aware NMS that the
//! reference's numbers come from, deployment stacks bring their own (TensorRT's EfficientNMS plugin,
//! ONNX Runtime's contrib ops), and the score threshold is the user's choice (0.1 for display,
//! 0.001 for evaluation). The sidecar states the rule so any runtime reproduces `evdet predict`.

use evdet_config::ExperimentConfig;
use evdet_model::backbone::LstmState;
use evdet_model::detector::Detector;
use evdet_model::postprocess::PostprocessConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Input(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the model could not be traced: {0}")]
    Trace(#[from] evdet_jit::JitError),
    #[error("ONNX conversion: {0}")]
    Onnx(String),
    #[error(transparent)]
    Tch(#[from] tch::TchError),
}

/// File format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    TorchScript,
    Onnx,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "torchscript" | "ts" => Ok(Self::TorchScript),
            "onnx" => Ok(Self::Onnx),
            o => Err(format!("unknown export format '{o}' (torchscript or onnx)")),
        }
    }
}

impl ExportFormat {
    /// The format an output name asks for: `.pt` / `.pth` / `.torchscript` → TorchScript, `.onnx` →
    /// ONNX; any other name is refused rather than filled with TorchScript under a misleading
    /// extension.
    pub fn of_path(out: &Path) -> Result<Self, ExportError> {
        let ext = out
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("onnx") => Ok(ExportFormat::Onnx),
            Some("pt" | "pth" | "torchscript" | "ts") => Ok(ExportFormat::TorchScript),
            other => Err(ExportError::Input(format!(
                "{}: cannot tell the format from {}; evdet exports TorchScript (.pt) and ONNX (.onnx) — name the file so, or give --format torchscript|onnx (TensorRT, TFLite, OpenVINO and CoreML convert from the ONNX file)",
                out.display(),
                other.map_or("a name without extension".to_string(), |e| format!("the extension .{e}"))
            ))),
        }
    }
}

/// Refuses an output that exists (unless `overwrite`) or is a folder.
pub fn check_out(out: &Path, overwrite: bool) -> Result<(), ExportError> {
    if out.exists() && !overwrite {
        return Err(ExportError::Input(format!(
            "{} already exists (use --overwrite to replace it)",
            out.display()
        )));
    }
    if out.is_dir() {
        return Err(ExportError::Input(format!(
            "{} is a folder; give a file name",
            out.display()
        )));
    }
    Ok(())
}

/// Exports an opened checkpoint (consumed: with `req.half` its weights are converted in place).
pub fn export_checkpoint(
    opened: crate::checkpoint::Opened,
    req: &ExportRequest,
) -> Result<Sidecar, ExportError> {
    // The detector's tensors are the store's variables: converting the store converts them.
    let mut vs = opened.vs;
    if req.half {
        vs.half();
    }
    // Weights become constants of the traced graph, which must not require grad.
    vs.freeze();
    export(&opened.detector, &opened.config, &opened.dir, req)
}

impl Sidecar {
    /// What `evdet export` prints: the source, format, shapes and where the files went.
    pub fn lines(&self, source: &Path, req: &ExportRequest) -> Vec<String> {
        vec![
            format!(
                "{} ({}, input {:?} {}, {} states, detections {:?}) -> {}",
                source.display(),
                match req.format {
                    ExportFormat::TorchScript => "TorchScript".to_string(),
                    ExportFormat::Onnx => format!("ONNX opset {}", req.opset),
                },
                self.input_shape,
                self.dtype,
                self.state_shapes.len(),
                self.detections_shape,
                req.out.display()
            ),
            format!("sidecar -> {}", sidecar_path(&req.out).display()),
        ]
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub out: PathBuf,
    pub format: ExportFormat,
    /// Network input `(H, W)`; `None`: the checkpoint's, rounded up to the input multiple.
    pub input_hw: Option<(usize, usize)>,
    pub batch: usize,
    /// fp16 weights and inputs (CUDA only).
    pub half: bool,
    pub device: Device,
    /// The Python with torch and onnx for the ONNX conversion.
    pub python: PathBuf,
    /// ONNX opset.
    pub opset: u32,
}

/// The `<file>.json` written beside an export: everything a runtime needs to use the file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sidecar {
    pub format: ExportFormat,
    pub evdet_version: String,
    /// sha256 of the source checkpoint's `model.safetensors`.
    pub checkpoint_sha256: String,
    pub checkpoint: String,
    pub onnx_opset: Option<u32>,
    /// The histogram input `[N, C, H, W]`.
    pub input_shape: [usize; 4],
    pub dtype: String,
    /// Argument names in order: the histogram, then `h1, c1, …, h4, c4`.
    pub input_names: Vec<String>,
    /// One shape per state argument, in argument order.
    pub state_shapes: Vec<[usize; 4]>,
    /// The model output first, then the new states in the order of the state arguments.
    pub output_names: Vec<String>,
    /// Shape of `detections`: `[N, anchors, 5 + classes]`.
    pub detections_shape: [usize; 3],
    pub detections_layout: String,
    pub classes: Vec<String>,
    pub strides: Vec<usize>,
    pub score_rule: String,
    pub nms: String,
    pub preprocessing: String,
    pub states: String,
}

/// `(H, W)` for an export: `given` must be a multiple of `multiple` (per side: the largest stride
/// times the attention partition, what the backbone would pad to); `None` rounds the checkpoint's
/// input up.
pub fn export_input_hw(
    given: Option<(usize, usize)>,
    checkpoint_hw: (usize, usize),
    multiple: (usize, usize),
) -> Result<(usize, usize), ExportError> {
    let up = |v: usize, m: usize| v.max(1).div_ceil(m) * m;
    let (mh, mw) = multiple;
    match given {
        None => Ok((up(checkpoint_hw.0, mh), up(checkpoint_hw.1, mw))),
        Some((h, w)) if h > 0 && w > 0 && h % mh == 0 && w % mw == 0 => Ok((h, w)),
        Some((h, w)) => {
            let near = |v: usize, m: usize| {
                let lo = v / m * m;
                if lo == 0 || lo == v {
                    format!("{}", up(v, m))
                } else {
                    format!("{lo} or {}", up(v, m))
                }
            };
            Err(ExportError::Input(format!(
                "input size {h}x{w} does not fit the network: height must be a multiple of {mh} \
                 and width of {mw} (the largest stride times the attention window partition); \
                 nearest: height {}, width {}",
                near(h, mh),
                near(w, mw)
            )))
        }
    }
}

/// sha256 (hex) of a file.
pub fn file_sha256(path: &Path) -> Result<String, ExportError> {
    use sha2::Digest;
    let bytes = std::fs::read(path).map_err(|e| ExportError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    Ok(format!("{:x}", sha2::Sha256::digest(&bytes)))
}

/// The states of one step at zero, shaped as the detector returns them for a `[N, C, H, W]` input.
pub fn zero_states(det: &Detector, input: &Tensor) -> Vec<Tensor> {
    tch::no_grad(|| {
        let (_, states) = det.forward_backbone_step(input, None, None, false);
        states
            .iter()
            .flat_map(|s| [s.h.zeros_like().contiguous(), s.c.zeros_like().contiguous()])
            .collect()
    })
}

/// Names of an export's inputs (`histogram`, `h1`, `c1`, …) and outputs (`detections`, `h1_out`, …)
/// for a backbone of `stages` recurrent stages.
pub fn io_names(stages: usize) -> (Vec<String>, Vec<String>) {
    let states: Vec<String> = (1..=stages)
        .flat_map(|i| [format!("h{i}"), format!("c{i}")])
        .collect();
    let inputs = std::iter::once("histogram".to_string())
        .chain(states.iter().cloned())
        .collect();
    let outputs = std::iter::once("detections".to_string())
        .chain(states.iter().map(|n| format!("{n}_out")))
        .collect();
    (inputs, outputs)
}

/// The Python interpreter that runs torch.onnx and ONNX Runtime: `EVDET_PYTHON`, else the venv of
/// `scripts/setup.sh` (`$EVDET_VENV` or `~/.evdet/venv`), else `python3` on the PATH.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("EVDET_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = std::env::var_os("EVDET_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".evdet/venv")));
    venv.map(|v| v.join("bin/python"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// One streaming step as the exported function computes it: `inputs` = histogram, h1, c1, …;
/// returns decoded outputs, h1', c1', ….
pub fn step(det: &Detector, inputs: &[Tensor]) -> Vec<Tensor> {
    let states: Vec<LstmState> = inputs[1..]
        .chunks(2)
        .map(|hc| LstmState {
            h: hc[0].shallow_clone(),
            c: hc[1].shallow_clone(),
        })
        .collect();
    let (feats, new) = det.forward_backbone_step(&inputs[0], Some(&states), None, false);
    let out = det.forward_detect(&feats, false);
    let mut v = vec![out.decoded];
    for s in new {
        v.push(s.h);
        v.push(s.c);
    }
    v
}

/// Writes the export and its sidecar; returns the sidecar. Files appear under their names only when
/// complete.
pub fn export(
    det: &Detector,
    cfg: &ExperimentConfig,
    checkpoint_dir: &Path,
    req: &ExportRequest,
) -> Result<Sidecar, ExportError> {
    if req.batch == 0 {
        return Err(ExportError::Input("--batch must be at least 1".into()));
    }
    if req.half && !req.device.is_cuda() {
        return Err(ExportError::Input(
            "--half needs --device cuda (libtorch's CPU half-precision convolutions are slow or \
             missing)"
                .into(),
        ));
    }
    let rp = crate::infer::window_params(cfg).map_err(|e| ExportError::Input(e.to_string()))?;
    let channels = 2 * rp.nbins;
    let strides = det.config().head_strides();
    let [mh, mw] = det.backbone.input_multiple();
    let (h, w) = export_input_hw(req.input_hw, cfg.dataset.input_hw(), (mh, mw))?;
    let kind = if req.half { Kind::Half } else { Kind::Float };
    let model_file = checkpoint_dir.join(crate::checkpoint::MODEL_FILE);
    let sha = file_sha256(&model_file)?;
    if let Some(parent) = req.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ExportError::Io {
            path: parent.to_path_buf(),
            source: e,
        })?;
    }

    let x = Tensor::zeros(
        [req.batch as i64, channels as i64, h as i64, w as i64],
        (kind, req.device),
    );
    let mut inputs = vec![x.shallow_clone()];
    inputs.extend(zero_states(det, &x));
    let state_shapes: Vec<[usize; 4]> = inputs[1..]
        .iter()
        .map(|t| {
            let s = t.size();
            [s[0] as usize, s[1] as usize, s[2] as usize, s[3] as usize]
        })
        .collect();
    let (input_names, output_names) = io_names(state_shapes.len() / 2);
    let decoded_shape = tch::no_grad(|| step(det, &inputs))[0].size();

    let ts_final = match req.format {
        ExportFormat::TorchScript => req.out.clone(),
        ExportFormat::Onnx => req.out.with_extension("torchscript.tmp.pt"),
    };
    let ts_tmp = evdet_atomic::tmp_path(&ts_final);
    tch::no_grad(|| evdet_jit::trace_to_file(&ts_tmp, &inputs, |xs| step(det, xs)))?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| ExportError::Io { path, source: e }
    };
    let mut sidecar = Sidecar {
        format: req.format,
        evdet_version: env!("CARGO_PKG_VERSION").to_string(),
        checkpoint_sha256: sha,
        checkpoint: checkpoint_dir.display().to_string(),
        onnx_opset: None,
        input_shape: [req.batch, channels, h, w],
        dtype: if req.half { "float16" } else { "float32" }.into(),
        input_names,
        state_shapes,
        output_names,
        detections_shape: [
            decoded_shape[0] as usize,
            decoded_shape[1] as usize,
            decoded_shape[2] as usize,
        ],
        detections_layout: "per anchor: cx, cy, w, h (network-input pixels), objectness \
                            (sigmoid), one probability per class (sigmoid); anchors level by \
                            level, finest stride first, row-major"
            .into(),
        classes: cfg.dataset.classes.clone(),
        strides: strides.clone(),
        score_rule: format!(
            "score = objectness × the best class probability; keep score ≥ threshold \
             (evdet predict: {}; evaluation: {})",
            PostprocessConfig::TRAIN_VALIDATION.confidence_threshold,
            PostprocessConfig::REPORTED.confidence_threshold
        ),
        nms: format!(
            "not in the graph: class-aware greedy NMS on (x1, y1, x2, y2) = (cx ∓ w/2, cy ∓ h/2) \
             with IoU > {} suppressed, boxes in decreasing score order (torchvision \
             batched_nms); boxes × {} give sensor pixels",
            det.config().postprocess.nms_threshold,
            rp.scale()
        ),
        preprocessing: format!(
            "stacked histogram of the events in [t − {} ms, t] (RVT: {} bins per polarity, \
             channels 0–{} OFF then ON, counts clipped to 10{}), as {}; zero-padded at the bottom \
             and right to {h}×{w}",
            rp.dt_ms,
            rp.nbins,
            rp.nbins - 1,
            if rp.downsample_by_factor_2 {
                ", then odd rows and columns (ds2)"
            } else {
                ""
            },
            if req.half { "float16" } else { "float32" },
        ),
        states: "zeros at the start of a recording; afterwards the *_out tensors of the previous \
                 window, in argument order"
            .into(),
    };
    match req.format {
        ExportFormat::TorchScript => {
            evdet_atomic::commit(&ts_tmp, &req.out).map_err(io(&req.out))?;
        }
        ExportFormat::Onnx => {
            let opset = req.opset;
            sidecar.onnx_opset = Some(opset);
            let r = torchscript_to_onnx(
                &ts_tmp,
                &req.out,
                &sidecar.input_names,
                &sidecar.output_names,
                opset,
                &req.python,
                &inputs,
            );
            let _ = std::fs::remove_file(&ts_tmp);
            r?;
        }
    }
    let json =
        serde_json::to_string_pretty(&sidecar).map_err(|e| ExportError::Input(e.to_string()))?;
    let side = sidecar_path(&req.out);
    evdet_atomic::write(&side, format!("{json}\n").as_bytes()).map_err(io(&side))?;
    Ok(sidecar)
}

/// `m.pt` → `m.pt.json`.
pub fn sidecar_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

const ONNX_SCRIPT: &str = include_str!("export_onnx.py");

/// Converts a TorchScript export to ONNX at `out` (written whole or not at all) with `python`
/// running torch.onnx on example `inputs` of the traced shapes.
pub fn torchscript_to_onnx(
    ts: &Path,
    out: &Path,
    input_names: &[String],
    output_names: &[String],
    opset: u32,
    python: &Path,
    inputs: &[Tensor],
) -> Result<(), ExportError> {
    let dir = tempfile::tempdir().map_err(|e| ExportError::Io {
        path: std::env::temp_dir(),
        source: e,
    })?;
    let script = dir.path().join("export_onnx.py");
    let spec = dir.path().join("spec.json");
    std::fs::write(&script, ONNX_SCRIPT).map_err(|e| ExportError::Io {
        path: script.clone(),
        source: e,
    })?;
    // One temporary name for the script to write and for the rename after it.
    let out_tmp = evdet_atomic::tmp_path(out);
    let spec_json = serde_json::json!({
        "torchscript": ts,
        "out": &out_tmp,
        "opset": opset,
        "input_names": input_names,
        "output_names": output_names,
        "input_shapes": inputs.iter().map(|t| t.size()).collect::<Vec<_>>(),
        "dtype": if inputs[0].kind() == Kind::Half { "float16" } else { "float32" },
        "device": if inputs[0].device().is_cuda() { "cuda" } else { "cpu" },
    });
    std::fs::write(&spec, spec_json.to_string()).map_err(|e| ExportError::Io {
        path: spec.clone(),
        source: e,
    })?;
    let o = std::process::Command::new(python)
        .arg(&script)
        .arg(&spec)
        .output()
        .map_err(|e| {
            ExportError::Onnx(format!(
                "cannot run {} (set EVDET_PYTHON to a Python with torch, onnx): {e}",
                python.display()
            ))
        })?;
    if !o.status.success() {
        let _ = std::fs::remove_file(&out_tmp);
        return Err(ExportError::Onnx(
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .rfind(|l| !l.contains("Warning") && !l.trim().is_empty())
                .unwrap_or("the conversion script failed")
                .to_string(),
        ));
    }
    evdet_atomic::commit(&out_tmp, out).map_err(|e| ExportError::Io {
        path: out.to_path_buf(),
        source: e,
    })
}
