//! SimOTA label assignment (YOLOX ≥ 0.3 as RVT uses it, REFERENCE §3.4): for one image, which
//! anchors are foreground and which ground-truth box each of them regresses to.
//!
//! Public API:
//! - [`AnchorGrid`]: per-anchor grid column, row and stride (`x_shifts`, `y_shifts`,
//!   `expanded_strides` in RVT), anchors ordered level by level, row-major inside a level
//!   (index `i·w + j`). Build it with [`AnchorGrid::new`] from the level sizes, or fill the public
//!   fields from the head's train output.
//! - [`simota_assign`]`(gt_boxes [G,4], gt_classes [G], pred_boxes [A,4], cls_logits [A,C],
//!   obj_logits [A] or [A,1], &AnchorGrid) -> Result<`[`Assignment`]`, AssignError>`, computed
//!   without gradient, on the inputs' device, in their float kind (the class cost in float32, as
//!   the reference does under `autocast(enabled=False)`).
//!
//! The steps are the reference's tensor operations in the reference's order (the same libtorch
//! kernels), so ties in `topk` and `min` break the same way and the assignment is identical, not
//! merely equivalent.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Reduction, Tensor};

/// The pair-wise match quality SimOTA ranks anchors by (`model.head.assignment.cost`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignCost {
    /// IoU (YOLOX, RVT).
    #[default]
    Iou,
    /// Normalized Gaussian Wasserstein Distance (Xu et al.), for ground truths up to `nwd_max_area`.
    Nwd,
    /// The mean of IoU and NWD, for ground truths up to `nwd_max_area`.
    IouNwd,
}

/// Small-object options of the assignment (`model.head.assignment.*`); the defaults are YOLOX's
/// SimOTA bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssignOptions {
    pub cost: AssignCost,
    /// `C` of `NWD = exp(−W2 / C)`, in network-input pixels.
    pub nwd_constant: f64,
    /// Ground truths with a larger area (px²) keep the IoU cost, whatever `cost` says.
    pub nwd_max_area: f64,
    /// With a stride-4 level: its anchors are candidates only for ground truths whose longer side is
    /// at most this (px); 0 = no limit.
    pub stride4_max_side: f64,
}

impl Default for AssignOptions {
    fn default() -> Self {
        Self {
            cost: AssignCost::Iou,
            nwd_constant: 12.8,
            nwd_max_area: 1024.0,
            stride4_max_side: 0.0,
        }
    }
}

impl AssignOptions {
    /// The keys of `model.head.assignment`, for "did you mean" messages.
    pub const KEYS: &'static [&'static str] =
        &["cost", "nwd_constant", "nwd_max_area", "stride4_max_side"];

    /// A sentence naming the key at fault, or `None`.
    pub fn problem(&self) -> Option<String> {
        if !(self.nwd_constant.is_finite() && self.nwd_constant > 0.0) {
            return Some(format!(
                "assignment.nwd_constant must be > 0, got {}",
                self.nwd_constant
            ));
        }
        if self.nwd_max_area.is_nan() || self.nwd_max_area < 0.0 {
            return Some(format!(
                "assignment.nwd_max_area must be ≥ 0, got {}",
                self.nwd_max_area
            ));
        }
        if !(self.stride4_max_side.is_finite() && self.stride4_max_side >= 0.0) {
            return Some(format!(
                "assignment.stride4_max_side must be ≥ 0 (0 = off), got {}",
                self.stride4_max_side
            ));
        }
        None
    }
}

