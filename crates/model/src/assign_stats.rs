//! Where SimOTA put the positives, for the training log: mean positives per ground truth by size bin
//! (side = √(w·h) in network-input pixels: `0-16`, `16-32`, `32-96`, `96-inf`) and by FPN level, and the
//! share of ground truths that got none. These are the instruments behind the small-object
//! assignment options: does stride 4 starve, does NWD give small boxes more positives?

use crate::assign::{AnchorGrid, Assignment};
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

/// `(name, lower side, upper side)`, sides in network-input pixels, lower bound inclusive.
pub const SIZE_BINS: [(&str, f64, f64); 4] = [
    ("0-16", 0.0, 16.0),
    ("16-32", 16.0, 32.0),
    ("32-96", 32.0, 96.0),
    ("96-inf", 96.0, f64::INFINITY),
];

fn bin_of(side: f64) -> usize {
    SIZE_BINS
        .iter()
        .position(|&(_, lo, hi)| side >= lo && side < hi)
        .unwrap_or(SIZE_BINS.len() - 1)
}

fn to_vec_f64(t: &Tensor) -> Result<Vec<f64>, tch::TchError> {
    Vec::try_from(
        t.to_kind(Kind::Double)
            .to_device(tch::Device::Cpu)
            .reshape([-1]),
    )
}

fn to_vec_i64(t: &Tensor) -> Result<Vec<i64>, tch::TchError> {
    Vec::try_from(
        t.to_kind(Kind::Int64)
            .to_device(tch::Device::Cpu)
            .reshape([-1]),
    )
}

/// The diagnostics of one batch: `labels [B, N, 5]` as the loss takes them (`class, cx, cy, w, h`,
/// valid rows first, a row valid iff its sum is > 0), the loss's assignment per image, the anchor
/// grid. Keys: `train/pos_per_gt/<bin>`, `train/pos_per_gt/<bin>/stride<s>`,
/// `train/gt_without_pos/<bin>`, for the bins that have ground truths in this batch.
pub fn assignment_diagnostics(
    labels: &Tensor,
    assignments: &[Assignment],
    grid: &AnchorGrid,
) -> Result<BTreeMap<String, f64>, tch::TchError> {
    let strides = to_vec_f64(&grid.strides)?;
    let mut levels: Vec<i64> = strides.iter().map(|&s| s as i64).collect();
    levels.sort_unstable();
    levels.dedup();
    let nb = SIZE_BINS.len();
    let mut gts = vec![0usize; nb];
    let mut pos = vec![0usize; nb];
    let mut empty = vec![0usize; nb];
    let mut pos_level = vec![vec![0usize; levels.len()]; nb];
    for (bi, asg) in assignments.iter().enumerate() {
        let rows = labels.get(bi as i64);
        let valid = to_vec_f64(&rows.sum_dim_intlist(1, false, Kind::Double).gt(0.0))?;
        let g = valid.iter().filter(|&&v| v > 0.0).count();
        let w = to_vec_f64(&rows.select(1, 3))?;
        let h = to_vec_f64(&rows.select(1, 4))?;
        let bins: Vec<usize> = (0..g)
            .map(|k| bin_of((w[k] * h[k]).max(0.0).sqrt()))
            .collect();
        let mut per_gt = vec![0usize; g];
        let matched = to_vec_i64(&asg.matched_gt_inds)?;
        let anchors = to_vec_i64(&asg.fg_anchor_indices)?;
        for (&gi, &ai) in matched.iter().zip(&anchors) {
            let gi = gi as usize;
            if gi >= g {
                continue;
            }
            per_gt[gi] += 1;
            let s = strides[ai as usize] as i64;
            if let Some(l) = levels.iter().position(|&x| x == s) {
                pos_level[bins[gi]][l] += 1;
            }
        }
        for (k, &b) in bins.iter().enumerate() {
            gts[b] += 1;
            pos[b] += per_gt[k];
            empty[b] += (per_gt[k] == 0) as usize;
        }
    }
    let mut out = BTreeMap::new();
    for (b, &(name, _, _)) in SIZE_BINS.iter().enumerate() {
        if gts[b] == 0 {
            continue;
        }
        let n = gts[b] as f64;
        out.insert(format!("train/pos_per_gt/{name}"), pos[b] as f64 / n);
        out.insert(format!("train/gt_without_pos/{name}"), empty[b] as f64 / n);
        for (l, s) in levels.iter().enumerate() {
            out.insert(
                format!("train/pos_per_gt/{name}/stride{s}"),
                pos_level[b][l] as f64 / n,
            );
        }
    }
    Ok(out)
}
