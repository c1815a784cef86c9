//! What a run's numbers depend on besides its configuration and seed, written beside them
//! (`<run>/reproducibility.json`), so that "the same numbers" can be checked instead of hoped for.
//!
//! A run is deterministic: the same build, configuration and seed give bit-identical weights and
//! metrics — on the same kind of CPU with the same number of threads. The float kernels libtorch runs
//! on the CPU are chosen at run time by instruction set (ATen's own kernels by
//! `ATEN_CPU_CAPABILITY`, oneDNN's convolutions by `ONEDNN_MAX_CPU_ISA`, MKL's by
//! `MKL_ENABLE_INSTRUCTIONS`), and an AVX-512 kernel sums in another order than an AVX2 one; so do
//! different thread counts. After hundreds of training steps those last-bit differences are
//! different numbers. The record names all of it, and the hash of the final weights says whether two
//! runs really are the same run.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Environment variables that pin libtorch's CPU kernels or threads.
pub const KERNEL_VARIABLES: [&str; 5] = [
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
];

/// Everything outside the configuration that the numbers depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Environment {
    pub evdet_version: String,
    /// The libtorch tch 0.24 is built against (the `torch==2.11.0` wheel).
    pub libtorch: String,
    pub device: String,
    /// libtorch's intra-op threads.
    pub threads: i32,
    pub cpu_model: String,
    /// The widest vector instruction set the CPU offers libtorch's kernels: `avx512`, `avx2` or
    /// `default` (before any of the variables below narrows it).
    pub cpu_isa: String,
    /// The bf16 instructions the CPU has (`avx512_bf16`, `amx_bf16`): they decide whether bf16
    /// training is fast or emulated on this CPU.
    pub bf16_instructions: Vec<String>,
    /// The kernel-pinning variables that are set, with their values.
    pub kernel_variables: BTreeMap<String, String>,
}

impl Environment {
    /// The environment of this process for a run on `device`.
    pub fn current(device: tch::Device) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let bf16_instructions = evdet_model::amp::cpu_bf16_units()
            .into_iter()
            .map(String::from)
            .collect();
        Environment {
            evdet_version: env!("CARGO_PKG_VERSION").to_string(),
            libtorch: "2.11.0 (tch 0.24)".into(),
            device: format!("{device:?}"),
            threads: tch::get_num_threads(),
            cpu_model: field("model name"),
            cpu_isa: cpu_isa().into(),
            bf16_instructions,
            kernel_variables: KERNEL_VARIABLES
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
                .collect(),
        }
    }
}

/// The widest vector instruction set for libtorch's kernels, asked of the CPU itself (ATen's AVX512
/// kernels need F, BW, VL and DQ; its AVX2 kernels AVX2 and FMA). Its bf16 units come from
/// `evdet_model::amp::cpu_bf16_units`.
#[cfg(target_arch = "x86_64")]
fn cpu_isa() -> &'static str {
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512dq")
    {
        "avx512"
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        "avx2"
    } else {
        "default"
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_isa() -> &'static str {
    "default"
}

/// SHA-256 over every variable of `vs` (name, shape, kind and bytes, in name order): equal hashes
/// mean bit-identical weights.
pub fn weights_sha256(vs: &tch::nn::VarStore) -> String {
    let mut h = Sha256::new();
    for (name, t) in evdet_model::import::named_tensors(vs) {
        h.update(name.as_bytes());
        h.update(format!("{:?}{:?}", t.size(), t.kind()).as_bytes());
        let bytes = t.numel() * t.kind().elt_size_in_bytes();
        let mut buf = vec![0u8; bytes];
        t.copy_data_u8(&mut buf, t.numel());
        h.update(&buf);
    }
    format!("{:x}", h.finalize())
}

/// `<run>/reproducibility.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub environment: Environment,
    /// The autocast of the training forward pass (`training.precision`, `auto` resolved).
    pub precision: &'static str,
    pub seed: u64,
    pub step: u64,
    /// [`weights_sha256`] of the model after `step` steps.
    pub weights_sha256: String,
    /// How to read it.
    pub note: &'static str,
}

pub const NOTE: &str =
    "Two runs of the same build, config.yaml and seed give bit-identical weights \
(equal weights_sha256) and metrics when their environment is equal. A different cpu_isa, thread \
count or kernel variable changes the float kernels' summation order, and after hundreds of steps \
the metrics differ: compare runs across machines only when their environments agree (see README, \
Reproducibility).";
