//! What a newcomer trips over (issue 26), each case fed through the binary: undefined metrics stay
//! undefined, long commands print plain progress lines outside a terminal, every metrics file and
//! prediction folder names the weights behind it, a resume or `model.init_from` with another model is
//! refused with what differs, override errors name the key, prediction folders never mix, and the small
//! mistakes (an unknown export extension, a failed preprocess, a mistyped dataset path, a missing study
//! file, a cut RAW file, two runs of one name) get a clear answer.

mod common;
use common::*;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// A tiny `mini` dataset (1 sequence per split) and one run "a" of 3 steps (embed dim 8), made once.
fn workspace() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tiny_dataset(11, "train=1,val=1,test=1");
        run(train(dir.path(), "runs", "a", 3, 8).env("EVDET_PROGRESS_INTERVAL_S", "0"));
        dir
    })
    .path()
}

fn train(ws: &Path, runs: &str, id: &str, steps: u64, embed: u32) -> Command {
    let mut c = evdet();
    c.arg("train")
        .arg("--config-dir")
        .arg(config_dir())
        .arg(format!("dataset.path={}", ws.join("pre").display()))
        .arg(format!("logging.runs_dir={}", ws.join(runs).display()))
        .arg(format!("logging.experiment_id={id}"))
        .arg(format!("training.max_steps={steps}"))
        .arg(format!("model.backbone.embed_dim={embed}"))
        .args([
            "model.backbone.stage.attention.dim_head=8",
            "batch_size.train=2",
            "batch_size.eval=2",
            "dataset.sequence_length=2",
            "validation.val_check_interval=2",
            "logging.log_every_n_steps=1",
            "hardware.cpu_threads=1",
        ]);
    c
}

fn run_a() -> PathBuf {
    workspace().join("runs/synthetic/mini/a")
}

fn fails(mut cmd: Command) -> String {
    let o: Output = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success(),
        "{cmd:?} succeeded\n{}\n{err}",
        String::from_utf8_lossy(&o.stdout)
    );
    err
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn sha256(p: &Path) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

fn data_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../eval/tests/data")
        .join(name)
}

