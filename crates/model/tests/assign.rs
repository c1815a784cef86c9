//! SimOTA (REFERENCE §3.4) on hand-built cases whose assignment can be worked out on paper, and
//! against a scalar re-implementation of the reference steps on random cases (f32 and f64).
//! The model fixtures' `assign.img*` entries need the network's train-mode outputs; they are
//! compared by `evdet check-reference`.

use evdet_model::assign::{simota_assign, AnchorGrid, Assignment};
use evdet_model::boxes::pairwise_iou_cxcywh;
use tch::{Device, Kind, Tensor};

fn device() -> Device {
    Device::cuda_if_available()
}

fn t2(rows: &[[f64; 4]], kind: Kind) -> Tensor {
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Tensor::from_slice(&flat)
        .reshape([rows.len() as i64, 4])
        .to_kind(kind)
        .to_device(device())
}

fn ints(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t.to_device(Device::Cpu)).unwrap()
}

fn floats(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Double)).unwrap()
}

/// One image, one level of `1 × w` anchors with stride 8 (centres x = 4, 12, 20, …; y = 4),
/// every anchor with the same class logits, so only IoU and geometry decide.
fn assign_row(
    w: i64,
    preds: &[[f64; 4]],
    gts: &[[f64; 4]],
    classes: &[i64],
    kind: Kind,
) -> Assignment {
    let grid = AnchorGrid::new(&[(1, w)], &[8], kind, device()).unwrap();
    let a = preds.len() as i64;
    assert_eq!(a, w);
    let cls = Tensor::zeros([a, 3], (kind, device()));
    let obj = Tensor::zeros([a, 1], (kind, device()));
    let gt_cls = Tensor::from_slice(classes)
        .to_kind(kind)
        .to_device(device());
    simota_assign(&t2(gts, kind), &gt_cls, &t2(preds, kind), &cls, &obj, &grid).unwrap()
}

#[test]
fn anchor_grid_is_level_by_level_row_major() {
    let g = AnchorGrid::new(&[(2, 3), (1, 2)], &[8, 16], Kind::Float, Device::Cpu).unwrap();
    assert_eq!(g.num_anchors(), 8);
    assert_eq!(floats(&g.x_shifts), [0., 1., 2., 0., 1., 2., 0., 1.]);
    assert_eq!(floats(&g.y_shifts), [0., 0., 0., 1., 1., 1., 0., 0.]);
    assert_eq!(floats(&g.strides), [8., 8., 8., 8., 8., 8., 16., 16.]);
    assert!(AnchorGrid::new(&[(2, 3)], &[8, 16], Kind::Float, Device::Cpu).is_err());
}

#[test]
fn two_anchors_one_gt_picks_the_better_box() {
    for kind in [Kind::Float, Kind::Double] {
        // gt [2,10]×[0,8]; anchor 0 predicts its upper half (IoU 0.5), anchor 1 a shifted box
        // (IoU 1/3). Top-2 IoU sum 0.83 → k = 1 → the cheaper anchor 0.
        let a = assign_row(
            2,
            &[[6.0, 2.0, 8.0, 4.0], [10.0, 4.0, 8.0, 8.0]],
            &[[6.0, 4.0, 8.0, 8.0]],
            &[2],
            kind,
        );
        assert_eq!(a.num_fg, 1);
        assert_eq!(ints(&a.fg_anchor_indices), [0]);
        assert_eq!(ints(&a.matched_gt_inds), [0]);
        assert_eq!(ints(&a.gt_matched_classes), [2]);
        assert_eq!(floats(&a.pred_ious_this_matching), [0.5]);
        assert_eq!(a.pred_ious_this_matching.kind(), kind);
        assert_eq!(ints(&a.fg_mask.to_kind(Kind::Int64)), [1, 0]);
    }
}

#[test]
fn dynamic_k_is_the_truncated_top_iou_sum() {
    // Both predictions equal the gt: IoU sum 2 → k = 2 → both anchors.
    let a = assign_row(
        2,
        &[[6.0, 4.0, 8.0, 8.0], [6.0, 4.0, 8.0, 8.0]],
        &[[6.0, 4.0, 8.0, 8.0]],
        &[0],
        Kind::Float,
    );
    assert_eq!(ints(&a.fg_anchor_indices), [0, 1]);
    // Sum 1 + 0.999… truncates to 1.
    let a = assign_row(
        2,
        &[[6.0, 4.0, 8.0, 8.0], [6.0, 4.0, 8.0, 7.99]],
        &[[6.0, 4.0, 8.0, 8.0]],
        &[0],
        Kind::Float,
    );
    assert_eq!(ints(&a.fg_anchor_indices), [0]);
}

