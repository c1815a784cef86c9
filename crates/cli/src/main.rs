//! `evdet`: train, evaluate and run recurrent event-camera detectors (RVT family) on eTraM/Prophesee data.
//! This executable parses the command line, runs the commands that need no tensor engine, and hands
//! the others over to `evdet-torch` (see `torch_commands`), so that `--help`, `--version`,
//! `coco-eval`, `synth`, `preprocess` and `report` start without loading libtorch.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use evdet_cli::commands;
use evdet_cli::torch_commands;

#[derive(Parser)]
#[command(
    name = "evdet",
    version,
    about = "Recurrent event-camera object detection (RVT: MaxViT-RNN + YOLOX) for small objects",
    long_about = "evdet turns raw event recordings (eTraM / Prophesee Gen4 and Gen1 HDF5, camera .raw files) into RVT's preprocessed \
layout, trains and evaluates recurrent detectors, and compares experiments.\n\n\
Typical session:\n  evdet synth --out data/mini_raw --preset mini\n  evdet preprocess --raw data/mini_raw --out data/mini\n  evdet train                                   # the synthetic mini experiment, then test metrics and report.html\n  evdet predict --checkpoint runs/synthetic/mini/4scale_sizeaware_tiny --input data/mini_raw/test/mini_test_000_td.h5 --video\n  evdet report runs/synthetic/mini/4scale_sizeaware_tiny"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Synth(commands::synth::Args),
    Preprocess(commands::preprocess::Args),
    Convert(commands::convert::Args),
    Report(commands::report::Args),
    Study(commands::study::Args),
    CocoEval(commands::coco_eval::Args),
    Bench(commands::bench::Args),
}

/// The full command tree for `--help`: this executable's commands plus those `evdet-torch` runs.
fn command_tree() -> clap::Command {
    let mut cmd = Cli::command();
    for (name, about) in torch_commands::torch_commands() {
        cmd = cmd.subcommand(clap::Command::new(name).about(about));
    }
    for (i, (name, _, _)) in torch_commands::COMMANDS.iter().enumerate() {
        cmd = cmd.mut_subcommand(*name, |c| c.display_order(i));
    }
    let (model, about) = torch_commands::BENCH_MODEL;
    let (latency, latency_about) = torch_commands::BENCH_LATENCY;
    cmd.mut_subcommand("bench", |b| {
        b.subcommand(clap::Command::new(model).about(about))
            .subcommand(clap::Command::new(latency).about(latency_about))
    })
}

fn main() {
    evdet_cli::memory::keep_freed_memory();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if torch_commands::wants_torch(&args) {
        let e = torch_commands::hand_over(&args);
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    let matches = command_tree().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Synth(a) => commands::synth::run(a),
        Command::Preprocess(a) => commands::preprocess::run(a),
        Command::Convert(a) => commands::convert::run(a),
        Command::Report(a) => commands::report::run(a),
        Command::Study(a) => commands::study::run(a),
        Command::CocoEval(a) => commands::coco_eval::run(a),
        Command::Bench(a) => commands::bench::run(a),
    };
    evdet_cli::exit_with(result);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command table names every command there is, each once.
    #[test]
    fn every_command_is_in_the_one_table() {
        let tree = command_tree();
        let mut listed: Vec<&str> = torch_commands::COMMANDS.iter().map(|c| c.0).collect();
        let mut real: Vec<&str> = tree
            .get_subcommands()
            .map(|c| c.get_name())
            .filter(|n| *n != "help")
            .collect();
        listed.sort_unstable();
        real.sort_unstable();
        assert_eq!(listed, real);
    }

    /// Every flag and positional argument of every command has a sentence of help.
    #[test]
    fn every_argument_is_documented() {
        let missing = evdet_cli::undocumented_args(&command_tree());
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }
}
