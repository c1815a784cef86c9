//! The architecture against REFERENCE §10 (exact parameter counts of every preset, 3 and 4
//! scales), RVT's parameter registration order, output shapes at any input size (bottom/right
//! zero padding), per-row state reset, and the train-mode outputs.

use evdet_model::backbone::LstmState;
use evdet_model::config::{ModelConfig, RvtPreset};
use evdet_model::detector::Detector;
use evdet_model::import::parameter_order;
use tch::{nn, Device, Kind, Tensor};

fn count(vs: &nn::VarStore, prefix: &str) -> i64 {
    let order = parameter_order(vs);
    let vars = vs.variables();
    order
        .iter()
        .filter(|k| k.starts_with(prefix))
        .map(|k| vars[k].numel() as i64)
        .sum()
}

/// (preset, classes, scales) → (backbone, PAFPN, head) from REFERENCE §10.
const APPENDIX_A: &[(RvtPreset, usize, usize, i64, i64, i64)] = &[
    (RvtPreset::Tiny, 3, 3, 3_220_032, 710_784, 474_520),
    (RvtPreset::Tiny, 8, 4, 3_220_032, 746_816, 626_484),
    (RvtPreset::Small, 3, 3, 7_209_312, 1_596_096, 1_065_048),
    (RvtPreset::Small, 8, 4, 7_209_312, 1_676_640, 1_405_108),
    (RvtPreset::Base, 3, 3, 12_784_768, 3_860_992, 1_891_096),
    (RvtPreset::Base, 8, 3, 12_784_768, 3_860_992, 1_893_031),
    (RvtPreset::Base, 3, 4, 12_784_768, 4_055_296, 2_491_424),
];

