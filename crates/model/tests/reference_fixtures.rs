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
