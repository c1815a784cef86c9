//! A COCO evaluation matched once and accumulated many times: for the bootstrap over test
//! recordings, which draws recordings with replacement hundreds of times. Matching detections to
//! ground truth (pycocotools' `evaluateImg`) is the expensive part and depends on one image alone,
//! so it runs once; each resample then only re-accumulates (`accumulate`) the per-image records of
//! the images drawn — a drawn-twice image counting twice, as its boxes would in a concatenated
//! test set. Accumulating every image once, in order, gives `CocoEval::run`'s arrays bit for bit.

use std::sync::Arc;

use hotcoco::COCO;

use crate::coco::{CocoEval, CocoOptions, UNDEFINED};
use crate::error::Result;

/// One (image, category, area range) record: the image's detections (score order, at most the
/// largest maxDets), whether each matched and whether it is ignored at every IoU threshold, and
/// the ground truths that count toward recall.
#[derive(Debug, Clone)]
struct Cell {
    scores: Vec<f64>,
    /// `[t][d]`.
    matched: Vec<Vec<bool>>,
    ignored: Vec<Vec<bool>>,
    npig: usize,
}

/// Which cells of the arrays to accumulate (`None`: every index of that axis).
#[derive(Debug, Clone, Default)]
pub struct Cells {
    pub ks: Option<Vec<usize>>,
    pub areas: Option<Vec<usize>>,
    pub max_dets: Option<Vec<usize>>,
}

/// The matched evaluation (see the module doc).
#[derive(Debug, Clone)]
pub struct Matched {
    /// The whole set's result, whose parameters every resample shares.
    pub full: CocoEval,
    /// Per image (COCO id − 1), per `k · A + a` slot.
    cells: Vec<Vec<Option<Cell>>>,
}

impl Matched {
    /// Matches `dt` to `gt` once with `opts` (as [`CocoEval::run`]).
    pub fn run(gt: &Arc<COCO>, dt: &Arc<COCO>, opts: &CocoOptions) -> Result<Self> {
        let ev = CocoEval::evaluated(gt, dt, opts)?;
        let full = CocoEval::from_evaluated(&ev, gt)?;
        let (k_n, a_n) = (full.shape.k, full.shape.a);
        let n_images = gt.dataset.images.iter().map(|i| i.id).max().unwrap_or(0) as usize;
        let mut cells: Vec<Vec<Option<Cell>>> = vec![vec![None; k_n * a_n]; n_images];
        for e in ev.eval_imgs().iter().flatten() {
            let k = if full.use_cats {
                match full.cat_ids.iter().position(|&c| c == e.category_id) {
                    Some(k) => k,
                    None => continue,
                }
            } else {
                0
            };
            let Some(a) = full.area_ranges.iter().position(|(_, r)| {
                r[0].to_bits() == e.area_rng[0].to_bits()
                    && r[1].to_bits() == e.area_rng[1].to_bits()
            }) else {
                continue;
            };
            let Some(img) = (e.image_id as usize)
                .checked_sub(1)
                .filter(|&i| i < n_images)
            else {
                continue;
            };
            let t_n = e.dt_matched.num_rows();
            cells[img][k * a_n + a] = Some(Cell {
                scores: e.dt_scores.clone(),
                matched: (0..t_n).map(|t| e.dt_matched.row(t).to_vec()).collect(),
                ignored: (0..t_n).map(|t| e.dt_ignore.row(t).to_vec()).collect(),
                npig: e.num_gt_in_denominator(),
            });
        }
        Ok(Matched { full, cells })
    }

    /// Images the evaluation matched (indices for [`Matched::accumulate`] are COCO ids − 1).
    pub fn num_images(&self) -> usize {
        self.cells.len()
    }

    /// pycocotools' `accumulate` over the multiset `images` (indices, repeats counted).
    pub fn accumulate(&self, images: &[usize]) -> CocoEval {
        self.accumulate_cells(images, &Cells::default())
    }

