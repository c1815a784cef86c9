//! The `evdet` command line. Two executables share it: `evdet`, which users run, and `evdet-torch`
//! beside it. `evdet` answers `--help` and `--version` and runs every command that needs no tensor
//! engine itself (synth, preprocess, coco-eval, report, bench repr|eval|synth), so those start without
//! loading libtorch; the commands that run the network (train, eval, predict, import-rvt,
//! check-reference, bench model) it hands over to `evdet-torch` with the same arguments
//! ([`torch_commands`]). No domain logic lives here: each command is argument parsing plus calls
//! into the library crates.

pub mod commands;
pub mod configs;
pub mod memory;
pub mod recording_args;
pub mod torch_commands;

/// Progress bars and plain progress lines (`evdet-progress`).
pub use evdet_progress as progress;

/// Writes `value` as pretty JSON to `path` when one is given (`--json FILE`), under a temporary name
/// first.
pub fn write_json(
    path: Option<&std::path::Path>,
    value: &impl serde::Serialize,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let Some(path) = path else { return Ok(()) };
    let text = serde_json::to_string_pretty(value).context("serialising the results")?;
    evdet_atomic::write(path, (text + "\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Ends the process as both executables do: an error is printed with its causes, exit status 1.
pub fn exit_with(result: anyhow::Result<()>) {
    if let Err(e) = result {
        eprintln!("error: {}", error_chain(&e));
        std::process::exit(1);
    }
}

/// The error and its causes joined by `: `, as `{:#}` prints them, but without a cause that the
/// message before it already quotes: library errors write `{path}: {source}` and keep `source` as
/// their cause, which `{:#}` would print twice (`x.yaml: No such file (os error 2): No such file (os
/// error 2)`).
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// `command path: --flag` of every argument (of `cmd` and its subcommands) without a help text.
pub fn undocumented_args(cmd: &clap::Command) -> Vec<String> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let builtin = matches!(a.get_id().as_str(), "help" | "version");
            if !builtin && a.get_help().is_none() && a.get_long_help().is_none() {
                out.push(format!("{path}: {}", a.get_id()));
            }
        }
        for s in cmd.get_subcommands() {
            walk(s, &format!("{path} {}", s.get_name()), out);
        }
    }
    let mut out = Vec::new();
    walk(cmd, cmd.get_name(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_quoted_by_its_message_is_printed_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("{path}: {source}")]
        struct Io {
            path: String,
            source: std::io::Error,
        }
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = anyhow::Error::new(Io {
            path: "s.yaml".into(),
            source: io,
        })
        .context("reading the study");
        let text = error_chain(&e);
        assert_eq!(text, "reading the study: s.yaml: entity not found");
        assert_eq!(text.matches("not found").count(), 1);
    }
}
