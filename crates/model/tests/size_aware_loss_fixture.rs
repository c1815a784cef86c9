//! The size-aware IoU loss, GIoU loss and (size-aware) focal loss against
//! `fixtures/size_aware_loss` (reference PyTorch), in float32 and float64.
//! Pass rule (issue 5): max|a−b| / max(max|b|, 1) ≤ 1e-3 for every tensor and scalar.

use std::collections::HashMap;
use std::path::PathBuf;

use evdet_model::boxes::paired_iou_giou_cxcywh;
use evdet_model::losses::{
    focal_elements, iou_loss_elements, IouLossType, SizeAwareConfig, SizeWeightType,
};
use tch::{Kind, Tensor};

const TOL: f64 = 1e-3;

fn fixture_dir() -> PathBuf {
    evdet_fixtures::dir("size_aware_loss")
}

fn load(name: &str) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(fixture_dir().join(name))
        .unwrap_or_else(|e| panic!("reading {name}: {e}"))
        .into_iter()
        .collect()
}

/// max|a−b| / max(max|b|, 1), in float64.
fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_kind(Kind::Double);
    let b = b.to_kind(Kind::Double);
    assert_eq!(a.size(), b.size());
    let diff = (&a - &b).abs().max().double_value(&[]);
    let scale = b.abs().max().double_value(&[]).max(1.0);
    diff / scale
}

fn check(name: &str, a: &Tensor, b: &Tensor, worst: &mut f64) {
    let r = max_rel(a, b);
    println!("{name:40} max_rel {r:.3e}");
    *worst = worst.max(r);
    assert!(r <= TOL, "{name}: max_rel {r} > {TOL}");
}

fn run(kind: Kind) -> f64 {
    let inputs = load("inputs.safetensors");
    let (exp_file, scalars_key) = match kind {
        Kind::Float => ("expected_f32.safetensors", "scalars_f32"),
        _ => ("expected_f64.safetensors", "scalars_f64"),
    };
    let expected = load(exp_file);
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("expected.json")).expect("expected.json"),
    )
    .expect("expected.json parses");
    let params = &json["params"];
    let p = |k: &str| params[k].as_f64().unwrap_or_else(|| panic!("params.{k}"));
    let scalars = &json[scalars_key];
    let scalar = |k: &str| {
        scalars[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{scalars_key}.{k}"))
    };

    // The f64 reference is computed in float64 from the float32 inputs.
    let pred = inputs["pred_boxes"].to_kind(kind);
    let target = inputs["target_boxes"].to_kind(kind);
    let logits = inputs["cls_logits"].to_kind(kind);
    let soft = inputs["cls_targets"].to_kind(kind);
    let num_fg = p("num_fg");
    let reg_weight = p("reg_weight");
    let mut worst = 0.0f64;

    let (iou, giou) = paired_iou_giou_cxcywh(&pred, &target);
    check("iou", &iou, &expected["iou"], &mut worst);
    check("giou", &giou, &expected["giou"], &mut worst);
    let loss_iou = iou_loss_elements(&pred, &target, IouLossType::Iou);
    let loss_giou = iou_loss_elements(&pred, &target, IouLossType::Giou);
    check("loss_iou", &loss_iou, &expected["loss_iou"], &mut worst);
    check("loss_giou", &loss_giou, &expected["loss_giou"], &mut worst);
    let area = target.select(1, 2) * target.select(1, 3);
    check("target_area", &area, &expected["target_area"], &mut worst);
    let focal = focal_elements(&logits, &soft, p("focal_gamma"), p("focal_alpha"));
    check(
        "focal_per_anchor",
        &focal,
        &expected["focal_per_anchor"],
        &mut worst,
    );

    let total = |t: &Tensor| t.sum(Kind::Double).double_value(&[]) / num_fg;
    let scalar_check = |name: &str, got: f64, worst: &mut f64| {
        let want = scalar(name);
        let r = (got - want).abs() / want.abs().max(1.0);
        println!("{name:40} max_rel {r:.3e}");
        *worst = worst.max(r);
        assert!(r <= TOL, "{name}: got {got}, want {want}");
    };
    scalar_check(
        "unweighted_iou_total",
        total(&loss_iou) * reg_weight,
        &mut worst,
    );
    scalar_check(
        "unweighted_giou_total",
        total(&loss_giou) * reg_weight,
        &mut worst,
    );
    scalar_check("unweighted_focal_total", total(&focal), &mut worst);

    for (wt, name) in [
        (SizeWeightType::Exponential, "exponential"),
        (SizeWeightType::Step, "step"),
        (SizeWeightType::Linear, "linear"),
    ] {
        let cfg = SizeAwareConfig {
            weight_type: wt,
            size_aware_weight: p("W"),
            small_threshold: p("S"),
            medium_threshold: p("M"),
        };
        let w = cfg.weights(&target);
        check(
            &format!("weight_{name}"),
            &w,
            &expected[&format!("weight_{name}")],
            &mut worst,
        );
        let wi = &loss_iou * &w;
        let wg = &loss_giou * &w;
        let wf = &focal * &w;
        check(
            &format!("weighted_loss_iou_{name}"),
            &wi,
            &expected[&format!("weighted_loss_iou_{name}")],
            &mut worst,
        );
        check(
            &format!("weighted_loss_giou_{name}"),
            &wg,
            &expected[&format!("weighted_loss_giou_{name}")],
            &mut worst,
        );
        check(
            &format!("weighted_focal_{name}"),
            &wf,
            &expected[&format!("weighted_focal_{name}")],
            &mut worst,
        );
        scalar_check(&format!("iou_loss_{name}"), total(&wi), &mut worst);
        scalar_check(
            &format!("iou_loss_{name}_x_reg_weight"),
            total(&wi) * reg_weight,
            &mut worst,
        );
        scalar_check(&format!("giou_loss_{name}"), total(&wg), &mut worst);
        scalar_check(
            &format!("giou_loss_{name}_x_reg_weight"),
            total(&wg) * reg_weight,
            &mut worst,
        );
        scalar_check(&format!("focal_loss_{name}"), total(&wf), &mut worst);
    }
    worst
}

#[test]
fn size_aware_losses_match_reference_f32() {
    let worst = run(Kind::Float);
    println!("float32 worst max_rel {worst:.3e}");
}

#[test]
fn size_aware_losses_match_reference_f64() {
    let worst = run(Kind::Double);
    println!("float64 worst max_rel {worst:.3e}");
}