#[test]
fn centre_prior_is_strict_and_uses_half_cell_centres() {
    // Anchor centres x = 4, 12, 20; radius 1.5·8 = 12. gt cx = 16: anchor 0 lies exactly 12
    // away (not inside), anchors 1 and 2 inside. Anchor 0 predicts the gt perfectly but only
    // enters the cost with the 1e6 penalty; k = int(1 + 0.6) = 1 picks anchor 1 or 2.
    let gt = [16.0, 4.0, 8.0, 8.0];
    let a = assign_row(
        3,
        &[gt, [16.0, 4.0, 8.0, 4.8], [30.0, 4.0, 8.0, 8.0]],
        &[gt],
        &[0],
        Kind::Float,
    );
    assert_eq!(ints(&a.fg_anchor_indices), [1]);
    // Moving the gt 0.01 px left brings anchor 0 inside its prior: now it wins.
    let gt = [15.99, 4.0, 8.0, 8.0];
    let a = assign_row(
        3,
        &[gt, [16.0, 4.0, 8.0, 4.8], [30.0, 4.0, 8.0, 8.0]],
        &[gt],
        &[0],
        Kind::Double,
    );
    assert_eq!(ints(&a.fg_anchor_indices), [0]);
}

#[test]
fn conflicts_go_to_the_cheapest_gt_over_all_gts() {
    // Anchor centres x = 4, 12, 20, 28 (stride 8). Boxes are 8 px high at cy = 4, so IoU is the
    // 1-D overlap ratio of the x-intervals.
    // preds: a0, a3 far away; a1 = [6,18]; a2 = [14,22].
    // gt A = [13,21]: IoU(a1) = 1/3, IoU(a2) = 7/9 → k = 1, picks a2.
    // gt B = [0,8] and gt C = [1,7]: a2, a3 lie outside their centre prior; their best
    // candidate is a1 (IoU 1/9 and 1/17) → both pick a1.
    // a1 is contested by B and C; YOLOX resolves it by the minimal cost over ALL gts, which is
    // A (IoU 1/3) — a gt that did not pick a1. The reference does exactly this.
    let a = assign_row(
        4,
        &[
            [105.0, 4.0, 10.0, 8.0],
            [12.0, 4.0, 12.0, 8.0],
            [18.0, 4.0, 8.0, 8.0],
            [105.0, 4.0, 10.0, 8.0],
        ],
        &[
            [17.0, 4.0, 8.0, 8.0],
            [4.0, 4.0, 8.0, 8.0],
            [4.0, 4.0, 6.0, 8.0],
        ],
        &[1, 1, 1],
        Kind::Float,
    );
    assert_eq!(ints(&a.fg_anchor_indices), [1, 2]);
    assert_eq!(ints(&a.matched_gt_inds), [0, 0]);
    let ious = floats(&a.pred_ious_this_matching);
    assert!((ious[0] - 1.0 / 3.0).abs() < 1e-6 && (ious[1] - 7.0 / 9.0).abs() < 1e-6);
}

#[test]
fn no_gt_or_no_candidate_gives_an_empty_assignment() {
    let grid = AnchorGrid::new(&[(2, 2)], &[8], Kind::Float, Device::Cpu).unwrap();
    let preds = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
    let cls = Tensor::zeros([4, 2], (Kind::Float, Device::Cpu));
    let obj = Tensor::zeros([4], (Kind::Float, Device::Cpu));
    let none = Tensor::zeros([0, 4], (Kind::Float, Device::Cpu));
    let a = simota_assign(
        &none,
        &Tensor::zeros([0], (Kind::Float, Device::Cpu)),
        &preds,
        &cls,
        &obj,
        &grid,
    )
    .unwrap();
    assert_eq!(a.num_fg, 0);
    assert_eq!(a.fg_mask.size(), [4]);
    // A gt far outside the image has no anchor within 1.5 strides.
    let far = Tensor::from_slice(&[500.0f32, 500.0, 8.0, 8.0]).reshape([1, 4]);
    let a = simota_assign(
        &far,
        &Tensor::zeros([1], (Kind::Float, Device::Cpu)),
        &preds,
        &cls,
        &obj,
        &grid,
    )
    .unwrap();
    assert_eq!(a.num_fg, 0);
    // Shape errors are errors, not panics.
    let bad = simota_assign(
        &far,
        &Tensor::zeros([2], (Kind::Float, Device::Cpu)),
        &preds,
        &cls,
        &obj,
        &grid,
    );
    assert!(bad.is_err());
}

