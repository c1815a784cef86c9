//! Postprocess (confidence threshold + class-aware NMS) against the eval-mode detections of the
//! model fixtures (decoded head outputs in, detections out, every step and image), plus small
//! hand-made cases.

use std::collections::HashMap;
use std::path::PathBuf;

use evdet_model::postprocess::{batched_nms, nms_sorted, postprocess, PostprocessConfig};
use tch::{Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    evdet_fixtures::file(name)
}

fn load(path: PathBuf) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .into_iter()
        .collect()
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    Vec::<Vec<f64>>::try_from(t.to_kind(Kind::Double)).expect("2-d tensor")
}

/// Detections as sets: same count, and every expected row has a distinct got row of the same
/// class whose elements agree within 1e-4 + 1e-3·|b|. Returns the largest |a−b|.
fn match_sets(got: &Tensor, want: &[Vec<f64>], what: &str) -> f64 {
    let got = rows(got);
    assert_eq!(got.len(), want.len(), "{what}: detection count");
    let mut used = vec![false; got.len()];
    let mut worst = 0.0f64;
    for w in want {
        let hit = got.iter().enumerate().find(|(i, g)| {
            !used[*i]
                && g.iter()
                    .zip(w)
                    .all(|(a, b)| (a - b).abs() <= 1e-4 + 1e-3 * b.abs())
        });
        let (i, g) = hit.unwrap_or_else(|| panic!("{what}: no detection matches {w:?}"));
        used[i] = true;
        for (a, b) in g.iter().zip(w) {
            worst = worst.max((a - b).abs());
        }
    }
    worst
}

fn check_fixture(name: &str, kind: Kind) {
    let out = load(fixture(name).join("outputs.safetensors"));
    let cfg = PostprocessConfig::TRAIN_VALIDATION;
    let mut worst = 0.0f64;
    let mut total = 0usize;
    for t in 0.. {
        let Some(decoded) = out.get(&format!("t{t}.head.decoded")) else {
            break;
        };
        let dets = &out[&format!("t{t}.detections")];
        let counts = Vec::<i64>::try_from(&out[&format!("t{t}.detections_count")]).unwrap();
        let got = postprocess(
            &decoded.to_kind(kind),
            cfg.confidence_threshold,
            cfg.nms_threshold,
        )
        .expect("postprocess");
        assert_eq!(got.len(), counts.len());
        for (b, (&n, g)) in counts.iter().zip(&got).enumerate() {
            assert_eq!(g.kind(), kind);
            let want = rows(&dets.get(b as i64).narrow(0, 0, n));
            worst = worst.max(match_sets(g, &want, &format!("{name} t{t} img{b}")));
            total += n as usize;
        }
    }
    assert!(total > 0);
    println!("{name} {kind:?}: {total} detections matched, max |a-b| {worst:.3e}");
}

#[test]
fn detections_match_model_3scale_fixture() {
    check_fixture("model_3scale", Kind::Float);
    check_fixture("model_3scale", Kind::Double);
}

#[test]
fn detections_match_model_4scale_fixture() {
    check_fixture("model_4scale_sizeaware", Kind::Float);
    check_fixture("model_4scale_sizeaware", Kind::Double);
}

/// Decoded rows `(cx, cy, w, h, obj, cls...)` for one image.
fn decoded(rows: &[[f32; 7]]) -> Tensor {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_slice(&flat).reshape([1, rows.len() as i64, 7])
}

#[test]
fn class_aware_nms_keeps_overlapping_boxes_of_other_classes() {
    // Two identical boxes of class 0 and one of class 1 on top of them, one far box of class 0.
    let d = decoded(&[
        [50.0, 50.0, 20.0, 20.0, 0.9, 0.8, 0.1],
        [51.0, 50.0, 20.0, 20.0, 0.8, 0.9, 0.1],
        [50.0, 50.0, 20.0, 20.0, 0.9, 0.1, 0.7],
        [150.0, 50.0, 20.0, 20.0, 0.5, 0.5, 0.1],
    ]);
    let out = postprocess(&d, 0.1, 0.45).unwrap();
    let r = rows(&out[0]);
    // Scores: 0.72, 0.72 (class 0, stable order keeps the first), 0.63 (class 1), 0.25.
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(r[0][..4], [40.0, 40.0, 60.0, 60.0]);
    assert_eq!(r[0][6], 0.0);
    assert_eq!(r[1][6], 1.0);
    assert!((r[1][4] - 0.9).abs() < 1e-6 && (r[1][5] - 0.7).abs() < 1e-6);
    assert_eq!(r[2][..4], [140.0, 40.0, 160.0, 60.0]);
}

#[test]
fn confidence_threshold_is_inclusive_and_empty_images_give_empty_rows() {
    // obj·cls = 0.5·0.25 = 0.125 exactly.
    let d = decoded(&[[10.0, 10.0, 4.0, 4.0, 0.5, 0.25, 0.0]]);
    assert_eq!(postprocess(&d, 0.125, 0.45).unwrap()[0].size(), [1, 7]);
    assert_eq!(postprocess(&d, 0.126, 0.45).unwrap()[0].size(), [0, 7]);
}

#[test]
fn nms_threshold_is_strict() {
    // IoU of [0,0,10,10] and [0,0,10,x]: x/10. IoU exactly 0.5 is not > 0.5: both kept.
    let boxes = [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0]];
    assert_eq!(nms_sorted(&boxes, None, 0.5), vec![0, 1]);
    assert_eq!(nms_sorted(&boxes, None, 0.49), vec![0]);
    assert_eq!(nms_sorted(&boxes, Some(&[0, 1]), 0.49), vec![0, 1]);
}

