//! `evdet bench latency`: streaming inference at batch 1, window after window with the LSTM states
//! carried, as a deployment runs it: events → stacked histogram (timed apart), then the network in
//! evdet (eager), as its exported TorchScript file run from Rust (tch), and as its ONNX file in ONNX
//! Runtime (a Python subprocess). Per-window p50 / p95 / p99 and the peak resident memory of each.
//! `scripts/bench_latency.py` puts the PyTorch reference's eager forward beside it in one run.

use anyhow::{bail, Context, Result};
use evdet_events::histogram::{HistogramSpec, StackedHistogram};
use evdet_model::config::{ModelConfig, RvtPreset};
use evdet_model::detector::Detector;
use evdet_train::export;
use serde_json::{json, Map, Value};
use std::time::Instant;
use tch::{Device, IValue, Kind, Tensor};

/// Per-window streaming latency: histogram, eager, TorchScript, ONNX Runtime; prints JSON.
///
/// Examples:
///   evdet bench latency                                 # tiny, small, base at 384x640, 2 threads
///   evdet bench latency --presets tiny --windows 100 --no-onnx
///   evdet bench latency --device cuda --half            # on a GPU machine, fp16
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// RVT model sizes to time.
    #[arg(long, value_delimiter = ',', default_value = "tiny,small,base")]
    presets: Vec<String>,
    /// Network input height,width (eTraM's ds2 360x640 padded: 384,640).
    #[arg(long, value_delimiter = ',', default_value = "384,640")]
    hw: Vec<usize>,
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
    #[command(flatten)]
    device: crate::device::DeviceArg,
}

