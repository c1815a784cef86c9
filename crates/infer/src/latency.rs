//! Streaming inference latency at batch 1, behind `evdet bench latency`: window after window with the
//! LSTM states carried, as a deployment runs it. Events → stacked histogram (timed apart, with the
//! window length, bins and downsampling of an experiment's dataset), then the network in evdet
//! (eager), as its exported TorchScript file run from Rust, and as its ONNX file in ONNX Runtime (a
//! Python subprocess running `ort_latency.py`). Per-window p50 / p95 / p99 and the peak resident
//! memory of each engine.

use crate::export::{self, ExportError};
use evdet_events::histogram::{HistogramSpec, StackedHistogram};
use evdet_events::windows::WindowParams;
use evdet_model::detector::bench::{preset_model, set_threads, sync};
use evdet_model::detector::Detector;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, IValue, Kind, Tensor};

const ORT_SCRIPT: &str = include_str!("ort_latency.py");

#[derive(Debug, thiserror::Error)]
pub enum LatencyError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Config(#[from] evdet_model::config::ConfigError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Trace(#[from] evdet_jit::JitError),
    #[error(transparent)]
    Tch(#[from] tch::TchError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ONNX Runtime timing: {0}")]
    OnnxRuntime(String),
}

/// What `streaming_latency` measures.
#[derive(Debug, Clone)]
pub struct LatencyOptions {
    /// RVT model sizes (tiny, small, base).
    pub presets: Vec<String>,
    /// Network input height and width (the histogram is padded at the bottom and right to it).
    pub input_hw: [usize; 2],
    /// Sensor height and width the events are drawn on.
    pub sensor_hw: (usize, usize),
    /// Window length, bins and downsampling of the histograms.
    pub window: WindowParams,
    pub windows: usize,
    pub warmup: usize,
    /// Intra-op threads of libtorch and ONNX Runtime.
    pub threads: i32,
    /// Events per second of the synthetic camera stream.
    pub event_rate: usize,
    /// The Python that converts to ONNX and runs ONNX Runtime; `None` skips ONNX Runtime.
    pub onnx_python: Option<PathBuf>,
    /// fp16 weights and inputs (CUDA only; ONNX Runtime is then skipped).
    pub half: bool,
    pub device: Device,
}

/// p50 / p95 / p99 / mean of per-window milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub mean: f64,
    pub windows: usize,
}

impl Percentiles {
    /// Of a non-empty set of milliseconds.
    pub fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            v.get(((v.len().saturating_sub(1)) as f64 * q).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        Percentiles {
            p50: at(0.5),
            p95: at(0.95),
            p99: at(0.99),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            windows: v.len(),
        }
    }
}

fn peak_rss_mib() -> Option<f64> {
    evdet_model::process_memory::read().map(|m| m.peak_mib)
}

