//! One module per `evdet` subcommand.

pub mod bench;
pub mod bench_eval;
pub mod bench_model;
pub mod bench_repr;
pub mod bench_synth;
pub mod check_reference;
pub mod coco_eval;
pub mod eval;
pub mod import_rvt;
pub mod predict;
pub mod preprocess;
pub mod report;
pub mod synth;
pub mod train;
