//! `evdet bench …`: throughput, latency and memory figures as JSON on stdout. `bench model` times the
//! network and is run by `evdet-torch` (see `torch_commands`).

/// Measure speed; every subcommand prints one JSON object on stdout.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Stacked-histogram and end-to-end preprocessing throughput (events/s).
    Repr(super::bench_repr::Args),
    /// COCO evaluation time on a COCO-val-sized synthetic case.
    Eval(super::bench_eval::Args),
    /// Synthetic data generator throughput.
    Synth(super::bench_synth::Args),
    /// Prophesee RAW decoding/encoding throughput and preprocessing from .raw vs _td.h5.
    Raw(super::bench_raw::Args),
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Repr(a) => super::bench_repr::run(a),
        What::Eval(a) => super::bench_eval::run(a),
        What::Synth(a) => super::bench_synth::run(a),
        What::Raw(a) => super::bench_raw::run(a),
    }
}
