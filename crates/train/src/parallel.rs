//! Data-parallel training over a c10d process group (`evdet-dist`): the group and its settings from the
//! experiment config, SyncBatchNorm's all-reduce installed for the model, and the few collectives the
//! trainer and the sharded evaluation need beyond the gradients (small sums, weight broadcast, the
//! stream slots' recurrent states gathered for a checkpoint).

use crate::config::ExperimentConfig;
use evdet_dist::group::{all_reduce_differentiable, GroupOptions};
use evdet_dist::{Backend, DistError, LaunchEnv, ProcessGroup};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tch::{nn, Device, Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum ParallelError {
    #[error(transparent)]
    Dist(#[from] DistError),
    #[error("{0}")]
    Config(String),
}

/// This process's part in a data-parallel run (only built when WORLD_SIZE > 1).
pub struct Parallel {
    pub pg: Arc<ProcessGroup>,
    pub bucket_bytes: usize,
    pub sync_batchnorm: bool,
    /// The first failed SyncBatchNorm all-reduce (the forward pass cannot return errors).
    failure: Arc<Mutex<Option<String>>>,
}

struct SyncStats {
    failure: Arc<Mutex<Option<String>>>,
}

impl evdet_model::layers::sync::StatsAllReduce for SyncStats {
    fn sum(&self, t: &Tensor) -> Option<Tensor> {
        let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        // After one failure the group is broken: later layers must not wait out the timeout again.
        if failure.is_some() {
            return None;
        }
        match all_reduce_differentiable(t) {
            Ok(s) => Some(s),
            Err(e) => {
                *failure = Some(e);
                None
            }
        }
    }
}

impl Drop for Parallel {
    fn drop(&mut self) {
        if self.sync_batchnorm {
            evdet_model::layers::sync::install(None);
        }
    }
}

impl Parallel {
    /// Whether this process joins a process group: one of several, or alone with `hardware.dist_alone`.
    pub fn wanted(env: &LaunchEnv, cfg: &ExperimentConfig) -> bool {
        env.is_distributed() || cfg.hardware.dist_alone
    }

    /// Joins the job `env` describes with the backend, timeout and bucket size of `cfg.hardware`;
    /// `None` for a single process, unless `hardware.dist_alone` asks for a group of one.
    pub fn join(
        env: &LaunchEnv,
        cfg: &ExperimentConfig,
        device: Device,
    ) -> Result<Option<Arc<Self>>, ParallelError> {
        if !Self::wanted(env, cfg) {
            return Ok(None);
        }
        let hw = &cfg.hardware;
        let backend =
            Backend::choose(&hw.dist_backend, device.is_cuda()).map_err(ParallelError::Config)?;
        let pg = ProcessGroup::init(
            env,
            &GroupOptions {
                backend,
                timeout: Duration::from_secs(hw.dist_timeout_s.max(1)),
                gloo_ifname: std::env::var("GLOO_SOCKET_IFNAME")
                    .ok()
                    .filter(|s| !s.is_empty()),
            },
        )?;
        let sync_batchnorm = hw.sync_batchnorm;
        let failure = Arc::new(Mutex::new(None));
        if sync_batchnorm {
            pg.install_for_autograd();
            evdet_model::layers::sync::install(Some(Arc::new(SyncStats {
                failure: failure.clone(),
            })));
        }
        let pg = Arc::new(pg);
        pg.spawn_heartbeat();
        Ok(Some(Arc::new(Self {
            pg,
            bucket_bytes: (hw.dist_bucket_mb.max(0.0) * 1024.0 * 1024.0) as usize,
            sync_batchnorm,
            failure,
        })))
    }

    pub fn rank(&self) -> usize {
        self.pg.rank
    }

    pub fn world(&self) -> usize {
        self.pg.world_size
    }

    /// A SyncBatchNorm all-reduce of the last forward pass failed: the message, as a collective error.
    pub fn take_failure(&self, step: u64) -> Option<DistError> {
        let m = self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        Some(
            self.pg
                .failed(&format!("SyncBatchNorm all-reduce at step {step}"), m),
        )
    }

    /// Sums a few numbers over all ranks (in float64).
    pub fn sum(&self, v: &[f64], what: &str) -> Result<Vec<f64>, DistError> {
        let t = Tensor::from_slice(v);
        let t = if self.pg.backend == Backend::Nccl {
            t.to_device(Device::Cuda(self.pg.local_rank))
        } else {
            t
        };
        self.pg.all_reduce_sum(&t, what)?;
        Ok(Vec::<f64>::try_from(&t.to_device(Device::Cpu)).unwrap_or_default())
    }

    /// Rank 0's weights and buffers on every rank (the start of a run: fresh or resumed, all ranks
    /// begin from identical weights).
    pub fn broadcast_weights(&self, vs: &nn::VarStore) -> Result<(), DistError> {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        tch::no_grad(|| -> Result<(), DistError> {
            for kind in [
                Kind::Float,
                Kind::Double,
                Kind::Half,
                Kind::BFloat16,
                Kind::Int64,
            ] {
                let parts: Vec<&Tensor> = vars
                    .iter()
                    .map(|(_, t)| t)
                    .filter(|t| t.kind() == kind)
                    .collect();
                if parts.is_empty() {
                    continue;
                }
                let flat = Tensor::cat(
                    &parts.iter().map(|t| t.reshape([-1])).collect::<Vec<_>>(),
                    0,
                );
                self.pg
                    .broadcast(&flat, 0, "broadcast of rank 0's weights")?;
                let mut offset = 0;
                for t in parts {
                    let n = t.numel() as i64;
                    t.shallow_clone()
                        .copy_(&flat.narrow(0, offset, n).view_as(t));
                    offset += n;
                }
            }
            Ok(())
        })
    }

    /// The global stream slots' tensor of `total` rows: each rank's `local` rows placed at its first
    /// slot `first`, summed (a rank without stream slots contributes zero rows).
    pub fn gather_rows(
        &self,
        local: &Tensor,
        first: usize,
        total: usize,
        what: &str,
    ) -> Result<Tensor, DistError> {
        let mut shape = local.size();
        let n = shape[0];
        shape[0] = total as i64;
        let global = Tensor::zeros(&shape, (local.kind(), local.device()));
        global.narrow(0, first as i64, n).copy_(local);
        self.pg.all_reduce_sum(&global, what)?;
        Ok(global)
    }
}

/// Intra-op threads of one of `local_ranks` CPU ranks when `hardware.cpu_threads` is 0: the cores
/// divided among them (at least one).
pub fn cpu_threads_per_rank(configured: usize, local_ranks: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / local_ranks.max(1)).max(1)
}
