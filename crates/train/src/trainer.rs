//! The training loop (REFERENCE §4.1–4.2): recurrent state per batch slot carried across batches, reset
//! on first samples and detached after each L-step chunk; the head runs once on the stacked features of
//! all labelled steps; AdamW + OneCycle, gradient clipping by value, validation through the evaluator,
//! `last` / `best` checkpoints and exact resume.

use crate::checkpoint::{self, TrainState};
use crate::config::ExperimentConfig;
use crate::data::batch::{self, Batch};
use crate::data::labels::FrameLabels;
use crate::data::loader::Prefetcher;
use crate::data::sampling::TrainPlan;
use crate::data::{LabelGeometry, SplitData};
use crate::evaluate;
use crate::logs::MetricLog;
use crate::model_setup;
use crate::optim::{AdamW, OneCycle};
use crate::parallel::Parallel;
use evdet_model::amp::{self, GradScaler, Precision};
use evdet_model::assign::AnchorGrid;
use evdet_model::backbone::LstmState;
use evdet_model::detector::Detector;
use evdet_model::losses::{yolox_loss, LossConfig};
use evdet_run::RunDir;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{nn, Device, Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Setup(#[from] model_setup::SetupError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Plan(#[from] crate::data::sampling::PlanError),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error(transparent)]
    Evaluate(#[from] evaluate::EvaluateError),
    #[error(transparent)]
    RunLock(#[from] evdet_run::RunLockError),
    #[error(transparent)]
    Synthetic(#[from] crate::data::synthetic::SyntheticError),
    #[error(transparent)]
    Dist(#[from] evdet_dist::DistError),
    #[error(transparent)]
    Launch(#[from] evdet_dist::launch::LocalLaunchError),
    #[error("loss: {0}")]
    Loss(#[from] evdet_model::losses::LossError),
    #[error("{0}")]
    Other(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the loop reports after each step (for progress bars).
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    pub step: u64,
    pub max_steps: u64,
    pub metrics: BTreeMap<String, f64>,
    pub data_s: f64,
    pub compute_s: f64,
}

/// Opens a split of the experiment's dataset.
pub fn open_split(
    cfg: &ExperimentConfig,
    root: &Path,
    split: &str,
) -> Result<SplitData, TrainError> {
    let [h, w] = cfg.dataset.resolution_hw;
    let geom = LabelGeometry {
        frame_hw: (h, w),
        downsample_by_factor_2: cfg.dataset.downsample_by_factor_2,
    };
    Ok(SplitData::open(
        root,
        split,
        &cfg.dataset.ev_repr_name,
        geom,
    )?)
}

/// `runs/<project>/<group>/<experiment_id>`.
pub fn run_dir(cfg: &ExperimentConfig) -> RunDir {
    let l = &cfg.logging;
    RunDir::of_experiment(&l.runs_dir, &l.project, &l.group, &l.experiment_id)
}

/// A training session: model, optimiser, data plans, recurrent states and logs.
pub struct Trainer {
    pub cfg: ExperimentConfig,
    pub device: Device,
    /// Autocast dtype of the forward pass (`training.precision`); fp16 adds loss scaling.
    pub precision: Precision,
    pub vs: nn::VarStore,
    pub det: Detector,
    pub loss_cfg: LossConfig,
    opt: AdamW,
    sched: OneCycle,
    train: Arc<SplitData>,
    val: Option<Arc<SplitData>>,
    plan: Arc<TrainPlan>,
    /// LSTM states of the stream slots after the last batch (rows 0..bs_stream).
    stream_states: Option<Vec<LstmState>>,
    pub state: TrainState,
    /// The run folder; on rank 0 (or the only process) it holds the folder's lock for the life of the
    /// trainer, since it writes logs and checkpoints.
    pub run: RunDir,
    /// Rank 0 (or the only process) writes the metric log.
    log: Option<MetricLog>,
    /// What `model.init_from` loaded, when the run started from other weights.
    pub init_report: Option<evdet_model::import::LoadReport>,
    /// Sentences for the user about how the run was set up (e.g. a batch re-dealt on resume).
    pub notices: Vec<String>,
    /// This process's part of a data-parallel run (`None`: one process).
    par: Option<Arc<Parallel>>,
    /// The weights' moving average (`training.ema`).
    pub ema: Option<crate::ema::Ema>,
}

/// Compares the configuration a run is resumed with against the one its checkpoint was trained with.
/// A different model (another size, FPN, head) cannot take the checkpoint's weights: an error naming
/// every such key, before libtorch would fail on a tensor shape. Other changes (a longer schedule,
/// more workers) are allowed and listed in the returned notice.
fn compare_resumed_config(
    trained: &ExperimentConfig,
    requested: &ExperimentConfig,
    last: &Path,
) -> Result<Vec<String>, TrainError> {
    let as_value = |c: &ExperimentConfig| {
        serde_norway::to_value(c).map_err(|e| TrainError::Other(format!("config: {e}")))
    };
    let diffs = evdet_config::differing_keys(&as_value(trained)?, &as_value(requested)?);
    // Settings that leave the weights' shapes alone: where training starts from, post-processing.
    let harmless = |k: &str| {
        k.starts_with("model.init_from") || k.starts_with("model.postprocess.") || k == "model.name"
    };
    let (model, other): (Vec<_>, Vec<_>) = diffs
        .iter()
        .partition(|d| d.key.starts_with("model.") && !harmless(&d.key));
    if !model.is_empty() {
        let keys: Vec<String> = model.iter().map(|d| d.describe()).collect();
        return Err(TrainError::Other(format!(
            "{} was trained with another model than the one asked for ({} in the checkpoint's config.yaml → now): its weights cannot be resumed. Start this model over with --fresh, or give it its own run folder with logging.experiment_id=<name>; to keep training the checkpoint, drop those overrides.",
            last.display(),
            keys.join(", ")
        )));
    }
    if other.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = other.iter().map(|d| d.describe()).collect();
    Ok(vec![format!(
        "resuming with a changed config (checkpoint → now): {}",
        keys.join(", ")
    )])
}

impl Trainer {
    /// Builds everything; with `resume`, continues from `run_dir/checkpoints/last` when it exists.
    pub fn new(
        cfg: ExperimentConfig,
        data_root: &Path,
        device: Device,
        resume: bool,
    ) -> Result<Self, TrainError> {
        Self::new_parallel(cfg, data_root, device, resume, None)
    }

    /// As `new`, as one process of a data-parallel run when `par` is given: the plan is over the
    /// global batch, weights come from rank 0, and only rank 0 writes into the run folder (every rank
    /// reads `checkpoints/last` on resume, so the folder must be shared between machines).
    pub fn new_parallel(
        mut cfg: ExperimentConfig,
        data_root: &Path,
        device: Device,
        resume: bool,
        par: Option<Arc<Parallel>>,
    ) -> Result<Self, TrainError> {
        let (rank, world) = par.as_ref().map_or((0, 1), |p| (p.rank(), p.world()));
        let root = rank == 0;
        // One writer per run folder, for the whole life of this trainer (taken before the resume
        // looks at the checkpoints, since it may move a damaged one aside); `lock` creates it.
        let run = if root {
            RunDir::lock(run_dir(&cfg).root())?
        } else {
            run_dir(&cfg)
        };
        let mut notices = Vec::new();
        // `last`, or `previous` when `last` fails verification (the notice says why).
        let resume_from = match resume.then(|| checkpoint::load_for_resume(&run)) {
            Some(Ok(Some((ck, Some(why))))) => {
                // The damaged `last` moves aside (kept for inspection), or the next save would
                // rotate it into `previous` and leave nothing sound to fall back to.
                let damaged = run.damaged_last();
                if root && run.last().exists() {
                    let _ = std::fs::remove_dir_all(&damaged);
                    std::fs::rename(run.last(), &damaged).map_err(|e| TrainError::Io {
                        path: damaged.clone(),
                        source: e,
                    })?;
                }
                notices.push(format!(
                    "warning: {why}; the damaged folder is now {}",
                    damaged.display()
                ));
                Some(ck)
            }
            Some(Ok(found)) => found.map(|(ck, _)| ck),
            Some(Err(e)) => return Err(e.into()),
            None => None,
        };
        let last = resume_from
            .as_ref()
            .map_or_else(|| run.last(), |ck| ck.dir.clone());
        if let Some(ck) = &resume_from {
            notices.extend(compare_resumed_config(&ck.config, &cfg, &last)?);
        }
        if let Some(g) = resume_from.as_ref().and_then(|c| c.state.global_batch) {
            let b = cfg.batch_size.train;
            if b * world != g {
                if g % world != 0 {
                    return Err(TrainError::Other(format!(
                        "{}: the run trained with a global batch of {g} rows ({} processes); {world} processes cannot share it evenly. Resume on a world size that divides {g}.",
                        last.display(),
                        resume_from.as_ref().and_then(|c| c.state.world_size).unwrap_or(1)
                    )));
                }
                cfg.batch_size.train = g / world;
                notices.push(format!(
                    "resuming a run with a global batch of {g} on {world} process(es): batch_size.train is {} per process (was {b})",
                    g / world
                ));
            }
        }
        let (precision, why) = Precision::resolve(&cfg.training.precision, device)
            .map_err(|e| TrainError::Other(format!("training.precision: {e}")))?;
        notices.extend(why);
        let model_cfg = model_setup::model_config(&cfg)?;
        let loss_cfg = model_setup::loss_config(&model_cfg.head)?;
        tch::manual_seed(cfg.reproduce.seed as i64);
        if cfg.hardware.cpu_threads > 0 {
            tch::set_num_threads(cfg.hardware.cpu_threads as i32);
        }
        let (mut vs, det) =
            Detector::build(&model_cfg, device).map_err(|e| TrainError::Other(e.to_string()))?;
        let train = Arc::new(open_split(&cfg, data_root, "train")?);
        let val = open_split(&cfg, data_root, "val").ok().map(Arc::new);
        let plan = Arc::new(TrainPlan::for_world(&train, &cfg, world)?);
        let mut opt = AdamW::new(&vs, cfg.training.weight_decay);
        let s = &cfg.training.lr_scheduler;
        let sched = OneCycle {
            max_lr: cfg.training.learning_rate,
            total_steps: cfg.training.max_steps,
            pct_start: s.pct_start,
            div_factor: s.div_factor,
            final_div_factor: s.final_div_factor,
        };
        let mut state = TrainState {
            seed: cfg.reproduce.seed,
            loss_scale: if precision == Precision::Fp16 {
                GradScaler::default().scale
            } else {
                1.0
            },
            ..Default::default()
        };
        let mut stream_states = None;
        let mut init_report = None;
        let mut ema_resume = None;
        if let Some(ck) = resume_from {
            checkpoint::load_weights(&mut vs, &last)?;
            opt.load_state(&ck.optimizer, ck.state.optimizer_step)
                .map_err(|e| TrainError::Other(format!("{}: {e}", last.display())))?;
            if !ck.recurrent.is_empty() {
                if ck.state.stream_slots != plan.bs_stream {
                    return Err(TrainError::Other(format!(
                        "{}: the checkpoint carries the recurrent states of {} stream slots, this run has {} (global batch {}): keep WORLD_SIZE × batch_size.train and dataset.train.sampling as the run had them",
                        last.display(),
                        ck.state.stream_slots,
                        plan.bs_stream,
                        plan.batch_size()
                    )));
                }
                // Re-dealt: this process takes the states of its own slots of the global batch.
                let first = plan.first_row(rank).min(plan.bs_stream) as i64;
                let s = plan.local_stream(rank) as i64;
                stream_states = Some(
                    states_from_named(&ck.recurrent, device)?
                        .iter()
                        .map(|st| LstmState {
                            h: st.h.narrow(0, first, s),
                            c: st.c.narrow(0, first, s),
                        })
                        .collect(),
                );
            }
            ema_resume = Some((ck.ema, ck.state.ema_updates));
            state = ck.state;
        } else if !model_cfg.init_from.is_empty() {
            // Fine-tuning: weights from elsewhere, optimizer fresh, step 0.
            let report =
                crate::import::init_from(&vs, Path::new(&model_cfg.init_from)).map_err(|e| {
                    TrainError::Other(format!("model.init_from {}: {e}", model_cfg.init_from))
                })?;
            let path = run.init_from();
            if root {
                let json = serde_json::json!({"init_from": model_cfg.init_from, "report": report});
                evdet_atomic::write(&path, json.to_string().as_bytes())
                    .map_err(|e| TrainError::Other(e.to_string()))?;
            }
            // Weights of another model size fill a few norms and biases and nothing else: training on
            // would be a random initialisation under a fine-tuning's name.
            if report.fitted_fraction() < 0.5 && !model_cfg.init_from_partial {
                return Err(TrainError::Other(format!(
                    "model.init_from {}: {} — most of this model would keep its random initialisation. Is it a checkpoint of another model size (compare the model sections of the two config.yaml files)? Set model.init_from_partial=true to fine-tune from it anyway; every name is in {}",
                    model_cfg.init_from,
                    report.summary(),
                    path.display()
                )));
            }
            init_report = Some(report);
        }
        if let Some(p) = &par {
            p.broadcast_weights(&vs)?;
        }
        let ema = if cfg.training.ema {
            Some(match &ema_resume {
                Some((saved, updates)) if !saved.is_empty() => {
                    crate::ema::Ema::restore(&vs, cfg.training.ema_decay, saved, *updates)
                        .map_err(|e| TrainError::Other(format!("{}: {e}", last.display())))?
                }
                Some(_) => {
                    notices.push(format!(
                        "training.ema: {} has no averaged weights (trained without training.ema); the average starts from its weights",
                        last.display()
                    ));
                    crate::ema::Ema::new(&vs, cfg.training.ema_decay)
                }
                None => crate::ema::Ema::new(&vs, cfg.training.ema_decay),
            })
        } else {
            None
        };
        let log = if root {
            let config_path = run.config();
            evdet_atomic::write(&config_path, cfg.to_yaml().as_bytes())
                .map_err(|e| TrainError::Other(format!("{}: {e}", config_path.display())))?;
            Some(MetricLog::open(&run).map_err(|e| TrainError::Io {
                path: run.root().to_path_buf(),
                source: e,
            })?)
        } else {
            None
        };
        Ok(Self {
            cfg,
            device,
            precision,
            vs,
            det,
            loss_cfg,
            opt,
            sched,
            train,
            val,
            plan,
            stream_states,
            state,
            run,
            log,
            init_report,
            notices,
            par,
            ema,
        })
    }

    /// Rank of this process (0 without distribution) and the number of processes.
    pub fn rank_world(&self) -> (usize, usize) {
        self.par.as_ref().map_or((0, 1), |p| (p.rank(), p.world()))
    }

    /// The data-parallel context, when this is one process of several.
    pub fn parallel(&self) -> Option<&Arc<Parallel>> {
        self.par.as_ref()
    }

    fn write_log(&mut self, step: u64, m: &BTreeMap<String, f64>) -> Result<(), TrainError> {
        let Some(log) = self.log.as_mut() else {
            return Ok(());
        };
        log.log(step, m).map_err(|e| TrainError::Io {
            path: self.run.root().to_path_buf(),
            source: e,
        })
    }

    fn lr(&self) -> f64 {
        if self.cfg.training.lr_scheduler.enabled {
            self.sched.lr(self.state.optimizer_step)
        } else {
            self.cfg.training.learning_rate
        }
    }

    /// Trains until `max_steps` (or `stop_at`, for tests that interrupt a run), validating and
    /// checkpointing on the configured intervals.
    pub fn fit(
        &mut self,
        stop_at: Option<u64>,
        mut on_step: impl FnMut(&StepReport),
        mut on_eval: impl FnMut(&BTreeMap<String, f64>),
    ) -> Result<(), TrainError> {
        let max = self.cfg.training.max_steps;
        let end = stop_at.unwrap_or(max).min(max);
        let (plan, data, l) = (
            self.plan.clone(),
            self.train.clone(),
            self.cfg.dataset.sequence_length,
        );
        let only_end = self.cfg.dataset.only_load_end_labels;
        let rank = self.rank_world().0;
        let mut loader = Prefetcher::new(
            self.state.step,
            end,
            self.cfg.hardware.num_workers.train,
            4,
            move |s| batch::build(&data, &plan.rows_for(s, rank), l, only_end),
        );
        while self.state.step < end {
            let Some((b, data_s)) = loader.next_timed() else {
                break;
            };
            let b = b?;
            if let Some(p) = &self.par {
                p.pg.note_step(self.state.step + 1)?;
            }
            let t0 = std::time::Instant::now();
            let mut metrics = self.train_step(&b)?;
            let compute_s = t0.elapsed().as_secs_f64();
            self.state.step += 1;
            let step = self.state.step;
            metrics.insert("train/data_time_s".into(), data_s);
            metrics.insert("train/compute_time_s".into(), compute_s);
            if step.is_multiple_of(self.cfg.logging.log_every_n_steps.max(1)) || step == end {
                // Memory over the run: growth from recurrent state, logs or the prefetcher shows here.
                if let Some(mem) = evdet_model::process_memory::read() {
                    metrics.insert("train/rss_mib".into(), mem.rss_mib);
                    metrics.insert("train/peak_rss_mib".into(), mem.peak_mib);
                }
                // What the allocator has handed out (live), as against what it holds (RSS): a leak
                // grows the first, fragmentation only the second.
                #[cfg(all(target_os = "linux", target_env = "gnu"))]
                {
                    // SAFETY: mallinfo2 only reads the allocator's counters.
                    let mi = unsafe { libc::mallinfo2() };
                    let live = (mi.uordblks + mi.hblkhd) as f64 / (1 << 20) as f64;
                    metrics.insert("train/heap_live_mib".into(), live);
                }
                self.write_log(step, &metrics)?;
            }
            on_step(&StepReport {
                step,
                max_steps: max,
                metrics,
                data_s,
                compute_s,
            });
            let validate =
                step.is_multiple_of(self.cfg.validation.val_check_interval.max(1)) || step == max;
            if validate && self.val.is_some() {
                let m = self.validate()?;
                self.write_log(step, &m)?;
                on_eval(&m);
                let key = &self.cfg.validation.best_metric;
                if let Some(&v) = m.get(key) {
                    if self.state.best_metric.is_none_or(|b| v > b) {
                        self.state.best_metric = Some(v);
                        self.state.best_step = Some(step);
                        self.save_checkpoint("best")?;
                    }
                }
            }
            if step.is_multiple_of(self.cfg.logging.ckpt_every_n_steps.max(1)) || step == end {
                self.save_checkpoint("last")?;
            }
        }
        if self.log.is_some() {
            let path = self.run.reproducibility();
            let json = serde_json::to_string_pretty(&self.reproducibility())
                .map_err(|e| TrainError::Other(e.to_string()))?;
            evdet_atomic::write(&path, json.as_bytes())
                .map_err(|e| TrainError::Other(e.to_string()))?;
        }
        Ok(())
    }

    /// What this run's numbers depend on besides its config, and the hash of its weights now.
    pub fn reproducibility(&self) -> crate::reproducibility::Record {
        use crate::reproducibility::{weights_sha256, Environment, Record, NOTE};
        Record {
            environment: Environment::current(self.device),
            precision: self.precision.name(),
            seed: self.cfg.reproduce.seed,
            step: self.state.step,
            weights_sha256: weights_sha256(&self.vs),
            note: NOTE,
        }
    }

    /// The forward pass of one training chunk: backbone over the time steps (states carried per slot,
    /// reset on first samples), then FPN + head once on the features of every labelled (step, row).
    /// Returns the head's training outputs in float32 and the targets, or `None` without labels.
    #[allow(clippy::type_complexity)]
    fn forward_chunk<'b>(
        &mut self,
        b: &'b Batch,
        mut states: Option<Vec<LstmState>>,
    ) -> Result<Option<(Tensor, Tensor, AnchorGrid, Vec<&'b FrameLabels>)>, TrainError> {
        let dev = self.device;
        let rows = b.batch_size();
        let bs_stream = self.plan.local_stream(self.rank_world().0);
        let reset = Tensor::from_slice(&b.is_first).to_device(dev);
        let mut stash: Vec<Vec<Tensor>> = Vec::new();
        let mut targets: Vec<&FrameLabels> = Vec::new();
        let mut last_feats: Option<Vec<Tensor>> = None;
        for t in 0..b.seq_len() {
            let x = b.ev.get(t as i64).to_device(dev).to_kind(Kind::Float);
            let (feats, new_states) = self.det.forward_backbone_step(
                &x,
                states.as_deref(),
                (t == 0).then_some(&reset),
                true,
            );
            states = Some(new_states);
            let labelled: Vec<i64> = (0..rows)
                .filter(|&r| b.labels[t][r].as_ref().is_some_and(|l| !l.is_empty()))
                .map(|r| r as i64)
                .collect();
            if labelled.is_empty() {
                last_feats = Some(feats);
                continue;
            }
            let idx = Tensor::from_slice(&labelled).to_device(dev);
            stash.push(feats.iter().map(|f| f.index_select(0, &idx)).collect());
            last_feats = Some(feats);
            targets.extend(
                labelled
                    .iter()
                    .filter_map(|&r| b.labels[t][r as usize].as_ref()),
            );
        }
        // Truncated BPTT: the next chunk starts from these states without gradient.
        self.stream_states = states.map(|s| {
            s.iter()
                .map(|st| keep_rows(&st.detach(), bs_stream))
                .collect()
        });
        if let Some(p) = self.par.clone() {
            let what = format!("count of labelled frames at step {}", self.state.step + 1);
            if p.sum(&[targets.len() as f64], &what)?[0] == 0.0 {
                return Ok(None);
            }
            if targets.is_empty() {
                // Other processes have labels: this one still runs the neck and head, on no rows,
                // so that every process takes part in SyncBatchNorm's collectives.
                if let Some(f) = last_feats {
                    stash.push(f.iter().map(|t| t.narrow(0, 0, 0)).collect());
                }
            }
        } else if targets.is_empty() {
            return Ok(None);
        }
        let nstages = stash[0].len();
        let feats: Vec<Tensor> = (0..nstages)
            .map(|s| {
                Tensor::cat(
                    &stash
                        .iter()
                        .map(|v| v[s].shallow_clone())
                        .collect::<Vec<_>>(),
                    0,
                )
            })
            .collect();
        let out = self.det.forward_detect(&feats, true);
        let tr = out
            .train
            .ok_or_else(|| TrainError::Other("head returned no training outputs".into()))?;
        Ok(Some((
            tr.outputs.to_kind(Kind::Float),
            tr.raw_reg.to_kind(Kind::Float),
            tr.grid,
            targets,
        )))
    }

    /// A step whose predictions or loss are not finite: no update; counted, and after
    /// `training.max_nonfinite_in_row` in a row the run stops with a checkpoint and a message.
    fn skip_nonfinite(
        &mut self,
        mut m: BTreeMap<String, f64>,
    ) -> Result<BTreeMap<String, f64>, TrainError> {
        self.state.nonfinite_in_row += 1;
        self.state.nonfinite_total += 1;
        m.insert(
            "train/nonfinite_skipped".into(),
            self.state.nonfinite_total as f64,
        );
        if self.state.nonfinite_in_row > self.cfg.training.max_nonfinite_in_row {
            self.save_checkpoint("last")?;
            return Err(TrainError::Other(format!(
                "{} non-finite losses in a row at step {}: stopping (checkpoint saved in {}). Lower training.learning_rate or model.head.size_aware_weight, or raise training.max_nonfinite_in_row.",
                self.state.nonfinite_in_row,
                self.state.step + 1,
                self.run.last().display()
            )));
        }
        self.opt.zero_grad();
        Ok(m)
    }

    /// One optimisation step on one batch; returns the logged scalars.
    ///
    /// Data parallel, every process's loss is divided by the foreground count of the global batch
    /// (not its own) and the gradients are summed over the processes: the update is then the one a
    /// single process would make on the global batch, and the logged losses are the global batch's.
    pub fn train_step(&mut self, b: &Batch) -> Result<BTreeMap<String, f64>, TrainError> {
        let dev = self.device;
        let rows = b.batch_size();
        let bs_stream = self.plan.local_stream(self.rank_world().0);
        let step = self.state.step + 1;
        // Stream rows continue their slot's state; random rows always start from zero (is_first).
        let states: Option<Vec<LstmState>> = self.stream_states.take().map(|s| {
            if rows == bs_stream {
                s
            } else {
                s.iter().map(|st| pad_rows(st, rows)).collect()
            }
        });
        let precision = self.precision;
        let forward = amp::autocast(dev, precision, || self.forward_chunk(b, states));
        if let Some(e) = self.par.as_ref().and_then(|p| p.take_failure(step)) {
            return Err(e.into());
        }
        let Some((outputs, raw_reg, grid, targets)) = forward? else {
            // Nothing to learn from in this batch (all rows unlabelled): no optimiser step.
            let mut m = BTreeMap::new();
            m.insert("train/lr".into(), self.lr());
            return Ok(m);
        };
        let lr = self.lr();
        let mut m = BTreeMap::new();
        m.insert("train/lr".into(), lr);
        // NaN predictions (a diverging run) can be neither assigned nor scored: the step is skipped
        // and counted like a non-finite loss. Infinities are left to the loss: fp16 box sizes overflow
        // at anchors SimOTA never picks, and the loss stays finite.
        let nan = outputs.isnan().any().int64_value(&[]) != 0;
        // The loss and SimOTA run in float32 outside autocast, as YOLOX does.
        let loss = if nan || targets.is_empty() {
            None
        } else {
            let labels = batch::yolox_targets(&targets).to_device(dev);
            let l = yolox_loss(&outputs, Some(&raw_reg), &grid, &labels, &self.loss_cfg)?;
            // Where SimOTA put the positives, on the steps that are logged (this process's batch).
            let every = self.cfg.logging.log_every_n_steps.max(1);
            if step.is_multiple_of(every) || step == self.cfg.training.max_steps {
                let d = evdet_model::assign_stats::assignment_diagnostics(
                    &labels,
                    &l.assignments,
                    &grid,
                )
                .map_err(|e| TrainError::Other(format!("assignment diagnostics: {e}")))?;
                m.extend(d);
            }
            Some(l)
        };
        let parts = |l: &evdet_model::losses::LossOutput| -> [f64; 5] {
            [
                l.loss.double_value(&[]),
                l.iou_loss.double_value(&[]),
                l.conf_loss.double_value(&[]),
                l.cls_loss.double_value(&[]),
                l.l1_loss.double_value(&[]),
            ]
        };
        // (loss tensor to differentiate, logged parts, foreground anchors per gt)
        let (objective, logged, num_fg) = match self.par.clone() {
            None => {
                if nan {
                    m.insert("train/loss".into(), f64::NAN);
                    return self.skip_nonfinite(m);
                }
                let Some(l) = loss else {
                    return Ok(m);
                };
                (l.loss.shallow_clone(), parts(&l), l.num_fg)
            }
            Some(p) => {
                let (nfg, ngt) = loss
                    .as_ref()
                    .map_or((0, 0), |l| (l.num_fg_total, l.num_gts_total));
                let g = p.sum(
                    &[nfg as f64, ngt as f64, nan as u8 as f64],
                    &format!("sum of foreground counts at step {step}"),
                )?;
                if g[2] > 0.0 {
                    m.insert("train/loss".into(), f64::NAN);
                    return self.skip_nonfinite(m);
                }
                // This process's loss was divided by its own count; re-divide by the global one.
                let factor = (nfg.max(1) as f64) / g[0].max(1.0);
                let (objective, local) = match &loss {
                    Some(l) => (&l.loss * factor, parts(l).map(|v| v * factor)),
                    // No labelled rows here: a zero loss that still reaches every parameter
                    // through the graph, so that SyncBatchNorm's backward runs on every process.
                    None => (
                        (outputs.sum(Kind::Float) + raw_reg.sum(Kind::Float)) * 0.0,
                        [0.0; 5],
                    ),
                };
                let logged = p.sum(&local, &format!("sum of the losses at step {step}"))?;
                let logged: [f64; 5] = logged.try_into().unwrap_or([f64::NAN; 5]);
                (objective, logged, g[0].max(1.0) / g[1].max(1.0))
            }
        };
        let [total, iou, conf, cls, l1] = logged;
        m.insert("train/loss".into(), total);
        m.insert("train/iou_loss".into(), iou);
        m.insert("train/conf_loss".into(), conf);
        m.insert("train/cls_loss".into(), cls);
        m.insert("train/l1_loss".into(), l1);
        m.insert("train/num_fg".into(), num_fg);
        if iou > 0.0 {
            m.insert("train/loss_obj_over_iou".into(), conf / iou);
        }
        if !total.is_finite() {
            return self.skip_nonfinite(m);
        }
        self.state.nonfinite_in_row = 0;
        self.opt.zero_grad();
        let scale = if precision == Precision::Fp16 {
            self.state.loss_scale
        } else {
            1.0
        };
        let scaled = if scale == 1.0 {
            objective
        } else {
            &objective * scale
        };
        scaled.f_backward().map_err(|e| match &self.par {
            // Only SyncBatchNorm's all-reduce talks to other processes in the backward pass.
            Some(p) => {
                p.pg.failed(
                    &format!("backward pass (SyncBatchNorm all-reduce) at step {step}"),
                    e.to_string(),
                )
                .into()
            }
            None => TrainError::Other(format!("backward pass at step {step}: {e}")),
        })?;
        if let Some(p) = &self.par {
            let t0 = std::time::Instant::now();
            evdet_dist::buckets::all_reduce_gradients(
                &p.pg,
                &self.opt.grads(),
                p.bucket_bytes,
                step,
            )?;
            m.insert("train/grad_allreduce_s".into(), t0.elapsed().as_secs_f64());
        }
        if precision == Precision::Fp16 {
            // Dynamic loss scaling: backward on the scaled loss, unscale, and skip the step when the
            // fp16 gradients overflowed (the scale then halves).
            self.opt.scale_grads(1.0 / scale);
            let norm = self.opt.grad_norm();
            let mut scaler = GradScaler {
                scale,
                growth_tracker: self.state.loss_scale_growth_tracker,
                ..Default::default()
            };
            scaler.update(!norm.is_finite());
            self.state.loss_scale = scaler.scale;
            self.state.loss_scale_growth_tracker = scaler.growth_tracker;
            m.insert("train/loss_scale".into(), scale);
            if !norm.is_finite() {
                self.state.amp_skipped += 1;
                m.insert("train/amp_skipped".into(), self.state.amp_skipped as f64);
                self.opt.zero_grad();
                return Ok(m);
            }
            m.insert("train/grad_norm".into(), norm);
        } else {
            m.insert("train/grad_norm".into(), self.opt.grad_norm());
        }
        self.opt
            .clip_grad_value(self.cfg.training.gradient_clip_val);
        self.opt.step(lr);
        self.state.optimizer_step = self.opt.step;
        if let Some(ema) = &mut self.ema {
            ema.update();
        }
        self.state.lr = lr;
        Ok(m)
    }

    /// Validation on the val split with both protocols; keys `val/<protocol>/<stat>`. With
    /// `training.ema` the averaged weights are evaluated.
    pub fn validate(&mut self) -> Result<BTreeMap<String, f64>, TrainError> {
        let Some(val) = self.val.clone() else {
            return Ok(BTreeMap::new());
        };
        let report = self.with_eval_weights(|t| {
            evaluate::EvalRun::new(
                &t.det,
                &t.cfg,
                t.device,
                t.cfg.validation.confidence_threshold,
            )
            .limited(t.cfg.validation.limit_val_batches)
            .sharded(t.par.as_deref().map(|p| &*p.pg))
            .evaluate(val, |_, _| {})
        })?;
        Ok(report.metrics("val"))
    }

    /// Runs `f` with the weights evaluations use: the moving average with `training.ema`, else the
    /// trained ones.
    pub fn with_eval_weights<T>(&self, f: impl FnOnce(&Self) -> T) -> T {
        match &self.ema {
            Some(ema) => ema.with_weights(|| f(self)),
            None => f(self),
        }
    }

    /// Writes `checkpoints/<name>`. Data parallel, every process calls it at the same step: the
    /// stream slots' recurrent states are gathered from all of them, and rank 0 writes.
    pub fn save_checkpoint(&self, name: &str) -> Result<(), TrainError> {
        let mut recurrent = self
            .stream_states
            .as_ref()
            .map(|s| named_states(s))
            .unwrap_or_default();
        if let Some(p) = &self.par {
            let first = self.plan.first_row(p.rank()).min(self.plan.bs_stream);
            for (n, t) in recurrent.iter_mut() {
                let what = format!("gathering recurrent state {n} for checkpoint '{name}'");
                *t = p.gather_rows(t, first, self.plan.bs_stream, &what)?;
            }
            if p.rank() != 0 {
                return Ok(());
            }
        }
        let mut state = self.state.clone();
        let ema = self.ema.as_ref().map(|e| e.named()).unwrap_or_default();
        state.ema_updates = self.ema.as_ref().map_or(0, |e| e.updates);
        state.stream_slots = self.plan.bs_stream;
        state.global_batch = Some(self.plan.batch_size());
        state.world_size = Some(self.plan.world);
        let contents = checkpoint::Contents {
            model: &evdet_model::import::named_tensors(&self.vs),
            optimizer: &self.opt.state_tensors(),
            recurrent: &recurrent,
            ema: &ema,
            state: &state,
            config: &self.cfg,
        };
        if name == "last" {
            // The `last` being replaced stays as `previous`: a resume falls back to it when the new
            // `last` turns out damaged.
            checkpoint::save_keeping(&self.run.last(), &self.run.previous(), &contents)?;
        } else {
            checkpoint::save(&self.run.checkpoint(name), &contents)?;
        }
        Ok(())
    }

    pub fn train_data(&self) -> &Arc<SplitData> {
        &self.train
    }
}

fn named_states(s: &[LstmState]) -> Vec<(String, Tensor)> {
    s.iter()
        .enumerate()
        .flat_map(|(i, st)| {
            [
                (format!("stage{i}.h"), st.h.shallow_clone()),
                (format!("stage{i}.c"), st.c.shallow_clone()),
            ]
        })
        .collect()
}

fn states_from_named(t: &[(String, Tensor)], device: Device) -> Result<Vec<LstmState>, TrainError> {
    let get = |k: String| {
        t.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_device(device))
            .ok_or_else(|| {
                TrainError::Other(format!("recurrent state {k} missing from the checkpoint"))
            })
    };
    let n = t.len() / 2;
    (0..n)
        .map(|i| {
            Ok(LstmState {
                h: get(format!("stage{i}.h"))?,
                c: get(format!("stage{i}.c"))?,
            })
        })
        .collect()
}

/// The first `n` rows of a state (the stream slots).
fn keep_rows(s: &LstmState, n: usize) -> LstmState {
    LstmState {
        h: s.h.narrow(0, 0, n as i64),
        c: s.c.narrow(0, 0, n as i64),
    }
}

/// A state grown to `rows` rows with zeros (random rows of a mixed batch start from zero).
fn pad_rows(s: &LstmState, rows: usize) -> LstmState {
    let pad = |t: &Tensor| {
        let extra = rows as i64 - t.size()[0];
        if extra <= 0 {
            return t.shallow_clone();
        }
        let mut shape = t.size();
        shape[0] = extra;
        Tensor::cat(
            &[
                t.shallow_clone(),
                Tensor::zeros(&shape, (t.kind(), t.device())),
            ],
            0,
        )
    };
    LstmState {
        h: pad(&s.h),
        c: pad(&s.c),
    }
}
