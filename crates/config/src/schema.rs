//! The typed experiment configuration. Key names follow the reference (RVT's Hydra configs and the seed
//! experiment's keys) so a config, a CLI override and a report label for the same thing share one name.

use super::compose::ConfigError;
use serde::{Deserialize, Serialize};
use serde_norway::Value;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExperimentConfig {
    pub reproduce: Reproduce,
    pub training: Training,
    pub validation: Validation,
    pub batch_size: Split<usize>,
    pub hardware: Hardware,
    pub logging: Logging,
    pub dataset: DatasetConfig,
    /// RVT's `model` section (backbone / fpn / head / postprocess), typed by the model crate.
    pub model: Value,
    #[serde(default)]
    pub success_criteria: Vec<Criterion>,
}

impl ExperimentConfig {
    pub fn from_value(v: Value) -> Result<Self, ConfigError> {
        // The path of the value at fault (`training.max_steps`), not the root the error surfaced at.
        let cfg: Self = serde_path_to_error::deserialize(v).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Value {
                key: if key == "." { "<root>".into() } else { key },
                message: e.into_inner().to_string(),
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The resolved configuration as YAML (written into every run directory and checkpoint).
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_default()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| {
            Err(ConfigError::Value {
                key: key.into(),
                message,
            })
        };
        if self.training.max_steps == 0 {
            return bad("training.max_steps", "must be positive".into());
        }
        if self.training.learning_rate.is_nan() || self.training.learning_rate <= 0.0 {
            return bad(
                "training.learning_rate",
                format!("must be positive, got {}", self.training.learning_rate),
            );
        }
        if self.batch_size.train == 0 || self.batch_size.eval == 0 {
            return bad("batch_size", "train and eval must be positive".into());
        }
        if self.dataset.sequence_length == 0 {
            return bad("dataset.sequence_length", "must be positive".into());
        }
        if self.dataset.classes.is_empty() {
            return bad("dataset.classes", "list the class names".into());
        }
        for c in &self.dataset.small_classes {
            if !self.dataset.classes.contains(c) {
                return bad(
                    "dataset.small_classes",
                    format!(
                        "'{c}' is not one of dataset.classes {:?}",
                        self.dataset.classes
                    ),
                );
            }
        }
        // Mixed sampling needs two rows in the global batch (WORLD_SIZE × batch_size.train): the
        // training plan checks that, knowing the world size.
        if self.batch_size.train == 0 {
            return bad("batch_size.train", "must be at least 1".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reproduce {
    /// Every random choice (initialisation, sampling, augmentation) derives from this seed.
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Training {
    /// `fp32` | `fp16` | `bf16` (mixed precision with autocast and loss scaling on GPUs).
    pub precision: String,
    pub max_steps: u64,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Gradient clipping by value.
    pub gradient_clip_val: f64,
    pub lr_scheduler: LrScheduler,
    /// Consecutive non-finite losses tolerated (each skips its step) before the run stops.
    pub max_nonfinite_in_row: u32,
    /// Keep an exponential moving average of the weights (YOLOX's `ModelEMA`) and evaluate, predict
    /// and export with it.
    #[serde(default)]
    pub ema: bool,
    /// The average's decay (ramped in as 1 − exp(−updates / 2000)).
    #[serde(default = "default_ema_decay")]
    pub ema_decay: f64,
}

fn default_ema_decay() -> f64 {
    0.9998
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LrScheduler {
    #[serde(rename = "use")]
    pub enabled: bool,
    pub pct_start: f64,
    /// Initial lr = max lr / div_factor.
    pub div_factor: f64,
    /// Final lr = max lr / final_div_factor (RVT's meaning, not PyTorch's).
    pub final_div_factor: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Validation {
    /// Validate every N training steps (and at the end).
    pub val_check_interval: u64,
    /// Metric that selects the `best` checkpoint.
    pub best_metric: String,
    /// Validation batches to run (0 = all).
    pub limit_val_batches: usize,
    /// Post-process confidence threshold during training-time validation (reported numbers use 0.001).
    pub confidence_threshold: f64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Split<T> {
    pub train: T,
    pub eval: T,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hardware {
    /// Loader threads per split (they only prefetch: batches are the same for any value).
    pub num_workers: Split<usize>,
    /// `auto` | `cpu` | `cuda` | `cuda:N`.
    pub device: String,
    /// Intra-op CPU threads for libtorch (0 = libtorch's default; with several local ranks on the
    /// CPU, the cores divided among them).
    pub cpu_threads: usize,
    /// Distributed training's backend: `auto` (NCCL on CUDA, Gloo on the CPU), `gloo`, `nccl`.
    #[serde(default = "default_dist_backend")]
    pub dist_backend: String,
    /// Seconds a collective may wait before the job ends with a message naming the rank.
    #[serde(default = "default_dist_timeout_s")]
    pub dist_timeout_s: u64,
    /// Gradient all-reduce bucket size in MiB.
    #[serde(default = "default_dist_bucket_mb")]
    pub dist_bucket_mb: f64,
    /// SyncBatchNorm when WORLD_SIZE > 1 (RVT trains with `sync_batchnorm=True`).
    #[serde(default = "default_true")]
    pub sync_batchnorm: bool,
    /// Join a process group of one when the process runs alone (WORLD_SIZE 1): the data-parallel
    /// path — the backend's collectives, buckets, SyncBatchNorm — checked on a single device (NCCL
    /// refuses two ranks on one GPU).
    #[serde(default)]
    pub dist_alone: bool,
}

fn default_dist_backend() -> String {
    "auto".into()
}

fn default_dist_timeout_s() -> u64 {
    300
}

fn default_dist_bucket_mb() -> f64 {
    25.0
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Logging {
    pub project: String,
    pub group: String,
    pub experiment_id: String,
    pub log_every_n_steps: u64,
    /// Write the `last` checkpoint every N steps (and at the end).
    pub ckpt_every_n_steps: u64,
    /// Root folder of run directories.
    pub runs_dir: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Sampling {
    Random,
    Stream,
    Mixed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSampling {
    pub sampling: Sampling,
    pub mixed: MixedWeights,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MixedWeights {
    pub w_stream: f64,
    pub w_random: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalSampling {
    pub sampling: Sampling,
    /// Prophesee filter constants: `gen4` (min diagonal 60, side 20) or `gen1` (30, 10).
    pub camera: String,
    /// Halve the filter constants: boxes are in a frame downsampled by 2 (eTraM's 640×360 input, and
    /// the `mini` sample whose objects have those sizes).
    pub filter_downsampled_by_2: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetConfig {
    pub name: String,
    /// Preprocessed dataset root (`<path>/{train,val,test}/<seq>/…`).
    pub path: String,
    /// Raw dataset to generate with `evdet synth` and preprocess when `path` does not exist yet
    /// (synthetic datasets only; empty = none).
    pub synthesize: Synthesize,
    pub ev_repr_name: String,
    pub sequence_length: usize,
    /// Sensor / label frame (the resolution boxes are stored in).
    pub resolution_hw: [usize; 2],
    pub downsample_by_factor_2: bool,
    pub only_load_end_labels: bool,
    pub classes: Vec<String>,
    /// Class names of the "small classes" group in reports.
    pub small_classes: Vec<String>,
    pub train: TrainSampling,
    pub eval: EvalSampling,
    pub data_augmentation: Augmentation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Synthesize {
    /// `evdet synth` preset; empty = not a synthetic dataset.
    pub preset: String,
    pub raw_path: String,
    pub seed: u64,
    /// The folder the sample is preprocessed into: it is generated only when `dataset.path` names
    /// this folder, so a mistyped `dataset.path` is an error, not a new sample. Empty: any path.
    #[serde(default)]
    pub path: String,
    /// Sequences per split (`train=4,val=1,test=4`); empty: the preset's.
    #[serde(default)]
    pub sequences: String,
}

impl DatasetConfig {
    /// Height and width the network sees (before padding to the partition multiple).
    pub fn input_hw(&self) -> (usize, usize) {
        let [h, w] = self.resolution_hw;
        if self.downsample_by_factor_2 {
            (h / 2, w / 2)
        } else {
            (h, w)
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Augmentation {
    pub random: AugmentParams,
    pub stream: AugmentParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AugmentParams {
    pub prob_hflip: f64,
    pub zoom: ZoomParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZoomParams {
    pub prob: f64,
    pub zoom_in: ZoomRange,
    pub zoom_out: ZoomRange,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZoomRange {
    /// Relative weight of choosing this zoom direction (0 disables it).
    pub weight: f64,
    pub factor: Range,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

/// A success criterion: `{metric, op, value}` or `{metric, op, baseline: <run name>}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Criterion {
    pub metric: String,
    pub op: String,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub baseline: Option<String>,
}
