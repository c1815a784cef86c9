//! Box geometry shared by SimOTA, the losses and postprocessing, written op for op as YOLOX
//! computes it so that results (and ties) match the reference exactly.
//!
//! Public API (all boxes are `[.., 4]` tensors of any float kind on any device):
//! - [`cxcywh_to_xyxy`]: `(cx, cy, w, h)` → `(x1, y1, x2, y2)`.
//! - [`pairwise_iou_cxcywh`]: `[G, 4] × [N, 4] → [G, N]` IoU, YOLOX `bboxes_iou(.., xyxy=False)`
//!   (no epsilon in the denominator; used by SimOTA, REFERENCE §3.4 step 2).
//! - [`paired_iou_giou_cxcywh`]: row-wise `[N, 4] × [N, 4] → ([N] IoU, [N] GIoU)`, YOLOX
//!   `IOUloss` (`+1e-16` in the IoU denominator, area of the enclosing box clamped at `1e-16`),
//!   used by the IoU losses (REFERENCE §3.5) and differentiable.

use tch::{Kind, Tensor};

/// Splits `[.., 4]` cxcywh boxes into their top-left and bottom-right corners `([.., 2], [.., 2])`.
fn corners(boxes: &Tensor) -> (Tensor, Tensor) {
    let c = boxes.narrow(-1, 0, 2);
    let half = boxes.narrow(-1, 2, 2) / 2.0;
    (&c - &half, &c + &half)
}

/// `(cx, cy, w, h)` → `(x1, y1, x2, y2)` on the last axis; any leading shape.
pub fn cxcywh_to_xyxy(boxes: &Tensor) -> Tensor {
    let (tl, br) = corners(boxes);
    Tensor::cat(&[tl, br], -1)
}

/// Pairwise IoU between `a` `[G, 4]` and `b` `[N, 4]` (both cxcywh) → `[G, N]`.
///
/// Overlap counts only where every side is strictly positive (`tl < br`), exactly as YOLOX;
/// the denominator has no epsilon, so two zero-area boxes give NaN as in the reference.
pub fn pairwise_iou_cxcywh(a: &Tensor, b: &Tensor) -> Tensor {
    let (a_tl, a_br) = corners(&a.unsqueeze(1)); // [G, 1, 2]
    let (b_tl, b_br) = corners(b); // [N, 2]
    let tl = a_tl.maximum(&b_tl); // [G, N, 2]
    let br = a_br.minimum(&b_br);
    let area_a = a.narrow(1, 2, 2).prod_dim_int(1, false, None::<Kind>); // [G]
    let area_b = b.narrow(1, 2, 2).prod_dim_int(1, false, None::<Kind>); // [N]
    let en = tl
        .lt_tensor(&br)
        .to_kind(tl.kind())
        .prod_dim_int(2, false, None::<Kind>);
    let area_i = (&br - &tl).prod_dim_int(2, false, None::<Kind>) * en; // [G, N]
    &area_i / (area_a.unsqueeze(1) + area_b - &area_i)
}

/// Row-wise IoU and GIoU of `pred` and `target` (`[N, 4]` cxcywh each), as YOLOX `IOUloss`.
///
/// Returns `(iou, giou)`, both `[N]`; GIoU is not clamped here (the loss clamps it to [-1, 1]).
pub fn paired_iou_giou_cxcywh(pred: &Tensor, target: &Tensor) -> (Tensor, Tensor) {
    let (p_tl, p_br) = corners(pred);
    let (t_tl, t_br) = corners(target);
    let tl = p_tl.maximum(&t_tl);
    let br = p_br.minimum(&t_br);
    let area_p = pred.narrow(1, 2, 2).prod_dim_int(1, false, None::<Kind>);
    let area_g = target.narrow(1, 2, 2).prod_dim_int(1, false, None::<Kind>);
    let en = tl
        .lt_tensor(&br)
        .to_kind(tl.kind())
        .prod_dim_int(1, false, None::<Kind>);
    let area_i = (&br - &tl).prod_dim_int(1, false, None::<Kind>) * en;
    let area_u = area_p + area_g - &area_i;
    // The epsilon keeps the IoU finite for zero-area pairs (the reference's choice).
    let iou = &area_i / (&area_u + 1e-16);
    let c_tl = p_tl.minimum(&t_tl);
    let c_br = p_br.maximum(&t_br);
    let area_c = (c_br - c_tl).prod_dim_int(1, false, None::<Kind>);
    let giou = &iou - (&area_c - &area_u) / area_c.clamp_min(1e-16);
    (iou, giou)
}
