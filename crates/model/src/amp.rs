//! Mixed precision: libtorch's autocast switched on for a scope (fp16 or bf16, on CUDA or the CPU) and
//! PyTorch's dynamic loss scaling (`torch.amp.GradScaler` rules) for fp16 training.
//!
//! tch 0.24 only exposes the deprecated CUDA-only autocast switch with its default fp16 dtype, so the
//! device-aware functions of `ATen/autocast_mode.h` are called directly from `libtorch_cpu.so`. Their
//! arguments are `c10::DeviceType` and `c10::ScalarType`, both `enum class : int8_t`, which the C++
//! ABI passes like `i8`; the symbols are those of the pinned torch 2.11.0 wheel.

use std::str::FromStr;
use tch::{Device, Kind};

mod ffi {
    extern "C" {
        #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
        pub fn is_autocast_enabled(device_type: i8) -> bool;
        #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
        pub fn set_autocast_enabled(device_type: i8, enabled: bool);
        #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
        pub fn get_autocast_dtype(device_type: i8) -> i8;
        #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
        pub fn set_autocast_dtype(device_type: i8, dtype: i8);
        #[link_name = "_ZN2at8autocast17increment_nestingEv"]
        pub fn increment_nesting() -> i32;
        #[link_name = "_ZN2at8autocast17decrement_nestingEv"]
        pub fn decrement_nesting() -> i32;
        #[link_name = "_ZN2at8autocast11clear_cacheEv"]
        pub fn clear_cache();
    }
}

// c10::DeviceType and c10::ScalarType values (c10/core/DeviceType.h, headeronly/core/ScalarType.h).
const DEVICE_CPU: i8 = 0;
const DEVICE_CUDA: i8 = 1;
const SCALAR_HALF: i8 = 5;
const SCALAR_BFLOAT16: i8 = 15;

/// `training.precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Fp32,
    /// fp16 autocast with dynamic loss scaling (Lightning's `16-mixed`).
    Fp16,
    /// bf16 autocast, no loss scaling needed (Lightning's `bf16-mixed`).
    Bf16,
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "32" | "32-true" => Ok(Self::Fp32),
            "fp16" | "16" | "16-mixed" => Ok(Self::Fp16),
            "bf16" | "bf16-mixed" => Ok(Self::Bf16),
            other => Err(format!(
                "unknown precision '{other}': use fp32, fp16, bf16 or auto"
            )),
        }
    }
}

/// The bf16 arithmetic units of this CPU (`avx512_bf16`, `amx_bf16`): with one of them libtorch's
/// oneDNN kernels run bf16 convolutions and matmuls natively; without, bf16 is emulated and slower
/// than float32. AMX has no stable run-time check in Rust yet, so its flag is read from
/// `/proc/cpuinfo`.
pub fn cpu_bf16_units() -> Vec<&'static str> {
    let mut units = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bf16") {
            units.push("avx512_bf16");
        }
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let amx = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|l| l.split_whitespace().any(|f| f == "amx_bf16"));
        if amx {
            units.push("amx_bf16");
        }
    }
    units
}

impl Precision {
    /// `training.precision`: `fp32`, `bf16`, `fp16`, or `auto` — bf16 autocast on a CUDA device (bf16
    /// needs compute capability 8.0, Ampere, or newer: set `fp16` on older GPUs) and on a CPU with bf16
    /// units ([`cpu_bf16_units`]), fp32 on any other CPU. Returns the precision and, for `auto`, why.
    pub fn resolve(setting: &str, device: Device) -> Result<(Self, Option<String>), String> {
        if !setting.trim().eq_ignore_ascii_case("auto") {
            return setting.parse().map(|p| (p, None));
        }
        let (p, why) = match device {
            Device::Cuda(_) => (Self::Bf16, "a CUDA device".to_string()),
            _ => match cpu_bf16_units().as_slice() {
                [] => (
                    Self::Fp32,
                    "a CPU without bf16 units (no avx512_bf16 / amx_bf16)".to_string(),
                ),
                units => (Self::Bf16, format!("a CPU with {}", units.join(" and "))),
            },
        };
        Ok((p, Some(format!("precision auto: {} on {why}", p.name()))))
    }

    /// The name `training.precision` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Fp16 => "fp16",
            Self::Bf16 => "bf16",
        }
    }

    /// The autocast dtype, `None` for full precision.
    pub fn autocast_kind(self) -> Option<Kind> {
        match self {
            Self::Fp32 => None,
            Self::Fp16 => Some(Kind::Half),
            Self::Bf16 => Some(Kind::BFloat16),
        }
    }
}

/// Autocast on `device` with `kind` until dropped; restores the previous setting (scopes nest).
pub struct AutocastGuard {
    device_type: i8,
    /// Whether this guard switched autocast on (and must restore on drop).
    active: bool,
    prev_enabled: bool,
    prev_dtype: i8,
}