#[test]
fn batched_nms_returns_indices_in_score_order() {
    let boxes = Tensor::from_slice(&[
        0.0f64, 0.0, 10.0, 10.0, //
        100.0, 0.0, 110.0, 10.0, //
        1.0, 0.0, 11.0, 10.0,
    ])
    .reshape([3, 4]);
    let scores = Tensor::from_slice(&[0.5f64, 0.9, 0.7]);
    let classes = Tensor::from_slice(&[2i64, 2, 2]);
    let keep = Vec::<i64>::try_from(batched_nms(&boxes, &scores, &classes, 0.45).unwrap()).unwrap();
    assert_eq!(keep, vec![1, 2]);
}

#[test]
fn per_class_path_for_many_boxes_agrees_with_single_class_runs() {
    // > 1000 boxes on the CPU take torchvision's per-class path; each class alone (< 1000 boxes)
    // takes the offset path. Both must keep the same boxes.
    tch::manual_seed(7);
    let n = 1800;
    let xy = Tensor::rand([n, 2], (Kind::Float, tch::Device::Cpu)) * 300.0;
    let wh = Tensor::rand([n, 2], (Kind::Float, tch::Device::Cpu)) * 60.0 + 4.0;
    let boxes = Tensor::cat(&[&xy, &(&xy + &wh)], 1);
    let scores = Tensor::rand([n], (Kind::Float, tch::Device::Cpu));
    let classes = Tensor::randint(3, [n], (Kind::Int64, tch::Device::Cpu));
    let keep = Vec::<i64>::try_from(batched_nms(&boxes, &scores, &classes, 0.45).unwrap()).unwrap();
    let mut expected = vec![];
    for c in 0..3 {
        let idx = classes.eq(c).nonzero().squeeze_dim(1);
        let sub = batched_nms(
            &boxes.index_select(0, &idx),
            &scores.index_select(0, &idx),
            &classes.index_select(0, &idx),
            0.45,
        )
        .unwrap();
        expected.extend(Vec::<i64>::try_from(idx.index_select(0, &sub)).unwrap());
    }
    let mut got = keep.clone();
    got.sort_unstable();
    expected.sort_unstable();
    assert_eq!(got, expected);
    // Kept indices come in decreasing score order.
    let s = Vec::<f32>::try_from(scores.index_select(0, &Tensor::from_slice(&keep))).unwrap();
    assert!(s.windows(2).all(|w| w[0] >= w[1]));
}

#[test]
fn reported_threshold_on_a_full_4scale_frame_is_fast() {
    // 384×640 input, strides 4/8/16/32: 20 160 anchors, 8 classes, confidence 0.001 (nearly
    // every anchor is a candidate).
    tch::manual_seed(3);
    let a = 96 * 160 + 48 * 80 + 24 * 40 + 12 * 20;
    let opts = (Kind::Float, tch::Device::Cpu);
    let xy = Tensor::rand([1, a, 2], opts) * 600.0;
    let wh = Tensor::rand([1, a, 2], opts) * 80.0 + 4.0;
    let probs = Tensor::rand([1, a, 9], opts) * 0.5 + 0.05;
    let decoded = Tensor::cat(&[xy, wh, probs], 2);
    let cfg = PostprocessConfig::REPORTED;
    let t0 = std::time::Instant::now();
    let out = postprocess(&decoded, cfg.confidence_threshold, cfg.nms_threshold).unwrap();
    let dt = t0.elapsed();
    println!(
        "postprocess of {a} anchors at conf 0.001: {} kept in {dt:?}",
        out[0].size()[0]
    );
    assert!(out[0].size()[0] > 100);
    assert!(dt.as_secs_f64() < 10.0, "{dt:?}");
}

#[test]
fn half_precision_outputs_are_accepted() {
    let d = decoded(&[
        [50.0, 50.0, 20.0, 20.0, 0.9, 0.8, 0.1],
        [51.0, 50.0, 20.0, 20.0, 0.8, 0.9, 0.1],
        [150.0, 50.0, 20.0, 20.0, 0.5, 0.5, 0.1],
    ]);
    for kind in [Kind::Half, Kind::BFloat16] {
        let out = postprocess(&d.to_kind(kind), 0.1, 0.45).unwrap();
        assert_eq!(out[0].size(), [2, 7], "{kind:?}");
        assert_eq!(out[0].kind(), kind);
    }
}

/// Detections read back by name; a tensor that is not `[n, 7]` is an error (evaluation used to
/// drop such a frame's detections silently).
#[test]
fn detections_read_back_by_name_and_bad_shapes_are_errors() {
    use evdet_model::postprocess::Detection;
    let rows = Tensor::from_slice(&[
        1.0f32, 2.0, 11.0, 8.0, 0.5, 0.8, 3.0, 0.0, 0.0, 4.0, 4.0, 0.9, 0.1, 0.0,
    ])
    .view([2, 7]);
    let d = Detection::from_tensor(&rows).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(
        (d[0].x1, d[0].y1, d[0].width(), d[0].height()),
        (1.0, 2.0, 10.0, 6.0)
    );
    assert_eq!(d[0].class_id, 3);
    assert!((d[0].score() - 0.4).abs() < 1e-6);
    assert!(
        Detection::from_tensor(&Tensor::zeros([0, 7], (Kind::Float, tch::Device::Cpu)))
            .unwrap()
            .is_empty()
    );
    assert!(
        Detection::from_tensor(&Tensor::zeros([2, 6], (Kind::Float, tch::Device::Cpu))).is_err()
    );
    assert!(Detection::from_tensor(&Tensor::zeros([7], (Kind::Float, tch::Device::Cpu))).is_err());
}
