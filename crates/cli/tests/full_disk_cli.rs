//! A full disk through the binary (issue 17): each writer — preprocessing, checkpointing, predict's
//! frames and animation, the report — runs under a file-size limit (RLIMIT_FSIZE with SIGXFSZ ignored,
//! so a write past it fails with EFBIG as a full disk fails with ENOSPC, through the same error path;
//! a tmpfs would need privileges CI does not have). Each must stop with an error naming the path and
//! leave no partial file under a final name: whatever it left is byte-identical to, or readable as,
//! what an unlimited run writes, and the rerun completes. An unwritable runs folder is an error before
//! any training step.

mod common;
use common::*;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A `mini` dataset (1 sequence per split) and one 4-step tiny run on it, made once.
fn workspace() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tiny_dataset(11, "train=1,val=1,test=1");
        run(train(dir.path(), "run", 4));
        dir
    })
    .path()
}

fn train(ws: &Path, id: &str, steps: u64) -> Command {
    let mut c = evdet();
    c.args(["train", "--no-test", "--config-dir"])
        .arg(config_dir())
        .arg(format!("dataset.path={}", ws.join("pre").display()))
        .arg(format!("logging.runs_dir={}", ws.join("runs").display()))
        .arg(format!("logging.experiment_id={id}"))
        .arg(format!("training.max_steps={steps}"))
        .args([
            "model.backbone.embed_dim=8",
            "model.backbone.stage.attention.dim_head=8",
            "batch_size.train=2",
            "batch_size.eval=2",
            "dataset.sequence_length=2",
            "validation.val_check_interval=10000",
            "hardware.cpu_threads=1",
        ]);
    c
}

fn run_dir(id: &str) -> PathBuf {
    workspace().join("runs/synthetic/mini").join(id)
}

/// `cmd` with no file allowed to grow past `bytes`; returns its stderr, asserting it failed.
fn fails_when_full(cmd: &mut Command, bytes: u64) -> String {
    // SAFETY: setrlimit and signal are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success(),
        "{cmd:?} succeeded under a {bytes}-byte file limit\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Every file under `dir`, relative, with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn preprocessing_on_a_full_disk_leaves_only_whole_files_and_resumes() {
    let ws = workspace();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("pre");
    let mut cmd = evdet();
    cmd.args([
        "preprocess",
        "--downsample-by-factor-2",
        "false",
        "--jobs",
        "1",
        "--raw",
    ])
    .arg(ws.join("raw"))
    .arg("--out")
    .arg(&out);
    let err = fails_when_full(&mut cmd, 48 << 10);
    assert!(
        err.contains("File too large") && err.contains(&*out.to_string_lossy()),
        "{err}"
    );
    let clean = files(&ws.join("pre"));
    let left = files(&out);
    for (rel, bytes) in &left {
        let name = rel.file_name().unwrap().to_string_lossy();
        if name.starts_with('.') {
            continue; // a temporary, replaced by the next run
        }
        let whole = clean.iter().find(|(r, _)| r == rel).map(|(_, b)| b);
        assert_eq!(
            whole,
            Some(bytes),
            "{} is not the whole file",
            rel.display()
        );
    }
    run(evdet()
        .args(["preprocess", "--downsample-by-factor-2", "false", "--raw"])
        .arg(ws.join("raw"))
        .arg("--out")
        .arg(&out));
    let after: Vec<_> = files(&out)
        .into_iter()
        .filter(|(r, _)| !r.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    let names = |v: &[(PathBuf, Vec<u8>)]| v.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&clean));
    for ((rel, a), (_, b)) in after.iter().zip(&clean) {
        assert!(
            a == b,
            "{} differs from an uninterrupted run's",
            rel.display()
        );
    }
}

#[test]
fn a_checkpoint_that_does_not_fit_is_an_error_and_no_checkpoint() {
    let ws = workspace();
    let err = fails_when_full(&mut train(ws, "full", 2), 64 << 10);
    assert!(
        err.contains("checkpoints") && err.contains("File too large"),
        "{err}"
    );
    let ckpts = ws.join("runs/synthetic/mini/full/checkpoints");
    for name in ["last", "best"] {
        assert!(
            !ckpts.join(name).exists(),
            "a partial {name} under its final name"
        );
    }
    // The rerun without the limit completes.
    run(train(ws, "full", 2));
    assert!(ckpts.join("last/model.safetensors").is_file());
}

#[test]
fn an_unwritable_runs_folder_is_an_error_before_training() {
    let ws = workspace();
    let blocker = ws.join("a_file");
    std::fs::write(&blocker, b"x").unwrap();
    let t0 = std::time::Instant::now();
    let o = train(ws, "x", 1000)
        .arg(format!(
            "logging.runs_dir={}",
            blocker.join("runs").display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains(&*blocker.to_string_lossy()), "{err}");
    assert!(!err.contains("step 1"), "{err}");
    assert!(t0.elapsed().as_secs() < 60);
}

#[test]
fn predict_frames_and_animation_on_a_full_disk() {
    let ws = workspace();
    let rec = file_ending(&ws.join("raw/test"), "_td.h5");
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("pred");
    let mut cmd = evdet();
    cmd.args(["predict", "--checkpoint"])
        .arg(run_dir("run"))
        .arg("--input")
        .arg(&rec)
        .arg("--out")
        .arg(&out)
        .arg("--video");
    let err = fails_when_full(&mut cmd, 40 << 10);
    assert!(
        err.contains("File too large") && err.contains(&*out.to_string_lossy()),
        "{err}"
    );
    // The prediction is built in a temporary folder and swapped in whole: a failed one leaves no
    // output folder, and nothing of the temporary one.
    assert!(!out.exists(), "a partial prediction folder was left");
    assert!(
        std::fs::read_dir(d.path()).unwrap().next().is_none(),
        "the temporary folder was left"
    );
}

#[test]
fn a_report_that_does_not_fit_is_an_error_and_no_page() {
    let d = tempfile::tempdir().unwrap();
    let page = d.path().join("r.html");
    let mut cmd = evdet();
    cmd.arg("report")
        .arg(run_dir("run"))
        .arg("--out")
        .arg(&page);
    let err = fails_when_full(&mut cmd, 16 << 10);
    assert!(
        err.contains("File too large") && err.contains("r.html"),
        "{err}"
    );
    assert!(!page.exists(), "a partial report under its final name");
}
