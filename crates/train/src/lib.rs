//! Training for evdet: the training loop, optimiser and schedule, one training session (alone or as a
//! rank of a process group), checkpoints of a run and metric logs.

pub use evdet_config as config;
/// The checkpoint folder, the model setup, inference and evaluation live in `evdet-infer`, the dataset
/// reading and sampling in `evdet-data`; their paths here stay for the trainer's code and its users.
pub use evdet_data as data;
pub use evdet_infer::{checkpoint, evaluate, export, import, infer, latency, model_setup};
pub mod ema;
pub mod logs;
pub mod optim;
pub mod parallel;
pub mod reproducibility;
pub mod session;
pub mod text;
pub mod trainer;
