//! YOLOX training losses (RVT `yolo_head.py: get_losses`, REFERENCE §3.5) with the fork's
//! size-aware IoU loss (§3.6) and evdet's classification-loss options (focal, size-aware focal, as
//! defined in `fixtures/size_aware_loss/README.md`).
//!
//! Public API:
//! - [`LossConfig`] (serde, every field defaulted: plain YOLOX): `iou_type` `iou`|`giou`,
//!   `reg_weight` 5.0, `use_l1` false, `size_aware` `null` or [`SizeAwareConfig`]
//!   `{weight_type: exponential|step|linear, size_aware_weight, small_threshold, medium_threshold}`
//!   (the layout of the model fixtures' `config.json`), `cls_loss` `bce`|`focal`|`size_aware_focal`,
//!   `focal_gamma` 2.0, `focal_alpha` 0.25.
//! - [`yolox_loss`]`(outputs [B,A,5+C], raw_reg Option<[B,A,4]>, &AnchorGrid, labels [B,N,5],
//!   &LossConfig) -> Result<`[`LossOutput`]`, LossError>`: SimOTA per image, then the losses over
//!   the whole batch. `outputs` is the head's train-mode tensor: decoded `cx, cy, w, h` in input
//!   pixels, then the raw objectness logit and the raw class logits; labels are rows
//!   `(class, cx, cy, w, h)`, a row valid iff its sum is > 0, valid rows first.
//! - [`loss_diagnostics`]: the extra numbers the size-aware fixture logs (unweighted IoU loss,
//!   GIoU and focal losses with and without size weights), computed without gradient.
//! - Building blocks, tested on their own against `fixtures/size_aware_loss`:
//!   [`iou_loss_elements`], [`SizeAwareConfig::weights`], [`focal_elements`].

use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use crate::assign::{simota_assign_with, AnchorGrid, AssignError, AssignOptions, Assignment};
use crate::boxes::paired_iou_giou_cxcywh;

/// Errors from [`yolox_loss`], [`loss_diagnostics`] and [`LossConfig::validate`].
#[derive(Debug, thiserror::Error)]
pub enum LossError {
    #[error("loss: {what} has shape {shape:?}, expected {expected}")]
    Shape {
        what: &'static str,
        shape: Vec<i64>,
        expected: String,
    },
    #[error("loss config: {0}")]
    Config(String),
    #[error("loss: use_l1 is on but the head's raw regression outputs were not passed")]
    MissingRawReg,
    #[error(transparent)]
    Assign(#[from] AssignError),
    #[error(transparent)]
    Tch(#[from] tch::TchError),
}

/// Box regression loss per foreground anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IouLossType {
    /// `1 − IoU²` (YOLOX default, what RVT trains with).
    #[default]
    Iou,
    /// `1 − clamp(GIoU, −1, 1)`.
    Giou,
}

/// How the size weight falls with the target area (REFERENCE §3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeWeightType {
    /// `clamp(W·exp(−a/S), 1, W)`.
    #[default]
    Exponential,
    /// `W` if `a ≤ S`, `(W+1)/2` if `S < a ≤ M`, else 1.
    Step,
    /// `clamp(W·(1 − clamp(a/M, 0, 1)) + 1, 1, W)`.
    Linear,
}

/// Classification loss over the foreground anchors (targets: one-hot × IoU, YOLOX's IoU-aware
/// soft targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClsLossType {
    /// BCE with logits (YOLOX, RVT).
    #[default]
    Bce,
    /// Sigmoid focal loss (`focal_gamma`, `focal_alpha`), summed and divided by num_fg.
    Focal,
    /// Focal loss with each anchor's row multiplied by the size weight of its target.
    SizeAwareFocal,
}

/// Size-aware weighting of the fork (`SizeAwareIOULoss`), areas in network-input pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SizeAwareConfig {
    pub weight_type: SizeWeightType,
    /// `W`: the weight of the smallest targets.
    pub size_aware_weight: f64,
    /// `S`, px² (32² = 1024).
    pub small_threshold: f64,
    /// `M`, px² (96² = 9216).
    pub medium_threshold: f64,
}

