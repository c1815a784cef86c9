//! `evdet check-reference`, `evdet import-rvt` and `evdet bench model` through the binary: both
//! model fixtures pass with the JSON report, a broken fixture exits 1 naming the failing outputs,
//! the Lightning checkpoint imports, and the bench prints its JSON.

use std::path::PathBuf;
use std::process::Command;

fn evdet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_evdet"))
}

fn fixture(name: &str) -> PathBuf {
    evdet_fixtures::file(name)
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let o = cmd.output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn check_reference_passes_both_model_fixtures() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["model_3scale", "model_4scale_sizeaware"] {
        let json = tmp.path().join(format!("{name}.json"));
        let (ok, out, err) = run(evdet()
            .arg("check-reference")
            .arg(fixture(name))
            .arg("--json")
            .arg(&json));
        assert!(ok, "{name}\n{out}\n{err}");
        assert!(
            out.contains("== losses") && out.contains("== grads") && out.contains("== assign"),
            "{out}"
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(v["ok"], true);
        let outputs = v["outputs"].as_object().unwrap();
        for key in [
            "t2.head.decoded",
            "t0.detections",
            "loss.loss",
            "final.lstm_c.stage4",
            "assign.img1.fg_anchor_indices",
        ] {
            let o = &outputs[key];
            assert_eq!(o["ok"], true, "{key}");
            assert!(
                o["max_abs"].is_number() && o["max_rel"].is_number(),
                "{key}"
            );
        }
    }
}

#[test]
fn check_reference_fails_on_a_tampered_fixture() {
    // A copy of the 3-scale fixture whose expected loss is off, and whose outputs hold a tensor
    // the implementation does not produce.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fx");
    std::fs::create_dir(&dir).unwrap();
    let src = fixture("model_3scale");
    for f in [
        "config.json",
        "weights.safetensors",
        "inputs.safetensors",
        "outputs.safetensors",
        "train_outputs.safetensors",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("expected.json")).unwrap()).unwrap();
    exp["train_losses_last_step"]["conf_loss"] = serde_json::json!(7.5);
    exp["train_losses_last_step"]["made_up_loss"] = serde_json::json!(1.0);
    std::fs::write(dir.join("expected.json"), exp.to_string()).unwrap();
    let json = tmp.path().join("r.json");
    let (ok, out, err) = run(evdet()
        .arg("check-reference")
        .arg(&dir)
        .arg("--json")
        .arg(&json));
    assert!(!ok, "{out}");
    assert!(err.contains("differ from the reference"), "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["outputs"]["loss.conf_loss"]["ok"], false);
    assert_eq!(v["outputs"]["loss.made_up_loss"]["ok"], false);
    assert_eq!(v["outputs"]["loss.loss"]["ok"], true);
    // A folder that is not a fixture is an error naming the file.
    let (ok, _, err) = run(evdet().arg("check-reference").arg(tmp.path()));
    assert!(!ok);
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn import_rvt_reads_the_lightning_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ckpt");
    let (ok, stdout, err) = run(evdet()
        .arg("import-rvt")
        .arg(fixture("model_3scale").join("lightning.ckpt"))
        .arg("--out")
        .arg(&out)
        .args(["--data-hw", "64,96", "--json"]));
    assert!(ok, "{stdout}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["format"], "lightning");
    assert_eq!(v["report"]["missing"].as_array().unwrap().len(), 0);
    assert_eq!(v["report"]["unexpected"].as_array().unwrap().len(), 0);
    assert_eq!(v["step"], 1234);
    for f in [
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
        "config.yaml",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    // Not a weights file: an error naming it.
    let bogus = tmp.path().join("bogus.ckpt");
    std::fs::write(&bogus, b"this is not a checkpoint at all").unwrap();
    let (ok, _, err) = run(evdet()
        .arg("import-rvt")
        .arg(&bogus)
        .arg("--out")
        .arg(tmp.path().join("x")));
    assert!(!ok);
    assert!(err.contains("bogus.ckpt"), "{err}");
}

#[test]
fn bench_model_prints_json() {
    let (ok, out, err) = run(evdet().args([
        "bench",
        "model",
        "--presets",
        "tiny",
        "--scales",
        "3",
        "--hw",
        "64,96",
        "--reps",
        "1",
        "--train-hw",
        "64,96",
        "--seq-len",
        "2",
        "--train-reps",
        "1",
        "--device",
        "cpu",
    ]));
    assert!(ok, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["forward"]["3scale"]["tiny"]["backbone_ms"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(v["train_step"]["tiny"]["step_ms"].as_f64().unwrap() > 0.0);
}

/// `evdet` answers `--version`, `--help` and the tensor-free commands without loading libtorch (which
/// costs ~0.5 s and ~500 MB): their peak memory stays far below what libtorch alone maps.
#[test]
fn tensor_free_commands_do_not_load_libtorch() {
    let fixture = evdet_fixtures::dir("coco_eval");
    let runs: [Vec<std::ffi::OsString>; 4] = [
        vec!["--version".into()],
        vec!["--help".into()],
        vec!["bench".into(), "--help".into()],
        vec![
            "coco-eval".into(),
            "--gt".into(),
            fixture.join("case1_gt.json").into(),
            "--dt".into(),
            fixture.join("case1_dt.json").into(),
        ],
    ];
    for args in runs {
        #[allow(clippy::zombie_processes)] // reaped by wait4 below
        let child = evdet()
            .args(&args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // wait4 gives this child's own peak memory (other tests' children run in parallel).
        // SAFETY: wait4 on our own child's pid; it only fills the status and rusage given.
        let (status, peak_kib) = unsafe {
            let mut st = 0;
            let mut u: libc::rusage = std::mem::zeroed();
            let r = libc::wait4(child.id() as libc::pid_t, &mut st, 0, &mut u);
            assert_eq!(r, child.id() as libc::pid_t);
            (st, u.ru_maxrss)
        };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{args:?}"
        );
        assert!(peak_kib < 60 * 1024, "{args:?}: peak RSS {peak_kib} KiB");
    }
    // The commands that need the network still work through the hand-over.
    let o = evdet().args(["train", "--help"]).output().unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("Usage: evdet train"));
}

/// `bench model --precision bf16`: the forward and the training step under autocast, said in the JSON.
#[test]
fn bench_model_times_bf16_autocast() {
    let (ok, out, err) = run(evdet().args([
        "bench",
        "model",
        "--presets",
        "tiny",
        "--scales",
        "3",
        "--hw",
        "64,96",
        "--reps",
        "1",
        "--train-hw",
        "64,96",
        "--seq-len",
        "2",
        "--train-reps",
        "1",
        "--device",
        "cpu",
        "--precision",
        "bf16",
    ]));
    assert!(ok, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["forward"]["3scale"]["tiny"]["precision"], "bf16");
    assert_eq!(v["train_step"]["tiny"]["precision"], "bf16");
    assert!(v["train_step"]["tiny"]["step_ms"].as_f64().unwrap() > 0.0);
}

/// `bench latency` through the binary: histograms from the default experiment's dataset (eTraM:
/// 1280x720, 50 ms, 10 bins, downsampled by 2), eager and TorchScript timed, ONNX Runtime skipped.
#[test]
fn bench_latency_prints_json_with_the_configured_histograms() {
    let (ok, out, err) = run(evdet().args([
        "bench",
        "latency",
        "--presets",
        "tiny",
        "--windows",
        "2",
        "--warmup",
        "1",
        "--no-onnx",
        "--threads",
        "2",
        "--device",
        "cpu",
    ]));
    assert!(ok, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["sensor_hw"], serde_json::json!([720, 1280]));
    assert_eq!(
        (v["window_ms"].as_u64(), v["nbins"].as_u64()),
        (Some(50), Some(10))
    );
    assert_eq!(v["downsample_by_factor_2"], true);
    assert_eq!(v["presets"]["tiny"]["eager_ms"]["windows"], 2);
    assert_eq!(v["presets"]["tiny"]["torchscript_ms"]["windows"], 2);
    assert!(v["presets"]["tiny"].get("onnxruntime_ms").is_none());
}
