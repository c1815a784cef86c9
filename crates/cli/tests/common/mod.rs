//! What the command-line tests share: the `evdet` binary with one OpenMP thread (tests run side by
//! side on few cores), running a command that must succeed, and the repository's config folder.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn evdet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_evdet"));
    c.env("OMP_NUM_THREADS", "1");
    c
}

/// Runs `cmd`, fails the test with its output unless it succeeds; returns (stdout, stderr).
pub fn run(mut cmd: impl std::borrow::BorrowMut<Command>) -> (String, String) {
    let cmd = cmd.borrow_mut();
    let o = cmd.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{cmd:?} failed\n{out}\n{err}");
    (out, err)
}

/// The venv Python of `scripts/setup.sh` (torch, onnx, onnxruntime, safetensors, h5py, torchvision).
pub fn python() -> PathBuf {
    std::env::var_os("EVDET_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".evdet/venv/bin/python")
        })
}

/// The first file in `dir` whose name ends with `suffix` (`_td.h5`, `_bbox.npy`, `.raw`).
pub fn file_ending(dir: &Path, suffix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} in {}", dir.display()))
}

pub fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// `evdet synth --preset mini` into `out`: recordings of `duration_s` seconds, `sequences` like
/// `train=1,val=1,test=1`, then `extra` arguments (e.g. `--format raw-evt3`).
pub fn synth_mini(out: &Path, seed: u64, duration_s: &str, sequences: &str, extra: &[&str]) {
    run(evdet()
        .args(["synth", "--preset", "mini", "--seed", &seed.to_string()])
        .args(["--duration-s", duration_s, "--sequences", sequences])
        .args(extra)
        .arg("--out")
        .arg(out));
}

/// [`synth_mini`] (1.5 s recordings) and `evdet preprocess` into `<dir>/raw` and `<dir>/pre`.
pub fn tiny_dataset(seed: u64, sequences: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    synth_mini(&d.join("raw"), seed, "1.5", sequences, &[]);
    run(evdet()
        .args(["preprocess", "--downsample-by-factor-2", "false", "--raw"])
        .arg(d.join("raw"))
        .arg("--out")
        .arg(d.join("pre")));
    dir
}