impl Default for SizeAwareConfig {
    /// The fork's head defaults (REFERENCE §3.6).
    fn default() -> Self {
        Self {
            weight_type: SizeWeightType::Exponential,
            size_aware_weight: 2.0,
            small_threshold: 1024.0,
            medium_threshold: 9216.0,
        }
    }
}

impl SizeAwareConfig {
    /// Size weight `[N]` of each target box `[N, 4]` (cxcywh), from its area `w·h`.
    pub fn weights(&self, target_boxes: &Tensor) -> Tensor {
        let areas = target_boxes.select(1, 2) * target_boxes.select(1, 3);
        self.weights_from_areas(&areas)
    }

    /// Size weight of each area (REFERENCE §3.6), in the areas' kind.
    pub fn weights_from_areas(&self, areas: &Tensor) -> Tensor {
        let w = self.size_aware_weight;
        match self.weight_type {
            SizeWeightType::Exponential => {
                ((-areas / self.small_threshold).exp() * w).clamp(1.0, w)
            }
            SizeWeightType::Step => {
                let small = areas.le(self.small_threshold);
                let medium = areas
                    .gt(self.small_threshold)
                    .logical_and(&areas.le(self.medium_threshold));
                let ones = areas.ones_like();
                ones.where_self(&small.logical_not(), &ones.full_like(w))
                    .where_self(&medium.logical_not(), &ones.full_like((w + 1.0) / 2.0))
            }
            SizeWeightType::Linear => {
                let norm = (areas / self.medium_threshold).clamp(0.0, 1.0);
                let one_minus: Tensor = 1.0 - norm;
                (one_minus * w + 1.0).clamp(1.0, w)
            }
        }
    }

    fn validate(&self) -> Result<(), LossError> {
        let bad = |m: String| Err(LossError::Config(m));
        if !(self.size_aware_weight.is_finite() && self.size_aware_weight >= 1.0) {
            return bad(format!(
                "size_aware_weight must be a finite number ≥ 1 (it is the largest weight), got {}",
                self.size_aware_weight
            ));
        }
        if !(self.small_threshold.is_finite() && self.small_threshold > 0.0) {
            return bad(format!(
                "small_threshold must be > 0 px², got {}",
                self.small_threshold
            ));
        }
        if !(self.medium_threshold.is_finite() && self.medium_threshold >= self.small_threshold) {
            return bad(format!(
                "medium_threshold must be ≥ small_threshold ({}), got {}",
                self.small_threshold, self.medium_threshold
            ));
        }
        Ok(())
    }
}

/// How the objectness loss is normalised (`model.head.obj_loss_norm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjLossNorm {
    /// The sum over all anchors divided by the foreground count (YOLOX, RVT).
    #[default]
    NumFg,
    /// Each level's sum divided by that level's share of the anchors (and by the level count), then by
    /// the foreground count: every level weighs the same, so the 4× anchors of stride 4 do not
    /// dominate; with equal per-anchor losses the total equals `num_fg`'s.
    PerLevel,
}

/// Which loss terms of a positive the size-aware weight multiplies (`model.head.size_aware_targets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeAwareTargets {
    /// The IoU loss only (the fork's `SizeAwareIOULoss`).
    #[default]
    Iou,
    /// Also the objectness and class losses of positives.
    IouObjCls,
}

/// Every loss option; `LossConfig::default()` is RVT's plain YOLOX loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    pub iou_type: IouLossType,
    /// Multiplies the IoU loss in the total (and in the logged `iou_loss`).
    pub reg_weight: f64,
    /// L1 loss on the raw regression outputs (never switched on in RVT).
    pub use_l1: bool,
    /// `None`: plain IoU loss. `Some`: the fork's size-aware IoU loss with these parameters.
    pub size_aware: Option<SizeAwareConfig>,
    pub cls_loss: ClsLossType,
    pub focal_gamma: f64,
    pub focal_alpha: f64,
    /// SimOTA's small-object options.
    pub assignment: AssignOptions,
    pub obj_loss_norm: ObjLossNorm,
    pub size_aware_targets: SizeAwareTargets,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            iou_type: IouLossType::Iou,
            reg_weight: 5.0,
            use_l1: false,
            size_aware: None,
            cls_loss: ClsLossType::Bce,
            focal_gamma: 2.0,
            focal_alpha: 0.25,
            assignment: AssignOptions::default(),
            obj_loss_norm: ObjLossNorm::NumFg,
            size_aware_targets: SizeAwareTargets::Iou,
        }
    }
}

