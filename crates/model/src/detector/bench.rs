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
}

/// Median per-frame times (milliseconds): wall clock, and the process's CPU time (all threads),
/// which a machine shared with other work inflates far less than the wall clock.
#[derive(Debug, Clone, Serialize)]
pub struct ForwardTiming {
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

fn sync(device: Device) {
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
) -> Result<ForwardTiming, BenchError> {
    tch::manual_seed(0);
    let (vs, mut det) = Detector::build(cfg, device)?;
    det.set_attention_impl(attention);
    let c = cfg.backbone.input_channels as i64;
    let x = Tensor::randint(11, [1, c, hw[0], hw[1]], (Kind::Float, device));
    let _guard = tch::no_grad_guard();
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
pub fn train_step(
    cfg: &ModelConfig,
    hw: [i64; 2],
    batch: i64,
    seq_len: i64,
    device: Device,
    reps: usize,
    attention: AttentionImpl,
) -> Result<TrainTiming, BenchError> {
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
        let mut states: Option<Vec<LstmState>> = None;
        let mut per_stage: Vec<Vec<Tensor>> = (0..4).map(|_| Vec::new()).collect();
        for t in 0..seq_len {
            let (feats, s) = det.forward_backbone_step(&xs.get(t), states.as_deref(), None, true);
            for (k, f) in feats.into_iter().enumerate() {
                per_stage[k].push(f);
            }
            states = Some(s);
        }
        let stacked: Vec<Tensor> = per_stage.iter().map(|v| Tensor::cat(v, 0)).collect();
        let out = det.forward_detect(&stacked, true);
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
        step_ms: median(times),
        step_cpu_ms: median(cpu),
        batch,
        seq_len,
        in_hw: hw,
        peak_memory_mib: peak,
        reps: reps.max(1),
    })
}
