//! Runs the reference comparison (`evdet check-reference`) on both model fixtures.

use std::path::PathBuf;

use evdet_model::reference_check::{check_reference, CheckOptions, CheckReport};

fn fixture(name: &str) -> PathBuf {
    evdet_fixtures::file(name)
}

fn print(report: &CheckReport) {
    for (name, c) in &report.outputs {
        eprintln!(
            "{:<72} {:>5} max_abs {:.3e} max_rel {:.3e} tol {:.3} {}",
            name,
            if c.ok { "ok" } else { "FAIL" },
            c.max_abs,
            c.max_rel,
            c.tol_ratio.unwrap_or(0.0),
            c.note.clone().unwrap_or_default()
        );
    }
}

fn check(name: &str) {
    let dir = fixture(name);
    let report = check_reference(&dir, CheckOptions::default()).expect("fixture readable");
    print(&report);
    let failed: Vec<_> = report
        .outputs
        .iter()
        .filter(|(_, c)| !c.ok)
        .map(|(n, _)| n.clone())
        .collect();
    assert!(failed.is_empty(), "{name}: failed outputs {failed:?}");
}

#[test]
fn model_3scale_matches_reference() {
    check("model_3scale");
}

#[test]
fn model_4scale_sizeaware_matches_reference() {
    check("model_4scale_sizeaware");
}

/// A broken reference (detection counts that cannot be read as one count per image) fails the check
/// instead of comparing equal to an empty list.
#[test]
fn unreadable_reference_detection_counts_fail_the_check() {
    let src = fixture("model_3scale");
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "config.json",
        "expected.json",
        "inputs.safetensors",
        "weights.safetensors",
        "train_outputs.safetensors",
    ] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let outputs = tch::Tensor::read_safetensors(src.join("outputs.safetensors")).unwrap();
    let mut broken = 0;
    let outputs: Vec<(String, tch::Tensor)> = outputs
        .into_iter()
        .map(|(k, t)| {
            if k.ends_with(".detections_count") {
                broken += 1;
                let n = t.numel() as i64;
                (k, t.reshape([1, n]).repeat([2, 1]))
            } else {
                (k, t)
            }
        })
        .collect();
    assert!(broken > 0, "the fixture has detection counts");
    tch::Tensor::write_safetensors(&outputs, tmp.path().join("outputs.safetensors")).unwrap();
    let report = check_reference(tmp.path(), CheckOptions::default()).expect("readable");
    let failed: Vec<&String> = report
        .outputs
        .iter()
        .filter(|(_, c)| !c.ok)
        .map(|(n, _)| n)
        .collect();
    assert!(
        failed.iter().any(|n| n.ends_with(".detections_count")),
        "{failed:?}"
    );
    assert!(!report.ok());
}
