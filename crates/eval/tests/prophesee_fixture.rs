//! The Prophesee protocol against `fixtures/coco_eval/prophesee/expected.json`: RVT's 3-class
//! gen4 evaluation, the eTraM 8-class (class-aware) evaluation with per-category numbers, the
//! class-agnostic "overall" numbers, and the intermediate counts and COCO files.

mod common;

use common::{assert_close, coco_dir, f64s, read_bbox_npy, read_json};
use evdet_eval::coco_json::{load_dt, load_gt};
use evdet_eval::prophesee::{match_times, BoxFilter, Camera, CocoImages, TIME_TOL_US};
use evdet_eval::{BBox, CocoEval, CocoOptions, EvalConfig, Evaluator, Protocol};
use std::sync::Arc;

const ETRAM: [&str; 8] = [
    "pedestrian",
    "car",
    "bicycle",
    "bus",
    "motorbike",
    "truck",
    "tram",
    "wheelchair",
];

/// Ground truth and detections of one sequence.
type Pair = (Vec<BBox>, Vec<BBox>);

fn sequences() -> Vec<Pair> {
    let dir = coco_dir().join("prophesee");
    (0..2)
        .map(|i| {
            (
                read_bbox_npy(&dir.join(format!("seq{i}_gt_bbox.npy"))),
                read_bbox_npy(&dir.join(format!("seq{i}_dt_bbox.npy"))),
            )
        })
        .collect()
}

fn evaluator(classes: &[&str]) -> Evaluator {
    let config = EvalConfig::new(classes.iter().map(|s| s.to_string()).collect());
    let mut ev = Evaluator::new(config).unwrap();
    for (gt, dt) in sequences() {
        ev.add_sequence(&gt, &dt);
    }
    ev
}

fn expected() -> serde_json::Value {
    read_json(&coco_dir().join("prophesee/expected.json"))
}

fn six(stats: &[f64; 12]) -> Vec<f64> {
    stats[..6].to_vec()
}

fn want_six(v: &serde_json::Value) -> Vec<f64> {
    ["AP", "AP_50", "AP_75", "AP_S", "AP_M", "AP_L"]
        .iter()
        .map(|k| v[k].as_f64().unwrap())
        .collect()
}

#[test]
fn rvt_gen4_three_classes() {
    // RVT's gen4 tuple: only class ids 0, 1, 2 are evaluated.
    let report = evaluator(&["pedestrian", "two-wheeler", "car"])
        .summarize_protocol(Protocol::Prophesee)
        .unwrap();
    assert_close(
        "rvt_gen4_3class",
        &six(&report.stats),
        &want_six(&expected()["rvt_gen4_3class"]),
    );
}

#[test]
fn etram_eight_classes() {
    let exp = expected();
    let report = evaluator(&ETRAM)
        .summarize_protocol(Protocol::Prophesee)
        .unwrap();
    assert_close(
        "etram_8class",
        &six(&report.stats),
        &want_six(&exp["etram_8class"]),
    );
    assert_close(
        "etram_8class_full",
        &report.stats,
        &f64s(&exp["etram_8class_full"]["stats"]),
    );
    for c in &report.analysis.per_class {
        common::assert_category(
            "etram_8class_full",
            c,
            &exp["etram_8class_full"]["per_category"][c.cat_id.to_string()],
        );
    }
}

#[test]
fn etram_class_agnostic_overall() {
    let exp = expected();
    let report = evaluator(&ETRAM)
        .summarize_protocol(Protocol::Prophesee)
        .unwrap();
    assert_close(
        "etram_8class_agnostic",
        &report.agnostic_stats,
        &f64s(&exp["etram_8class_agnostic"]["stats"]),
    );
    let metrics = report.metrics("test");
    assert_eq!(
        metrics["test/prophesee/agnostic/AP"],
        exp["etram_8class_agnostic"]["stats"][0].as_f64().unwrap()
    );
}

