//! One training session as `evdet train` runs it, alone or as one rank of a data-parallel run: the
//! dataset (a synthetic sample is generated on first use by rank 0 while the others wait), `--fresh`,
//! the trainer (resuming from `checkpoints/last`), the fit, and the test evaluation. What the user sees
//! is the caller's: it hears every stage through [`SessionHooks`].

use crate::config::ExperimentConfig;
use crate::evaluate::{EvalRun, SplitEvaluation};
use crate::parallel::{Parallel, ParallelError};
use crate::trainer::{open_split, run_dir, StepReport, TrainError, Trainer};
use evdet_dist::LaunchEnv;
use evdet_run::RunDir;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::Device;

/// The post-process confidence threshold of reported test numbers (the reference's READMEs).
pub const TEST_CONFIDENCE: f64 =
    evdet_model::postprocess::PostprocessConfig::REPORTED.confidence_threshold;

/// How the session runs.
#[derive(Debug, Clone, Copy)]
pub struct SessionOptions {
    pub device: Device,
    /// Delete the run folder first (`--fresh`), never one another process is training in.
    pub fresh: bool,
    /// Evaluate the test split after training.
    pub test: bool,
}

/// This process's device and its part of the data-parallel run `env` describes (`None` when it runs
/// alone): rank r of a node drives that node's GPU r, and on the CPU each rank takes its share of the
/// node's cores unless `hardware.cpu_threads` says otherwise.
pub fn join(
    env: &LaunchEnv,
    cfg: &ExperimentConfig,
    device: Device,
) -> Result<(Device, Option<Arc<Parallel>>), ParallelError> {
    if !Parallel::wanted(env, cfg) {
        return Ok((device, None));
    }
    let device = match device {
        Device::Cuda(_) => Device::Cuda(env.local_rank),
        d => d,
    };
    if device == Device::Cpu && cfg.hardware.cpu_threads == 0 {
        let threads = crate::parallel::cpu_threads_per_rank(0, env.local_world_size);
        tch::set_num_threads(threads as i32);
    }
    Ok((device, Parallel::join(env, cfg, device)?))
}

/// `evdet train --nproc N`: the synthetic sample (if the config asks for one) is generated once,
/// then `exe` runs `args` (its command line without `--nproc`) as `nproc` ranks on this machine.
/// Returns the first failing rank's exit status, 0 when all succeed. Refused under a launcher.
pub fn launch_local(
    cfg: &ExperimentConfig,
    env: &LaunchEnv,
    exe: &Path,
    args: &[std::ffi::OsString],
    nproc: usize,
    hooks: &impl SessionHooks,
) -> Result<i32, TrainError> {
    if env.is_distributed() {
        return Err(TrainError::Other(format!(
            "--nproc {nproc} starts ranks itself, but this process is already rank {} of {} ({}): leave --nproc out under a launcher",
            env.rank, env.world_size, env.launcher
        )));
    }
    crate::data::synthetic::ensure(cfg, |s| hooks.first_use(s))?;
    let args = evdet_dist::launch::without_nproc(args);
    Ok(evdet_dist::launch::run_local(exe, &args, nproc)?)
}

/// What a session tells its caller; every method has a silent default. Only the process that talks to
/// the user (rank 0, or the only one) hears `first_use`, `started`, `finished` and `test_progress`;
/// `step` and `validated` reach every rank (the caller shows them or not).
pub trait SessionHooks {
    /// A first-use step of a synthetic dataset (generation, preprocessing) is about to start.
    fn first_use(&self, _step: &str) {}
    /// The trainer is built (resumed or fresh) on the dataset at `data`.
    fn started(&self, _trainer: &Trainer, _data: &Path) {}
    fn step(&self, _report: &StepReport) {}
    fn validated(&self, _metrics: &BTreeMap<String, f64>) {}
    /// Training reached its last step.
    fn finished(&self, _trainer: &Trainer) {}
    /// Test batches done / total.
    fn test_progress(&self, _done: usize, _total: usize) {}
}

/// What a session leaves: the trained trainer, the dataset root and the test evaluation (every rank
/// has the whole result); `talks` marks the process that writes files and talks to the user.
pub struct SessionOutcome {
    pub trainer: Trainer,
    pub data: PathBuf,
    pub test: Option<SplitEvaluation>,
    pub talks: bool,
}

/// Runs the session of `cfg` (see the module doc); `par` is this process's part of a data-parallel run.
pub fn run(
    cfg: ExperimentConfig,
    par: Option<Arc<Parallel>>,
    opts: SessionOptions,
    hooks: &impl SessionHooks,
) -> Result<SessionOutcome, TrainError> {
    let talks = par.as_ref().is_none_or(|p| p.rank() == 0);
    let barrier = |what: &str| -> Result<(), TrainError> {
        match &par {
            Some(p) => Ok(p.pg.barrier(what)?),
            None => Ok(()),
        }
    };
    let data = if talks {
        let d = crate::data::synthetic::ensure(&cfg, |s| hooks.first_use(s))?;
        barrier("waiting for rank 0 to prepare the dataset")?;
        d
    } else {
        barrier("waiting for rank 0 to prepare the dataset")?;
        crate::data::synthetic::ensure(&cfg, |_| {})?
    };
    let run = run_dir(&cfg);
    if opts.fresh && talks && run.root().exists() {
        // Never delete a folder another evdet train is writing.
        drop(RunDir::lock(run.root())?);
        std::fs::remove_dir_all(run.root()).map_err(|e| TrainError::Io {
            path: run.root().to_path_buf(),
            source: e,
        })?;
    }
    barrier("waiting for rank 0 to prepare the run folder")?;
    let mut trainer = Trainer::new_parallel(cfg, &data, opts.device, true, par.clone())?;
    if talks {
        hooks.started(&trainer, &data);
    }
    trainer.fit(None, |r| hooks.step(r), |m| hooks.validated(m))?;
    if talks {
        hooks.finished(&trainer);
    }
    let test = if opts.test {
        let split = Arc::new(open_split(&trainer.cfg, &data, "test")?);
        Some(trainer.with_eval_weights(|t| {
            EvalRun::new(&t.det, &t.cfg, opts.device, TEST_CONFIDENCE)
                .sharded(par.as_deref().map(|p| &*p.pg))
                .evaluate_split(split, "test", |done, total| {
                    if talks {
                        hooks.test_progress(done, total)
                    }
                })
        })?)
    } else {
        None
    };
    Ok(SessionOutcome {
        trainer,
        data,
        test,
        talks,
    })
}
