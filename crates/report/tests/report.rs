//! Tests of the run report on small run folders written by the tests themselves.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use evdet_eval::analysis::{Confusion, GroupSummary, PrCurve, SizeBin, SmallObjectAnalysis};
use evdet_eval::coco::ClassSummary;
use evdet_report::criteria::{Status, Target};
use evdet_report::picture::{decode_png, save_png, RgbImage};
use evdet_report::plots::{line_chart_svg, svg_to_png, LineChart, Series};
use evdet_report::{build_report, ReportError};

fn config(name: &str, criteria: &str) -> String {
    format!(
        "logging:\n  project: t\n  group: g\n  experiment_id: {name}\ntraining:\n  max_steps: 40\ndataset:\n  name: synthetic_mini\n  resolution_hw: [192, 320]\n  downsample_by_factor_2: false\n  classes: [pedestrian, car, bicycle]\n  small_classes: [pedestrian, bicycle]\nmodel:\n  fpn:\n    in_stages: [1, 2, 3, 4]\n  head:\n    size_aware_loss: true\nsuccess_criteria:\n{criteria}"
    )
}

fn metrics_jsonl(scale: f64) -> String {
    let mut s = String::new();
    for step in [10, 20, 30, 40] {
        let l = 10.0 / step as f64;
        s.push_str(&format!(
            "{{\"step\":{step},\"train/loss\":{},\"train/iou_loss\":{},\"train/conf_loss\":{},\"train/cls_loss\":{},\"train/l1_loss\":0.0,\"train/num_fg\":2.5,\"train/lr\":0.001,\"train/grad_norm\":{},\"train/data_time_s\":0.01,\"train/compute_time_s\":1.2}}\n",
            3.0 * l,
            l,
            l * 1.5,
            l * 0.5,
            50.0 / step as f64
        ));
        if step % 20 == 0 {
            s.push_str(&format!(
                "{{\"step\":{step},\"val/prophesee/AP\":{},\"val/prophesee/AP50\":{},\"val/prophesee/AP_S\":{},\"val/unfiltered/AP\":{},\"val/unfiltered/AP50\":{},\"val/unfiltered/AP_S\":null}}\n",
                0.004 * step as f64 * scale,
                0.008 * step as f64 * scale,
                0.002 * step as f64 * scale,
                0.0035 * step as f64 * scale,
                0.007 * step as f64 * scale
            ));
        }
    }
    s
}

fn eval_metrics(ap: f64, ap_s: f64) -> String {
    let mut m = serde_json::Map::new();
    for p in ["prophesee", "unfiltered"] {
        for (stat, v) in [
            ("AP", ap),
            ("AP50", ap * 2.0),
            ("AP75", ap * 0.8),
            ("AP_S", ap_s),
            ("AP_M", 0.25),
            ("AP_L", -1.0),
            ("AR1", 0.1),
            ("AR10", 0.3),
            ("AR100", 0.35),
            ("AR_S", 0.2),
            ("AR_M", 0.4),
            ("AR_L", -1.0),
            ("AP_small_classes", 0.111),
            ("agnostic/AP", 0.2468),
            ("AP/car", 0.4),
            ("AP/pedestrian", 0.05),
            ("AP_bin/8-16", 0.01),
            ("AP_bin/16-32", 0.08),
            ("AP_bin/32-96", 0.22),
        ] {
            m.insert(format!("test/{p}/{stat}"), serde_json::json!(v));
        }
    }
    serde_json::to_string_pretty(&m).unwrap()
}

fn class_summary(id: u64, name: &str, ap: f64) -> ClassSummary {
    ClassSummary {
        cat_id: id,
        name: name.into(),
        ap,
        ap50: ap * 2.0,
        ap75: ap,
        ap_s: ap,
        ap_m: ap,
        ap_l: -1.0,
        ar100: 0.3,
        ar_s: 0.2,
        ar_m: 0.4,
        ar_l: -1.0,
    }
}