impl LossConfig {
    /// The keys a config section may set, for "did you mean" messages.
    pub const KEYS: &'static [&'static str] = &[
        "iou_type",
        "reg_weight",
        "use_l1",
        "size_aware",
        "cls_loss",
        "focal_gamma",
        "focal_alpha",
        "assignment",
        "obj_loss_norm",
        "size_aware_targets",
    ];

    /// Checks the numbers make sense (weights, thresholds, focal parameters).
    pub fn validate(&self) -> Result<(), LossError> {
        if !(self.reg_weight.is_finite() && self.reg_weight >= 0.0) {
            return Err(LossError::Config(format!(
                "reg_weight must be a finite number ≥ 0, got {}",
                self.reg_weight
            )));
        }
        if !(self.focal_gamma.is_finite() && self.focal_gamma >= 0.0) {
            return Err(LossError::Config(format!(
                "focal_gamma must be ≥ 0, got {}",
                self.focal_gamma
            )));
        }
        if !(0.0..=1.0).contains(&self.focal_alpha) {
            return Err(LossError::Config(format!(
                "focal_alpha must be in [0, 1], got {}",
                self.focal_alpha
            )));
        }
        if let Some(p) = self.assignment.problem() {
            return Err(LossError::Config(p));
        }
        self.size_weighting().validate()
    }

    /// The size weights used by `size_aware_focal`: `size_aware` when set, else the fork's
    /// defaults (exponential, W 2, S 1024, M 9216), so the classification branch can be size-aware
    /// while the IoU loss stays plain.
    pub fn size_weighting(&self) -> SizeAwareConfig {
        self.size_aware.unwrap_or_default()
    }
}

/// Regression loss per pair, `[N]`: `1 − IoU²` or `1 − clamp(GIoU, −1, 1)` (YOLOX `IOUloss`).
pub fn iou_loss_elements(pred: &Tensor, target: &Tensor, kind: IouLossType) -> Tensor {
    let (iou, giou) = paired_iou_giou_cxcywh(pred, target);
    match kind {
        IouLossType::Iou => 1.0 - iou.square(),
        IouLossType::Giou => 1.0 - giou.clamp(-1.0, 1.0),
    }
}

/// Sigmoid focal loss per row, summed over classes, `[N]` for logits and soft targets `[N, C]`:
/// `Σ_c α_t · BCEWithLogits(x, t) · (1 − p_t)^γ` with `p_t = p·t + (1−p)(1−t)`,
/// `α_t = α·t + (1−α)(1−t)`.
pub fn focal_elements(logits: &Tensor, targets: &Tensor, gamma: f64, alpha: f64) -> Tensor {
    let p = logits.sigmoid();
    let ce =
        logits.binary_cross_entropy_with_logits::<Tensor>(targets, None, None, Reduction::None);
    let one_t: Tensor = 1.0 - targets;
    let one_p: Tensor = 1.0 - &p;
    let p_t: Tensor = &p * targets + one_p * &one_t;
    let alpha_t: Tensor = targets * alpha + one_t * (1.0 - alpha);
    let one_minus_pt: Tensor = 1.0 - p_t;
    let modulating = one_minus_pt.pow_tensor_scalar(gamma);
    (alpha_t * ce * modulating).sum_dim_intlist(-1, false, None::<Kind>)
}

/// The foreground anchors of the whole batch (images concatenated, anchors ascending), with their
/// targets; predictions keep their gradient.
#[derive(Debug)]
pub struct Foreground {
    /// `[F, 4]` decoded predicted boxes.
    pub pred_boxes: Tensor,
    /// `[F, 4]` matched gt boxes (cxcywh).
    pub reg_targets: Tensor,
    /// `[F, C]` class logits.
    pub cls_logits: Tensor,
    /// `[F, C]` one-hot × IoU soft targets.
    pub cls_targets: Tensor,
    /// `[F]` size weights, when the IoU loss or the classification loss uses them.
    pub size_weights: Option<Tensor>,
}

