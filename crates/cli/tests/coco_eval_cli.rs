//! `evdet coco-eval` through the binary: COCO JSON files give pycocotools' numbers, Prophesee box files
//! reproduce the reference's protocol, and bad inputs are errors naming the problem.

mod common;
use common::*;

use serde_json::Value;
use std::path::Path;

fn fixture(name: &str) -> String {
    evdet_fixtures::file(&format!("coco_eval/{name}"))
        .display()
        .to_string()
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("output written"))
        .expect("valid JSON")
}

/// Runs `evdet coco-eval ARGS`, which must fail; returns its stderr.
fn fails(args: &[&str]) -> String {
    let o = evdet().arg("coco-eval").args(args).output().unwrap();
    assert!(!o.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn json_files_give_pycocotools_stats_and_per_class_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let (gt, dt) = (fixture("case2_gt.json"), fixture("case2_dt.json"));
    let (stdout, _) = run(evdet()
        .args(["coco-eval", "--gt", &gt, "--dt", &dt, "--json"])
        .arg(&out));
    let got = read(&out);
    let want = read(Path::new(&fixture("case2_expected.json")));
    assert_eq!(got["stats"], want["stats"]);
    assert_eq!(got["stat_names"][3], "AP_S");
    // Category 1 is `pedestrian`; 6 and 7 (truck, tram) have no ground truth: -1.
    assert_eq!(
        got["per_class"]["pedestrian"]["AP"],
        want["per_category"]["1"]["AP_all"]
    );
    assert_eq!(
        got["per_class"]["pedestrian"]["AP_S"],
        want["per_category"]["1"]["AP_small"]
    );
    assert_eq!(got["per_class"]["tram"]["AP50"], -1.0);
    assert_eq!(got["per_class"].as_object().unwrap().len(), 8);
    // pycocotools' summary line, then the per-class table with `-` where undefined.
    let ap = want["stats"][0].as_f64().unwrap();
    assert!(
        stdout.contains(&format!(
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = {ap:0.3}"
        )),
        "{stdout}"
    );
    let tram = stdout
        .lines()
        .find(|l| l.starts_with("tram"))
        .expect("tram row");
    assert_eq!(tram.matches('-').count(), 7, "{tram}");
}

#[test]
fn prophesee_files_reproduce_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let p = |f: &str| fixture(&format!("prophesee/{f}"));
    let (g0, g1, d0, d1) = (
        p("seq0_gt_bbox.npy"),
        p("seq1_gt_bbox.npy"),
        p("seq0_dt_bbox.npy"),
        p("seq1_dt_bbox.npy"),
    );
    let classes = "pedestrian,car,bicycle,bus,motorbike,truck,tram,wheelchair";
    let base = [
        "coco-eval",
        "--prophesee",
        "--filter-downsampled-by-2",
        "--classes",
        classes,
        "--gt",
        &g0,
        &g1,
        "--dt",
        &d0,
        &d1,
    ];
    let (stdout, _) = run(evdet().args(base).arg("--json").arg(&out));
    let want = read(Path::new(&p("expected.json")));
    let got = read(&out);
    assert_eq!(got["stats"], want["etram_8class_full"]["stats"]);
    assert_eq!(got["protocol"], "prophesee");
    assert_eq!(got["class_agnostic"], false);
    assert_eq!(
        got["metrics"]["test/prophesee/agnostic/AP"],
        want["etram_8class_agnostic"]["stats"][0]
    );
    assert!(got["analysis"]["unfiltered"]["size_bins"].is_array());
    assert!(
        stdout.starts_with("protocol prophesee (class-aware), 2 sequences:"),
        "{stdout}"
    );
    assert!(stdout.contains("AP side by side: prophesee"), "{stdout}");

    run(evdet()
        .args(base)
        .args(["--class-agnostic", "--json"])
        .arg(&out));
    assert_eq!(read(&out)["stats"], want["etram_8class_agnostic"]["stats"]);
}

#[test]
fn bad_inputs_are_errors_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let dt = dir.path().join("dt.json");
    std::fs::write(
        &dt,
        r#"[{"image_id": 4242, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]"#,
    )
    .unwrap();
    let gt = fixture("case1_gt.json");
    let err = fails(&["--gt", &gt, "--dt", dt.to_str().unwrap()]);
    assert!(
        err.contains("dt.json") && err.contains("[0].image_id") && err.contains("4242"),
        "{err}"
    );
    let npy = fixture("prophesee/seq0_gt_bbox.npy");
    let err = fails(&["--prophesee", "--gt", &npy, "--dt", &npy]);
    assert!(err.contains("--classes"), "{err}");
    let err = fails(&[
        "--prophesee",
        "--classes",
        "a",
        "--gt",
        &npy,
        &npy,
        "--dt",
        &npy,
    ]);
    assert!(err.contains("2 files") && err.contains("1"), "{err}");
    let err = fails(&["--gt", &gt, &gt, "--dt", &gt]);
    assert!(err.contains("--prophesee"), "{err}");
}