/// Pair-wise NWD `[G, N]` between boxes `a [G, 4]` and `b [N, 4]` (cxcywh) as Gaussians
/// N((cx, cy), diag(w²/4, h²/4)): `W2² = Δcx² + Δcy² + ((w₁−w₂)² + (h₁−h₂)²)/4`,
/// `NWD = exp(−sqrt(W2²) / c)`.
pub fn pairwise_nwd_cxcywh(a: &Tensor, b: &Tensor, c: f64) -> Tensor {
    let d = a.unsqueeze(1) - b.unsqueeze(0); // [G, N, 4]
    let sq = d.square();
    let w2 = sq.select(2, 0) + sq.select(2, 1) + (sq.select(2, 2) + sq.select(2, 3)) / 4.0;
    (-(w2.sqrt() / c)).exp()
}

/// Errors from [`simota_assign`] and [`AnchorGrid::new`]: inputs whose shapes do not fit together.
#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    #[error("SimOTA: {what} has shape {shape:?}, expected {expected}")]
    Shape {
        what: &'static str,
        shape: Vec<i64>,
        expected: String,
    },
    #[error("SimOTA: {what} is on {got:?} but the predictions are on {want:?}")]
    Device {
        what: &'static str,
        got: Device,
        want: Device,
    },
    #[error("anchor grid: {0} level sizes but {1} strides")]
    LevelCount(usize, usize),
    #[error(transparent)]
    Tch(#[from] tch::TchError),
}

/// Per-anchor grid position and stride, each `[A]` in a float kind.
#[derive(Debug)]
pub struct AnchorGrid {
    /// Grid column `j` of each anchor.
    pub x_shifts: Tensor,
    /// Grid row `i` of each anchor.
    pub y_shifts: Tensor,
    /// Stride (input pixels per grid cell) of each anchor's level.
    pub strides: Tensor,
}

impl AnchorGrid {
    /// Builds the grid for FPN levels of sizes `level_hw` (finest first) with `strides`.
    pub fn new(
        level_hw: &[(i64, i64)],
        strides: &[i64],
        kind: Kind,
        device: Device,
    ) -> Result<Self, AssignError> {
        if level_hw.len() != strides.len() {
            return Err(AssignError::LevelCount(level_hw.len(), strides.len()));
        }
        let opts = (kind, device);
        let mut xs = Vec::with_capacity(level_hw.len());
        let mut ys = Vec::with_capacity(level_hw.len());
        let mut ss = Vec::with_capacity(level_hw.len());
        for (&(h, w), &s) in level_hw.iter().zip(strides) {
            // Row-major (y, x): anchor index i·w + j.
            let x = Tensor::arange(w, opts).repeat([h]);
            let y = Tensor::arange(h, opts).repeat_interleave_self_int(w, 0, None);
            ss.push(Tensor::full([h * w], s, opts));
            xs.push(x);
            ys.push(y);
        }
        Ok(Self {
            x_shifts: Tensor::cat(&xs, 0),
            y_shifts: Tensor::cat(&ys, 0),
            strides: Tensor::cat(&ss, 0),
        })
    }

    /// Number of anchors `A`.
    pub fn num_anchors(&self) -> i64 {
        self.x_shifts.size().first().copied().unwrap_or(0)
    }

    /// A copy with shallow-cloned tensors (cheap; shares storage).
    pub fn shallow_clone(&self) -> Self {
        Self {
            x_shifts: self.x_shifts.shallow_clone(),
            y_shifts: self.y_shifts.shallow_clone(),
            strides: self.strides.shallow_clone(),
        }
    }
}

/// The SimOTA result for one image; `F` = number of foreground anchors.
#[derive(Debug)]
pub struct Assignment {
    /// `[A]` bool: foreground anchors.
    pub fg_mask: Tensor,
    /// `[F]` int64: indices of the foreground anchors, ascending.
    pub fg_anchor_indices: Tensor,
    /// `[F]` int64: index (into the image's valid gt rows) of each foreground anchor's gt.
    pub matched_gt_inds: Tensor,
    /// `[F]` int64: class of that gt (the reference keeps the label's float kind; same values).
    pub gt_matched_classes: Tensor,
    /// `[F]`, float kind of the boxes: IoU between the anchor's prediction and its gt.
    pub pred_ious_this_matching: Tensor,
    /// `F`.
    pub num_fg: i64,
}