fn analysis() -> SmallObjectAnalysis {
    let recall: Vec<f64> = (0..101).map(|i| i as f64 / 100.0).collect();
    let curve = |class: &str, max_r: f64| PrCurve {
        class: class.into(),
        iou_thr: 0.5,
        recall: recall.clone(),
        precision: recall
            .iter()
            .map(|r| if *r <= max_r { 1.0 - 0.6 * r } else { 0.0 })
            .collect(),
        score: recall.iter().map(|r| 1.0 - r).collect(),
    };
    SmallObjectAnalysis {
        per_class: vec![
            class_summary(0, "pedestrian", 0.05),
            class_summary(1, "car", 0.4),
            class_summary(2, "bicycle", -1.0),
        ],
        small_classes: Some(GroupSummary {
            classes: vec!["pedestrian".into(), "bicycle".into()],
            ap: 0.111,
            ap50: 0.2,
            ap75: 0.1,
            ap_s: 0.09,
            ar100: 0.3,
        }),
        size_bins: ["0-8", "8-16", "16-32", "32-96", "96-inf"]
            .iter()
            .enumerate()
            .map(|(i, l)| SizeBin {
                label: l.to_string(),
                area: [0.0, 1.0],
                num_gt: i * 10,
                ap: if i == 0 { -1.0 } else { 0.05 * i as f64 },
                ap50: 0.1,
                ar: 0.2,
                recall50: 0.3,
            })
            .collect(),
        confusion: Some(Confusion {
            iou_thr: 0.5,
            labels: vec![
                "pedestrian".into(),
                "car".into(),
                "bicycle".into(),
                "background".into(),
            ],
            matrix: vec![
                vec![5, 1, 0, 4],
                vec![0, 20, 0, 3],
                vec![1, 0, 0, 2],
                vec![3, 6, 1, 0],
            ],
        }),
        pr_curves: vec![curve("pedestrian", 0.4), curve("car", 0.8)],
    }
}

/// Writes a run folder; `eval` controls whether `eval/` is written.
fn write_run(root: &Path, name: &str, criteria: &str, ap: f64, ap_s: f64, eval: bool) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.yaml"), config(name, criteria)).unwrap();
    std::fs::write(dir.join("metrics.jsonl"), metrics_jsonl(ap / 0.2)).unwrap();
    if eval {
        let e = dir.join("eval");
        std::fs::create_dir_all(e.join("samples")).unwrap();
        std::fs::write(e.join("test_metrics.json"), eval_metrics(ap, ap_s)).unwrap();
        let a = analysis();
        let file = serde_json::json!({
            "split": "test",
            "frame_hw": [192, 320],
            "prophesee": a,
            "unfiltered": a,
        });
        std::fs::write(
            e.join("test_analysis.json"),
            serde_json::to_string(&file).unwrap(),
        )
        .unwrap();
        let mut img = RgbImage::filled(40, 20, [127, 127, 127]);
        img.fill_rect(3, 3, 10, 12, [0, 0, 255]);
        save_png(&img, &e.join("samples/test_000.png")).unwrap();
        std::fs::write(
            e.join("samples/test_samples.json"),
            r#"[{"file": "test_000.png", "sequence": "seq_a", "t_us": 1250000, "num_gt": 3, "num_dt": 5}]"#,
        )
        .unwrap();
    }
    dir
}

fn data_uris(html: &str) -> Vec<Vec<u8>> {
    html.split("data:image/png;base64,")
        .skip(1)
        .map(|rest| {
            let end = rest.find('"').unwrap();
            base64::engine::general_purpose::STANDARD
                .decode(&rest[..end])
                .unwrap()
        })
        .collect()
}

