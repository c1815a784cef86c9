//! `evdet preprocess` end to end through the binary: the reference fixture, the summary, and errors.

use std::process::Command;

fn evdet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_evdet"))
}

fn fixture_raw() -> std::path::PathBuf {
    evdet_fixtures::file("representation/raw")
}

#[test]
fn preprocesses_the_reference_fixture_and_prints_a_summary() {
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("summary.json");
    let o = evdet()
        .args([
            "preprocess",
            "--dataset",
            "gen4",
            "--splits",
            "train",
            "--jobs",
            "2",
            "--raw",
        ])
        .arg(fixture_raw())
        .arg("--out")
        .arg(out.path())
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("label frames: 4"), "{stdout}");
    assert!(stdout.contains("4 decreasing timestamps"), "{stdout}");
    let h5 = out.path().join("train/tiny_seq_0000/event_representations_v2/stacked_histogram_dt=50_nbins=10/event_representations_ds2_nearest.h5");
    assert!(h5.exists());
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(summary["sequences"][0]["representations"], 8);

    // A second run finds the sequence finished and skips it.
    let o = preprocess_fixture(out.path(), &["--dataset", "gen4", "--splits", "train"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 already done"));
}

/// `evdet preprocess` of the fixture's raw folder into `out` with `flags` before `--raw`.
fn preprocess_fixture(out: &std::path::Path, flags: &[&str]) -> std::process::Output {
    evdet()
        .arg("preprocess")
        .args(flags)
        .arg("--raw")
        .arg(fixture_raw())
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn missing_split_is_a_clear_error() {
    let out = tempfile::tempdir().unwrap();
    let o = preprocess_fixture(out.path(), &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("val") && err.contains("split folder not found"),
        "{err}"
    );
}

#[test]
fn bad_class_map_is_rejected() {
    let out = tempfile::tempdir().unwrap();
    let o = preprocess_fixture(out.path(), &["--class-map", "0:x"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--class-map"));
}

/// `evdet bench repr` on a small synthetic recording: every figure is there and positive, and the saved
/// recording is reused with `--raw --skip-histogram`, which then measures preprocessing only.
#[test]
fn bench_repr_reports_histogram_and_preprocessing_rates() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let o = evdet()
        .args(["bench", "repr", "--events", "300000", "--duration-s", "0.5"])
        .args(["--repeat", "2", "--jobs", "2", "--save-raw"])
        .arg(&raw)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in ["histogram_events_per_s", "histogram_median_events_per_s"] {
        for threads in ["1_thread", "all_threads"] {
            for pattern in ["clustered", "uniform"] {
                let rate = v[key][threads][pattern].as_f64().unwrap_or(0.0);
                assert!(rate > 1e5, "{key}/{threads}/{pattern} = {rate}");
            }
        }
    }
    assert!(
        v["histogram_events_per_s"]["1_thread"]["clustered"].as_f64()
            >= v["histogram_median_events_per_s"]["1_thread"]["clustered"].as_f64()
    );
    assert_eq!(v["events"], 300_000);
    assert!(v["preprocess_events_per_s"].as_f64().unwrap_or(0.0) > 1e5);
    assert!(raw.join("train/rec_0000_td.h5").is_file());

    let o = evdet()
        .args(["bench", "repr", "--skip-histogram", "--jobs", "2", "--raw"])
        .arg(&raw)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["histogram_events_per_s"], serde_json::json!({}));
    assert!(v["preprocess_events_per_s"].as_f64().unwrap_or(0.0) > 1e5);
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("generating"),
        "nothing to generate"
    );
}