// ---------------------------------------------------------------------------------------------
// Scalar re-implementation of REFERENCE §3.4, one loop per step, for random cross-checks.

struct Case {
    grid_x: Vec<f64>,
    grid_y: Vec<f64>,
    strides: Vec<f64>,
    preds: Vec<[f64; 4]>,
    cls: Vec<Vec<f32>>,
    obj: Vec<f32>,
    gts: Vec<[f64; 4]>,
    classes: Vec<usize>,
}

fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let ix =
        (a[0] + a[2] / 2.0).min(b[0] + b[2] / 2.0) - (a[0] - a[2] / 2.0).max(b[0] - b[2] / 2.0);
    let iy =
        (a[1] + a[3] / 2.0).min(b[1] + b[3] / 2.0) - (a[1] - a[3] / 2.0).max(b[1] - b[3] / 2.0);
    let inter = if ix > 0.0 && iy > 0.0 { ix * iy } else { 0.0 };
    inter / (a[2] * a[3] + b[2] * b[3] - inter)
}

/// Returns (fg anchors ascending, matched gt per fg anchor).
fn scalar_simota(c: &Case) -> (Vec<usize>, Vec<usize>) {
    let a = c.preds.len();
    let g = c.gts.len();
    // Step 1: centre prior.
    let inside = |gi: usize, ai: usize| {
        let s = c.strides[ai];
        let (xc, yc) = ((c.grid_x[ai] + 0.5) * s, (c.grid_y[ai] + 0.5) * s);
        (xc - c.gts[gi][0]).abs() < 1.5 * s && (yc - c.gts[gi][1]).abs() < 1.5 * s
    };
    let cand: Vec<usize> = (0..a)
        .filter(|&ai| (0..g).any(|gi| inside(gi, ai)))
        .collect();
    if cand.is_empty() {
        return (vec![], vec![]);
    }
    // Steps 2–4: costs.
    let mut cost = vec![vec![0.0f64; cand.len()]; g];
    let mut ious = vec![vec![0.0f64; cand.len()]; g];
    for gi in 0..g {
        for (k, &ai) in cand.iter().enumerate() {
            let i = iou(&c.gts[gi], &c.preds[ai]);
            ious[gi][k] = i;
            let mut cls_cost = 0.0f64;
            for (ci, &x) in c.cls[ai].iter().enumerate() {
                let sig = |v: f32| 1.0 / (1.0 + (-(v as f64)).exp());
                let p = (sig(x) * sig(c.obj[ai])).sqrt();
                let t = if ci == c.classes[gi] { 1.0 } else { 0.0 };
                cls_cost -= t * p.ln().max(-100.0) + (1.0 - t) * (1.0 - p).ln().max(-100.0);
            }
            let penalty = if inside(gi, ai) { 0.0 } else { 1e6 };
            cost[gi][k] = cls_cost + 3.0 * -(i + 1e-8).ln() + penalty;
        }
    }
    // Step 5: dynamic k.
    let mut matching = vec![vec![false; cand.len()]; g];
    for gi in 0..g {
        let mut sorted = ious[gi].clone();
        sorted.sort_by(|x, y| y.partial_cmp(x).unwrap());
        let k = (sorted.iter().take(10).sum::<f64>() as i64).max(1) as usize;
        let mut order: Vec<usize> = (0..cand.len()).collect();
        order.sort_by(|&x, &y| cost[gi][x].partial_cmp(&cost[gi][y]).unwrap());
        for &k_i in order.iter().take(k) {
            matching[gi][k_i] = true;
        }
    }
    // Step 6: conflicts → argmin cost over all gts.
    let mut fg = vec![];
    let mut matched = vec![];
    for k in 0..cand.len() {
        let pickers: Vec<usize> = (0..g).filter(|&gi| matching[gi][k]).collect();
        let gt = match pickers.len() {
            0 => continue,
            1 => pickers[0],
            _ => (0..g)
                .min_by(|&x, &y| cost[x][k].partial_cmp(&cost[y][k]).unwrap())
                .unwrap(),
        };
        fg.push(cand[k]);
        matched.push(gt);
    }
    (fg, matched)
}

/// Deterministic pseudo-random numbers (no extra dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

