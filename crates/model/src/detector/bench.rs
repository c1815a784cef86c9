//! Speed of the detector, measured the way `scripts/rvt_reference.py` measures the
//! PyTorch reference, so the two can be compared side by side: per-frame forward latency at batch 1
//! in eval mode without autograd (states carried, 2 warm-up steps, median of the repetitions)
//! split into backbone / FPN / head (head = convs + eval decoding), and one training step (batch B,
//! sequence length L: backbone over the L steps, FPN + head + SimOTA + losses once on the
//! concatenated features, backward, gradient clipping by value 1.0, AdamW) with its peak memory.
//! Besides the wall clock, the process CPU time of each part is reported: on a machine shared with
//! other work it stays close to the unloaded cost, where the wall clock can grow several-fold.

use std::time::Instant;

use serde::Serialize;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

use super::Detector;
use crate::amp::Precision;
use crate::backbone::{AttentionImpl, LstmState};
use crate::config::{ConfigError, ModelConfig};
use crate::losses::LossError;

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Loss(#[from] LossError),
    #[error(transparent)]
    Tch(#[from] tch::TchError),
    /// What was being measured when it failed.
    #[error("{what}: {source}")]
    During {
        what: String,
        #[source]
        source: Box<BenchError>,
    },
}

impl BenchError {
    /// `e`, saying what was being measured.
    fn during(what: &str, e: impl Into<BenchError>) -> BenchError {
        BenchError::During {
            what: what.to_string(),
            source: Box::new(e.into()),
        }
    }
}

/// Median per-frame times (milliseconds): wall clock, and the process's CPU time (all threads),
/// which a machine shared with other work inflates far less than the wall clock.
#[derive(Debug, Clone, Serialize)]
pub struct ForwardTiming {
    /// `fp32`, or the autocast the forward ran under (`bf16`, `fp16`).
    pub precision: &'static str,
    pub backbone_ms: f64,
    pub fpn_ms: f64,
    pub head_ms: f64,
    pub total_ms: f64,
    pub cpu: CpuTiming,
    pub params: i64,
    pub reps: usize,
}

/// Median per-frame process CPU time (milliseconds, summed over threads).
#[derive(Debug, Clone, Serialize)]
pub struct CpuTiming {
    pub backbone_ms: f64,
    pub fpn_ms: f64,
    pub head_ms: f64,
    pub total_ms: f64,
}

/// One training step.
#[derive(Debug, Clone, Serialize)]
pub struct TrainTiming {
    /// `fp32`, `bf16` (autocast) or `fp16` (autocast; no loss scaling in a timing).
    pub precision: &'static str,
    pub step_ms: f64,
    /// Process CPU time of the step (all threads).
    pub step_cpu_ms: f64,
    pub batch: i64,
    pub seq_len: i64,
    pub in_hw: [i64; 2],
    /// CPU: the process's resident-set high-water mark during the timed steps (VmHWM after
    /// resetting it), MiB. CUDA: not measured here (`null`).
    pub peak_memory_mib: Option<f64>,
    pub reps: usize,
}

/// libtorch's intra-op CPU thread count (the reference script calls `torch.set_num_threads`).
pub fn set_threads(n: i32) {
    if n > 0 {
        tch::set_num_threads(n);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU time consumed by this process so far (all threads), in milliseconds.
fn process_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 * 1e-6
}

/// Waits for the device's queued work (CUDA), so a clock reading covers it; nothing on the CPU.
pub fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Number of trainable parameters.
pub fn param_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

/// Forward latency per frame at batch 1 for `cfg` at `hw` (input of random counts 0..10).
pub fn forward_latency(
    cfg: &ModelConfig,
    hw: [i64; 2],
    device: Device,
    reps: usize,
    attention: AttentionImpl,
    precision: Precision,
) -> Result<ForwardTiming, BenchError> {
    tch::manual_seed(0);
    let (vs, mut det) = Detector::build(cfg, device)?;
    det.set_attention_impl(attention);
    let c = cfg.backbone.input_channels as i64;
    let x = Tensor::randint(11, [1, c, hw[0], hw[1]], (Kind::Float, device));
    let _guard = tch::no_grad_guard();
    // Autocast for the whole measurement: the weights are cast once, as a deployment keeps them.
    let _amp = precision
        .autocast_kind()
        .map(|k| crate::amp::AutocastGuard::new(device, k));
    let mut states: Option<Vec<LstmState>> = None;
    for _ in 0..2 {
        let (feats, s) = det.forward_backbone_step(&x, states.as_deref(), None, false);
        let _ = det.forward_detect(&feats, false);
        states = Some(s);
    }
    sync(device);
    let (mut tb, mut tf, mut th) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cb, mut cf, mut ch) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps.max(1) {
        let (t0, c0) = (Instant::now(), process_cpu_ms());
        let (feats, s) = det.forward_backbone_step(&x, states.as_deref(), None, false);
        sync(device);
        let (t1, c1) = (Instant::now(), process_cpu_ms());
        let fpn = det.fpn.forward_t(&feats, false);
        sync(device);
        let (t2, c2) = (Instant::now(), process_cpu_ms());
        let levels = det.yolox_head.forward_t(&fpn, false);
        let _decoded = det.yolox_head.decode(&levels);
        sync(device);
        let (t3, c3) = (Instant::now(), process_cpu_ms());
        tb.push((t1 - t0).as_secs_f64() * 1e3);
        tf.push((t2 - t1).as_secs_f64() * 1e3);
        th.push((t3 - t2).as_secs_f64() * 1e3);
        cb.push(c1 - c0);
        cf.push(c2 - c1);
        ch.push(c3 - c2);
        states = Some(s);
    }
    let (backbone_ms, fpn_ms, head_ms) = (median(tb), median(tf), median(th));
    let cpu = CpuTiming {
        backbone_ms: median(cb),
        fpn_ms: median(cf),
        head_ms: median(ch),
        total_ms: 0.0,
    };
    Ok(ForwardTiming {
        precision: precision.name(),
        backbone_ms,
        fpn_ms,
        head_ms,
        total_ms: backbone_ms + fpn_ms + head_ms,
        cpu: CpuTiming {
            total_ms: cpu.backbone_ms + cpu.fpn_ms + cpu.head_ms,
            ..cpu
        },
        params: param_count(&vs),
        reps: reps.max(1),
    })
}

/// Random labels like the reference script's: 4 boxes per image, sizes 8–128 × 8–88 px.
fn random_labels(n: i64, hw: [i64; 2], num_classes: i64, device: Device) -> Tensor {
    let mut rows = Vec::with_capacity((n * 6 * 5) as usize);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rand = || {
        // xorshift: deterministic and dependency-free.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for _ in 0..n {
        for j in 0..6 {
            if j < 4 {
                let w = 8.0 + 120.0 * rand();
                let h = 8.0 + 80.0 * rand();
                let cx = 40.0 + (hw[1] as f64 - 80.0) * rand();
                let cy = 40.0 + (hw[0] as f64 - 80.0) * rand();
                rows.extend_from_slice(&[
                    (j % num_classes) as f32,
                    cx as f32,
                    cy as f32,
                    w as f32,
                    h as f32,
                ]);
            } else {
                rows.extend_from_slice(&[0.0; 5]);
            }
        }
    }
    Tensor::from_slice(&rows).view([n, 6, 5]).to_device(device)
}

/// Resident-set high-water mark of this process in MiB (Linux), optionally resetting it first.
fn peak_rss_mib(reset: bool) -> Option<f64> {
    if reset {
        crate::process_memory::reset_peak();
    }
    crate::process_memory::read().map(|m| m.peak_mib)
}

/// Time of one training step (median of `reps` after one warm-up step).
pub fn train_step(cfg: &ModelConfig, opts: &ModelBenchOptions) -> Result<TrainTiming, BenchError> {
    let (hw, batch, seq_len, device) = (opts.train_hw, opts.train_batch, opts.seq_len, opts.device);
    let (reps, attention, precision) = (opts.train_reps(), opts.attention, opts.precision);
    tch::manual_seed(0);
    let (vs, mut det) = Detector::build(cfg, device)?;
    det.set_attention_impl(attention);
    let mut opt = nn::AdamW {
        wd: 0.0,
        ..Default::default()
    }
    .build(&vs, 2e-4)?;
    let c = cfg.backbone.input_channels as i64;
    let xs = Tensor::randint(11, [seq_len, batch, c, hw[0], hw[1]], (Kind::Float, device));
    let labels = random_labels(seq_len * batch, hw, cfg.head.num_classes as i64, device);
    let mut step = || -> Result<(), BenchError> {
        // The forward pass under autocast (bf16 / fp16), the loss in float32, as the trainer runs them.
        let out = crate::amp::autocast(device, precision, || {
            let mut states: Option<Vec<LstmState>> = None;
            let mut per_stage: Vec<Vec<Tensor>> = (0..4).map(|_| Vec::new()).collect();
            for t in 0..seq_len {
                let (feats, s) =
                    det.forward_backbone_step(&xs.get(t), states.as_deref(), None, true);
                for (k, f) in feats.into_iter().enumerate() {
                    per_stage[k].push(f);
                }
                states = Some(s);
            }
            let stacked: Vec<Tensor> = per_stage.iter().map(|v| Tensor::cat(v, 0)).collect();
            det.forward_detect(&stacked, true)
        });
        let train = out.train.as_ref().expect("train output in train mode");
        let losses = det.loss(train, &labels)?;
        opt.zero_grad();
        losses.loss.backward();
        opt.clip_grad_value(1.0);
        opt.step();
        sync(device);
        Ok(())
    };
    step()?;
    let on_cpu = device == Device::Cpu;
    let base = if on_cpu { peak_rss_mib(true) } else { None };
    let (mut times, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..reps.max(1) {
        let (t0, c0) = (Instant::now(), process_cpu_ms());
        step()?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        cpu.push(process_cpu_ms() - c0);
    }
    let peak = if on_cpu && base.is_some() {
        peak_rss_mib(false)
    } else {
        None
    };
    Ok(TrainTiming {
        precision: precision.name(),
        step_ms: median(times),
        step_cpu_ms: median(cpu),
        batch,
        seq_len,
        in_hw: hw,
        peak_memory_mib: peak,
        reps: reps.max(1),
    })
}

/// The RVT preset `preset` (tiny, small, base) with a 3-scale (stages 2–4, RVT's) or 4-scale
/// (stages 1–4) FPN, `num_classes` classes, for input `hw`.
pub fn preset_model(
    preset: &str,
    scales: usize,
    hw: [i64; 2],
    num_classes: usize,
) -> Result<ModelConfig, ConfigError> {
    let p: crate::config::RvtPreset = preset.parse()?;
    let cfg = ModelConfig::preset(p, num_classes, [hw[0] as usize, hw[1] as usize]);
    match scales {
        3 => Ok(cfg),
        4 => Ok(cfg.four_scale()),
        s => Err(crate::config::invalid("scales", format!("{s}: use 3 or 4"))),
    }
}

/// What `run_model_bench` times.
#[derive(Debug, Clone)]
pub struct ModelBenchOptions {
    /// Presets whose forward pass is timed, at each of `scales` (3 and/or 4).
    pub presets: Vec<String>,
    pub scales: Vec<usize>,
    /// Forward input height, width.
    pub hw: [i64; 2],
    /// Timed forward frames per configuration.
    pub reps: usize,
    /// Presets whose training step is timed (3-scale), at `train_hw`.
    pub train_presets: Vec<String>,
    pub train_hw: [i64; 2],
    pub train_batch: i64,
    pub seq_len: i64,
    /// Timed training steps; default max(3, reps / 2) as the reference script.
    pub train_reps: Option<usize>,
    pub forward: bool,
    pub train: bool,
    pub attention: AttentionImpl,
    /// Autocast of the training step's forward pass.
    pub precision: Precision,
    pub threads: i32,
    pub num_classes: usize,
    pub device: Device,
}

impl ModelBenchOptions {
    /// Timed training steps: `train_reps`, else max(3, reps / 2) as the reference script.
    pub fn train_reps(&self) -> usize {
        self.train_reps.unwrap_or((self.reps / 2).max(3))
    }

    /// Configurations to time (for a progress count).
    pub fn runs(&self) -> usize {
        let fwd = if self.forward {
            self.presets.len() * self.scales.len()
        } else {
            0
        };
        fwd + if self.train {
            self.train_presets.len()
        } else {
            0
        }
    }
}

/// Forward latency of every preset and FPN variant, then the training step of every training preset:
/// the JSON `evdet bench model` prints (`reference`, the output of `scripts/rvt_reference.py`, adds it
/// and the ratios). `on_run` hears the name of each configuration before it is timed.
pub fn run_model_bench(
    opts: &ModelBenchOptions,
    reference: Option<&serde_json::Value>,
    on_run: &mut dyn FnMut(&str),
) -> Result<serde_json::Value, BenchError> {
    use serde_json::{json, Map, Value};
    set_threads(opts.threads);
    let mut forward = Map::new();
    let scales: &[usize] = if opts.forward { &opts.scales } else { &[] };
    for &s in scales {
        let mut per = Map::new();
        for preset in &opts.presets {
            let what = format!("{preset} {s}-scale forward");
            on_run(&what);
            let cfg = preset_model(preset, s, opts.hw, opts.num_classes)
                .map_err(|e| BenchError::during(&what, e))?;
            let t = forward_latency(
                &cfg,
                opts.hw,
                opts.device,
                opts.reps,
                opts.attention,
                opts.precision,
            )
            .map_err(|e| BenchError::during(&what, e))?;
            per.insert(preset.clone(), json!(t));
        }
        forward.insert(format!("{s}scale"), Value::Object(per));
    }
    let mut train = Map::new();
    if opts.train {
        for preset in &opts.train_presets {
            let what = format!("{preset} training step");
            on_run(&what);
            let cfg = preset_model(preset, 3, opts.train_hw, opts.num_classes)
                .map_err(|e| BenchError::during(&what, e))?;
            let t = train_step(&cfg, opts).map_err(|e| BenchError::during(&what, e))?;
            train.insert(preset.clone(), json!(t));
        }
    }
    let mut out = json!({
        "bench": "model",
        "engine": crate::device::engine_summary(),
        "device": format!("{:?}", opts.device),
        "threads": opts.threads,
        "attention": match opts.attention {
            AttentionImpl::Reference => "reference",
            _ => "fused",
        },
        "forward_hw": opts.hw,
        "forward": forward,
        "train_step": train,
    });
    if let Some(r) = reference {
        out["reference"] = r.clone();
        out["ratio_vs_reference"] = ratios_vs_reference(&out, r);
    }
    Ok(out)
}

/// ours / reference for every number both have: the 3-scale forward (`forward.3scale.<preset>` against
/// the reference script's `forward_384x640.<preset>`) and the training step. Below 1 is faster.
pub fn ratios_vs_reference(ours: &serde_json::Value, r: &serde_json::Value) -> serde_json::Value {
    use serde_json::{json, Map, Value};
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ratios_pair_our_numbers_with_the_reference_scripts() {
        let ours = json!({
            "forward": {"3scale": {"tiny": {"backbone_ms": 6.0, "fpn_ms": 2.0, "head_ms": 1.0, "total_ms": 9.0}}},
            "train_step": {"tiny": {"step_ms": 450.0}},
        });
        let reference = json!({
            "forward_384x640": {"tiny": {"backbone_ms": 8.0, "fpn_ms": 2.0, "total_ms": 12.0}},
            "train_step": {"tiny": {"step_ms": 900.0}},
        });
        let r = ratios_vs_reference(&ours, &reference);
        assert_eq!(r["forward_3scale"]["tiny"]["backbone_ms"], json!(0.75));
        assert_eq!(r["forward_3scale"]["tiny"]["total_ms"], json!(0.75));
        // A number the reference lacks gets no ratio.
        assert!(r["forward_3scale"]["tiny"].get("head_ms").is_none());
        assert_eq!(r["train_step"]["tiny"], json!(0.5));
    }

    #[test]
    fn preset_models_have_three_or_four_scales() {
        let three = preset_model("tiny", 3, [192, 320], 8).unwrap();
        let four = preset_model("tiny", 4, [192, 320], 8).unwrap();
        assert_ne!(three, four);
        let e = preset_model("tiny", 5, [192, 320], 8)
            .unwrap_err()
            .to_string();
        assert!(e.contains("scales") && e.contains("3 or 4"), "{e}");
        assert!(preset_model("huge", 3, [192, 320], 8).is_err());
    }
}