/// Result of [`yolox_loss`]: scalar tensors (with gradient) named as RVT logs them.
#[derive(Debug)]
pub struct LossOutput {
    /// `reg_weight·iou + conf + cls + l1`.
    pub loss: Tensor,
    /// IoU loss already multiplied by `reg_weight` (as logged).
    pub iou_loss: Tensor,
    /// Objectness BCE over all anchors / num_fg.
    pub conf_loss: Tensor,
    pub cls_loss: Tensor,
    /// Zero when `use_l1` is off.
    pub l1_loss: Tensor,
    /// Foreground anchors per gt box as RVT logs it: `max(num_fg_total, 1) / max(num_gts_total, 1)`.
    pub num_fg: f64,
    pub num_fg_total: i64,
    pub num_gts_total: i64,
    /// SimOTA result per image.
    pub assignments: Vec<Assignment>,
    pub fg: Foreground,
}

fn shape_err(t: &Tensor, what: &'static str, expected: String) -> LossError {
    LossError::Shape {
        what,
        shape: t.size(),
        expected,
    }
}

/// The YOLOX loss over a batch (REFERENCE §3.5, size-aware §3.6).
pub fn yolox_loss(
    outputs: &Tensor,
    raw_reg: Option<&Tensor>,
    grid: &AnchorGrid,
    labels: &Tensor,
    cfg: &LossConfig,
) -> Result<LossOutput, LossError> {
    cfg.validate()?;
    let os = outputs.size();
    let a = grid.num_anchors();
    if os.len() != 3 || os[0] == 0 || os[1] != a || os[2] < 6 {
        return Err(shape_err(
            outputs,
            "outputs",
            format!("[B ≥ 1, {a}, 5+C] (A from the anchor grid)"),
        ));
    }
    let (b, nc) = (os[0], os[2] - 5);
    let ls = labels.size();
    if ls.len() != 3 || ls[0] != b || ls[2] != 5 {
        return Err(shape_err(labels, "labels", format!("[{b}, N, 5]")));
    }
    let raw_reg = match (cfg.use_l1, raw_reg) {
        (false, _) => None,
        (true, None) => return Err(LossError::MissingRawReg),
        (true, Some(r)) if r.size() != [b, a, 4] => {
            return Err(shape_err(r, "raw_reg", format!("[{b}, {a}, 4]")))
        }
        (true, Some(r)) => Some(r.to_device(outputs.device())),
    };
    let kind = outputs.kind();
    let device = outputs.device();
    // Labels usually come from the data loader on the CPU; the reference keeps them with the outputs.
    let labels = labels.to_device(device).to_kind(kind);

    // REFERENCE §3.3: valid gt rows are those with a positive sum, valid rows first.
    let nlabel: Vec<i64> = Vec::try_from(
        labels
            .sum_dim_intlist(2, false, None::<Kind>)
            .gt(0.0)
            .sum_dim_intlist(1, false, Kind::Int64)
            .to_device(tch::Device::Cpu),
    )?;

    let mut assignments = Vec::with_capacity(b as usize);
    let mut fg_global = Vec::new();
    let mut reg_targets = Vec::new();
    let mut cls_targets = Vec::new();
    let mut l1_targets = Vec::new();
    let (mut num_fg_total, mut num_gts_total) = (0i64, 0i64);
    for (bi, &num_gt) in nlabel.iter().enumerate() {
        let bi = bi as i64;
        num_gts_total += num_gt;
        let out_b = outputs.get(bi);
        let gt = labels.get(bi).narrow(0, 0, num_gt);
        let gt_boxes = gt.narrow(1, 1, 4);
        let asg = simota_assign_with(
            &gt_boxes,
            &gt.select(1, 0),
            &out_b.narrow(1, 0, 4),
            &out_b.narrow(1, 5, nc),
            &out_b.select(1, 4),
            grid,
            &cfg.assignment,
        )?;
        num_fg_total += asg.num_fg;
        fg_global.push(&asg.fg_anchor_indices + bi * a);
        let matched = gt_boxes.index_select(0, &asg.matched_gt_inds);
        cls_targets.push(
            asg.gt_matched_classes.one_hot(nc).to_kind(kind)
                * asg.pred_ious_this_matching.unsqueeze(-1),
        );
        if raw_reg.is_some() {
            // REFERENCE §3.5: L1 targets in grid units, log-size with 1e-8 inside the log.
            let s = grid.strides.index_select(0, &asg.fg_anchor_indices);
            let x = grid.x_shifts.index_select(0, &asg.fg_anchor_indices);
            let y = grid.y_shifts.index_select(0, &asg.fg_anchor_indices);
            l1_targets.push(Tensor::stack(
                &[
                    matched.select(1, 0) / &s - x,
                    matched.select(1, 1) / &s - y,
                    (matched.select(1, 2) / &s + 1e-8).log(),
                    (matched.select(1, 3) / &s + 1e-8).log(),
                ],
                1,
            ));
        }
        reg_targets.push(matched);
        assignments.push(asg);
    }

    let fg_idx = Tensor::cat(&fg_global, 0);
    let reg_targets = Tensor::cat(&reg_targets, 0);
    let cls_targets = Tensor::cat(&cls_targets, 0);
    let fg_masks = Tensor::cat(
        &assignments
            .iter()
            .map(|s| s.fg_mask.shallow_clone())
            .collect::<Vec<_>>(),
        0,
    );
    // REFERENCE §3.5: every sum is divided by max(total fg, 1).
    let num_fg = num_fg_total.max(1) as f64;

    let flat = outputs.reshape([b * a, 5 + nc]);
    let pred_boxes = flat.narrow(1, 0, 4).index_select(0, &fg_idx);
    let cls_logits = flat.narrow(1, 5, nc).index_select(0, &fg_idx);
    let obj_logits = flat.narrow(1, 4, 1);

    let weighting = cfg.size_weighting();
    let weights_all = cfg.size_aware_targets == SizeAwareTargets::IouObjCls;
    let uses_weights =
        cfg.size_aware.is_some() || cfg.cls_loss == ClsLossType::SizeAwareFocal || weights_all;
    let size_weights = uses_weights.then(|| weighting.weights(&reg_targets));

    let iou_el = iou_loss_elements(&pred_boxes, &reg_targets, cfg.iou_type);
    // REFERENCE §3.6: the size-aware loss only multiplies each element by its weight.
    let iou_el = match (&cfg.size_aware, &size_weights) {
        (Some(_), Some(w)) => iou_el * w,
        _ => iou_el,
    };
    let loss_iou = iou_el.sum(kind) / num_fg;

    let obj_targets = fg_masks.to_kind(kind).unsqueeze(1);
    let obj_el = obj_logits.binary_cross_entropy_with_logits::<Tensor>(
        &obj_targets,
        None,
        None,
        Reduction::None,
    );
    // Positives' objectness × their size weight (`size_aware_targets: iou_obj_cls`).
    let obj_el = match (&size_weights, weights_all) {
        (Some(w), true) => {
            let per_anchor = Tensor::ones([b * a, 1], (kind, device)).index_put(
                &[Some(fg_idx.shallow_clone())],
                &w.to_kind(kind).unsqueeze(1),
                false,
            );
            obj_el * per_anchor
        }
        _ => obj_el,
    };
    let obj_el = match cfg.obj_loss_norm {
        ObjLossNorm::NumFg => obj_el,
        ObjLossNorm::PerLevel => {
            obj_el
                * per_level_weights(grid)?
                    .to_kind(kind)
                    .repeat([b])
                    .unsqueeze(1)
        }
    };
    let loss_obj = obj_el.sum(kind) / num_fg;

    let loss_cls = match cfg.cls_loss {
        ClsLossType::Bce => cls_logits.binary_cross_entropy_with_logits::<Tensor>(
            &cls_targets,
            None,
            None,
            Reduction::None,
        ),
        ClsLossType::Focal => {
            focal_elements(&cls_logits, &cls_targets, cfg.focal_gamma, cfg.focal_alpha)
        }
        ClsLossType::SizeAwareFocal => {
            let f = focal_elements(&cls_logits, &cls_targets, cfg.focal_gamma, cfg.focal_alpha);
            match &size_weights {
                Some(w) => f * w,
                None => f,
            }
        }
    };
    // `iou_obj_cls` weighs every class term of a positive (size_aware_focal already does).
    let loss_cls = match (&size_weights, weights_all, cfg.cls_loss) {
        (Some(w), true, ClsLossType::Bce) => loss_cls * w.unsqueeze(1),
        (Some(w), true, ClsLossType::Focal) => loss_cls * w,
        _ => loss_cls,
    }
    .sum(kind)
        / num_fg;

    let loss_l1 = match raw_reg {
        Some(r) => {
            let l1_targets = Tensor::cat(&l1_targets, 0);
            let pred = r.reshape([b * a, 4]).index_select(0, &fg_idx);
            (pred - l1_targets).abs().sum(kind) / num_fg
        }
        None => Tensor::zeros([], (kind, device)),
    };

    let iou_loss = &loss_iou * cfg.reg_weight;
    let loss = &iou_loss + &loss_obj + &loss_cls + &loss_l1;
    Ok(LossOutput {
        loss,
        iou_loss,
        conf_loss: loss_obj,
        cls_loss: loss_cls,
        l1_loss: loss_l1,
        // RVT logs the clamped count: 1 / max(gts, 1) when nothing is foreground.
        num_fg: num_fg / num_gts_total.max(1) as f64,
        num_fg_total,
        num_gts_total,
        assignments,
        fg: Foreground {
            pred_boxes,
            reg_targets,
            cls_logits,
            cls_targets,
            size_weights,
        },
    })
}

