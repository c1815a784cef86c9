//! Data-parallel training on PyTorch's own distributed engine (c10d): where this process sits in the
//! job (`launch`: torchrun's and SLURM's environment variables), a process group over Gloo or NCCL
//! (`group`, through the C++ shim in `csrc/`), and the collectives training needs, including a
//! differentiable all-reduce for SyncBatchNorm and bucketed gradient all-reduce.

pub mod buckets;
pub mod group;
pub mod launch;

pub use group::{Backend, DistError, ProcessGroup};
pub use launch::{LaunchEnv, LaunchError, LocalLaunchError};
