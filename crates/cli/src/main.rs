//! `evdet`: train, evaluate and run recurrent event-camera detectors (RVT family) on eTraM/Prophesee data.
//! This file only parses the command line and hands over to `commands/`.

mod commands;
mod configs;
mod device;
mod evaluation;
mod progress;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "evdet",
    version,
    about = "Recurrent event-camera object detection (RVT: MaxViT-RNN + YOLOX) for small objects",
    long_about = "evdet turns raw event recordings (eTraM / Prophesee Gen4 and Gen1) into RVT's preprocessed \
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
    Train(commands::train::Args),
    Eval(commands::eval::Args),
    Predict(commands::predict::Args),
    Report(commands::report::Args),
    CocoEval(commands::coco_eval::Args),
    ImportRvt(commands::import_rvt::Args),
    CheckReference(commands::check_reference::Args),
    Bench(commands::bench::Args),
}

fn main() {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Synth(a) => commands::synth::run(a),
        Command::Preprocess(a) => commands::preprocess::run(a),
        Command::Train(a) => commands::train::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Predict(a) => commands::predict::run(a),
        Command::Report(a) => commands::report::run(a),
        Command::CocoEval(a) => commands::coco_eval::run(a),
        Command::ImportRvt(a) => commands::import_rvt::run(a),
        Command::CheckReference(a) => commands::check_reference::run(a),
        Command::Bench(a) => commands::bench::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// glibc hands every large block back to the kernel when it is freed (blocks over the mmap threshold are
/// unmapped, the worker threads' heaps are trimmed), so the next window's buffers of the same size come
/// back as fresh pages that fault in one by one: preprocessing spent about 30 % of its CPU time in page
/// faults. Keeping freed memory in the process turns those into reuse.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; called before any thread exists.
    unsafe {
        // 32 MB is glibc's largest mmap threshold on 64-bit; 18 MB histogram windows stay below it.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
