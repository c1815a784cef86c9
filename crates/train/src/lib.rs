//! Training for evdet: experiment configuration, datasets and sampling over RVT's preprocessed layout,
//! augmentation, the training loop, optimiser and schedule, checkpoints and metric logs.

pub mod config;
pub mod data;
