//! The subcommands `evdet` runs itself: those that need no tensor engine, so they start in a few
//! milliseconds. One module per subcommand.

pub mod bench;
pub mod bench_eval;
pub mod bench_raw;
pub mod bench_repr;
pub mod bench_synth;
pub mod coco_eval;
pub mod convert;
pub mod preprocess;
pub mod report;
pub mod study;
pub mod synth;
