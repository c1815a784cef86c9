//! Running a trained detector, apart from training: the checkpoint folder (open, verify, save), the
//! model an experiment config describes, streaming inference over a recording window by window
//! (`evdet predict`), TorchScript / ONNX export with explicit recurrent state (`evdet export`), import
//! of RVT / eTraM Lightning checkpoints (`evdet import-rvt`) and deployment latency (`evdet bench
//! latency`), and streaming evaluation of a split (`evdet eval`) over `evdet-data`'s reading side.
//! `evdet-train` builds on it; nothing here knows the training loop.

pub mod checkpoint;
pub mod evaluate;
pub mod export;
pub mod import;
pub mod infer;
pub mod latency;
pub mod model_setup;
pub mod prediction;