impl Assignment {
    /// No foreground anchor (an image without gt, or no anchor near any gt).
    pub fn empty(num_anchors: i64, float_kind: Kind, device: Device) -> Self {
        let idx = Tensor::zeros([0], (Kind::Int64, device));
        Self {
            fg_mask: Tensor::zeros([num_anchors], (Kind::Bool, device)),
            fg_anchor_indices: idx.shallow_clone(),
            matched_gt_inds: idx.shallow_clone(),
            gt_matched_classes: idx,
            pred_ious_this_matching: Tensor::zeros([0], (float_kind, device)),
            num_fg: 0,
        }
    }
}

fn check(t: &Tensor, what: &'static str, ok: bool, expected: String) -> Result<(), AssignError> {
    if ok {
        Ok(())
    } else {
        Err(AssignError::Shape {
            what,
            shape: t.size(),
            expected,
        })
    }
}

/// SimOTA for one image (REFERENCE §3.4). `gt_boxes` are `(cx, cy, w, h)` in input pixels,
/// `pred_boxes` the decoded predictions, `cls_logits`/`obj_logits` raw logits.
pub fn simota_assign(
    gt_boxes: &Tensor,
    gt_classes: &Tensor,
    pred_boxes: &Tensor,
    cls_logits: &Tensor,
    obj_logits: &Tensor,
    grid: &AnchorGrid,
) -> Result<Assignment, AssignError> {
    simota_assign_with(
        gt_boxes,
        gt_classes,
        pred_boxes,
        cls_logits,
        obj_logits,
        grid,
        &AssignOptions::default(),
    )
}