#[test]
fn report_of_one_run_has_numbers_charts_and_nothing_external() {
    let tmp = tempfile::tempdir().unwrap();
    let run = write_run(
        tmp.path(),
        "4scale",
        "- {metric: test/unfiltered/AP50, op: '>=', value: 0.25, baseline: null}\n",
        0.2128,
        0.1437,
        true,
    );
    let out = tmp.path().join("out/report.html");
    let summary = build_report(std::slice::from_ref(&run), &out).unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    // Metric values and the run summary.
    assert!(html.contains("0.213"), "AP");
    assert!(html.contains("0.144"), "AP_S");
    assert!(html.contains("0.247"), "agnostic AP");
    assert!(html.contains("4-scale"));
    assert!(html.contains("40 / 40"));
    assert!(html.contains("areas in network-input pixels (320×192 frame)"));
    // Nothing fetched from anywhere.
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<script src") && !html.contains("<link"));
    // Every embedded image is a PNG; charts and the sample are there.
    let images = data_uris(&html);
    assert!(images.len() >= 10, "{} images", images.len());
    for png in &images {
        let img = decode_png(png).unwrap();
        assert!(img.width > 0 && img.height > 0);
    }
    // The charts were also written next to the report.
    assert_eq!(summary.files[0], out);
    let pngs: Vec<_> = summary.files[1..].to_vec();
    assert!(pngs.len() >= 9, "{pngs:?}");
    for p in &pngs {
        assert!(p.starts_with(tmp.path().join("out/report_files")), "{p:?}");
        decode_png(&std::fs::read(p).unwrap()).unwrap();
    }
    // The criterion: AP50 = 2 × 0.2128 ≥ 0.25.
    assert_eq!(summary.criteria.len(), 1);
    assert_eq!(summary.criteria[0].status, Status::Met);
    assert!((summary.criteria[0].measured.unwrap() - 0.4256).abs() < 1e-9);
    assert!(summary.notes.is_empty(), "{:?}", summary.notes);
}

#[test]
fn criteria_baselines_and_deltas() {
    let tmp = tempfile::tempdir().unwrap();
    let base = write_run(tmp.path(), "3scale", "[]\n", 0.30, 0.25, true);
    let criteria = "\
- {metric: test/unfiltered/AP, op: '>', baseline: 3scale}
- {metric: test/unfiltered/AP_S, op: '>', value: 0.20}
- {metric: test/unfiltered/AP, op: '>=', value: 0.35}
- {metric: test/unfiltered/AP_nonexistent, op: '>', value: 0.1}
- {metric: test/unfiltered/AP_L, op: '>', value: 0.1}
- {metric: test/unfiltered/AP, op: '>', baseline: no_such_run}
- {metric: test/unfiltered/AP, op: '=>', value: 0.1}
- {metric: test/unfiltered/AP_S, op: '<', baseline: 3scale}
";
    let new = write_run(tmp.path(), "4scale", criteria, 0.35, 0.10, true);
    let out = tmp.path().join("cmp.html");
    let summary = build_report(&[base, new], &out).unwrap();
    let c = &summary.criteria;
    assert_eq!(c.len(), 8);
    assert!(c.iter().all(|r| r.run == "4scale"));
    // 0.35 > 0.30 of the baseline run.
    assert_eq!(c[0].status, Status::Met);
    assert_eq!(c[0].reference, Some(0.30));
    assert!(
        matches!(&c[0].criterion.as_ref().unwrap().target, Target::Baseline(b) if b == "3scale")
    );
    // 0.10 > 0.20 fails.
    assert_eq!(c[1].status, Status::NotMet);
    assert_eq!(c[1].measured, Some(0.10));
    // Equality meets >=.
    assert_eq!(c[2].status, Status::Met);
    // Missing metric, undefined (−1) metric, unknown baseline, bad op: unknown.
    assert_eq!(c[3].status, Status::Unknown);
    assert!(c[3].note.contains("missing"), "{}", c[3].note);
    assert_eq!(c[4].status, Status::Unknown);
    assert!(c[4].note.contains("undefined"), "{}", c[4].note);
    assert_eq!(c[5].status, Status::Unknown);
    assert!(c[5].note.contains("no_such_run"));
    assert_eq!(c[6].status, Status::Unknown);
    assert!(c[6].criterion.is_none());
    // 0.10 < 0.25.
    assert_eq!(c[7].status, Status::Met);
    // Printable.
    assert!(c[0].to_string().contains("met"));

    let html = std::fs::read_to_string(&out).unwrap();
    // Deltas against the first run: AP +0.050 (up), AP_S −0.150 (down).
    assert!(
        html.contains("<span class=\"up\">(+0.050)</span>"),
        "AP delta"
    );
    assert!(
        html.contains("<span class=\"down\">(-0.150)</span>"),
        "AP_S delta"
    );
    assert!(html.contains("Comparison with the baseline (3scale)"));
    assert!(
        html.contains("badge met")
            && html.contains("badge notmet")
            && html.contains("badge unknown")
    );
    assert!(!html.contains("http://") && !html.contains("https://"));
}

