//! `evdet-torch`: the `evdet` commands that run the network (train, eval, predict, import-rvt,
//! check-reference, bench model). Users run `evdet`, which hands these commands over to this
//! executable with the same arguments; it links libtorch, the other does not.

mod commands;
use evdet_cli::configs;
mod device;
mod evaluation;

use clap::{Parser, Subcommand};
use evdet_cli::progress;
use evdet_cli::torch_commands::{self as names, about};

#[derive(Parser)]
#[command(
    name = "evdet",
    version,
    about = "The evdet commands that run the network (started by `evdet`)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(name = names::TRAIN, about = about(names::TRAIN))]
    Train(commands::train::Args),
    #[command(name = names::EVAL, about = about(names::EVAL))]
    Eval(commands::eval::Args),
    #[command(name = names::PREDICT, about = about(names::PREDICT))]
    Predict(commands::predict::Args),
    #[command(name = names::EXPORT, about = about(names::EXPORT))]
    Export(commands::export::Args),
    #[command(name = names::IMPORT_RVT, about = about(names::IMPORT_RVT))]
    ImportRvt(commands::import_rvt::Args),
    #[command(name = names::CHECK_REFERENCE, about = about(names::CHECK_REFERENCE))]
    CheckReference(commands::check_reference::Args),
    /// Measure speed; every subcommand prints one JSON object on stdout.
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
}

#[derive(Subcommand)]
enum Bench {
    #[command(name = names::BENCH_MODEL.0, about = names::BENCH_MODEL.1)]
    Model(commands::bench_model::Args),
    #[command(name = names::BENCH_LATENCY.0, about = names::BENCH_LATENCY.1)]
    Latency(commands::bench_latency::Args),
}

fn main() {
    evdet_cli::memory::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => commands::train::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Predict(a) => commands::predict::run(a),
        Command::Export(a) => commands::export::run(a),
        Command::ImportRvt(a) => commands::import_rvt::run(a),
        Command::CheckReference(a) => commands::check_reference::run(a),
        Command::Bench {
            what: Bench::Model(a),
        } => commands::bench_model::run(a),
        Command::Bench {
            what: Bench::Latency(a),
        } => commands::bench_latency::run(a),
    };
    evdet_cli::exit_with(result);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag and positional argument of every command has a sentence of help, and the command
    /// descriptions are those `evdet --help` shows.
    #[test]
    fn every_argument_is_documented() {
        let cmd = Cli::command();
        let missing = evdet_cli::undocumented_args(&cmd);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
        for (name, about) in names::torch_commands() {
            let sub = cmd.find_subcommand(name).expect(name);
            assert_eq!(
                sub.get_about().map(|a| a.to_string()),
                Some(about.to_string())
            );
        }
    }
}
