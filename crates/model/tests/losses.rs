//! YOLOX losses (REFERENCE §3.5) on a hand-computed case, the size-aware options (§3.6) as
//! properties (off ⇒ plain YOLOX; weights at the thresholds), the classification options, L1,
//! gradients and configuration parsing. The standalone formulas are checked against the
//! reference in `size_aware_loss_fixture.rs`.

use evdet_model::assign::AnchorGrid;
use evdet_model::losses::{
    focal_elements, loss_diagnostics, yolox_loss, ClsLossType, IouLossType, LossConfig, LossOutput,
    SizeAwareConfig, SizeWeightType,
};
use tch::{Device, Kind, Reduction, Tensor};

fn device() -> Device {
    Device::cuda_if_available()
}

fn val(t: &Tensor) -> f64 {
    t.to_kind(Kind::Double).double_value(&[])
}

/// BCE with logits, written out.
fn bce(x: f64, t: f64) -> f64 {
    x.max(0.0) - x * t + (-x.abs()).exp().ln_1p()
}

/// Two anchors (1×2 grid, stride 8), one gt `[2,10]×[0,8]` of class 1 (C = 2).
/// Anchor 0 predicts the gt's upper half (IoU 0.5), anchor 1 a shifted box (IoU 1/3) → SimOTA
/// picks anchor 0 alone (k = 1).
const OBJ: [f64; 2] = [0.3, -1.2];
const CLS0: [f64; 2] = [-0.7, 0.4];
const CLS1: [f64; 2] = [0.1, 0.2];