#[test]
fn intermediate_counts_match() {
    let exp = expected();
    let filter = BoxFilter::for_camera(Camera::Gen4, true);
    let seqs = sequences();
    let count =
        |f: &dyn Fn(&Pair) -> usize| seqs.iter().map(f).map(|n| n as u64).collect::<Vec<_>>();
    let fc = &exp["filtered_counts"];
    let as_u64 = |v: &serde_json::Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(count(&|s| s.0.len()), as_u64(&fc["gt_before"]));
    assert_eq!(count(&|s| s.1.len()), as_u64(&fc["dt_before"]));
    assert_eq!(
        count(&|s| s.0.iter().filter(|b| filter.keep(b)).count()),
        as_u64(&fc["gt_after"])
    );
    assert_eq!(
        count(&|s| s.1.iter().filter(|b| filter.keep(b)).count()),
        as_u64(&fc["dt_after"])
    );

    let mut images = CocoImages::default();
    let mut per_seq_ts = Vec::new();
    for (gt, dt) in &seqs {
        let g: Vec<BBox> = gt.iter().filter(|b| filter.keep(b)).copied().collect();
        let d: Vec<BBox> = dt.iter().filter(|b| filter.keep(b)).copied().collect();
        per_seq_ts.push(
            match_times(&g, &d, TIME_TOL_US)
                .iter()
                .map(|w| w.t as u64)
                .collect::<Vec<_>>(),
        );
        images.push_pair(gt, dt, Some(&filter), TIME_TOL_US);
    }
    assert_eq!(
        images.num_images() as u64,
        exp["num_coco_images"].as_u64().unwrap()
    );
    let want_ts: Vec<Vec<u64>> = exp["coco_images_per_sequence_timestamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(as_u64)
        .collect();
    assert_eq!(per_seq_ts, want_ts);
    let lens = |v: &Vec<Vec<BBox>>| v.iter().map(|b| b.len() as u64).collect::<Vec<_>>();
    assert_eq!(lens(&images.gt), as_u64(&exp["window_gt_counts"]));
    assert_eq!(lens(&images.dt), as_u64(&exp["window_dt_counts"]));
}

#[test]
fn intermediate_coco_files_match_our_conversion() {
    let dir = coco_dir().join("prophesee");
    let ev = evaluator(&ETRAM);
    let (images, _) = ev.coco_images(Protocol::Prophesee);
    let names: Vec<String> = ETRAM.iter().map(|s| s.to_string()).collect();
    let (gt, dt) = images.to_coco(&names, 360, 640);

    let want_gt = read_json(&dir.join("intermediate_coco_gt.json"));
    let want_anns = want_gt["annotations"].as_array().unwrap();
    assert_eq!(gt.dataset.annotations.len(), want_anns.len());
    for (got, want) in gt.dataset.annotations.iter().zip(want_anns) {
        assert_eq!(got.image_id, want["image_id"].as_u64().unwrap());
        assert_eq!(got.category_id, want["category_id"].as_u64().unwrap());
        assert_eq!(got.area, want["area"].as_f64(), "area is the f32 product");
        assert_eq!(got.bbox.unwrap().to_vec(), f64s(&want["bbox"]));
    }
    let want_dt = read_json(&dir.join("intermediate_coco_dt.json"));
    let want_dets = want_dt.as_array().unwrap();
    assert_eq!(dt.dataset.annotations.len(), want_dets.len());
    for (got, want) in dt.dataset.annotations.iter().zip(want_dets) {
        assert_eq!(got.image_id, want["image_id"].as_u64().unwrap());
        assert_eq!(got.category_id, want["category_id"].as_u64().unwrap());
        assert_eq!(got.score, want["score"].as_f64());
        assert_eq!(got.bbox.unwrap().to_vec(), f64s(&want["bbox"]));
    }

    // The same files through the JSON path give the same 12 stats.
    let jgt = load_gt(&dir.join("intermediate_coco_gt.json")).unwrap();
    let jdt = load_dt(&jgt, &dir.join("intermediate_coco_dt.json")).unwrap();
    let json_eval =
        CocoEval::run(&Arc::new(jgt), &Arc::new(jdt.coco), &CocoOptions::default()).unwrap();
    let exp = expected();
    assert_close(
        "json path",
        &json_eval.stats(),
        &f64s(&exp["etram_8class_full"]["stats"]),
    );
}

#[test]
fn frames_fed_one_by_one_equal_exact_time_matching() {
    // Feeding each labelled frame as its own pair (what the training loop does, as RVT's
    // evaluator is fed) matches a detection only to its own frame: the same as whole sequences
    // with a zero time tolerance, once every detection carries its frame's time stamp.
    let names: Vec<String> = ETRAM.iter().map(|s| s.to_string()).collect();
    let mut by_frame = Evaluator::new(EvalConfig::new(names.clone())).unwrap();
    let mut whole = Evaluator::new(EvalConfig {
        time_tol_us: 0,
        ..EvalConfig::new(names)
    })
    .unwrap();
    for (gt, dt) in sequences() {
        let mut frames: Vec<i64> = gt.iter().map(|b| b.t).collect();
        frames.dedup();
        // Each detection goes to the latest frame at or before it.
        let snapped: Vec<BBox> = dt
            .iter()
            .filter_map(|d| {
                let i = frames.partition_point(|&t| t <= d.t);
                (i > 0).then(|| BBox {
                    t: frames[i - 1],
                    ..*d
                })
            })
            .collect();
        for &t in &frames {
            let g: Vec<BBox> = gt.iter().filter(|b| b.t == t).copied().collect();
            let d: Vec<BBox> = snapped.iter().filter(|b| b.t == t).copied().collect();
            by_frame.add_frame(&g, &d);
        }
        whole.add_sequence(&gt, &snapped);
    }
    for protocol in Protocol::BOTH {
        let a = by_frame.summarize_protocol(protocol).unwrap();
        let b = whole.summarize_protocol(protocol).unwrap();
        assert_eq!(
            (a.num_images, a.num_gt, a.num_dt),
            (b.num_images, b.num_gt, b.num_dt)
        );
        assert_eq!(a.stats, b.stats, "{protocol}");
        assert_eq!(a.agnostic_stats, b.agnostic_stats, "{protocol}");
        assert!(a.num_dt > 0);
    }
}
