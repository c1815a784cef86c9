//! One module per command that runs the network.

pub mod bench_latency;
pub mod bench_model;
pub mod check_reference;
pub mod eval;
pub mod export;
pub mod import_rvt;
pub mod predict;
pub mod train;