/// Extra numbers logged by the size-aware fixture (`expected.json` names), none multiplied by
/// `reg_weight` and none part of the total loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LossDiagnostics {
    /// `Σ (1 − IoU²) / num_fg`.
    pub iou_loss_unweighted: f64,
    /// `Σ w·(1 − clamp(GIoU)) / num_fg`.
    pub giou_loss_sizeaware: f64,
    pub giou_loss_unweighted: f64,
    /// `Σ w·focal / num_fg` (soft targets, γ and α from the config).
    pub cls_loss_focal_sizeaware: f64,
    pub cls_loss_focal_unweighted: f64,
}

/// Computes [`LossDiagnostics`] from a loss result, weights from [`LossConfig::size_weighting`].
pub fn loss_diagnostics(out: &LossOutput, cfg: &LossConfig) -> Result<LossDiagnostics, LossError> {
    tch::no_grad(|| {
        let fg = &out.fg;
        let kind = fg.pred_boxes.kind();
        let num_fg = out.num_fg_total.max(1) as f64;
        let w = cfg.size_weighting().weights(&fg.reg_targets);
        let iou = iou_loss_elements(&fg.pred_boxes, &fg.reg_targets, IouLossType::Iou);
        let giou = iou_loss_elements(&fg.pred_boxes, &fg.reg_targets, IouLossType::Giou);
        let focal = focal_elements(
            &fg.cls_logits,
            &fg.cls_targets,
            cfg.focal_gamma,
            cfg.focal_alpha,
        );
        let total = |t: Tensor| -> Result<f64, LossError> {
            Ok(t.sum(kind).to_kind(Kind::Double).f_double_value(&[])? / num_fg)
        };
        Ok(LossDiagnostics {
            iou_loss_unweighted: total(iou)?,
            giou_loss_sizeaware: total(&giou * &w)?,
            giou_loss_unweighted: total(giou)?,
            cls_loss_focal_sizeaware: total(&focal * &w)?,
            cls_loss_focal_unweighted: total(focal)?,
        })
    })
}

/// Per-anchor weights `[A]` of `obj_loss_norm: per_level`: `A / (L · A_l)` for an anchor of level l
/// (`L` levels, `A_l` anchors in it), so that every level's mean objectness loss weighs the same.
fn per_level_weights(grid: &AnchorGrid) -> Result<Tensor, LossError> {
    let strides: Vec<f64> = Vec::try_from(
        grid.strides
            .to_kind(Kind::Double)
            .to_device(tch::Device::Cpu),
    )?;
    let mut counts: Vec<(f64, usize)> = Vec::new();
    for &s in &strides {
        match counts.iter_mut().find(|(v, _)| *v == s) {
            Some((_, n)) => *n += 1,
            None => counts.push((s, 1)),
        }
    }
    let (a, l) = (strides.len() as f64, counts.len() as f64);
    let w: Vec<f64> = strides
        .iter()
        .map(|s| {
            let n = counts.iter().find(|(v, _)| v == s).map_or(1, |c| c.1) as f64;
            a / (l * n)
        })
        .collect();
    Ok(Tensor::from_slice(&w).to_device(grid.strides.device()))
}
