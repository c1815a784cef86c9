//! The commands that run the network, which `evdet` hands over to the `evdet-torch` executable beside
//! it (so the others never load libtorch): their names and one-line descriptions for `evdet --help`,
//! and the hand-over itself.

use std::ffi::OsString;
use std::path::PathBuf;

/// Which executable runs a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunsIn {
    /// `evdet` itself (no libtorch).
    Evdet,
    /// `evdet-torch`, to which `evdet` hands the command line over.
    Torch,
}

/// Every `evdet` command, in the workflow's order that `evdet --help` lists them: the one list of
/// command names. The third field is the one-line description of the commands `evdet-torch` runs
/// (`evdet` lists them without parsing their arguments, and `evdet-torch` takes its descriptions from
/// here, so both `--help` pages say the same); the others describe themselves in their `Args`.
pub const COMMANDS: &[(&str, RunsIn, &str)] = &[
    ("synth", RunsIn::Evdet, ""),
    ("preprocess", RunsIn::Evdet, ""),
    ("convert", RunsIn::Evdet, ""),
    (
        TRAIN,
        RunsIn::Torch,
        "Train an experiment (default: the CPU-sized synthetic `mini` experiment)",
    ),
    (
        EVAL,
        RunsIn::Torch,
        "Evaluate a trained or imported checkpoint (both protocols, AP by size and class)",
    ),
    (
        PREDICT,
        RunsIn::Torch,
        "Detect objects in a recording with a checkpoint and look at the result",
    ),
    (
        EXPORT,
        RunsIn::Torch,
        "Export a checkpoint to TorchScript or ONNX with explicit LSTM states, for deployment",
    ),
    ("report", RunsIn::Evdet, ""),
    ("study", RunsIn::Evdet, ""),
    ("coco-eval", RunsIn::Evdet, ""),
    (
        IMPORT_RVT,
        RunsIn::Torch,
        "Import RVT or eTraM weights into an evdet checkpoint folder",
    ),
    (
        CHECK_REFERENCE,
        RunsIn::Torch,
        "Compare the detector with a PyTorch reference fixture folder, output by output",
    ),
    ("bench", RunsIn::Evdet, ""),
];

/// `(name, about)` of the commands `evdet-torch` runs, in [`COMMANDS`]' order.
pub fn torch_commands() -> impl Iterator<Item = (&'static str, &'static str)> {
    COMMANDS
        .iter()
        .filter(|(_, runs, _)| *runs == RunsIn::Torch)
        .map(|(name, _, about)| (*name, *about))
}

pub const TRAIN: &str = "train";
pub const EVAL: &str = "eval";
pub const PREDICT: &str = "predict";
pub const IMPORT_RVT: &str = "import-rvt";
pub const EXPORT: &str = "export";
pub const CHECK_REFERENCE: &str = "check-reference";
/// `bench model` (the other `bench` subcommands run in `evdet`).
pub const BENCH_MODEL: (&str, &str) = (
    "model",
    "Detector latency per frame and training-step time / memory",
);

/// `bench latency`.
pub const BENCH_LATENCY: (&str, &str) = (
    "latency",
    "Streaming latency per window: histogram, eager, exported TorchScript, ONNX Runtime",
);

/// The description of a command `evdet-torch` runs.
pub fn about(name: &str) -> &'static str {
    torch_commands()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, a)| a)
}

/// Whether the command line (without the program name) asks for a command `evdet-torch` runs,
/// including `help <command>` and `bench model`.
pub fn wants_torch(args: &[OsString]) -> bool {
    let words: Vec<&str> = args
        .iter()
        .filter_map(|a| a.to_str())
        .filter(|a| !a.starts_with('-'))
        .take(3)
        .collect();
    let is_torch = |w: &[&str]| match w {
        [first, ..] if torch_commands().any(|(n, _)| n == *first) => true,
        ["bench", second, ..] => *second == BENCH_MODEL.0 || *second == BENCH_LATENCY.0,
        _ => false,
    };
    match words.as_slice() {
        ["help", rest @ ..] => is_torch(rest),
        w => is_torch(w),
    }
}

/// `evdet-torch` in the folder of the running executable.
pub fn torch_executable() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let sibling = exe.with_file_name(format!("evdet-torch{}", std::env::consts::EXE_SUFFIX));
    if sibling.is_file() {
        Ok(sibling)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{} is missing: the commands that run the network live in evdet-torch beside evdet \
                 (build both with `cargo build --release -p evdet-cli`, install both together)",
                sibling.display()
            ),
        ))
    }
}

/// Replaces this process by `evdet-torch` with the same arguments (returns only on failure).
pub fn hand_over(args: &[OsString]) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    match torch_executable() {
        Ok(exe) => std::process::Command::new(exe)
            .arg0("evdet")
            .args(args)
            .exec(),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn torch(line: &str) -> bool {
        let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
        wants_torch(&args)
    }

    #[test]
    fn network_commands_are_handed_over_and_the_rest_are_not() {
        for l in [
            "train",
            "train training.max_steps=2",
            "eval --run r",
            "predict --help",
            "import-rvt x.ckpt --out y",
            "check-reference d",
            "bench model --presets tiny",
            "help train",
            "help bench model",
        ] {
            assert!(torch(l), "{l}");
        }
        for l in [
            "",
            "--help",
            "--version",
            "synth --out d",
            "preprocess --raw a --out b",
            "coco-eval --gt g --dt d",
            "report r",
            "bench repr",
            "bench --help",
            "help",
            "help synth",
        ] {
            assert!(!torch(l), "{l}");
        }
    }
}
