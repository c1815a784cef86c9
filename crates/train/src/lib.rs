//! Training for evdet: experiment configuration, datasets and sampling over RVT's preprocessed layout,
//! augmentation, the training loop, optimiser and schedule, checkpoints and metric logs.

pub mod checkpoint;
pub use evdet_config as config;
pub mod data;
pub mod evaluate;
pub mod export;
pub mod import;
pub mod infer;
pub mod logs;
pub mod model_setup;
pub mod optim;
pub mod parallel;
pub mod reproducibility;
pub mod session;
pub mod trainer;
