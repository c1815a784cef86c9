//! One module per `evdet` subcommand.

pub mod bench;
pub mod bench_eval;
pub mod coco_eval;
pub mod preprocess;
