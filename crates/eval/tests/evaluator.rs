//! The incremental evaluator on small hand-made scenes whose answers are known: protocols and
//! filters, metric keys, the small-classes group, size bins, confusion matrix and PR curves.

use evdet_eval::{BBox, EvalConfig, Evaluator, Protocol};

/// pycocotools divides by `tp + fp + eps`, so a perfect score is 1 - 2⁻⁵² for a single hit.
fn one(v: f64) -> bool {
    (v - 1.0).abs() < 1e-12
}

const CLASSES: [&str; 3] = ["pedestrian", "car", "bicycle"];

fn config() -> EvalConfig {
    EvalConfig::new(CLASSES.iter().map(|s| s.to_string()).collect())
        .with_small_classes(vec!["pedestrian".into(), "bicycle".into()])
}

fn det_of(b: &BBox, score: f32) -> BBox {
    BBox {
        class_confidence: score,
        ..*b
    }
}

/// Frames 100 ms apart from 1 s on: a car (60×40), a pedestrian (12×30, passes the ds2 filter)
/// and a tiny bicycle (6×6 = 36 px², below every filter).
fn frames() -> Vec<Vec<BBox>> {
    (0..5i64)
        .map(|i| {
            let t = 1_000_000 + 100_000 * i;
            vec![
                BBox::gt(t, 100.0 + i as f32, 50.0, 60.0, 40.0, 1),
                BBox::gt(t, 300.0, 80.0 + i as f32, 12.0, 30.0, 0),
                BBox::gt(t, 500.0, 200.0, 6.0, 6.0, 2),
            ]
        })
        .collect()
}

#[test]
fn perfect_detections_score_one_in_both_protocols() {
    let mut ev = Evaluator::new(config()).unwrap();
    for gt in frames() {
        let dt: Vec<BBox> = gt.iter().map(|b| det_of(b, 0.9)).collect();
        ev.add_frame(&gt, &dt);
    }
    let report = ev.summarize().unwrap();
    // The filter drops the tiny bicycle: only two classes have ground truth.
    assert_eq!(report.prophesee.num_gt, 10);
    assert_eq!(report.unfiltered.num_gt, 15);
    for p in [&report.prophesee, &report.unfiltered] {
        assert_eq!(p.num_images, 5);
        assert_eq!(p.stats[0], 1.0, "{:?}", p.protocol);
        assert_eq!(p.agnostic_stats[0], 1.0);
    }
    let m = report.metrics("val");
    assert_eq!(m["val/prophesee/AP"], 1.0);
    assert_eq!(m["val/unfiltered/AP/bicycle"], 1.0);
    assert!(
        !m.contains_key("val/prophesee/AP/bicycle"),
        "no bicycle ground truth after filtering"
    );
    assert_eq!(m["val/prophesee/AP_small_classes"], 1.0);
    assert_eq!(m["val/unfiltered/AP_bin/0-8"], 1.0);
    assert_eq!(m["val/unfiltered/AR_bin/0-8"], 1.0);
    assert!(!m.contains_key("val/prophesee/AP_bin/0-8"));
    assert_eq!(m["val/prophesee/agnostic/AP"], 1.0);
    // Every value is a fraction.
    assert!(m.values().all(|v| (0.0..=1.0).contains(v)));
    // Stat keys in DESIGN.md's spelling.
    for stat in [
        "AP", "AP50", "AP75", "AP_S", "AP_M", "AR1", "AR10", "AR100", "AR_S", "AR_M",
    ] {
        assert!(m.contains_key(&format!("val/unfiltered/{stat}")), "{stat}");
    }
    assert!(
        !m.contains_key("val/unfiltered/AP_L"),
        "no box is larger than 96²"
    );
}