/// Times every engine on every preset; `on_preset` is called before each. `scratch` holds the
/// exported files. Returns the JSON `evdet bench latency` prints.
pub fn streaming_latency(
    opts: &LatencyOptions,
    scratch: &Path,
    on_preset: &mut dyn FnMut(&str),
) -> Result<Value, LatencyError> {
    let [h, w] = opts.input_hw;
    if opts.half && !opts.device.is_cuda() {
        return Err(LatencyError::Input("--half needs --device cuda".into()));
    }
    if opts.windows == 0 {
        return Err(LatencyError::Input("--windows must be at least 1".into()));
    }
    set_threads(opts.threads);
    let device = opts.device;
    let kind = if opts.half { Kind::Half } else { Kind::Float };
    let n_win = opts.warmup + opts.windows;

    // Camera-like events over n_win windows, histograms as preprocessing computes them, timed per window.
    let dt_us = opts.window.dt_ms as i64 * 1000;
    let events_per_window = (opts.event_rate as i64 * dt_us / 1_000_000) as usize;
    let events = evdet_events::testdata::camera_like(
        events_per_window * n_win,
        dt_us * n_win as i64,
        opts.sensor_hw,
        3,
    );
    let mut hist = StackedHistogram::new(HistogramSpec {
        nbins: opts.window.nbins,
        count_cutoff: 10,
        height: opts.sensor_hw.0,
        width: opts.sensor_hw.1,
        downsample_by_factor_2: opts.window.downsample_by_factor_2,
    });
    let (oh, ow) = hist.spec().out_hw();
    let channels = hist.spec().channels();
    if oh > h || ow > w {
        return Err(LatencyError::Input(format!(
            "--hw {h},{w} is smaller than the {oh}x{ow} histogram of a {}x{} sensor",
            opts.sensor_hw.0, opts.sensor_hw.1
        )));
    }
    let mut hists: Vec<Vec<u8>> = Vec::with_capacity(n_win);
    let mut hist_ms = Vec::new();
    for k in 0..n_win as i64 {
        let t0 = Instant::now();
        let a = events.t.partition_point(|&t| t < k * dt_us);
        let b = events.t.partition_point(|&t| t <= (k + 1) * dt_us);
        let hbytes = hist.compute_sorted(events.slice(a..b)).to_vec();
        if k as usize >= opts.warmup {
            hist_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        hists.push(hbytes);
    }
    drop(events);
    let to_input = |hb: &[u8]| -> Tensor {
        let x = Tensor::from_slice(hb)
            .view([1, channels as i64, oh as i64, ow as i64])
            .to_device(device)
            .to_kind(kind);
        x.constant_pad_nd([0, (w - ow) as i64, 0, (h - oh) as i64])
    };

    let mut per = BTreeMap::new();
    for preset in &opts.presets {
        on_preset(preset);
        let cfg = preset_model(preset, 3, [h as i64, w as i64], 8)?;
        let (mut vs, det) = Detector::build(&cfg, device)?;
        if opts.half {
            vs.half();
        }
        vs.freeze();
        let mut out = serde_json::Map::new();

        // evdet eager, states carried as `evdet predict` carries them.
        evdet_model::process_memory::reset_peak();
        let mut ms = Vec::new();
        tch::no_grad(|| {
            let mut states = None;
            for (k, hb) in hists.iter().enumerate() {
                let t0 = Instant::now();
                let x = to_input(hb);
                let (feats, s) = det.forward_backbone_step(&x, states.as_deref(), None, false);
                let d = det.forward_detect(&feats, false).decoded;
                sync(device);
                std::hint::black_box(&d);
                states = Some(s);
                if k >= opts.warmup {
                    ms.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
        });
        out.insert("eager_ms".into(), json!(Percentiles::of(ms)));
        out.insert("eager_peak_rss_mib".into(), json!(peak_rss_mib()));

        // The exported TorchScript file, run from Rust.
        let x0 = to_input(&hists[0]);
        let mut inputs = vec![x0.shallow_clone()];
        inputs.extend(export::zero_states(&det, &x0));
        let ts = scratch.join(format!("{preset}.pt"));
        tch::no_grad(|| evdet_jit::trace_to_file(&ts, &inputs, |xs| export::step(&det, xs)))?;
        let module = tch::CModule::load_on_device(&ts, device)?;
        evdet_model::process_memory::reset_peak();
        let mut ms = Vec::new();
        tch::no_grad(|| -> Result<(), LatencyError> {
            let mut states: Vec<Tensor> = inputs[1..].iter().map(|t| t.zeros_like()).collect();
            for (k, hb) in hists.iter().enumerate() {
                let t0 = Instant::now();
                let mut a = vec![IValue::Tensor(to_input(hb))];
                a.extend(states.iter().map(|s| IValue::Tensor(s.shallow_clone())));
                let IValue::Tuple(o) = module.forward_is(&a)? else {
                    return Err(LatencyError::Input(
                        "the TorchScript file did not return a tuple".into(),
                    ));
                };
                sync(device);
                states = o
                    .into_iter()
                    .skip(1)
                    .filter_map(|v| match v {
                        IValue::Tensor(t) => Some(t),
                        _ => None,
                    })
                    .collect();
                if k >= opts.warmup {
                    ms.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            Ok(())
        })?;
        out.insert("torchscript_ms".into(), json!(Percentiles::of(ms)));
        out.insert("torchscript_peak_rss_mib".into(), json!(peak_rss_mib()));
        drop(module);

        if let Some(python) = opts.onnx_python.as_deref().filter(|_| !opts.half) {
            let (ms, peak) = onnx_runtime(python, &ts, &inputs, opts, scratch, preset)?;
            out.insert("onnxruntime_ms".into(), json!(Percentiles::of(ms)));
            out.insert("onnxruntime_peak_rss_mib".into(), peak);
        }
        per.insert(preset.clone(), Value::Object(out));
    }
    Ok(json!({
        "bench": "latency",
        "engine": evdet_model::device::engine_summary(),
        "device": format!("{device:?}"),
        "dtype": if opts.half { "float16" } else { "float32" },
        "threads": opts.threads,
        "input_hw": [h, w],
        "sensor_hw": [opts.sensor_hw.0, opts.sensor_hw.1],
        "window_ms": opts.window.dt_ms,
        "nbins": opts.window.nbins,
        "downsample_by_factor_2": opts.window.downsample_by_factor_2,
        "batch": 1,
        "windows": opts.windows,
        "warmup": opts.warmup,
        "events_per_window": events_per_window,
        "histogram_ms": Percentiles::of(hist_ms),
        "histogram": format!(
            "events → RVT stacked histogram at {}x{}{} (one thread), per {} ms window",
            opts.sensor_hw.1,
            opts.sensor_hw.0,
            if opts.window.downsample_by_factor_2 { " then ds2" } else { "" },
            opts.window.dt_ms
        ),
        "presets": per,
    }))
}

/// Converts the TorchScript file `ts` to ONNX and times it in ONNX Runtime (CPU, float32):
/// (per-window milliseconds, the subprocess's peak resident memory in MiB).
fn onnx_runtime(
    python: &Path,
    ts: &Path,
    inputs: &[Tensor],
    opts: &LatencyOptions,
    scratch: &Path,
    preset: &str,
) -> Result<(Vec<f64>, Value), LatencyError> {
    let (names, outs) = export::io_names(inputs.len() / 2);
    let onnx = scratch.join(format!("{preset}.onnx"));
    let cpu_inputs: Vec<Tensor> = inputs.iter().map(|t| t.to_device(Device::Cpu)).collect();
    export::torchscript_to_onnx(ts, &onnx, &names, &outs, 17, python, &cpu_inputs)?;
    let spec = scratch.join("ort.json");
    let script = scratch.join("ort_latency.py");
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|source| LatencyError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    write(&script, ORT_SCRIPT)?;
    let [h, w] = opts.input_hw;
    write(
        &spec,
        &json!({
            "model": onnx, "threads": opts.threads, "warmup": opts.warmup,
            "windows": opts.windows, "input_shape": [1, inputs[0].size()[1], h, w],
            "state_shapes": inputs[1..].iter().map(|t| t.size()).collect::<Vec<_>>(),
            "input_names": names, "output_names": outs,
        })
        .to_string(),
    )?;
    let o = std::process::Command::new(python)
        .arg(&script)
        .arg(&spec)
        .output()
        .map_err(|source| LatencyError::Io {
            path: python.to_path_buf(),
            source,
        })?;
    if !o.status.success() {
        return Err(LatencyError::OnnxRuntime(
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ));
    }
    let r: Value = serde_json::from_slice(&o.stdout)
        .map_err(|e| LatencyError::OnnxRuntime(format!("unreadable output: {e}")))?;
    let ms = r["ms"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    Ok((ms, r["peak_rss_mib"].clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks_of_the_sorted_times() {
        let p = Percentiles::of((1..=100).rev().map(f64::from).collect());
        assert_eq!((p.p50, p.p95, p.p99), (51.0, 95.0, 99.0));
        assert_eq!(p.mean, 50.5);
        assert_eq!(p.windows, 100);
    }
}