#[test]
fn baseline_next_to_the_run_is_found_by_folder_name() {
    let tmp = tempfile::tempdir().unwrap();
    // The baseline's experiment_id differs from its folder name and it is not in the report.
    let base = write_run(tmp.path(), "base_folder", "[]\n", 0.30, 0.25, true);
    let cfg = std::fs::read_to_string(base.join("config.yaml"))
        .unwrap()
        .replace("experiment_id: base_folder", "experiment_id: other_id");
    std::fs::write(base.join("config.yaml"), cfg).unwrap();
    let new = write_run(
        tmp.path(),
        "new",
        "- {metric: test/prophesee/AP, op: '<', baseline: base_folder}\n",
        0.35,
        0.1,
        true,
    );
    let summary = build_report(&[new], &tmp.path().join("r.html")).unwrap();
    assert_eq!(summary.criteria[0].status, Status::NotMet);
    assert_eq!(summary.criteria[0].reference, Some(0.30));
}

#[test]
fn run_without_eval_still_gets_a_report() {
    let tmp = tempfile::tempdir().unwrap();
    let run = write_run(
        tmp.path(),
        "training",
        "- {metric: test/unfiltered/AP, op: '>', value: 0.2}\n",
        0.2,
        0.1,
        false,
    );
    let out = tmp.path().join("r.html");
    let summary = build_report(&[run], &out).unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("eval/ is missing"));
    assert!(
        html.contains("alt=\"val prophesee\""),
        "validation curves from the log"
    );
    assert_eq!(summary.criteria[0].status, Status::Unknown);
    assert!(summary.notes.iter().any(|n| n.contains("eval/ is missing")));
    for png in data_uris(&html) {
        decode_png(&png).unwrap();
    }
}

#[test]
fn malformed_metrics_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let run = write_run(tmp.path(), "r", "[]\n", 0.2, 0.1, false);
    let log = run.join("metrics.jsonl");
    let good = metrics_jsonl(1.0);
    // A half-written last line (killed run) is skipped with a note.
    std::fs::write(&log, format!("{good}{{\"step\": 50, \"train/lo")).unwrap();
    let summary = build_report(std::slice::from_ref(&run), &tmp.path().join("a.html")).unwrap();
    assert!(
        summary.notes.iter().any(|n| n.contains("last line")),
        "{:?}",
        summary.notes
    );
    // A bad line in the middle is an error naming the file and the line.
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(1, "{not json");
    std::fs::write(&log, lines.join("\n")).unwrap();
    let err = build_report(std::slice::from_ref(&run), &tmp.path().join("b.html")).unwrap_err();
    assert!(matches!(err, ReportError::Line { line: 2, .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("metrics.jsonl") && msg.contains("line 2"),
        "{msg}"
    );
    assert!(!tmp.path().join("b.html").exists());
}

#[test]
fn missing_run_folder_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = build_report(&[tmp.path().join("nope")], &tmp.path().join("r.html")).unwrap_err();
    assert!(err.to_string().contains("nope"));
}

fn dark_pixels(png: &[u8]) -> usize {
    let img = decode_png(png).unwrap();
    img.data
        .chunks_exact(3)
        .filter(|p| p.iter().map(|&v| v as u32).sum::<u32>() < 200)
        .count()
}

#[test]
fn chart_text_is_rendered_with_the_bundled_font() {
    let mut chart = LineChart::new("", "step", "loss");
    chart.series.push(Series {
        name: "a".into(),
        points: vec![(0.0, 1.0), (10.0, 0.5)],
        color: [200, 200, 250],
    });
    let without = dark_pixels(&svg_to_png(&line_chart_svg(&chart).unwrap(), 1.0).unwrap());
    chart.title = "A LONG TITLE WITH MANY LETTERS".into();
    let with = dark_pixels(&svg_to_png(&line_chart_svg(&chart).unwrap(), 1.0).unwrap());
    assert!(
        with > without + 200,
        "title adds dark pixels: {without} -> {with}"
    );
}