// 1. Undefined metrics: pycocotools' answers where no detection exists, and for a class only the
//    detections have (scripts/undefined_metrics_reference.py wrote the expected numbers).
#[test]
fn undefined_metrics_are_undefined_on_the_coco_path_as_in_pycocotools() {
    let dir = data_dir("undefined_metrics");
    let expected = json(&dir.join("expected.json"));
    let d = tempfile::tempdir().unwrap();
    for (case, dt) in [
        ("no_detections", "dt_empty.json"),
        ("class_only_in_detections", "dt_extra_class.json"),
    ] {
        for (mode, flag) in [
            ("class_aware", None),
            ("agnostic", Some("--class-agnostic")),
        ] {
            let out = d.path().join(format!("{case}_{mode}.json"));
            let mut c = evdet();
            c.arg("coco-eval")
                .arg("--gt")
                .arg(dir.join("gt.json"))
                .arg("--dt")
                .arg(dir.join(dt))
                .arg("--json")
                .arg(&out);
            c.args(flag);
            let (stdout, _) = run(c);
            let want = &expected[case][mode];
            let got = json(&out);
            let stats: Vec<f64> = got["stats"]
                .as_array()
                .unwrap_or_else(|| panic!("{got}"))
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let want_stats: Vec<f64> = want["stats"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            for (g, w) in stats.iter().zip(&want_stats) {
                assert!(
                    (g - w).abs() < 1e-12,
                    "{case} {mode}: {stats:?} vs {want_stats:?}"
                );
            }
            // AP_L: no large box in the ground truth → pycocotools' −1, printed as such.
            assert_eq!(stats[5], -1.0);
            assert!(stdout.contains("= -1.000"), "{stdout}");
            for (class, ap) in want["per_class_ap"].as_object().into_iter().flatten() {
                let row = &got["per_class"][class]["AP"];
                assert!(
                    (row.as_f64().unwrap() - ap.as_f64().unwrap()).abs() < 1e-12,
                    "{case} {class}: {row} vs {ap}"
                );
            }
        }
    }
}

/// The Prophesee path with no detections at all (an early checkpoint): classes and size bins without
/// ground truth are undefined (`-`, absent from the metrics), those with ground truth score 0.
#[test]
fn undefined_metrics_are_undefined_on_the_prophesee_path_with_no_detections() {
    let ws = workspace();
    let gt = file_ending(&ws.join("raw/test"), "_bbox.npy");
    let boxes = evdet_events::labels::read_bbox_npy(&gt).unwrap();
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().join("empty_bbox.npy");
    evdet_events::labels::write_bbox_npy(&empty, &[]).unwrap();
    let out = d.path().join("m.json");
    let classes = "pedestrian,car,bicycle,bus,motorbike,truck,tram,wheelchair";
    let (stdout, _) = run(evdet()
        .args([
            "coco-eval",
            "--prophesee",
            "--no-filter",
            "--classes",
            classes,
        ])
        .arg("--gt")
        .arg(&gt)
        .arg("--dt")
        .arg(&empty)
        .arg("--json")
        .arg(&out));
    let m = json(&out)["metrics"].clone();
    let names: Vec<&str> = classes.split(',').collect();
    for (id, name) in names.iter().enumerate() {
        let has_gt = boxes.iter().any(|b| b.class_id as usize == id && b.t > 0);
        let key = format!("test/unfiltered/AP/{name}");
        if has_gt {
            assert_eq!(m[&key].as_f64(), Some(0.0), "{key}: {m}");
        } else {
            assert!(m.get(&key).is_none(), "{key} has no ground truth: {m}");
        }
    }
    assert!(
        names
            .iter()
            .enumerate()
            .any(|(id, _)| !boxes.iter().any(|b| b.class_id as usize == id)),
        "the sample has every class: the test shows nothing"
    );
    assert_eq!(m["test/unfiltered/AP"].as_f64(), Some(0.0));
    // The size bins: one without ground truth prints "-", not 0.000.
    let bins = stdout
        .lines()
        .skip_while(|l| !l.starts_with("size bin"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect::<Vec<_>>();
    assert!(!bins.is_empty(), "{stdout}");
    for l in bins {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols[1] == "0" {
            assert!(cols[2..].iter().all(|c| *c == "-"), "{l}");
        } else {
            assert_eq!(cols[2], "0.000", "{l}");
        }
    }
}

// 2 and 3. Plain progress lines outside a terminal; the weights behind every metrics file.
#[test]
fn training_prints_progress_lines_and_records_the_weights_it_was_tested_with() {
    let r = run_a();
    let m = json(&r.join("eval/test_metrics.json"));
    let ck = &m["checkpoint"];
    assert_eq!(ck["step"], 3, "{m}");
    let last = r.join("checkpoints/last");
    assert_eq!(ck["path"].as_str(), Some(last.to_str().unwrap()));
    assert_eq!(
        ck["sha256"].as_str(),
        Some(sha256(&last.join("model.safetensors")).as_str())
    );
    assert!(m["test/prophesee/AP"].is_number());

    // Train again from scratch with stderr to a pipe: a progress line per step (interval 0).
    let (_, err) = run(train(workspace(), "runs_progress", "p", 2, 8)
        .arg("--no-test")
        .env("EVDET_PROGRESS_INTERVAL_S", "0"));
    assert!(
        err.contains("1/2 steps (50%)") && err.contains("steps/s"),
        "{err}"
    );
    assert!(
        err.contains("2/2 steps (100%)") && err.contains("done in"),
        "{err}"
    );
    assert!(err.contains("loss "), "{err}");
    // Without the variable the default interval (10 s) prints only the closing line of so short a run.
    let (_, err) = run(train(workspace(), "runs_progress", "q", 2, 8).arg("--no-test"));
    assert!(!err.contains("1/2 steps"), "{err}");
    assert!(err.contains("2/2 steps (100%)"), "{err}");

    // `eval --run` says which checkpoint it evaluated, in the console and in the file.
    let (out, err) = run(evdet()
        .args(["eval", "--split", "val", "--run"])
        .arg(&r)
        .env("EVDET_PROGRESS_INTERVAL_S", "0"));
    let v = json(&r.join("eval/val_metrics.json"));
    let used = PathBuf::from(v["checkpoint"]["path"].as_str().unwrap());
    let step = v["checkpoint"]["step"].as_u64().unwrap();
    assert!(
        used.ends_with("checkpoints/best") || used.ends_with("checkpoints/last"),
        "{v}"
    );
    assert_eq!(
        v["checkpoint"]["sha256"].as_str(),
        Some(sha256(&used.join("model.safetensors")).as_str())
    );
    assert!(
        err.contains(&format!(
            "evaluating checkpoint {} (step {step}",
            used.display()
        )),
        "{err}"
    );
    assert!(out.contains(&format!(
        "weights: checkpoint {} (step {step}",
        used.display()
    )));
    assert!(
        err.contains("batches (") && err.contains("done in"),
        "{err}"
    );
    // The report reads the metrics around the new key.
    run(evdet().arg("report").arg(&r));
}

// 4. A resume with another model is refused before libtorch sees it; other changes are listed.
#[test]
fn resuming_with_another_model_names_the_keys_that_differ() {
    let ws = workspace();
    run(train(ws, "runs_resume", "r", 2, 8).arg("--no-test"));
    let err = fails({
        let mut c = train(ws, "runs_resume", "r", 4, 16);
        c.arg("--no-test");
        c
    });
    assert!(err.contains("model.backbone.embed_dim: 8 → 16"), "{err}");
    assert!(
        err.contains("--fresh") && err.contains("logging.experiment_id"),
        "{err}"
    );
    assert!(!err.contains("frame #"), "{err}");
    // A longer schedule is a legitimate resume: said, not refused.
    let (_, err) = run(train(ws, "runs_resume", "r", 3, 8).arg("--no-test"));
    assert!(
        err.contains(
            "resuming with a changed config (checkpoint → now): training.max_steps: 2 → 3"
        ),
        "{err}"
    );
}

// 5. model.init_from of another model size fills almost nothing: refused, summarised by module.
#[test]
fn init_from_weights_that_do_not_fit_is_refused_unless_asked_for() {
    let ws = workspace();
    let from = format!("model.init_from={}", run_a().display());
    let err = fails({
        let mut c = train(ws, "runs_init", "i", 1, 16);
        c.args(["--no-test", &from]);
        c
    });
    assert!(
        err.contains("model.init_from") && err.contains("model.init_from_partial=true"),
        "{err}"
    );
    assert!(
        err.contains("have another shape in the file (backbone.stages.0 ×"),
        "{err}"
    );
    assert!(err.len() < 2000, "{} bytes: {err}", err.len());
    let listed = json(&ws.join("runs_init/synthetic/mini/i/init_from.json"));
    assert!(
        listed["report"]["shape_mismatched"]
            .as_array()
            .unwrap()
            .len()
            > 50
    );
    let (_, err) = run(train(ws, "runs_init", "i", 1, 16).args([
        "--no-test",
        &from,
        "model.init_from_partial=true",
    ]));
    let line = err
        .lines()
        .find(|l| l.starts_with("model.init_from"))
        .unwrap();
    assert!(line.contains("loaded") && line.len() < 1000, "{line}");
}

// 6. Override errors name the key.
#[test]
fn override_errors_name_the_key() {
    let d = tempfile::tempdir().unwrap();
    let train_with = |o: &str| {
        let mut c = evdet();
        c.current_dir(d.path())
            .args(["train", "--config-dir"])
            .arg(config_dir())
            .arg(o);
        fails(c)
    };
    let err = train_with("training.max_steps=abc");
    assert!(
        err.contains("config key 'training.max_steps'") && err.contains("invalid type"),
        "{err}"
    );
    let err = train_with("max_steps=5");
    assert!(err.contains("did you mean 'training.max_steps'"), "{err}");
    // Nothing was generated for a command that failed on its arguments.
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    // In a study, a typo on the command line is the command line's, not the first arm's.
    let mut c = evdet();
    c.current_dir(d.path())
        .args([
            "study",
            "study/size_aware_mini.yaml",
            "--dry-run",
            "--config-dir",
        ])
        .arg(config_dir())
        .arg("training.max_stesp=5");
    let err = fails(c);
    assert!(
        err.contains("command line") && !err.contains("arm '"),
        "{err}"
    );
    assert!(err.contains("did you mean 'training.max_steps'"), "{err}");
}

// 8. Prediction folders never mix two inputs.
#[test]
fn a_prediction_folder_is_never_mixed() {
    let ws = workspace();
    let d = tempfile::tempdir().unwrap();
    let rec = file_ending(&ws.join("raw/test"), "_td.h5");
    let name = rec
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace("_td.h5", "");
    let predict = |input: &Path, extra: &[&str]| {
        let mut c = evdet();
        c.current_dir(d.path())
            .arg("predict")
            .arg("--checkpoint")
            .arg(run_a())
            .arg("--input")
            .arg(input)
            .args(extra);
        c
    };
    run(predict(&rec, &["--limit", "6"]));
    let out = d.path().join("predictions").join(&name);
    let frames = |p: &Path| std::fs::read_dir(p.join("frames")).unwrap().count();
    assert_eq!(frames(&out), 6);
    let manifest = json(&out.join("prediction.json"));
    assert_eq!(manifest["input"].as_str(), Some(rec.to_str().unwrap()));
    assert_eq!(manifest["windows"], 6);
    let used = PathBuf::from(manifest["checkpoint"]["path"].as_str().unwrap());
    assert!(used.starts_with(run_a().join("checkpoints")), "{manifest}");
    assert_eq!(
        manifest["checkpoint"]["sha256"].as_str(),
        Some(sha256(&used.join("model.safetensors")).as_str())
    );
    // The preprocessed sequence of the same recording has the same name: refused, nothing touched.
    let seq = ws.join("pre/test").join(&name);
    let err = fails(predict(&seq, &["--limit", "3"]));
    assert!(
        err.contains("already exists (a prediction of") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(frames(&out), 6);
    // Replaced whole: 3 frames, not 3 new ones among 6 old ones.
    run(predict(&seq, &["--limit", "3", "--overwrite"]));
    assert_eq!(frames(&out), 3);
    assert_eq!(
        json(&out.join("prediction.json"))["input"].as_str(),
        Some(seq.to_str().unwrap())
    );
    let left: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(left.len(), 1, "temporary folders left: {left:?}");
}

// 9. The small ones.
#[test]
fn an_export_to_an_unknown_format_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("model.tflite");
    let err = fails({
        let mut c = evdet();
        c.args(["export", "--checkpoint"])
            .arg(run_a())
            .arg("--out")
            .arg(&out);
        c
    });
    assert!(err.contains(".tflite") && err.contains("--format"), "{err}");
    assert!(!out.exists());
}

#[test]
fn a_failed_preprocess_leaves_no_empty_folder() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("pre");
    let err = fails({
        let mut c = evdet();
        c.args(["preprocess", "--raw"])
            .arg(d.path().join("no_such_raw"))
            .arg("--out")
            .arg(&out);
        c
    });
    assert!(err.contains("no_such_raw"), "{err}");
    assert!(!out.exists(), "an empty {} was left", out.display());
}

#[test]
fn a_mistyped_dataset_path_is_an_error_not_a_new_sample() {
    let d = tempfile::tempdir().unwrap();
    let err = fails({
        let mut c = evdet();
        c.current_dir(d.path())
            .args(["train", "--config-dir"])
            .arg(config_dir())
            .arg("dataset.path=data/minii");
        c
    });
    assert!(
        err.contains("data/minii") && err.contains("dataset.synthesize.path = data/mini"),
        "{err}"
    );
    assert!(!d.path().join("data").exists(), "a sample was generated");
}

#[test]
fn a_missing_study_file_is_said_once() {
    let err = fails({
        let mut c = evdet();
        c.args(["study", "study/no_such.yaml", "--config-dir"])
            .arg(config_dir());
        c
    });
    assert!(err.contains("no study file study/no_such.yaml"), "{err}");
    assert!(err.contains("study/size_aware_mini.yaml"), "{err}");
    assert!(err.matches("os error").count() <= 1, "{err}");
}

#[test]
fn a_cut_raw_file_is_read_with_a_warning() {
    let d = tempfile::tempdir().unwrap();
    synth_mini(
        &d.path().join("raw"),
        2,
        "0.6",
        "train=1,val=0,test=0",
        &["--format", "raw-evt3"],
    );
    let raw = file_ending(&d.path().join("raw/train"), ".raw");
    let bytes = std::fs::read(&raw).unwrap();
    // Cut in the middle of a 2-byte EVT 3.0 word.
    std::fs::write(&raw, &bytes[..bytes.len() - 1]).unwrap();
    let (_, err) = run(evdet()
        .args(["preprocess", "--downsample-by-factor-2", "false", "--raw"])
        .arg(d.path().join("raw"))
        .arg("--out")
        .arg(d.path().join("pre")));
    assert!(
        err.contains("warning: 1 recording(s) end in an incomplete RAW word"),
        "{err}"
    );
}

#[test]
fn a_comparison_names_runs_by_what_differs() {
    let ws = workspace();
    // The same experiment id at another width, in its own runs folder.
    run(train(ws, "runs_wide", "a", 3, 16).arg("--no-test"));
    let html_path = ws.join("cmp_width.html");
    run(evdet()
        .arg("report")
        .arg(run_a())
        .arg(ws.join("runs_wide/synthetic/mini/a"))
        .arg("--out")
        .arg(&html_path));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("a (embed_dim=16"), "names");
    assert!(
        html.contains("embed_dim 8") && html.contains("embed_dim 16"),
        "model column"
    );
    assert!(html.contains("config against the first run"));
}

/// RVT's recipes by RVT's names, and `--print-config` shows what a command line would run without
/// training (no run folder is made).
#[test]
fn print_config_shows_rvt_s_recipe_and_trains_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (out, _) = run(evdet()
        .current_dir(d.path())
        .args([
            "train",
            "--config",
            "experiment/gen1/base.yaml",
            "--config-dir",
        ])
        .arg(config_dir())
        .args(["--print-config", "training.max_steps=7"]));
    let v: serde_norway::Value = serde_norway::from_str(&out).expect("YAML");
    let get = |k: &str| evdet_config::get_path(&v, k).cloned();
    assert_eq!(get("model.backbone.embed_dim"), Some(64.into()));
    assert_eq!(get("model.head.num_classes"), Some(2.into()));
    assert_eq!(get("dataset.sequence_length"), Some(21.into()));
    assert_eq!(get("training.max_steps"), Some(7.into()));
    assert!(!d.path().join("runs").exists(), "nothing trained");
}
