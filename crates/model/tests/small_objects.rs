//! The small-object options of the assignment and the loss (`model.head.assignment`,
//! `obj_loss_norm`, `size_aware_targets`) and the assignment diagnostics, on hand-built cases whose
//! answers are known. That the defaults leave SimOTA and the losses bit for bit unchanged is what
//! the reference-fixture tests (`assign.rs`, `losses.rs`, `model_fixtures.rs`) keep checking.

use evdet_model::assign::{
    pairwise_nwd_cxcywh, simota_assign_with, AnchorGrid, AssignCost, AssignOptions, Assignment,
};
use evdet_model::assign_stats::assignment_diagnostics;
use evdet_model::losses::{yolox_loss, LossConfig, ObjLossNorm, SizeAwareConfig, SizeAwareTargets};
use tch::{Device, Kind, Tensor};

fn t(rows: &[[f32; 4]]) -> Tensor {
    Tensor::from_slice(&rows.concat()).view([rows.len() as i64, 4])
}

#[test]
fn nwd_equals_the_closed_form_of_the_reference_script() {
    let text = include_str!("data/nwd_reference.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let c = v["constant"].as_f64().unwrap();
    let pairs = v["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 6);
    let cxcywh = |b: &serde_json::Value| {
        let b: Vec<f64> = b
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        [
            ((b[0] + b[2]) / 2.0),
            ((b[1] + b[3]) / 2.0),
            b[2] - b[0],
            b[3] - b[1],
        ]
    };
    for p in pairs {
        let g = Tensor::from_slice(&cxcywh(&p["gt_xyxy"])).view([1, 4]);
        let q = Tensor::from_slice(&cxcywh(&p["pred_xyxy"])).view([1, 4]);
        let got = pairwise_nwd_cxcywh(&g, &q, c).double_value(&[0, 0]);
        let want = p["nwd"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "{p}: {got} vs {want}");
    }
    // Pair-wise shape: [G, N].
    let g = t(&[[10.0, 10.0, 4.0, 4.0], [50.0, 50.0, 8.0, 8.0]]);
    let q = t(&[
        [10.0, 10.0, 4.0, 4.0],
        [11.0, 10.0, 4.0, 4.0],
        [90.0, 90.0, 4.0, 4.0],
    ]);
    let m = pairwise_nwd_cxcywh(&g, &q, 12.8);
    assert_eq!(m.size(), [2, 3]);
    assert_eq!(m.double_value(&[0, 0]), 1.0);
}

/// One level of stride 8 over a 64×64 input; every anchor predicts a 4×4 box at its own centre.
fn tiny_predictions() -> (AnchorGrid, Tensor) {
    let grid = AnchorGrid::new(&[(8, 8)], &[8], Kind::Float, Device::Cpu).unwrap();
    let cx = (&grid.x_shifts + 0.5) * 8.0;
    let cy = (&grid.y_shifts + 0.5) * 8.0;
    let four = Tensor::full([64], 4.0, (Kind::Float, Device::Cpu));
    let boxes = Tensor::stack(&[cx, cy, four.shallow_clone(), four], 1);
    (grid, boxes)
}

fn assign(gt: &Tensor, preds: &Tensor, grid: &AnchorGrid, opts: &AssignOptions) -> Assignment {
    let a = preds.size()[0];
    let g = gt.size()[0];
    simota_assign_with(
        gt,
        &Tensor::zeros([g], (Kind::Int64, Device::Cpu)),
        preds,
        &Tensor::zeros([a, 2], (Kind::Float, Device::Cpu)),
        &Tensor::zeros([a], (Kind::Float, Device::Cpu)),
        grid,
        opts,
    )
    .unwrap()
}

#[test]
fn nwd_gives_a_small_ground_truth_more_positives_than_iou() {
    let (grid, preds) = tiny_predictions();
    // A 6×6 gt between anchor centres: the 4×4 predictions overlap it little (best IoU 0.21, so
    // dynamic k = 1), but their Gaussians are close (best NWD 0.78).
    let gt = t(&[[30.0, 30.0, 6.0, 6.0]]);
    let opts = |cost| AssignOptions {
        cost,
        ..Default::default()
    };
    let iou = assign(&gt, &preds, &grid, &opts(AssignCost::Iou));
    let nwd = assign(&gt, &preds, &grid, &opts(AssignCost::Nwd));
    let mixed = assign(&gt, &preds, &grid, &opts(AssignCost::IouNwd));
    assert_eq!(iou.num_fg, 1);
    assert!(nwd.num_fg >= 3, "NWD positives: {}", nwd.num_fg);
    assert!(mixed.num_fg > iou.num_fg && mixed.num_fg <= nwd.num_fg);
    // The class target stays the IoU of the match.
    let best = iou.pred_ious_this_matching.double_value(&[0]);
    assert!((best - 9.0 / 43.0).abs() < 1e-6, "{best}");

    // A gt above nwd_max_area keeps the IoU assignment whatever the cost.
    let big = t(&[[32.0, 32.0, 40.0, 40.0]]);
    let a = assign(&big, &preds, &grid, &opts(AssignCost::Iou));
    let b = assign(&big, &preds, &grid, &opts(AssignCost::Nwd));
    assert_eq!(a.fg_anchor_indices, b.fg_anchor_indices);
    assert_eq!(a.matched_gt_inds, b.matched_gt_inds);
}

#[test]
fn stride4_limit_keeps_its_anchors_from_large_ground_truths_only() {
    // Stride 4 (16×16) and stride 8 (8×8) over 64×64. Anchors near (10, 10) predict the small gt's
    // box, the others a 20×20 box on the large gt (IoU 0.25 with it, so its dynamic k is 2).
    let grid = AnchorGrid::new(&[(16, 16), (8, 8)], &[4, 8], Kind::Float, Device::Cpu).unwrap();
    let cx = (&grid.x_shifts + 0.5) * &grid.strides;
    let cy = (&grid.y_shifts + 0.5) * &grid.strides;
    let near = (&cx - 10.0)
        .abs()
        .le(8.0)
        .logical_and(&(&cy - 10.0).abs().le(8.0));
    let a = grid.num_anchors();
    let small = Tensor::from_slice(&[10.0f32, 10.0, 8.0, 8.0])
        .view([1, 4])
        .expand([a, 4], false);
    let other = Tensor::from_slice(&[32.0f32, 32.0, 20.0, 20.0])
        .view([1, 4])
        .expand([a, 4], false);
    let preds = small.where_self(&near.unsqueeze(1), &other);
    let gts = t(&[[32.0, 32.0, 40.0, 40.0], [10.0, 10.0, 8.0, 8.0]]);
    let stride4_of = |asg: &Assignment, gt: i64| {
        let s = grid.strides.index_select(0, &asg.fg_anchor_indices);
        s.eq(4.0)
            .logical_and(&asg.matched_gt_inds.eq(gt))
            .sum(Kind::Int64)
            .int64_value(&[])
    };
    let off = assign(&gts, &preds, &grid, &AssignOptions::default());
    let on = assign(
        &gts,
        &preds,
        &grid,
        &AssignOptions {
            stride4_max_side: 16.0,
            ..Default::default()
        },
    );
    assert!(
        stride4_of(&off, 0) > 0,
        "without the limit the large gt takes stride-4 anchors"
    );
    assert_eq!(stride4_of(&on, 0), 0, "with it, none");
    assert!(
        stride4_of(&on, 1) > 0,
        "the small gt keeps its stride-4 anchors"
    );
    let large_on = on.matched_gt_inds.eq(0).sum(Kind::Int64).int64_value(&[]);
    assert!(
        large_on > 0,
        "the large gt still gets positives, on stride 8"
    );
}

#[test]
fn diagnostics_equal_a_count_by_hand() {
    // Anchors 0–1 at stride 4, 2–3 at stride 8, 4–5 at stride 16.
    let grid = AnchorGrid::new(
        &[(1, 2), (1, 2), (1, 2)],
        &[4, 8, 16],
        Kind::Float,
        Device::Cpu,
    )
    .unwrap();
    // Image 0: a 10×10 gt (bin 0-16) and a 20×20 gt (16-32); image 1: a 100×100 gt (96-inf) and
    // a padding row.
    let labels = Tensor::from_slice(&[
        1.0f32, 5.0, 5.0, 10.0, 10.0, //
        2.0, 30.0, 30.0, 20.0, 20.0, //
        0.0, 60.0, 60.0, 100.0, 100.0, //
        0.0, 0.0, 0.0, 0.0, 0.0,
    ])
    .view([2, 2, 5]);
    let asg = |anchors: &[i64], gts: &[i64]| Assignment {
        fg_mask: Tensor::zeros([6], (Kind::Bool, Device::Cpu)),
        fg_anchor_indices: Tensor::from_slice(anchors),
        matched_gt_inds: Tensor::from_slice(gts),
        gt_matched_classes: Tensor::zeros([gts.len() as i64], (Kind::Int64, Device::Cpu)),
        pred_ious_this_matching: Tensor::zeros([gts.len() as i64], (Kind::Float, Device::Cpu)),
        num_fg: gts.len() as i64,
    };
    // Image 0: anchors 0, 1 (stride 4) → gt 0, anchors 2 (stride 8), 4 (stride 16) → gt 1.
    // Image 1: nothing for its gt.
    let d = assignment_diagnostics(
        &labels,
        &[asg(&[0, 1, 2, 4], &[0, 0, 1, 1]), asg(&[], &[])],
        &grid,
    )
    .unwrap();
    let get = |k: &str| *d.get(k).unwrap_or_else(|| panic!("{k} missing from {d:?}"));
    assert_eq!(get("train/pos_per_gt/0-16"), 2.0);
    assert_eq!(get("train/pos_per_gt/0-16/stride4"), 2.0);
    assert_eq!(get("train/pos_per_gt/0-16/stride8"), 0.0);
    assert_eq!(get("train/pos_per_gt/16-32"), 2.0);
    assert_eq!(get("train/pos_per_gt/16-32/stride8"), 1.0);
    assert_eq!(get("train/pos_per_gt/16-32/stride16"), 1.0);
    assert_eq!(get("train/gt_without_pos/0-16"), 0.0);
    assert_eq!(get("train/pos_per_gt/96-inf"), 0.0);
    assert_eq!(get("train/gt_without_pos/96-inf"), 1.0);
    assert!(
        !d.contains_key("train/pos_per_gt/32-96"),
        "no gt in that bin"
    );
    assert_eq!(d.len(), 3 * 2 + 3 * 3);
}

/// Outputs `[1, A, 5 + 2]` of a 2-level grid: every anchor predicts `pred`, logits all zero.
fn flat_outputs(grid: &AnchorGrid, pred: [f32; 4]) -> Tensor {
    let a = grid.num_anchors();
    let boxes = Tensor::from_slice(&pred).view([1, 4]).expand([a, 4], false);
    Tensor::cat(
        &[boxes, Tensor::zeros([a, 3], (Kind::Float, Device::Cpu))],
        1,
    )
    .unsqueeze(0)
}

#[test]
fn per_level_objectness_weighs_levels_equally_and_size_weights_can_reach_obj_and_cls() {
    let grid = AnchorGrid::new(&[(16, 16), (8, 8)], &[4, 8], Kind::Float, Device::Cpu).unwrap();
    let outputs = flat_outputs(&grid, [10.0, 10.0, 6.0, 6.0]);
    let labels = Tensor::from_slice(&[1.0f32, 10.0, 10.0, 6.0, 6.0]).view([1, 1, 5]);
    let run = |cfg: &LossConfig| yolox_loss(&outputs, None, &grid, &labels, cfg).unwrap();
    let v = |t: &Tensor| t.double_value(&[]);

    // Objectness logits are all 0: BCE is ln 2 at every negative anchor and at every positive
    // alike, so every level's mean is the same and per_level changes nothing in total.
    let base = run(&LossConfig::default());
    let per_level = run(&LossConfig {
        obj_loss_norm: ObjLossNorm::PerLevel,
        ..Default::default()
    });
    assert!((v(&base.conf_loss) - v(&per_level.conf_loss)).abs() < 1e-4 * v(&base.conf_loss));
    // ... but with the stride-4 level's objectness worse than stride 8's, it weighs it less.
    let skewed = outputs.copy();
    let _ = skewed.narrow(1, 0, 256).select(2, 4).fill_(2.0);
    let skew = |cfg: &LossConfig| {
        v(&yolox_loss(&skewed, None, &grid, &labels, cfg)
            .unwrap()
            .conf_loss)
    };
    assert!(
        skew(&LossConfig {
            obj_loss_norm: ObjLossNorm::PerLevel,
            ..Default::default()
        }) < skew(&LossConfig::default())
    );

    // A 6×6 target has size weight W·exp(−36/1024) > 1: with iou_obj_cls it also multiplies the
    // positives' objectness and class terms, with iou (the fork) only the IoU term.
    let sa = LossConfig {
        size_aware: Some(SizeAwareConfig {
            size_aware_weight: 2.0,
            ..Default::default()
        }),
        ..Default::default()
    };
    let all = LossConfig {
        size_aware_targets: SizeAwareTargets::IouObjCls,
        ..sa.clone()
    };
    let (a, b) = (run(&sa), run(&all));
    assert_eq!(v(&a.iou_loss), v(&b.iou_loss));
    assert!(v(&b.cls_loss) > v(&a.cls_loss));
    assert!(v(&b.conf_loss) > v(&a.conf_loss));
    let w = 2.0 * (-36.0f64 / 1024.0).exp();
    let ratio = v(&b.cls_loss) / v(&a.cls_loss);
    assert!(
        (ratio - w).abs() < 1e-5,
        "class loss scaled by the weight: {ratio} vs {w}"
    );
}

#[test]
fn bad_assignment_settings_are_named() {
    let cfg = LossConfig {
        assignment: AssignOptions {
            nwd_constant: 0.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("assignment.nwd_constant"), "{e}");
}