#[test]
fn no_detections_score_zero_where_there_is_ground_truth_and_stay_undefined_elsewhere() {
    // REFERENCE §6 reports 0 for everything (pycocotools' loadRes cannot take an empty list); COCOeval
    // on an empty result set gives 0 where there is ground truth and −1 where there is none.
    let mut ev = Evaluator::new(config()).unwrap();
    for gt in frames() {
        ev.add_frame(&gt, &[]);
    }
    let r = ev.summarize_protocol(Protocol::Prophesee).unwrap();
    // No box is larger than 96²: AP_L and AR_L are undefined, everything else 0.
    let mut want = [0.0; 12];
    want[5] = -1.0;
    want[11] = -1.0;
    assert_eq!(r.stats, want);
    assert_eq!(r.agnostic_stats, want);
    let m = r.metrics("val");
    assert!(m.values().all(|&v| v == 0.0), "{m:?}");
    assert_eq!(m["val/prophesee/AP/car"], 0.0);
    assert_eq!(m["val/prophesee/AP/pedestrian"], 0.0);
    // The filter removed every bicycle: undefined, not 0.
    assert!(!m.contains_key("val/prophesee/AP/bicycle"), "{m:?}");
    assert!(!m.contains_key("val/prophesee/AP_L"));
    let bins = &r.analysis.size_bins;
    assert!(bins.iter().any(|b| b.num_gt == 0));
    for b in bins {
        if b.num_gt == 0 {
            assert_eq!((b.ap, b.ar), (-1.0, -1.0), "{}", b.label);
        } else {
            assert_eq!((b.ap, b.ar), (0.0, 0.0), "{}", b.label);
        }
    }
    // Nothing at all added: every metric undefined, no error.
    let empty = Evaluator::new(config()).unwrap().summarize().unwrap();
    assert_eq!(empty.unfiltered.stats, [-1.0; 12]);
    assert_eq!(empty.unfiltered.num_images, 0);
    assert!(empty.metrics("val").is_empty());
}

#[test]
fn first_half_second_is_skipped_strictly_and_frames_without_gt_are_ignored() {
    let mut ev = Evaluator::new(config()).unwrap();
    let early = BBox::gt(500_000, 10.0, 10.0, 40.0, 40.0, 1);
    ev.add_frame(&[early], &[det_of(&early, 0.9)]);
    // A frame with detections but no ground truth contributes nothing, not even false positives.
    ev.add_frame(&[], &[BBox::det(700_000, 0.0, 0.0, 50.0, 50.0, 1, 0.99)]);
    let late = BBox::gt(900_000, 10.0, 10.0, 40.0, 40.0, 1);
    ev.add_frame(&[late], &[det_of(&late, 0.5)]);
    let r = ev.summarize().unwrap();
    assert_eq!(r.prophesee.num_images, 1);
    assert_eq!(r.unfiltered.num_images, 2);
    assert!(one(r.prophesee.stats[0]));
    assert_eq!(
        ev.len(),
        (2, 2),
        "the detection of the GT-less frame is not kept"
    );
}

#[test]
fn confusion_matrix_and_pr_curves() {
    let mut ev = Evaluator::new(config()).unwrap();
    let t = 1_000_000;
    let car = BBox::gt(t, 100.0, 100.0, 60.0, 40.0, 1);
    let ped = BBox::gt(t, 300.0, 100.0, 20.0, 40.0, 0);
    let missed = BBox::gt(t, 400.0, 200.0, 20.0, 40.0, 0);
    let dets = [
        det_of(&car, 0.9),
        BBox {
            class_id: 2,
            ..det_of(&ped, 0.8)
        }, // pedestrian called bicycle
        BBox::det(t, 10.0, 300.0, 50.0, 50.0, 1, 0.7), // car on background
    ];
    ev.add_frame(&[car, ped, missed], &dets);
    let r = ev.summarize_protocol(Protocol::Unfiltered).unwrap();
    let c = r.analysis.confusion.as_ref().expect("detailed by default");
    assert_eq!(c.labels, ["pedestrian", "car", "bicycle", "background"]);
    // rows: ground truth; columns: prediction; last = background.
    assert_eq!(c.matrix[1][1], 1, "car found");
    assert_eq!(c.matrix[0][2], 1, "pedestrian predicted as bicycle");
    assert_eq!(c.matrix[0][3], 1, "pedestrian missed");
    assert_eq!(c.matrix[3][1], 1, "car predicted on background");
    assert_eq!(c.matrix.iter().flatten().sum::<u64>(), 4);

    let car_curve = r
        .analysis
        .pr_curves
        .iter()
        .find(|p| p.class == "car")
        .unwrap();
    assert_eq!(car_curve.recall.len(), 101);
    assert!(
        car_curve.precision.iter().all(|&p| one(p)),
        "the car is the top-scored car detection"
    );
    assert_eq!(car_curve.score[0], f64::from(0.9f32));
    let ped_curve = r
        .analysis
        .pr_curves
        .iter()
        .find(|p| p.class == "pedestrian")
        .unwrap();
    assert!(ped_curve.precision.iter().all(|&p| p == 0.0));
    assert!(
        r.analysis.pr_curves.iter().all(|p| p.class != "bicycle"),
        "no bicycle ground truth"
    );
}

