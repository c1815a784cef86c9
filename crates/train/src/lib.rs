//! Training for evdet: experiment configuration, datasets and sampling over RVT's preprocessed layout,
//! augmentation, the training loop, optimiser and schedule, checkpoints and metric logs.

pub use evdet_config as config;
/// The checkpoint folder, the model setup and inference live in `evdet-infer`; their paths here stay
/// for the trainer's code and its users.
pub use evdet_infer::{checkpoint, export, import, infer, latency, model_setup};
pub mod data;
pub mod evaluate;
pub mod logs;
pub mod optim;
pub mod parallel;
pub mod reproducibility;
pub mod session;
pub mod trainer;