fn random_case(rng: &mut Lcg, levels: &[(i64, i64, f64)], num_classes: usize) -> Case {
    let mut c = Case {
        grid_x: vec![],
        grid_y: vec![],
        strides: vec![],
        preds: vec![],
        cls: vec![],
        obj: vec![],
        gts: vec![],
        classes: vec![],
    };
    for &(h, w, s) in levels {
        for i in 0..h {
            for j in 0..w {
                c.grid_x.push(j as f64);
                c.grid_y.push(i as f64);
                c.strides.push(s);
                let (cx, cy) = (
                    (j as f64 + rng.range(-0.5, 1.5)) * s,
                    (i as f64 + rng.range(-0.5, 1.5)) * s,
                );
                c.preds
                    .push([cx, cy, s * rng.range(0.5, 6.0), s * rng.range(0.5, 6.0)]);
                c.cls.push(
                    (0..num_classes)
                        .map(|_| rng.range(-6.0, 3.0) as f32)
                        .collect(),
                );
                c.obj.push(rng.range(-6.0, 3.0) as f32);
            }
        }
    }
    let (img_h, img_w) = (
        levels[0].0 as f64 * levels[0].2,
        levels[0].1 as f64 * levels[0].2,
    );
    let n_gt = 1 + (rng.next() * 6.0) as usize;
    for _ in 0..n_gt {
        let w = rng.range(4.0, img_w * 0.6);
        let h = rng.range(4.0, img_h * 0.6);
        c.gts
            .push([rng.range(0.0, img_w), rng.range(0.0, img_h), w, h]);
        c.classes
            .push((rng.next() * num_classes as f64) as usize % num_classes);
    }
    c
}

fn run_tensor(c: &Case, levels: &[(i64, i64, f64)], kind: Kind) -> Assignment {
    let dev = device();
    let hw: Vec<(i64, i64)> = levels.iter().map(|l| (l.0, l.1)).collect();
    let st: Vec<i64> = levels.iter().map(|l| l.2 as i64).collect();
    let grid = AnchorGrid::new(&hw, &st, kind, dev).unwrap();
    let a = c.preds.len() as i64;
    let nc = c.cls[0].len() as i64;
    let cls_flat: Vec<f32> = c.cls.iter().flatten().copied().collect();
    let cls = Tensor::from_slice(&cls_flat)
        .reshape([a, nc])
        .to_kind(kind)
        .to_device(dev);
    let obj = Tensor::from_slice(&c.obj).to_kind(kind).to_device(dev);
    let classes: Vec<i64> = c.classes.iter().map(|&x| x as i64).collect();
    simota_assign(
        &t2(&c.gts, kind),
        &Tensor::from_slice(&classes).to_kind(kind).to_device(dev),
        &t2(&c.preds, kind),
        &cls,
        &obj,
        &grid,
    )
    .unwrap()
}

#[test]
fn matches_a_scalar_reimplementation_on_random_cases() {
    let levels = [(6i64, 10i64, 8.0f64), (3, 5, 16.0), (2, 3, 32.0)];
    let mut rng = Lcg(12345);
    let mut total_fg = 0;
    for case in 0..60 {
        let c = random_case(&mut rng, &levels, 4);
        let (fg, matched) = scalar_simota(&c);
        total_fg += fg.len();
        // float64: the reference computed in double precision; float32: the same assignment
        // (random data has no near-ties at float32 resolution).
        for kind in [Kind::Double, Kind::Float] {
            let a = run_tensor(&c, &levels, kind);
            let got: Vec<usize> = ints(&a.fg_anchor_indices)
                .iter()
                .map(|&x| x as usize)
                .collect();
            let got_m: Vec<usize> = ints(&a.matched_gt_inds)
                .iter()
                .map(|&x| x as usize)
                .collect();
            assert_eq!(got, fg, "case {case} {kind:?}: fg anchors");
            assert_eq!(got_m, matched, "case {case} {kind:?}: matched gts");
            assert_eq!(a.num_fg as usize, fg.len());
            // pred_ious_this_matching is the IoU of the anchor's prediction with its gt.
            let preds = t2(&c.preds, kind).index_select(0, &a.fg_anchor_indices);
            let gts = t2(&c.gts, kind).index_select(0, &a.matched_gt_inds);
            let direct = pairwise_iou_cxcywh(&gts, &preds).diagonal(0, 0, 1);
            assert_eq!(floats(&direct), floats(&a.pred_ious_this_matching));
            let classes: Vec<i64> = got_m.iter().map(|&g| c.classes[g] as i64).collect();
            assert_eq!(ints(&a.gt_matched_classes), classes);
        }
    }
    assert!(
        total_fg > 100,
        "random cases should produce foreground anchors ({total_fg})"
    );
}
