//! One module per `evdet` subcommand.

pub mod bench;
pub mod bench_eval;
pub mod bench_repr;
pub mod bench_synth;
pub mod coco_eval;
pub mod preprocess;
pub mod synth;
