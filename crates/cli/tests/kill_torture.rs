//! kill -9 at random moments, through the binary (issue 17): `preprocess`, `train` (mid-step,
//! mid-checkpoint-write, mid-validation: every step checkpoints and validates), `import-rvt` and
//! `study` are killed with their whole process group at seeded random times within an uninterrupted
//! run's duration, several times in a row, then rerun to the end. After every kill nothing under a
//! final name is partial, and the finished output equals the uninterrupted run's: the same bytes for
//! preprocessing and import, the same checkpoint files (weights, optimizer, recurrent state, state)
//! and the same logged metrics at every step for training. `EVDET_TORTURE_KILLS` sets the kills per
//! command (4 by default), `EVDET_TORTURE_SEED` the seed.

mod common;
use common::*;

use evdet_events::rng::Rng;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn kills() -> u64 {
    std::env::var("EVDET_TORTURE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

fn rng(what: &str) -> Rng {
    let seed: u64 = std::env::var("EVDET_TORTURE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Rng::new(evdet_events::rng::derive_seed(
        seed,
        &[what.len() as u64, what.as_bytes()[0] as u64],
    ))
}

/// Runs `cmd` in its own process group and SIGKILLs the group after `after` (if still running);
/// returns whether it was killed.
fn kill_after(mut cmd: Command, after: Duration) -> bool {
    let mut child = cmd
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
    true
}

/// Seconds an uninterrupted `cmd` takes (it must succeed).
fn timed(cmd: Command) -> f64 {
    let t0 = Instant::now();
    run(cmd);
    t0.elapsed().as_secs_f64()
}

/// Every file under `dir` (relative path → bytes), temporaries (`.name…`) and the run lock left out.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let hidden = e.file_name().to_string_lossy().starts_with('.');
            if p.is_dir() {
                if !hidden {
                    stack.push(p);
                }
            } else if !hidden {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// Each file of `left` (what a killed run left under final names) equals the same file of `whole`.
fn only_whole_files(
    left: &BTreeMap<PathBuf, Vec<u8>>,
    whole: &BTreeMap<PathBuf, Vec<u8>>,
    what: &str,
) {
    for (rel, bytes) in left {
        assert!(
            whole.get(rel) == Some(bytes),
            "{what}: {} under its final name is not the whole file",
            rel.display()
        );
    }
}

/// One command at a time: kill times are drawn within an uninterrupted run's duration, which
/// means something only when the runs do not share the cores.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn dataset() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tiny_dataset(13, "train=2,val=1,test=1"))
        .path()
}

#[test]
fn preprocess_killed_anywhere_resumes_to_the_same_bytes() {
    let _serial = serial();
    let _ = dataset();
    let d = tempfile::tempdir().unwrap();
    let cmd = |out: &Path| {
        let mut c = evdet();
        c.args([
            "preprocess",
            "--downsample-by-factor-2",
            "false",
            "--jobs",
            "2",
            "--raw",
        ])
        .arg(dataset().join("raw"))
        .arg("--out")
        .arg(out);
        c
    };
    let clean_dir = d.path().join("clean");
    let secs = timed(cmd(&clean_dir));
    let clean = files(&clean_dir);
    let mut r = rng("preprocess");
    let mut killed = 0;
    for k in 0..kills() {
        let out = d.path().join(format!("killed{k}"));
        // One to three kills in a row, then the rerun.
        for _ in 0..1 + r.below(3) {
            let at = Duration::from_secs_f64(r.uniform(0.0, secs));
            killed += kill_after(cmd(&out), at) as u32;
            only_whole_files(&files(&out), &clean, "preprocess after a kill");
        }
        run(cmd(&out));
        assert!(
            files(&out) == clean,
            "preprocess rerun {k} differs from the uninterrupted output"
        );
    }
    eprintln!("preprocess: {killed} kills, every rerun byte-identical");
}

fn train_cmd(runs: &Path) -> Command {
    let mut c = evdet();
    c.args(["train", "--no-test", "--config-dir"])
        .arg(config_dir())
        .arg(format!("dataset.path={}", dataset().join("pre").display()))
        .arg(format!("logging.runs_dir={}", runs.display()))
        .args([
            "logging.experiment_id=t",
            "training.max_steps=6",
            "logging.ckpt_every_n_steps=1",
            "logging.log_every_n_steps=1",
            "validation.val_check_interval=2",
            "validation.limit_val_batches=2",
            "model.backbone.embed_dim=8",
            "model.backbone.stage.attention.dim_head=8",
            "batch_size.train=2",
            "batch_size.eval=2",
            "dataset.sequence_length=2",
            "hardware.cpu_threads=1",
        ]);
    c
}

/// metrics.jsonl by step (a resumed run logs again the steps after its checkpoint: every copy must
/// agree), without the timings and memory figures.
fn metrics(run: &Path) -> BTreeMap<u64, BTreeMap<String, String>> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap_or_default();
    let mut by_step: BTreeMap<u64, BTreeMap<String, String>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            panic!("{}: a cut line in metrics.jsonl: {line}", run.display());
        };
        let step = v["step"].as_u64().unwrap();
        let row: BTreeMap<String, String> = v
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| !k.ends_with("_time_s") && !k.ends_with("_mib"))
            .map(|(k, x)| (k.clone(), x.to_string()))
            .collect();
        let entry = by_step.entry(step).or_default();
        for (k, x) in row {
            if let Some(old) = entry.insert(k.clone(), x.clone()) {
                assert_eq!(
                    old,
                    x,
                    "{}: step {step} {k} logged twice with different values",
                    run.display()
                );
            }
        }
    }
    by_step
}