fn two_anchor_case(kind: Kind) -> (Tensor, AnchorGrid, Tensor) {
    let rows = [
        [6.0, 2.0, 8.0, 4.0, OBJ[0], CLS0[0], CLS0[1]],
        [10.0, 4.0, 8.0, 8.0, OBJ[1], CLS1[0], CLS1[1]],
    ];
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let outputs = Tensor::from_slice(&flat)
        .reshape([1, 2, 7])
        .to_kind(kind)
        .to_device(device());
    let grid = AnchorGrid::new(&[(1, 2)], &[8], kind, device()).unwrap();
    // Second label row is padding.
    let labels = Tensor::from_slice(&[1.0f32, 6.0, 4.0, 8.0, 8.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        .reshape([1, 2, 5])
        .to_device(device());
    (outputs, grid, labels)
}

fn close(got: f64, want: f64, what: &str) {
    let r = (got - want).abs() / want.abs().max(1.0);
    assert!(r <= 1e-6, "{what}: got {got}, want {want}");
}

#[test]
fn plain_yolox_loss_by_hand() {
    for kind in [Kind::Float, Kind::Double] {
        let (outputs, grid, labels) = two_anchor_case(kind);
        let out = yolox_loss(&outputs, None, &grid, &labels, &LossConfig::default()).unwrap();
        assert_eq!(out.num_fg_total, 1);
        assert_eq!(out.num_gts_total, 1);
        assert_eq!(out.num_fg, 1.0);
        // IoU 0.5 → 1 − 0.25, × reg weight 5.
        close(val(&out.iou_loss), 5.0 * 0.75, "iou_loss");
        // Objectness over both anchors, target 1 for the fg anchor.
        let conf = bce(OBJ[0], 1.0) + bce(OBJ[1], 0.0);
        close(val(&out.conf_loss), conf, "conf_loss");
        // IoU-aware class target: one-hot(1) × 0.5.
        let cls = bce(CLS0[0], 0.0) + bce(CLS0[1], 0.5);
        close(val(&out.cls_loss), cls, "cls_loss");
        assert_eq!(val(&out.l1_loss), 0.0);
        close(val(&out.loss), 3.75 + conf + cls, "loss");
        assert_eq!(out.loss.kind(), kind);
        assert!(out.fg.size_weights.is_none());
    }
}

#[test]
fn size_aware_iou_loss_by_hand_and_diagnostics() {
    let (outputs, grid, labels) = two_anchor_case(Kind::Double);
    let sa = SizeAwareConfig {
        weight_type: SizeWeightType::Exponential,
        size_aware_weight: 2.5,
        small_threshold: 1024.0,
        medium_threshold: 9216.0,
    };
    let cfg = LossConfig {
        size_aware: Some(sa),
        ..Default::default()
    };
    let out = yolox_loss(&outputs, None, &grid, &labels, &cfg).unwrap();
    let w = 2.5 * (-64.0f64 / 1024.0).exp();
    close(val(&out.iou_loss), 5.0 * w * 0.75, "size-aware iou_loss");
    let weights = out.fg.size_weights.as_ref().expect("weights reported");
    close(val(&weights.get(0)), w, "size weight");
    let d = loss_diagnostics(&out, &cfg).unwrap();
    close(d.iou_loss_unweighted, 0.75, "iou_loss_unweighted");
    // GIoU: the prediction lies inside the gt, so the enclosing box is the gt: GIoU = IoU.
    close(d.giou_loss_unweighted, 0.5, "giou_loss_unweighted");
    close(d.giou_loss_sizeaware, 0.5 * w, "giou_loss_sizeaware");
    close(
        d.cls_loss_focal_sizeaware,
        w * d.cls_loss_focal_unweighted,
        "focal weighted",
    );
}

fn random_batch(kind: Kind, seed: i64) -> (Tensor, Tensor, AnchorGrid, Tensor) {
    tch::manual_seed(seed);
    let dev = device();
    let grid = AnchorGrid::new(&[(8, 12), (4, 6), (2, 3)], &[8, 16, 32], kind, dev).unwrap();
    let a = grid.num_anchors();
    let raw = Tensor::randn([3, a, 4 + 1 + 5], (Kind::Double, dev)) * 0.7;
    let s = grid.strides.to_kind(Kind::Double).unsqueeze(1);
    let xy = (raw.narrow(2, 0, 2)
        + Tensor::stack(&[&grid.x_shifts, &grid.y_shifts], 1).to_kind(Kind::Double))
        * &s;
    let wh = (raw.narrow(2, 2, 2) + 1.0).exp() * &s;
    let outputs = Tensor::cat(&[xy, wh, raw.narrow(2, 4, 6) - 2.0], 2).to_kind(kind);
    let raw_reg = raw.narrow(2, 0, 4).to_kind(kind);
    // Image 0: three boxes of mixed sizes; image 1: none; image 2: one small box.
    let z = [0.0f64; 5];
    let rows: [[f64; 5]; 9] = [
        [0.0, 20.0, 18.0, 10.0, 12.0],
        [3.0, 60.0, 30.0, 50.0, 40.0],
        [4.0, 80.0, 40.0, 24.0, 20.0],
        z,
        z,
        z,
        [2.0, 40.0, 40.0, 6.0, 9.0],
        z,
        z,
    ];
    let labels = Tensor::from_slice(&rows.concat())
        .reshape([3, 3, 5])
        .to_kind(kind)
        .to_device(dev);
    (outputs, raw_reg, grid, labels)
}

fn scalars(o: &LossOutput) -> [f64; 5] {
    [
        val(&o.loss),
        val(&o.iou_loss),
        val(&o.conf_loss),
        val(&o.cls_loss),
        val(&o.l1_loss),
    ]
}

#[test]
fn size_aware_off_or_flat_weights_equal_plain_yolox() {
    let (outputs, _, grid, labels) = random_batch(Kind::Float, 1);
    let plain = yolox_loss(&outputs, None, &grid, &labels, &LossConfig::default()).unwrap();
    assert!(plain.num_fg_total > 0);
    assert_eq!(plain.num_gts_total, 4);
    for wt in [
        SizeWeightType::Exponential,
        SizeWeightType::Step,
        SizeWeightType::Linear,
    ] {
        // W = 1 makes every weight 1: the size-aware loss must reduce to the plain one exactly.
        let cfg = LossConfig {
            size_aware: Some(SizeAwareConfig {
                weight_type: wt,
                size_aware_weight: 1.0,
                small_threshold: 1024.0,
                medium_threshold: 9216.0,
            }),
            ..Default::default()
        };
        let flat = yolox_loss(&outputs, None, &grid, &labels, &cfg).unwrap();
        assert_eq!(scalars(&flat), scalars(&plain), "{wt:?}");
        // With W > 1 only the IoU loss changes, and it can only grow.
        let cfg = LossConfig {
            size_aware: Some(SizeAwareConfig {
                weight_type: wt,
                size_aware_weight: 2.5,
                ..Default::default()
            }),
            ..Default::default()
        };
        let sa = yolox_loss(&outputs, None, &grid, &labels, &cfg).unwrap();
        let (p, s) = (scalars(&plain), scalars(&sa));
        assert_eq!(p[2..], s[2..]);
        assert!(s[1] > p[1], "{wt:?}: small boxes are up-weighted");
    }
}

#[test]
fn size_weights_at_the_thresholds() {
    let w = 2.5;
    let (s, m) = (1024.0, 9216.0);
    let cfg = |t| SizeAwareConfig {
        weight_type: t,
        size_aware_weight: w,
        small_threshold: s,
        medium_threshold: m,
    };
    let areas = Tensor::from_slice(&[
        0.0f64,
        s * w.ln(),
        s,
        s + 1.0,
        m / w,
        m / 2.0,
        m,
        m + 1.0,
        1e6,
    ]);
    let get = |t| Vec::<f64>::try_from(cfg(t).weights_from_areas(&areas)).unwrap();
    let e = get(SizeWeightType::Exponential);
    close(e[0], w, "exp at 0");
    close(e[1], 1.0, "exp at S·ln W");
    assert!(e[2..].iter().all(|&x| x == 1.0));
    let st = get(SizeWeightType::Step);
    assert_eq!(st, [w, w, w, 1.75, 1.75, 1.75, 1.75, 1.0, 1.0]);
    let l = get(SizeWeightType::Linear);
    close(l[0], w, "linear at 0");
    close(l[4], w, "linear at M/W");
    close(l[5], w / 2.0 + 1.0, "linear at M/2");
    close(l[6], 1.0, "linear at M");
    assert_eq!(l[7..], [1.0, 1.0]);
    // The weight is read from the target box's w·h.
    let boxes = Tensor::from_slice(&[5.0f64, 5.0, 32.0, 32.0]).reshape([1, 4]);
    assert_eq!(
        Vec::<f64>::try_from(cfg(SizeWeightType::Step).weights(&boxes)).unwrap(),
        [w]
    );
}

#[test]
fn classification_loss_options() {
    let (outputs, _, grid, labels) = random_batch(Kind::Double, 2);
    let run = |cfg: &LossConfig| yolox_loss(&outputs, None, &grid, &labels, cfg).unwrap();
    let bce_out = run(&LossConfig::default());
    // Focal with γ = 0 and α = 0.5 is half the BCE.
    let half = run(&LossConfig {
        cls_loss: ClsLossType::Focal,
        focal_gamma: 0.0,
        focal_alpha: 0.5,
        ..Default::default()
    });
    close(
        val(&half.cls_loss),
        0.5 * val(&bce_out.cls_loss),
        "focal γ0 α½",
    );
    // Size-aware focal with flat weights equals focal; with real weights it is Σ w·focal / num_fg.
    let focal = run(&LossConfig {
        cls_loss: ClsLossType::Focal,
        ..Default::default()
    });
    let flat = run(&LossConfig {
        cls_loss: ClsLossType::SizeAwareFocal,
        size_aware: Some(SizeAwareConfig {
            size_aware_weight: 1.0,
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(val(&flat.cls_loss), val(&focal.cls_loss));
    let cfg = LossConfig {
        cls_loss: ClsLossType::SizeAwareFocal,
        ..Default::default()
    };
    let sized = run(&cfg);
    let fg = &sized.fg;
    let w = fg
        .size_weights
        .as_ref()
        .expect("size_aware_focal reports its weights");
    let f = focal_elements(&fg.cls_logits, &fg.cls_targets, 2.0, 0.25);
    let want = val(&(f * w).sum(Kind::Double)) / sized.num_fg_total as f64;
    close(val(&sized.cls_loss), want, "size-aware focal");
    // The IoU loss stays plain when only the classification branch is size-aware.
    assert_eq!(val(&sized.iou_loss), val(&bce_out.iou_loss));
    let d = loss_diagnostics(&sized, &cfg).unwrap();
    close(
        d.cls_loss_focal_sizeaware,
        val(&sized.cls_loss),
        "diagnostics focal",
    );
    close(
        d.cls_loss_focal_unweighted,
        val(&focal.cls_loss),
        "diagnostics focal unweighted",
    );
    // GIoU option.
    let giou = run(&LossConfig {
        iou_type: IouLossType::Giou,
        ..Default::default()
    });
    close(
        val(&giou.iou_loss),
        5.0 * d.giou_loss_unweighted,
        "giou loss",
    );
}

#[test]
fn l1_loss_targets_are_grid_offsets_and_log_sizes() {
    let (outputs, grid, labels) = two_anchor_case(Kind::Double);
    let raw = Tensor::from_slice(&[0.5f64, 0.25, -0.1, 0.2, 0.0, 0.0, 0.0, 0.0])
        .reshape([1, 2, 4])
        .to_device(device());
    let cfg = LossConfig {
        use_l1: true,
        ..Default::default()
    };
    assert!(yolox_loss(&outputs, None, &grid, &labels, &cfg).is_err());
    let out = yolox_loss(&outputs, Some(&raw), &grid, &labels, &cfg).unwrap();
    // Anchor 0 (x = 0, y = 0, stride 8), gt (6, 4, 8, 8): targets (0.75, 0.5, log(1+1e-8) ×2).
    let l = (1.0f64 + 1e-8).ln();
    let want = (0.5f64 - 0.75).abs() + (0.25f64 - 0.5).abs() + (-0.1 - l).abs() + (0.2 - l).abs();
    close(val(&out.l1_loss), want, "l1");
    close(
        val(&out.loss),
        val(&out.iou_loss) + val(&out.conf_loss) + val(&out.cls_loss) + want,
        "total with l1",
    );
}

#[test]
fn gradients_flow_to_the_outputs_and_float32_agrees_with_float64() {
    let (o64, r64, grid64, l64) = random_batch(Kind::Double, 3);
    let (o32, _, grid32, l32) = random_batch(Kind::Float, 3);
    let cfg = LossConfig {
        size_aware: Some(SizeAwareConfig::default()),
        ..Default::default()
    };
    let x = o64.detach().set_requires_grad(true);
    let out64 = yolox_loss(&x, Some(&r64), &grid64, &l64, &cfg).unwrap();
    out64.loss.backward();
    let g = x.grad();
    assert!(bool::try_from(g.isfinite().all()).unwrap());
    assert!(val(&g.abs().sum(Kind::Double)) > 0.0);
    // Anchors that are not foreground get gradient only through the objectness logit.
    let fg = Tensor::cat(
        &out64
            .assignments
            .iter()
            .map(|a| a.fg_mask.shallow_clone())
            .collect::<Vec<_>>(),
        0,
    );
    let bg_rows = g
        .reshape([-1, 10])
        .index_select(0, &fg.logical_not().nonzero().squeeze_dim(1));
    assert_eq!(val(&bg_rows.narrow(1, 0, 4).abs().sum(Kind::Double)), 0.0);
    assert_eq!(val(&bg_rows.narrow(1, 5, 5).abs().sum(Kind::Double)), 0.0);

    let out32 = yolox_loss(&o32, None, &grid32, &l32, &cfg).unwrap();
    for (a, b) in out32.assignments.iter().zip(&out64.assignments) {
        assert_eq!(
            Vec::<i64>::try_from(a.fg_anchor_indices.to_device(Device::Cpu)).unwrap(),
            Vec::<i64>::try_from(b.fg_anchor_indices.to_device(Device::Cpu)).unwrap()
        );
    }
    for (a, b) in scalars(&out32).iter().zip(scalars(&out64)) {
        assert!((a - b).abs() / b.abs().max(1.0) < 1e-5, "{a} vs {b}");
    }
    // Objectness is summed over every anchor of every image (the empty image 1 included).
    let obj = o64.narrow(2, 4, 1).reshape([-1, 1]);
    let t = fg.to_kind(Kind::Double).unsqueeze(1);
    let want = val(&obj.binary_cross_entropy_with_logits::<Tensor>(&t, None, None, Reduction::Sum))
        / out64.num_fg_total as f64;
    close(val(&out64.conf_loss), want, "objectness over all anchors");
}

#[test]
fn batch_without_any_label_gives_finite_losses() {
    let (outputs, _, grid, labels) = random_batch(Kind::Float, 4);
    let empty = labels.zeros_like();
    let out = yolox_loss(&outputs, None, &grid, &empty, &LossConfig::default()).unwrap();
    assert_eq!(out.num_fg_total, 0);
    // RVT divides the clamped fg count (1) by the clamped gt count (1).
    assert_eq!(out.num_fg, 1.0);
    assert_eq!(val(&out.iou_loss), 0.0);
    assert_eq!(val(&out.cls_loss), 0.0);
    assert!(val(&out.conf_loss) > 0.0);
}

#[test]
fn shape_and_config_errors_are_reported() {
    let (outputs, grid, labels) = two_anchor_case(Kind::Float);
    let cfg = LossConfig::default();
    assert!(yolox_loss(&outputs.narrow(1, 0, 1), None, &grid, &labels, &cfg).is_err());
    assert!(yolox_loss(&outputs, None, &grid, &labels.narrow(2, 0, 4), &cfg).is_err());
    let bad = LossConfig {
        size_aware: Some(SizeAwareConfig {
            size_aware_weight: 0.5,
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = yolox_loss(&outputs, None, &grid, &labels, &bad).unwrap_err();
    assert!(err.to_string().contains("size_aware_weight"), "{err}");
}

#[test]
fn config_parses_from_the_fixture_layout() {
    let cfg: LossConfig = serde_json::from_str(
        r#"{"size_aware": {"weight_type": "step", "size_aware_weight": 2.5,
            "small_threshold": 1024.0, "medium_threshold": 9216.0},
            "cls_loss": "size_aware_focal", "iou_type": "giou"}"#,
    )
    .unwrap();
    assert_eq!(cfg.size_aware.unwrap().weight_type, SizeWeightType::Step);
    assert_eq!(cfg.cls_loss, ClsLossType::SizeAwareFocal);
    assert_eq!(cfg.iou_type, IouLossType::Giou);
    assert_eq!(cfg.reg_weight, 5.0);
    let plain: LossConfig = serde_json::from_str(r#"{"size_aware": null}"#).unwrap();
    assert_eq!(plain, LossConfig::default());
    let unknown = serde_json::from_str::<LossConfig>(r#"{"reg_wieght": 4}"#).unwrap_err();
    assert!(unknown.to_string().contains("reg_wieght"));
    for k in LossConfig::KEYS {
        assert!(
            serde_json::to_value(LossConfig::default())
                .unwrap()
                .get(k)
                .is_some(),
            "{k}"
        );
    }
}
