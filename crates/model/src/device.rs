//! Device selection shared by every command that runs the network (`--device cpu|cuda|cuda:N`).

use std::str::FromStr;
use tch::Device;

/// What the user asked for; `Auto` picks CUDA when libtorch sees a GPU, else the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device '{0}': use cpu, cuda or cuda:N")]
    Unknown(String),
    #[error("device {0} requested but libtorch sees {1} CUDA device(s)")]
    Unavailable(String, usize),
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| DeviceError::Unknown(s.to_string())),
        }
    }
}

impl DeviceChoice {
    /// Resolves the choice against the machine; asking for a GPU that is not there is an error.
    pub fn resolve(self) -> Result<Device, DeviceError> {
        match self {
            Self::Auto => Ok(Device::cuda_if_available()),
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => {
                let count = tch::Cuda::device_count().max(0) as usize;
                if n < count {
                    Ok(Device::Cuda(n))
                } else {
                    Err(DeviceError::Unavailable(format!("cuda:{n}"), count))
                }
            }
        }
    }
}

/// One line describing the tensor engine, for `evdet --version`-style summaries.
pub fn engine_summary() -> String {
    format!(
        "libtorch (tch 0.24), cuda available: {}, cuda devices: {}, cpu threads: {}",
        tch::Cuda::is_available(),
        tch::Cuda::device_count(),
        tch::get_num_threads()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            "CUDA".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(0)
        );
        assert_eq!(
            "cuda:3".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(3)
        );
        assert!("tpu".parse::<DeviceChoice>().is_err());
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn cpu_tensor_math_runs_through_libtorch() {
        let d = DeviceChoice::Cpu.resolve().unwrap();
        let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]).to_device(d);
        assert_eq!(t.sum(tch::Kind::Float).double_value(&[]), 6.0);
    }
}