#[test]
fn training_killed_anywhere_resumes_to_the_same_weights_and_metrics() {
    let _serial = serial();
    let _ = dataset();
    let d = tempfile::tempdir().unwrap();
    // Every run in the same folder (its path is in config.yaml), moved aside when checked.
    let runs = d.path().join("runs");
    let run_dir = runs.join("synthetic/mini/t");
    let secs = timed(train_cmd(&runs));
    let clean_run = d.path().join("clean");
    std::fs::rename(&run_dir, &clean_run).unwrap();
    let clean_last = files(&clean_run.join("checkpoints/last"));
    let clean_best = files(&clean_run.join("checkpoints/best"));
    let clean_metrics = metrics(&clean_run);
    // Validation ran (the first 0.5 s that `limit_val_batches` reaches has no ground truth under the
    // Prophesee filter, so its AP is undefined and absent; the unfiltered one is there).
    assert!(clean_metrics
        .values()
        .any(|r| r.contains_key("val/unfiltered/AP")));
    let mut r = rng("train");
    let mut killed = 0;
    for k in 0..kills() {
        for _ in 0..1 + r.below(3) {
            let at = Duration::from_secs_f64(r.uniform(0.0, secs));
            killed += kill_after(train_cmd(&runs), at) as u32;
            // Whatever checkpoint is there is complete: its state.json lists every file's hash.
            for name in ["last", "previous", "best"] {
                let c = run_dir.join("checkpoints").join(name);
                if c.exists() {
                    let state: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(c.join("state.json")).unwrap())
                            .unwrap();
                    for (f, dig) in state["files"].as_object().unwrap() {
                        let len = std::fs::metadata(c.join(f)).unwrap().len();
                        assert_eq!(Some(len), dig["bytes"].as_u64(), "{name}/{f} after a kill");
                    }
                }
            }
        }
        run(train_cmd(&runs));
        assert!(
            files(&run_dir.join("checkpoints/last")) == clean_last,
            "rerun {k}: checkpoints/last differs"
        );
        assert!(
            files(&run_dir.join("checkpoints/best")) == clean_best,
            "rerun {k}: checkpoints/best differs"
        );
        assert_eq!(
            metrics(&run_dir),
            clean_metrics,
            "rerun {k}: the logged metrics differ"
        );
        std::fs::rename(&run_dir, d.path().join(format!("checked{k}"))).unwrap();
    }
    eprintln!("train: {killed} kills, every resumed run equal to the uninterrupted one");
}