impl AutocastGuard {
    /// `kind` must be `Half` or `BFloat16`; anything else gives a guard that changes nothing.
    pub fn new(device: Device, kind: Kind) -> Self {
        let device_type = match device {
            Device::Cuda(_) => DEVICE_CUDA,
            _ => DEVICE_CPU,
        };
        // SAFETY: plain calls into libtorch's thread-local autocast state with valid enum values.
        unsafe {
            let prev_enabled = ffi::is_autocast_enabled(device_type);
            let prev_dtype = ffi::get_autocast_dtype(device_type);
            let dtype = match kind {
                Kind::Half => Some(SCALAR_HALF),
                Kind::BFloat16 => Some(SCALAR_BFLOAT16),
                _ => None,
            };
            if let Some(d) = dtype {
                ffi::set_autocast_dtype(device_type, d);
                ffi::set_autocast_enabled(device_type, true);
                ffi::increment_nesting();
            }
            Self {
                device_type,
                active: dtype.is_some(),
                prev_enabled,
                prev_dtype,
            }
        }
    }
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        // SAFETY: as in `new`; restores the values read there.
        unsafe {
            if ffi::decrement_nesting() == 0 {
                ffi::clear_cache();
            }
            ffi::set_autocast_enabled(self.device_type, self.prev_enabled);
            ffi::set_autocast_dtype(self.device_type, self.prev_dtype);
        }
    }
}

/// Runs `f` under autocast for `precision` (directly when it is fp32).
pub fn autocast<T>(device: Device, precision: Precision, f: impl FnOnce() -> T) -> T {
    match precision.autocast_kind() {
        Some(k) => {
            let _g = AutocastGuard::new(device, k);
            f()
        }
        None => f(),
    }
}

/// Dynamic loss scaling with PyTorch's defaults: start at 2¹⁶, halve on a non-finite gradient (the
/// step is skipped), double after 2000 finite steps in a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradScaler {
    pub scale: f64,
    pub growth_tracker: u64,
    pub growth_factor: f64,
    pub backoff_factor: f64,
    pub growth_interval: u64,
}

impl Default for GradScaler {
    fn default() -> Self {
        Self {
            scale: 65536.0,
            growth_tracker: 0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }
}

impl GradScaler {
    /// After a step: `found_inf` says whether the unscaled gradients held inf/NaN.
    pub fn update(&mut self, found_inf: bool) {
        if found_inf {
            self.scale *= self.backoff_factor;
            self.growth_tracker = 0;
        } else {
            self.growth_tracker += 1;
            if self.growth_tracker == self.growth_interval {
                self.scale *= self.growth_factor;
                self.growth_tracker = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    #[test]
    fn auto_precision_follows_the_hardware_and_says_why() {
        assert_eq!(
            Precision::resolve("fp32", Device::Cpu).unwrap(),
            (Precision::Fp32, None)
        );
        assert_eq!(
            Precision::resolve("bf16-mixed", Device::Cpu).unwrap().0,
            Precision::Bf16
        );
        let (cuda, why) = Precision::resolve("auto", Device::Cuda(0)).unwrap();
        assert_eq!(cuda, Precision::Bf16);
        assert!(why.unwrap().contains("CUDA"));
        let (cpu, why) = Precision::resolve(" Auto ", Device::Cpu).unwrap();
        let units = cpu_bf16_units();
        let why = why.unwrap();
        if units.is_empty() {
            assert_eq!(cpu, Precision::Fp32, "{why}");
            assert!(why.contains("without bf16 units"), "{why}");
        } else {
            assert_eq!(cpu, Precision::Bf16, "{why}");
            assert!(units.iter().all(|u| why.contains(u)), "{why}");
        }
        let e = Precision::resolve("tf32", Device::Cpu).unwrap_err();
        assert!(e.contains("auto"), "{e}");
    }

    #[test]
    fn autocast_changes_matmul_dtype_on_the_cpu_and_restores() {
        let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        let inside = autocast(Device::Cpu, Precision::Bf16, || a.matmul(&a).kind());
        assert_eq!(inside, Kind::BFloat16);
        let inside = autocast(Device::Cpu, Precision::Fp16, || a.matmul(&a).kind());
        assert_eq!(inside, Kind::Half);
        assert_eq!(a.matmul(&a).kind(), Kind::Float);
        let nested = autocast(Device::Cpu, Precision::Bf16, || {
            let inner = autocast(Device::Cpu, Precision::Fp16, || a.matmul(&a).kind());
            (inner, a.matmul(&a).kind())
        });
        assert_eq!(nested, (Kind::Half, Kind::BFloat16));
        assert_eq!(a.matmul(&a).kind(), Kind::Float);
        // fp32 runs the closure as it is
        assert_eq!(
            autocast(Device::Cpu, Precision::Fp32, || a.matmul(&a).kind()),
            Kind::Float
        );
    }

    #[test]
    fn scaler_follows_pytorch_rules() {
        let mut s = GradScaler {
            growth_interval: 3,
            ..Default::default()
        };
        s.update(false);
        s.update(false);
        assert_eq!(s.scale, 65536.0);
        s.update(false);
        assert_eq!((s.scale, s.growth_tracker), (131072.0, 0));
        s.update(false);
        s.update(true);
        assert_eq!((s.scale, s.growth_tracker), (65536.0, 0));
    }

    #[test]
    fn precision_names() {
        assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
        assert_eq!("16-mixed".parse::<Precision>(), Ok(Precision::Fp16));
        assert_eq!("fp32".parse::<Precision>(), Ok(Precision::Fp32));
        assert!("fp8".parse::<Precision>().unwrap_err().contains("fp8"));
    }
}