    /// As [`Matched::accumulate`], filling only the cells `only` names (the others stay −1): a
    /// single statistic reads a sliver of the arrays.
    pub fn accumulate_cells(&self, images: &[usize], only: &Cells) -> CocoEval {
        let mut out = self.full.clone();
        let s = out.shape;
        out.precision = vec![UNDEFINED; s.t * s.r * s.k * s.a * s.m];
        out.recall = vec![UNDEFINED; s.t * s.k * s.a * s.m];
        out.scores = vec![UNDEFINED; s.t * s.r * s.k * s.a * s.m];
        // np.spacing(1): pycocotools' guard against 0 / 0.
        let eps = f64::EPSILON;
        let wanted =
            |list: &Option<Vec<usize>>, i: usize| list.as_ref().is_none_or(|l| l.contains(&i));
        for k in (0..s.k).filter(|&k| wanted(&only.ks, k)) {
            for a in (0..s.a).filter(|&a| wanted(&only.areas, a)) {
                let cells: Vec<&Cell> = images
                    .iter()
                    .filter_map(|&i| self.cells.get(i)?.get(k * s.a + a)?.as_ref())
                    .collect();
                if cells.is_empty() {
                    continue;
                }
                let npig: usize = cells.iter().map(|c| c.npig).sum();
                if npig == 0 {
                    continue;
                }
                for (m, &max_det) in out.max_dets.clone().iter().enumerate() {
                    if !wanted(&only.max_dets, m) {
                        continue;
                    }
                    // (cell, detection) in concatenation order, then stably by score, descending.
                    let mut order: Vec<(usize, usize)> = cells
                        .iter()
                        .enumerate()
                        .flat_map(|(c, cell)| {
                            (0..cell.scores.len().min(max_det)).map(move |d| (c, d))
                        })
                        .collect();
                    order.sort_by(|x, y| cells[y.0].scores[y.1].total_cmp(&cells[x.0].scores[x.1]));
                    let nd = order.len();
                    for t in 0..s.t {
                        let (mut tp, mut fp) = (0.0f64, 0.0f64);
                        let mut rc = Vec::with_capacity(nd);
                        let mut pr = Vec::with_capacity(nd);
                        for &(c, d) in &order {
                            let cell = cells[c];
                            if !cell.ignored[t][d] {
                                if cell.matched[t][d] {
                                    tp += 1.0;
                                } else {
                                    fp += 1.0;
                                }
                            }
                            rc.push(tp / npig as f64);
                            pr.push(tp / (fp + tp + eps));
                        }
                        let ri = ((t * s.k + k) * s.a + a) * s.m + m;
                        out.recall[ri] = rc.last().copied().unwrap_or(0.0);
                        for i in (1..nd).rev() {
                            if pr[i] > pr[i - 1] {
                                pr[i - 1] = pr[i];
                            }
                        }
                        for (r, &thr) in out.rec_thrs.iter().enumerate() {
                            // searchsorted(rc, thr, side='left'); past the end the rest stay 0.
                            let pi = rc.partition_point(|&x| x < thr);
                            let pidx = (((t * s.r + r) * s.k + k) * s.a + a) * s.m + m;
                            if pi < nd {
                                out.precision[pidx] = pr[pi];
                                let (c, d) = order[pi];
                                out.scores[pidx] = cells[c].scores[d];
                            } else {
                                out.precision[pidx] = 0.0;
                                out.scores[pidx] = 0.0;
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// Which number of a re-accumulated evaluation a metric key names.
#[derive(Debug, Clone)]
enum Stat {
    /// One of the 12 summary stats over the classes `ks` (all, one, or the small-classes group).
    Over(&'static str, Vec<usize>),
    /// AP or AR of a size bin (area range `a`, after `all`).
    Bin { a: usize, ap: bool },
}

/// A metric (`<split>/<protocol>/<stat>`, DESIGN.md's keys) of frames grouped into recordings, ready
/// to be recomputed on any multiset of the groups (the bootstrap over test recordings).
#[derive(Debug, Clone)]
pub struct GroupedMetric {
    matched: Matched,
    /// Each group's image indices.
    groups: Vec<std::ops::Range<usize>>,
    stat: Stat,
    /// The cells the statistic reads.
    cells: Cells,
}

impl GroupedMetric {
    /// Matches the frames of every group once for `metric`. `None` for a metric this cannot
    /// recompute (the caller evaluates each resample in full instead).
    pub fn new(
        config: &crate::EvalConfig,
        groups: &[Vec<&crate::frames::FrameRecord>],
        metric: &str,
    ) -> Result<Option<Self>> {
        use crate::{Evaluator, Protocol, STAT_NAMES};
        let mut parts = metric.splitn(3, '/');
        let (_, protocol, stat) = match (parts.next(), parts.next(), parts.next()) {
            (Some(s), Some(p), Some(t)) => (s, p, t),
            _ => return Ok(None),
        };
        let protocol = match protocol {
            "prophesee" => Protocol::Prophesee,
            "unfiltered" => Protocol::Unfiltered,
            _ => return Ok(None),
        };
        let mut opts = CocoOptions::default();
        let names = &config.class_names;
        let k_of = |n: &str| names.iter().position(|c| c == n);
        let stat = if let Some(s) = STAT_NAMES.iter().find(|s| **s == stat) {
            Stat::Over(s, (0..names.len()).collect())
        } else if stat == "agnostic/AP" {
            opts.use_cats = false;
            Stat::Over("AP", vec![0])
        } else if stat == "AP_small_classes" {
            let ks: Option<Vec<usize>> = config.small_classes.iter().map(|n| k_of(n)).collect();
            match ks {
                Some(mut ks) if !ks.is_empty() => {
                    ks.sort_unstable();
                    ks.dedup();
                    Stat::Over("AP", ks)
                }
                _ => return Ok(None),
            }
        } else if let Some(class) = stat.strip_prefix("AP/") {
            match k_of(class) {
                Some(k) => Stat::Over("AP", vec![k]),
                None => return Ok(None),
            }
        } else if let Some((kind, label)) = stat.split_once("_bin/") {
            if !config.detailed {
                return Ok(None);
            }
            let bins = crate::analysis::size_bins_from_edges(&config.size_edges)?;
            let Some(i) = bins.iter().position(|(l, _)| l == label) else {
                return Ok(None);
            };
            opts.area_ranges = std::iter::once(("all".to_string(), [0.0, crate::coco::AREA_MAX]))
                .chain(bins)
                .collect();
            match kind {
                "AP" => Stat::Bin { a: i + 1, ap: true },
                "AR" => Stat::Bin {
                    a: i + 1,
                    ap: false,
                },
                _ => return Ok(None),
            }
        } else {
            return Ok(None);
        };
        // Each recording's COCO images on their own (frames never share an image), concatenated.
        let mut images = crate::prophesee::CocoImages::default();
        let mut ranges = Vec::with_capacity(groups.len());
        for frames in groups {
            let mut ev = Evaluator::new(config.clone())?;
            for f in frames {
                ev.add_frame(&f.gt, &f.dt);
            }
            let (part, _) = ev.coco_images(protocol);
            let start = images.gt.len();
            images.gt.extend(part.gt);
            images.dt.extend(part.dt);
            images.t.extend(part.t);
            ranges.push(start..images.gt.len());
        }
        let (gt, dt) = images.to_coco(names, config.height, config.width);
        let matched = Matched::run(&Arc::new(gt), &Arc::new(dt), &opts)?;
        let full = &matched.full;
        let m100 = full.max_det_index(100);
        let cells = match &stat {
            Stat::Over(name, ks) => {
                let (_, _, area, max_det) =
                    crate::coco::stat_spec(name).unwrap_or((true, None, "all", 100));
                Cells {
                    ks: Some(if full.use_cats { ks.clone() } else { vec![0] }),
                    areas: full.area_index(area).map(|a| vec![a]),
                    max_dets: full.max_det_index(max_det).map(|m| vec![m]),
                }
            }
            Stat::Bin { a, .. } => Cells {
                ks: None,
                areas: Some(vec![*a]),
                max_dets: m100.map(|m| vec![m]),
            },
        };
        Ok(Some(GroupedMetric {
            matched,
            groups: ranges,
            stat,
            cells,
        }))
    }

    /// The metric on the multiset `pick` of groups (indices, repeats counted); NaN where undefined
    /// (no ground truth).
    pub fn value(&self, pick: &[usize]) -> f64 {
        let images: Vec<usize> = pick
            .iter()
            .filter_map(|&g| self.groups.get(g).cloned())
            .flatten()
            .collect();
        let ev = self.matched.accumulate_cells(&images, &self.cells);
        let v = match &self.stat {
            Stat::Over(name, ks) => ev.stat_over(name, ks),
            Stat::Bin { a, ap } => {
                let m = ev.max_det_index(100).unwrap_or(ev.shape.m - 1);
                let ks = ev.all_k();
                if *ap {
                    ev.mean_precision(None, &ks, *a, m)
                } else {
                    ev.mean_recall(None, &ks, *a, m)
                }
            }
        };
        if v == UNDEFINED {
            f64::NAN
        } else {
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{coco_val_like, CaseSpec};

    fn case() -> (Arc<COCO>, Arc<COCO>) {
        let (gt, dt) = coco_val_like(&CaseSpec {
            images: 60,
            dets_per_image: 12,
            seed: 3,
            ..Default::default()
        })
        .to_coco()
        .unwrap();
        (Arc::new(gt), Arc::new(dt))
    }

    #[test]
    fn every_image_once_is_the_full_evaluation_bit_for_bit() {
        let (gt, dt) = case();
        for opts in [
            CocoOptions::default(),
            CocoOptions {
                use_cats: false,
                ..Default::default()
            },
        ] {
            let matched = Matched::run(&gt, &dt, &opts).unwrap();
            let all: Vec<usize> = (0..matched.num_images()).collect();
            let again = matched.accumulate(&all);
            let direct = CocoEval::run(&gt, &dt, &opts).unwrap();
            assert_eq!(again.precision, direct.precision);
            assert_eq!(again.recall, direct.recall);
            assert_eq!(again.scores, direct.scores);
            assert_eq!(again.stats(), direct.stats());
        }
    }

    #[test]
    fn a_subset_is_the_evaluation_of_that_subset() {
        let (gt, dt) = case();
        let matched = Matched::run(&gt, &dt, &CocoOptions::default()).unwrap();
        let subset: Vec<usize> = (0..matched.num_images()).filter(|i| i % 3 != 1).collect();
        let direct = CocoEval::run(
            &gt,
            &dt,
            &CocoOptions {
                img_ids: Some(subset.iter().map(|&i| i as u64 + 1).collect()),
                ..Default::default()
            },
        )
        .unwrap();
        let again = matched.accumulate(&subset);
        assert_eq!(again.precision, direct.precision);
        assert_eq!(again.stats(), direct.stats());
        // A repeated image counts twice: its detections and ground truth both double, so recall at
        // the last detection is unchanged but the precision curve is not in general the same set.
        let doubled: Vec<usize> = subset.iter().chain(&subset).copied().collect();
        let twice = matched.accumulate(&doubled);
        assert_eq!(twice.recall, again.recall);
    }

    /// Frames of three recordings: cars and pedestrians, some detected, some not.
    fn recordings() -> Vec<Vec<crate::frames::FrameRecord>> {
        use crate::BBox;
        (0..3)
            .map(|seq| {
                (0..4)
                    .map(|k| {
                        let t = 50_000 * (k as i64 + 1) + seq as i64 * 10_000_000 + 600_000;
                        let w = 12.0 + 9.0 * seq as f32 + 2.0 * k as f32;
                        let gt = vec![
                            BBox::gt(t, 40.0, 50.0, 60.0, 40.0, 1),
                            BBox::gt(t, 150.0, 60.0, w, 2.0 * w, 0),
                        ];
                        let mut dt = vec![BBox::det(t, 42.0, 51.0, 58.0, 41.0, 1, 0.9)];
                        if (seq + k) % 2 == 0 {
                            dt.push(BBox::det(t, 151.0, 61.0, w, 2.0 * w - 1.0, 0, 0.6));
                        }
                        dt.push(BBox::det(t, 250.0, 100.0, 20.0, 20.0, 0, 0.3));
                        crate::frames::FrameRecord {
                            seq,
                            repr: k,
                            t,
                            gt,
                            dt_score: vec![0.5; dt.len()],
                            dt,
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn grouped_metrics_on_every_recording_once_are_the_evaluator_s() {
        let mut config = crate::EvalConfig::new(vec!["pedestrian".into(), "car".into()])
            .with_small_classes(vec!["pedestrian".into()]);
        config.height = 200;
        config.width = 320;
        config.detailed = true;
        let recs = recordings();
        let mut ev = crate::Evaluator::new(config.clone()).unwrap();
        for f in recs.iter().flatten() {
            ev.add_frame(&f.gt, &f.dt);
        }
        let want = ev.summarize().unwrap().metrics("test");
        let groups: Vec<Vec<&crate::frames::FrameRecord>> =
            recs.iter().map(|r| r.iter().collect()).collect();
        let mut checked = 0;
        for key in want.keys() {
            let Some(g) = GroupedMetric::new(&config, &groups, key).unwrap() else {
                continue;
            };
            assert_eq!(g.value(&[0, 1, 2]), want[key], "{key}");
            checked += 1;
        }
        for key in [
            "test/unfiltered/AP_S",
            "test/prophesee/AP",
            "test/unfiltered/AP_small_classes",
            "test/unfiltered/agnostic/AP",
            "test/unfiltered/AP/car",
        ] {
            assert!(want.contains_key(key), "{key}");
        }
        assert!(checked >= 20, "{checked} metrics checked");
        assert!(want.keys().any(|k| k.contains("AP_bin/")));
        // A resample is a concatenation of recordings: recording 1 drawn three times equals itself.
        let g = GroupedMetric::new(&config, &groups, "test/unfiltered/AP")
            .unwrap()
            .unwrap();
        let mut one = crate::Evaluator::new(config.clone()).unwrap();
        for _ in 0..3 {
            for f in &recs[1] {
                one.add_frame(&f.gt, &f.dt);
            }
        }
        let direct = one.summarize().unwrap().metrics("test")["test/unfiltered/AP"];
        assert_eq!(g.value(&[1, 1, 1]), direct);
    }
}