#[test]
fn size_bins_count_and_score_their_boxes() {
    let mut ev = Evaluator::new(config()).unwrap();
    let t = 1_000_000;
    // Sides 5, 12, 20, 50, 120 → one box per bin; detect only the three smallest.
    let gt: Vec<BBox> = [5.0f32, 12.0, 20.0, 50.0, 120.0]
        .iter()
        .enumerate()
        .map(|(i, &s)| BBox::gt(t, 130.0 * i as f32, 10.0, s, s, 1))
        .collect();
    let dt: Vec<BBox> = gt[..3].iter().map(|b| det_of(b, 0.9)).collect();
    ev.add_frame(&gt, &dt);
    let r = ev.summarize_protocol(Protocol::Unfiltered).unwrap();
    let bins = &r.analysis.size_bins;
    assert_eq!(
        bins.iter().map(|b| b.num_gt).collect::<Vec<_>>(),
        [1, 1, 1, 1, 1]
    );
    let ap: Vec<bool> = bins.iter().map(|b| one(b.ap)).collect();
    assert_eq!(ap, [true, true, true, false, false]);
    assert_eq!(bins[3].ap, 0.0);
    assert_eq!(
        bins.iter().map(|b| b.recall50).collect::<Vec<_>>(),
        [1.0, 1.0, 1.0, 0.0, 0.0]
    );
    let small = r.analysis.small_classes.as_ref().unwrap();
    assert_eq!(small.classes, ["pedestrian", "bicycle"]);
    assert_eq!(small.ap, -1.0, "neither small class has ground truth here");
    assert!(!r
        .metrics("test")
        .contains_key("test/unfiltered/AP_small_classes"));
}

#[test]
fn undetailed_evaluation_skips_bins_and_confusion_only() {
    let mut detailed = Evaluator::new(config()).unwrap();
    let mut quick = Evaluator::new(EvalConfig {
        detailed: false,
        ..config()
    })
    .unwrap();
    for gt in frames() {
        let dt: Vec<BBox> = gt.iter().map(|b| det_of(b, 0.7)).collect();
        detailed.add_frame(&gt, &dt);
        quick.add_frame(&gt, &dt);
    }
    let (a, b) = (detailed.summarize().unwrap(), quick.summarize().unwrap());
    assert!(
        b.unfiltered.analysis.size_bins.is_empty() && b.unfiltered.analysis.confusion.is_none()
    );
    assert_eq!(a.unfiltered.stats, b.unfiltered.stats);
    let (ma, mb) = (a.metrics("val"), b.metrics("val"));
    assert!(mb.keys().all(|k| ma[k] == mb[k]));
    assert!(ma
        .keys()
        .filter(|k| !mb.contains_key(*k))
        .all(|k| k.contains("_bin/")));
}

#[test]
fn configuration_errors_are_reported() {
    let bad = config().with_small_classes(vec!["tram".into()]);
    let err = Evaluator::new(bad).unwrap_err().to_string();
    assert!(err.contains("tram"), "{err}");
    let dup = EvalConfig::new(vec!["car".into(), "car".into()]);
    assert!(Evaluator::new(dup).is_err());
    let bins = EvalConfig {
        size_edges: vec![32.0, 8.0],
        ..config()
    };
    assert!(Evaluator::new(bins).is_err());
}

#[test]
fn clear_forgets_and_unsorted_input_is_sorted() {
    let mut ev = Evaluator::new(config()).unwrap();
    let mut gt: Vec<BBox> = frames().concat();
    let dt: Vec<BBox> = gt.iter().rev().map(|b| det_of(b, 0.8)).collect();
    gt.reverse();
    ev.add_sequence(&gt, &dt);
    let r = ev.summarize_protocol(Protocol::Unfiltered).unwrap();
    assert_eq!((r.num_images, r.stats[0]), (5, 1.0));
    ev.clear();
    assert!(ev.is_empty());
    assert_eq!(ev.len(), (0, 0));
}