/// [`simota_assign`] with the small-object options: the NWD (or IoU–NWD) metric in the pair-wise
/// cost and the dynamic-k sum for ground truths up to `nwd_max_area`, and stride-4 anchors kept away
/// from ground truths longer than `stride4_max_side`. The matched IoU of each positive (the class
/// target) stays the IoU.
pub fn simota_assign_with(
    gt_boxes: &Tensor,
    gt_classes: &Tensor,
    pred_boxes: &Tensor,
    cls_logits: &Tensor,
    obj_logits: &Tensor,
    grid: &AnchorGrid,
    opts: &AssignOptions,
) -> Result<Assignment, AssignError> {
    let a = grid.num_anchors();
    let gs = gt_boxes.size();
    check(
        gt_boxes,
        "gt_boxes",
        gs.len() == 2 && gs[1] == 4,
        "[G, 4]".into(),
    )?;
    let g = gs[0];
    check(
        gt_classes,
        "gt_classes",
        gt_classes.size() == [g],
        format!("[{g}]"),
    )?;
    check(
        pred_boxes,
        "pred_boxes",
        pred_boxes.size() == [a, 4],
        format!("[{a}, 4] (A from the anchor grid)"),
    )?;
    let cs = cls_logits.size();
    check(
        cls_logits,
        "cls_logits",
        cs.len() == 2 && cs[0] == a && cs[1] > 0,
        format!("[{a}, C]"),
    )?;
    let num_classes = cs[1];
    check(
        obj_logits,
        "obj_logits",
        obj_logits.size() == [a] || obj_logits.size() == [a, 1],
        format!("[{a}] or [{a}, 1]"),
    )?;
    let device = pred_boxes.device();
    for (what, t) in [
        ("gt_boxes", gt_boxes),
        ("gt_classes", gt_classes),
        ("cls_logits", cls_logits),
        ("obj_logits", obj_logits),
        ("the anchor grid", &grid.strides),
        ("the anchor grid", &grid.x_shifts),
        ("the anchor grid", &grid.y_shifts),
    ] {
        if t.device() != device {
            return Err(AssignError::Device {
                what,
                got: t.device(),
                want: device,
            });
        }
    }
    if g == 0 {
        return Ok(Assignment::empty(a, pred_boxes.kind(), device));
    }

    tch::no_grad(|| {
        let gt_boxes = gt_boxes.detach();
        let pred_boxes = pred_boxes.detach();

        // REFERENCE §3.4 step 1: centre prior, anchor centre (x + 0.5)·s, radius 1.5·s, strict.
        let s = &grid.strides;
        let x_c = ((&grid.x_shifts + 0.5) * s).unsqueeze(0); // [1, A]
        let y_c = ((&grid.y_shifts + 0.5) * s).unsqueeze(0);
        let dist = (s * 1.5).unsqueeze(0); // [1, A]
        let gt_cx = gt_boxes.narrow(1, 0, 1); // [G, 1]
        let gt_cy = gt_boxes.narrow(1, 1, 1);
        // Same expression order as the reference (edges first, then deltas) so rounding matches.
        let c_l = &x_c - (&gt_cx - &dist);
        let c_r = (&gt_cx + &dist) - &x_c;
        let c_t = &y_c - (&gt_cy - &dist);
        let c_b = (&gt_cy + &dist) - &y_c;
        let deltas = Tensor::stack(&[c_l, c_t, c_r, c_b], 2); // [G, A, 4]
        let in_centers = deltas.amin(-1, false).gt(0.0); // [G, A]
        let in_centers = if opts.stride4_max_side > 0.0 {
            // Stride-4 anchors leave the centre region of every gt longer than the limit.
            let longer = gt_boxes.narrow(1, 2, 2).amax(1, true); // [G, 1]
            let too_long = longer.gt(opts.stride4_max_side);
            let stride4 = grid.strides.eq(4.0).unsqueeze(0); // [1, A]
            in_centers.logical_and(&too_long.logical_and(&stride4).logical_not())
        } else {
            in_centers
        };
        let anchor_filter = in_centers.sum_dim_intlist(0, false, Kind::Int64).gt(0);
        let cand = anchor_filter.nonzero().squeeze_dim(1); // [Ac]
        let n_cand = cand.size()[0];
        if n_cand == 0 {
            return Ok(Assignment::empty(a, pred_boxes.kind(), device));
        }
        let geometry = in_centers.index_select(1, &cand); // [G, Ac]

        // REFERENCE §3.4 step 2: pairwise IoU (no epsilon) and its cost −log(IoU + 1e-8).
        let preds_c = pred_boxes.index_select(0, &cand);
        let ious = crate::boxes::pairwise_iou_cxcywh(&gt_boxes, &preds_c); // [G, Ac]
                                                                           // The metric SimOTA ranks by: IoU, or NWD / their mean for gts up to nwd_max_area.
        let metric = match opts.cost {
            AssignCost::Iou => ious.shallow_clone(),
            cost => {
                let nwd = pairwise_nwd_cxcywh(&gt_boxes, &preds_c, opts.nwd_constant);
                let small = match cost {
                    AssignCost::IouNwd => (&ious + &nwd) * 0.5,
                    _ => nwd,
                };
                let area = gt_boxes.select(1, 2) * gt_boxes.select(1, 3);
                let use_small = area.le(opts.nwd_max_area).unsqueeze(1); // [G, 1]
                small.where_self(&use_small, &ious)
            }
        };
        let iou_cost = -(&metric + 1e-8).log();

        // REFERENCE §3.4 step 3: class cost in float32 (the reference disables autocast and casts
        // to float): BCE of sqrt(σ(cls)·σ(obj)) against the gt's one-hot class.
        let cls_c = cls_logits
            .detach()
            .index_select(0, &cand)
            .to_kind(Kind::Float);
        let obj_c = obj_logits
            .detach()
            .reshape([a, 1])
            .index_select(0, &cand)
            .to_kind(Kind::Float);
        let p = (cls_c.sigmoid() * obj_c.sigmoid()).sqrt(); // [Ac, C]
        let onehot = gt_classes
            .to_kind(Kind::Int64)
            .one_hot(num_classes)
            .to_kind(Kind::Float); // [G, C]
                                   // Materialised like the reference's `repeat`, so the reduction runs over the same layout.
        let cls_cost = p
            .unsqueeze(0)
            .repeat([g, 1, 1])
            // Fallible: non-finite predictions (a diverging run) are an error the trainer counts,
            // not a panic inside libtorch's range check.
            .f_binary_cross_entropy::<Tensor>(
                &onehot.unsqueeze(1).repeat([1, n_cand, 1]),
                None,
                Reduction::None,
            )?
            .sum_dim_intlist(-1, false, None::<Kind>); // [G, Ac]

        // REFERENCE §3.4 step 4: total cost, 1e6 penalty outside the centre prior.
        let cost = (cls_cost + iou_cost * 3.0) + geometry.logical_not().to_kind(Kind::Float) * 1e6;

        // REFERENCE §3.4 step 5: dynamic k from the top-10 IoUs (int truncation, at least 1); each
        // gt takes its k cheapest candidates. One topk per gt, as the reference, so ties match.
        let n_k = n_cand.min(10);
        let (topk_ious, _) = metric.topk(n_k, 1, true, true);
        let dynamic_ks: Vec<i64> = Vec::try_from(
            topk_ious
                .sum_dim_intlist(1, false, None::<Kind>)
                .to_kind(Kind::Int)
                .clamp_min(1)
                .to_device(Device::Cpu),
        )?;
        let mut matching = Tensor::zeros([g, n_cand], (Kind::Uint8, device));
        for (gi, &k) in dynamic_ks.iter().enumerate() {
            let (_, pos) = cost.get(gi as i64).topk(k, 0, false, true);
            // `get` is a view: filling it writes into `matching`.
            let _ = matching.get(gi as i64).index_fill_(0, &pos, 1);
        }

        // REFERENCE §3.4 step 6: an anchor picked by several gts goes to the gt of minimal cost —
        // taken over ALL gts, as YOLOX does, not only over those that picked it.
        let anchor_matching_gt = matching.sum_dim_intlist(0, false, Kind::Int64); // [Ac]
        let multiple = anchor_matching_gt.gt(1).nonzero().squeeze_dim(1);
        if multiple.size()[0] > 0 {
            let (_, argmin) = cost.index_select(1, &multiple).min_dim(0, false);
            let _ = matching.index_fill_(1, &multiple, 0);
            let _ = matching.index_put_(
                &[Some(argmin), Some(multiple)],
                &Tensor::ones([1], (Kind::Uint8, device)),
                false,
            );
        }

        // REFERENCE §3.4 step 7: outputs, fg anchors in ascending anchor order.
        let fg_local = anchor_matching_gt.gt(0).nonzero().squeeze_dim(1); // [F] into Ac
        let num_fg = fg_local.size()[0];
        let fg_anchor_indices = cand.index_select(0, &fg_local);
        let matched_gt_inds = matching.index_select(1, &fg_local).argmax(0, false);
        let gt_matched_classes = gt_classes
            .to_kind(Kind::Int64)
            .index_select(0, &matched_gt_inds);
        // Sum over the matching column like the reference (keeps a NaN IoU a NaN).
        let pred_ious = (matching.to_kind(ious.kind()) * &ious)
            .sum_dim_intlist(0, false, None::<Kind>)
            .index_select(0, &fg_local);
        let mut fg_mask = Tensor::zeros([a], (Kind::Bool, device));
        let _ = fg_mask.index_fill_(0, &fg_anchor_indices, 1);
        Ok(Assignment {
            fg_mask,
            fg_anchor_indices,
            matched_gt_inds,
            gt_matched_classes,
            pred_ious_this_matching: pred_ious,
            num_fg,
        })
    })
}