#[test]
fn parameter_counts_match_reference_appendix_a() {
    for &(preset, classes, scales, backbone, fpn, head) in APPENDIX_A {
        let mut cfg = ModelConfig::preset(preset, classes, [360, 640]);
        if scales == 4 {
            cfg = cfg.four_scale();
        }
        let (vs, _det) = Detector::build(&cfg, Device::Cpu).unwrap();
        let got = (
            count(&vs, "backbone."),
            count(&vs, "fpn."),
            count(&vs, "yolox_head."),
        );
        assert_eq!(
            got,
            (backbone, fpn, head),
            "{preset:?} {classes} classes {scales}-scale"
        );
    }
    // Stage-1 parameters of RVT-B (REFERENCE §10: 195,968).
    let (vs, _) = Detector::build(
        &ModelConfig::preset(RvtPreset::Base, 3, [360, 640]),
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(count(&vs, "backbone.stages.0."), 195_968);
}

#[test]
fn parameters_are_created_in_rvt_registration_order() {
    let cfg = ModelConfig::preset(RvtPreset::Tiny, 3, [360, 640]);
    let (vs, _det) = Detector::build(&cfg, Device::Cpu).unwrap();
    let order = parameter_order(&vs);
    let s0 = "backbone.stages.0.";
    let expect_start = [
        "downsample_cf2cl.conv.weight",
        "downsample_cf2cl.norm.weight",
        "downsample_cf2cl.norm.bias",
        // The first window block has no norm1 (REFERENCE §1.4).
        "att_blocks.0.att_window.self_attn.qkv.weight",
        "att_blocks.0.att_window.self_attn.qkv.bias",
        "att_blocks.0.att_window.self_attn.proj.weight",
        "att_blocks.0.att_window.self_attn.proj.bias",
        "att_blocks.0.att_window.ls1.gamma",
        "att_blocks.0.att_window.norm2.weight",
        "att_blocks.0.att_window.norm2.bias",
        "att_blocks.0.att_window.mlp.net.0.0.weight",
        "att_blocks.0.att_window.mlp.net.0.0.bias",
        "att_blocks.0.att_window.mlp.net.2.weight",
        "att_blocks.0.att_window.mlp.net.2.bias",
        "att_blocks.0.att_window.ls2.gamma",
        "att_blocks.0.att_grid.norm1.weight",
    ];
    for (i, name) in expect_start.iter().enumerate() {
        assert_eq!(order[i], format!("{s0}{name}"));
    }
    let pos = |n: &str| {
        order
            .iter()
            .position(|k| k == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    assert!(
        pos("backbone.stages.0.lstm.conv1x1.bias")
            < pos("backbone.stages.1.downsample_cf2cl.conv.weight")
    );
    // PAFPN: lateral_conv0, C3_p4, reduce_conv1, C3_p3, bu_conv2, C3_n3, bu_conv1, C3_n4.
    let fpn = [
        "lateral_conv0",
        "C3_p4",
        "reduce_conv1",
        "C3_p3",
        "bu_conv2",
        "C3_n3",
        "bu_conv1",
        "C3_n4",
    ];
    for w in fpn.windows(2) {
        let a = order
            .iter()
            .position(|k| k.starts_with(&format!("fpn.{}.", w[0])))
            .unwrap();
        let b = order
            .iter()
            .position(|k| k.starts_with(&format!("fpn.{}.", w[1])))
            .unwrap();
        assert!(a < b, "{} before {}", w[0], w[1]);
    }
    // Head module lists: cls_convs (all levels), reg_convs, cls_preds, reg_preds, obj_preds, stems.
    let head = [
        "yolox_head.cls_convs.2.1.conv.weight",
        "yolox_head.reg_convs.0.0.conv.weight",
        "yolox_head.cls_preds.0.weight",
        "yolox_head.reg_preds.0.weight",
        "yolox_head.obj_preds.2.weight",
        "yolox_head.stems.0.conv.weight",
    ];
    for w in head.windows(2) {
        assert!(pos(w[0]) < pos(w[1]), "{} before {}", w[0], w[1]);
    }
    assert_eq!(order.last().unwrap(), "yolox_head.stems.2.bn.bias");
    // BatchNorm init as PyTorch: weight 1, bias 0; head prior bias -log(99).
    let vars = vs.variables();
    assert_eq!(
        vars["fpn.C3_p4.conv1.bn.weight"].min().double_value(&[]),
        1.0
    );
    let b = vars["yolox_head.cls_preds.0.bias"].double_value(&[0]);
    assert!((b + (99.0f64).ln()).abs() < 1e-6);
}

fn fixture_config() -> ModelConfig {
    let path = evdet_fixtures::file("model_3scale/config.json");
    evdet_model::import::read_model_config(&path).unwrap()
}

#[test]
fn any_input_size_is_padded_bottom_right() {
    let cfg = fixture_config(); // partition (2, 3), total stride 32 → multiples of 64 × 96
    tch::manual_seed(1);
    let (_vs, det) = Detector::build(&cfg, Device::Cpu).unwrap();
    let x = Tensor::randint(11, [1, 20, 50, 70], (Kind::Float, Device::Cpu));
    let padded = x.constant_pad_nd([0, 26, 0, 14]);
    let _g = tch::no_grad_guard();
    let (f1, _) = det.forward_backbone_step(&x, None, None, false);
    let (f2, _) = det.forward_backbone_step(&padded, None, None, false);
    assert_eq!(f1[0].size(), [1, 16, 16, 24]);
    assert_eq!(f1[3].size(), [1, 128, 2, 3]);
    for (a, b) in f1.iter().zip(&f2) {
        assert!(a.equal(b));
    }
    let out = det.forward_detect(&f1, false);
    assert_eq!(out.decoded.size(), [1, 8 * 12 + 4 * 6 + 2 * 3, 13]);
    // Larger than one multiple: 130 × 100 → 192 × 192.
    let y = Tensor::randint(11, [2, 20, 130, 100], (Kind::Float, Device::Cpu));
    let (f, _) = det.forward_backbone_step(&y, None, None, false);
    assert_eq!(f[0].size(), [2, 16, 48, 48]);
}

#[test]
fn reset_mask_zeroes_only_the_flagged_rows() {
    let cfg = fixture_config();
    tch::manual_seed(2);
    let (_vs, det) = Detector::build(&cfg, Device::Cpu).unwrap();
    let _g = tch::no_grad_guard();
    let x0 = Tensor::randint(11, [2, 20, 64, 96], (Kind::Float, Device::Cpu));
    let x1 = Tensor::randint(11, [2, 20, 64, 96], (Kind::Float, Device::Cpu));
    let (_, s0) = det.forward_backbone_step(&x0, None, None, false);
    let reset = Tensor::from_slice(&[true, false]);
    let (carried, _) = det.forward_backbone_step(&x1, Some(&s0), None, false);
    let (fresh, _) = det.forward_backbone_step(&x1, None, None, false);
    let (mixed, _) = det.forward_backbone_step(&x1, Some(&s0), Some(&reset), false);
    for s in 0..4 {
        assert!(
            mixed[s]
                .get(0)
                .allclose(&fresh[s].get(0), 1e-6, 1e-7, false),
            "stage {s} row 0"
        );
        assert!(
            mixed[s]
                .get(1)
                .allclose(&carried[s].get(1), 1e-6, 1e-7, false),
            "stage {s} row 1"
        );
        assert!(!carried[s]
            .get(0)
            .allclose(&fresh[s].get(0), 1e-6, 1e-7, false));
    }
    let detached: Vec<LstmState> = s0.iter().map(|s| s.detach()).collect();
    assert!(!detached[0].h.requires_grad());
}

#[test]
fn train_mode_outputs_feed_the_loss_and_backward() {
    let cfg = fixture_config().four_scale();
    tch::manual_seed(3);
    let (vs, det) = Detector::build(&cfg, Device::Cpu).unwrap();
    let x = Tensor::randint(11, [2, 20, 64, 96], (Kind::Float, Device::Cpu));
    let (feats, _) = det.forward_backbone_step(&x, None, None, true);
    let out = det.forward_detect(&feats, true);
    let train = out.train.as_ref().unwrap();
    assert_eq!(train.outputs.size(), [2, 510, 13]);
    assert_eq!(train.grid.strides.int64_value(&[0]), 4);
    assert_eq!(train.grid.strides.int64_value(&[509]), 32);
    let labels = Tensor::from_slice(&[
        1.0f32, 30.0, 20.0, 12.0, 10.0, 3.0, 60.0, 40.0, 40.0, 30.0, //
        0.0, 50.0, 30.0, 20.0, 16.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ])
    .view([2, 2, 5]);
    let losses = det.loss(train, &labels).unwrap();
    losses.loss.backward();
    let g = vs.variables()["backbone.stages.0.downsample_cf2cl.conv.weight"].grad();
    assert!(g.defined() && g.abs().sum(Kind::Double).double_value(&[]) > 0.0);
    let dets = det.postprocess(&out.decoded, Some((0.0, 0.45))).unwrap();
    assert_eq!(dets.len(), 2);
    assert_eq!(dets[0].size()[1], 7);
}