#[test]
fn import_rvt_killed_anywhere_leaves_nothing_or_the_whole_folder() {
    let _serial = serial();
    let _ = dataset();
    let d = tempfile::tempdir().unwrap();
    let fixture = evdet_fixtures::dir("model_3scale");
    let cmd = |out: &Path| {
        let mut c = evdet();
        c.arg("import-rvt")
            .arg(fixture.join("lightning.ckpt"))
            .arg("--out")
            .arg(out)
            .arg("--config")
            .arg(fixture.join("config.json"))
            .arg("--config-dir")
            .arg(config_dir());
        c
    };
    let clean_dir = d.path().join("clean");
    let secs = timed(cmd(&clean_dir));
    let clean = files(&clean_dir);
    let mut r = rng("import");
    let mut killed = 0;
    for k in 0..kills() {
        let out = d.path().join(format!("killed{k}"));
        killed += kill_after(cmd(&out), Duration::from_secs_f64(r.uniform(0.0, secs))) as u32;
        if out.exists() {
            assert!(
                files(&out) == clean,
                "import {k}: a folder under the final name that is not whole"
            );
        } else {
            run(cmd(&out));
            assert!(files(&out) == clean, "import {k}: the rerun differs");
        }
    }
    eprintln!("import-rvt: {killed} kills, nothing partial");
}

const STUDY: &str = "study: torture
experiment: experiment/synthetic/mini.yaml
seeds: [0, 1]
baseline: a
arms:
  a: [model.fpn.in_stages=[2,3,4]]
  b: [model.fpn.in_stages=[1,2,3,4]]
hypotheses:
  - {metric: test/prophesee/AP, arm: b, op: \">\", than: a}
";

#[test]
fn a_study_killed_anywhere_ends_with_the_uninterrupted_numbers() {
    let _serial = serial();
    let _ = dataset();
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("torture.yaml");
    std::fs::write(&file, STUDY).unwrap();
    let cmd = |runs: &Path| {
        let mut c = evdet();
        c.arg("study")
            .arg(&file)
            .arg("--config-dir")
            .arg(config_dir())
            .args(["--bootstrap", "20"])
            .arg(format!("dataset.path={}", dataset().join("pre").display()))
            .arg(format!("logging.runs_dir={}", runs.display()))
            .args([
                "training.max_steps=3",
                "logging.ckpt_every_n_steps=1",
                "validation.val_check_interval=1000",
                "model.backbone.embed_dim=8",
                "model.backbone.stage.attention.dim_head=8",
                "batch_size.train=2",
                "batch_size.eval=2",
                "dataset.sequence_length=2",
                "hardware.cpu_threads=1",
            ]);
        c
    };
    let runs = d.path().join("runs");
    let secs = timed(cmd(&runs));
    let numbers = |runs: &Path| -> String {
        let j: serde_json::Value =
            serde_json::from_slice(&std::fs::read(runs.join("torture/study.json")).unwrap())
                .unwrap();
        serde_json::to_string(&(&j["runs"], &j["hypotheses"])).unwrap()
    };
    let clean = numbers(&runs);
    std::fs::rename(runs.join("torture"), d.path().join("clean")).unwrap();
    let mut r = rng("study");
    let mut killed = 0;
    for _ in 0..kills().min(3) {
        // Within the first three quarters: the later kills find less left to do.
        killed += kill_after(
            cmd(&runs),
            Duration::from_secs_f64(r.uniform(0.0, 0.75 * secs)),
        ) as u32;
    }
    assert!(killed > 0, "no kill landed while the study ran");
    run(cmd(&runs));
    assert_eq!(numbers(&runs), clean, "the resumed study's numbers differ");
    eprintln!("study: {killed} kills, the same study.json numbers");
}