const ORT_SCRIPT: &str = r#"
import json, resource, sys, time
import numpy as np, onnxruntime as ort
spec = json.load(open(sys.argv[1]))
so = ort.SessionOptions(); so.intra_op_num_threads = spec["threads"]; so.inter_op_num_threads = 1
s = ort.InferenceSession(spec["model"], so, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
states = [np.zeros(sh, np.float32) for sh in spec["state_shapes"]]
times = []
for k in range(spec["warmup"] + spec["windows"]):
    x = rng.integers(0, 11, spec["input_shape"]).astype(np.float32)
    t0 = time.perf_counter()
    out = s.run(spec["output_names"], dict(zip(spec["input_names"], [x, *states])))
    dt = time.perf_counter() - t0
    states = out[1:]
    if k >= spec["warmup"]:
        times.append(1e3 * dt)
print(json.dumps({"ms": times, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"#;

fn percentiles(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    json!({"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "mean": v.iter().sum::<f64>() / v.len() as f64, "windows": v.len()})
}

fn reset_peak_rss() {
    evdet_model::process_memory::reset_peak();
}

/// Peak resident memory since the last reset, MiB.
fn peak_rss_mib() -> Option<f64> {
    evdet_model::process_memory::read().map(|m| m.peak_mib)
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

pub fn run(args: Args) -> Result<()> {
    let device = args.device.resolve()?;
    let [h, w] = match args.hw.as_slice() {
        [h, w] if *h > 0 && *w > 0 => [*h, *w],
        v => bail!("--hw takes height,width (got {v:?})"),
    };
    if args.half && !device.is_cuda() {
        bail!("--half needs --device cuda");
    }
    if args.windows == 0 {
        bail!("--windows must be at least 1");
    }
    evdet_model::detector::bench::set_threads(args.threads);
    let kind = if args.half { Kind::Half } else { Kind::Float };
    let n_win = args.warmup + args.windows;

    // Camera-like events at eTraM's 1280x720 over n_win windows of 50 ms; histograms with RVT's
    // preprocessing (ds2), timed per window.
    let dt_us = 50_000i64;
    let n_events = args.event_rate * n_win / 20;
    let events =
        evdet_events::testdata::camera_like(n_events, dt_us * n_win as i64, (720, 1280), 3);
    let mut hist = StackedHistogram::new(HistogramSpec {
        nbins: 10,
        count_cutoff: 10,
        height: 720,
        width: 1280,
        downsample_by_factor_2: true,
    });
    let (oh, ow) = hist.spec().out_hw();
    let mut hists: Vec<Vec<u8>> = Vec::with_capacity(n_win);
    let mut hist_ms = Vec::new();
    for k in 0..n_win as i64 {
        let t0 = Instant::now();
        let a = events.t.partition_point(|&t| t < k * dt_us);
        let b = events.t.partition_point(|&t| t <= (k + 1) * dt_us);
        let hbytes = hist.compute_sorted(events.slice(a..b)).to_vec();
        if k as usize >= args.warmup {
            hist_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        hists.push(hbytes);
    }
    drop(events);
    let to_input = |hb: &[u8]| -> Tensor {
        let x = Tensor::from_slice(hb)
            .view([1, 20, oh as i64, ow as i64])
            .to_device(device)
            .to_kind(kind);
        x.constant_pad_nd([0, (w - ow) as i64, 0, (h - oh) as i64])
    };

    let python = super::export::python();
    let tmp = tempfile::tempdir().context("creating a temporary folder")?;
    let pb = crate::progress::bar(args.presets.len() as u64, "presets");
    let mut per = Map::new();
    for preset in &args.presets {
        pb.set_message(preset.to_string());
        let p: RvtPreset = preset
            .parse()
            .with_context(|| format!("--presets {preset}"))?;
        let cfg = ModelConfig::preset(p, 8, [h, w]);
        let (mut vs, det) = Detector::build(&cfg, device)?;
        if args.half {
            vs.half();
        }
        vs.freeze();
        let mut out = Map::new();

        // evdet eager, states carried as `evdet predict` carries them.
        reset_peak_rss();
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
                if k >= args.warmup {
                    ms.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
        });
        out.insert("eager_ms".into(), percentiles(ms));
        out.insert("eager_peak_rss_mib".into(), json!(peak_rss_mib()));

        // The exported TorchScript file, run from Rust.
        let x0 = to_input(&hists[0]);
        let mut inputs = vec![x0.shallow_clone()];
        inputs.extend(export::zero_states(&det, &x0));
        let ts = tmp.path().join(format!("{preset}.pt"));
        tch::no_grad(|| evdet_jit::trace_to_file(&ts, &inputs, |xs| export::step(&det, xs)))?;
        let module = tch::CModule::load_on_device(&ts, device)?;
        reset_peak_rss();
        let mut ms = Vec::new();
        tch::no_grad(|| -> Result<()> {
            let mut states: Vec<Tensor> = inputs[1..].iter().map(|t| t.zeros_like()).collect();
            for (k, hb) in hists.iter().enumerate() {
                let t0 = Instant::now();
                let mut a = vec![IValue::Tensor(to_input(hb))];
                a.extend(states.iter().map(|s| IValue::Tensor(s.shallow_clone())));
                let IValue::Tuple(o) = module.forward_is(&a)? else {
                    bail!("the TorchScript file did not return a tuple")
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
                if k >= args.warmup {
                    ms.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            Ok(())
        })?;
        out.insert("torchscript_ms".into(), percentiles(ms));
        out.insert("torchscript_peak_rss_mib".into(), json!(peak_rss_mib()));
        drop(module);

        // ONNX Runtime (CPU, float32), in Python.
        if !args.no_onnx && !args.half {
            let names: Vec<String> = std::iter::once("histogram".to_string())
                .chain((1..=4).flat_map(|i| [format!("h{i}"), format!("c{i}")]))
                .collect();
            let outs: Vec<String> = std::iter::once("detections".to_string())
                .chain(names[1..].iter().map(|n| format!("{n}_out")))
                .collect();
            let onnx = tmp.path().join(format!("{preset}.onnx"));
            let cpu_inputs: Vec<Tensor> = inputs.iter().map(|t| t.to_device(Device::Cpu)).collect();
            export::torchscript_to_onnx(&ts, &onnx, &names, &outs, 17, &python, &cpu_inputs)
                .context("converting to ONNX (give --no-onnx to skip ONNX Runtime)")?;
            let spec = tmp.path().join("ort.json");
            let script = tmp.path().join("ort.py");
            std::fs::write(&script, ORT_SCRIPT)?;
            std::fs::write(
                &spec,
                json!({
                    "model": onnx, "threads": args.threads, "warmup": args.warmup,
                    "windows": args.windows, "input_shape": [1, 20, h, w],
                    "state_shapes": inputs[1..].iter().map(|t| t.size()).collect::<Vec<_>>(),
                    "input_names": names, "output_names": outs,
                })
                .to_string(),
            )?;
            let o = std::process::Command::new(&python)
                .arg(&script)
                .arg(&spec)
                .output()
                .with_context(|| format!("running {}", python.display()))?;
            if !o.status.success() {
                bail!(
                    "ONNX Runtime timing failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            let r: Value = serde_json::from_slice(&o.stdout)?;
            let ms: Vec<f64> = r["ms"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
                .unwrap_or_default();
            out.insert("onnxruntime_ms".into(), percentiles(ms));
            out.insert("onnxruntime_peak_rss_mib".into(), r["peak_rss_mib"].clone());
        }
        per.insert(preset.clone(), Value::Object(out));
        pb.inc(1);
    }
    pb.finish_and_clear();
    let result = json!({
        "bench": "latency",
        "engine": evdet_model::device::engine_summary(),
        "device": format!("{device:?}"),
        "dtype": if args.half { "float16" } else { "float32" },
        "threads": args.threads,
        "input_hw": [h, w],
        "batch": 1,
        "windows": args.windows,
        "warmup": args.warmup,
        "events_per_window": args.event_rate / 20,
        "histogram_ms": percentiles(hist_ms),
        "histogram": "events → RVT stacked histogram at 1280x720 then ds2 (one thread), per 50 ms window",
        "presets": per,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
