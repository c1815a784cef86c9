//! A deterministic COCO-val-sized evaluation case for benchmarks: 5 000 images, about 36 000
//! ground-truth boxes over 80 categories (skewed like COCO's), about 1 % crowd regions, and
//! 100 detections per image — jittered copies of ground truth (sometimes with the wrong class)
//! plus clutter, mostly in the image's own classes — scores on a 0.001 grid so ties occur.
//!
//! The same case is written as COCO JSON so pycocotools can be timed on identical input
//! (`scripts/bench_eval_pycocotools.py`).

use std::io::Write;
use std::path::Path;

use hotcoco::{Annotation, Category, Dataset, Image, COCO};
use serde::Serialize;

use crate::error::{EvalError, Result};

/// Size of the synthetic case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CaseSpec {
    pub images: usize,
    pub categories: usize,
    pub dets_per_image: usize,
    pub seed: u64,
}

impl Default for CaseSpec {
    /// COCO val2017's size.
    fn default() -> Self {
        CaseSpec {
            images: 5000,
            categories: 80,
            dets_per_image: 100,
            seed: 0,
        }
    }
}

/// The generated case: a ground-truth dataset and a results list.
pub struct Case {
    pub gt: Dataset,
    pub dt: Vec<Annotation>,
}

/// splitmix64: tiny, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// Rounds to 0.01 px, as detectors' JSON usually is (and so the files stay small).
fn r2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

const W: f64 = 640.0;
const H: f64 = 480.0;

/// A box of side about `side` (aspect 1:3 to 3:1) inside the image.
fn random_box(rng: &mut Rng, side: f64) -> [f64; 4] {
    let aspect = (rng.range((1.0f64 / 3.0).ln(), 3.0f64.ln())).exp().sqrt();
    let w = (side * aspect).clamp(1.0, W);
    let h = (side / aspect).clamp(1.0, H);
    [
        r2(rng.range(0.0, W - w)),
        r2(rng.range(0.0, H - h)),
        r2(w),
        r2(h),
    ]
}

/// Side lengths log-uniform in 4..400 px: about 45 % small, 24 % medium, 31 % large.
fn random_side(rng: &mut Rng) -> f64 {
    rng.range(4.0f64.ln(), 400.0f64.ln()).exp()
}

/// Builds the case; the same `spec` always gives the same case.
pub fn coco_val_like(spec: &CaseSpec) -> Case {
    let mut rng = Rng(spec.seed ^ 0x5EED_C0C0_0E7A_0001);
    let k = spec.categories.max(1);
    let categories: Vec<Category> = (1..=k as u64)
        .map(|id| Category {
            id,
            name: format!("class{id}"),
            supercategory: Some("none".into()),
            ..Default::default()
        })
        .collect();
    // Skewed like COCO, where a few classes (person, car) hold most boxes.
    let category =
        |rng: &mut Rng| ((rng.unit() * rng.unit() * k as f64) as u64).min(k as u64 - 1) + 1;
    let mut images = Vec::with_capacity(spec.images);
    let mut gts = Vec::new();
    let mut dts = Vec::with_capacity(spec.images * spec.dets_per_image);
    for img in 1..=spec.images as u64 {
        images.push(Image {
            id: img,
            width: W as u32,
            height: H as u32,
            file_name: format!("{img:012}.jpg"),
            ..Default::default()
        });
        // Mean 7.2 boxes per image, as COCO val (36 781 over 5 000).
        let n = rng.below(15) + usize::from(rng.below(5) == 0);
        let first = gts.len();
        for _ in 0..n {
            let crowd = rng.below(100) == 0;
            let side = if crowd {
                rng.range(100.0, 300.0)
            } else {
                random_side(&mut rng)
            };
            let bbox = random_box(&mut rng, side);
            gts.push(Annotation {
                id: gts.len() as u64 + 1,
                image_id: img,
                category_id: category(&mut rng),
                area: Some(bbox[2] * bbox[3]),
                bbox: Some(bbox),
                iscrowd: crowd,
                ..Default::default()
            });
        }
        let mut dets: Vec<Annotation> = Vec::with_capacity(spec.dets_per_image);
        for g in &gts[first..] {
            let [x, y, w, h] = g.bbox.unwrap_or_default();
            for _ in 0..rng.below(4) {
                if dets.len() == spec.dets_per_image {
                    break;
                }
                let j = 0.15;
                let bw = (w * rng.range(1.0 - j, 1.0 + j)).max(1.0);
                let bh = (h * rng.range(1.0 - j, 1.0 + j)).max(1.0);
                let bx = x + w * rng.range(-j, j);
                let by = y + h * rng.range(-j, j);
                let cat = if rng.below(100) < 85 {
                    g.category_id
                } else {
                    category(&mut rng)
                };
                let score = (rng.range(0.3, 1.0) * 1000.0).round() / 1000.0;
                dets.push(det(img, cat, [r2(bx), r2(by), r2(bw), r2(bh)], score));
            }
        }
        // Clutter mostly in the classes the image shows, as a detector's top-100 is: COCO val
        // images hold about three categories each.
        let mut shown: Vec<u64> = gts[first..].iter().map(|g| g.category_id).collect();
        shown.sort_unstable();
        shown.dedup();
        while dets.len() < spec.dets_per_image {
            let side = random_side(&mut rng);
            let bbox = random_box(&mut rng, side);
            let score = (rng.range(0.0, 0.6) * 1000.0).round() / 1000.0;
            let cat = if !shown.is_empty() && rng.below(10) < 7 {
                shown[rng.below(shown.len())]
            } else {
                category(&mut rng)
            };
            dets.push(det(img, cat, bbox, score));
        }
        dts.extend(dets);
    }
    Case {
        gt: Dataset {
            images,
            annotations: gts,
            categories,
            ..Default::default()
        },
        dt: dts,
    }
}

fn det(image_id: u64, category_id: u64, bbox: [f64; 4], score: f64) -> Annotation {
    Annotation {
        image_id,
        category_id,
        bbox: Some(bbox),
        score: Some(score),
        ..Default::default()
    }
}

impl Case {
    /// The engine's datasets (results loaded as `loadRes` would).
    pub fn to_coco(&self) -> Result<(COCO, COCO)> {
        let gt = COCO::from_dataset(self.gt.clone());
        let dt = gt.load_res_anns(self.dt.clone())?;
        Ok((gt, dt))
    }

    /// Writes `gt.json` (COCO dataset) and `dt.json` (results list) into `dir`.
    pub fn write_json(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|error| EvalError::Io {
            path: dir.to_path_buf(),
            error,
        })?;
        #[derive(Serialize)]
        struct Img<'a> {
            id: u64,
            width: u32,
            height: u32,
            file_name: &'a str,
        }
        #[derive(Serialize)]
        struct Ann {
            id: u64,
            image_id: u64,
            category_id: u64,
            bbox: [f64; 4],
            area: f64,
            iscrowd: u8,
        }
        #[derive(Serialize)]
        struct Cat<'a> {
            id: u64,
            name: &'a str,
            supercategory: &'a str,
        }
        #[derive(Serialize)]
        struct Gt<'a> {
            images: Vec<Img<'a>>,
            annotations: Vec<Ann>,
            categories: Vec<Cat<'a>>,
        }
        #[derive(Serialize)]
        struct Det {
            image_id: u64,
            category_id: u64,
            bbox: [f64; 4],
            score: f64,
        }
        let gt = Gt {
            images: self
                .gt
                .images
                .iter()
                .map(|i| Img {
                    id: i.id,
                    width: i.width,
                    height: i.height,
                    file_name: &i.file_name,
                })
                .collect(),
            annotations: self
                .gt
                .annotations
                .iter()
                .map(|a| Ann {
                    id: a.id,
                    image_id: a.image_id,
                    category_id: a.category_id,
                    bbox: a.bbox.unwrap_or_default(),
                    area: a.area.unwrap_or_default(),
                    iscrowd: u8::from(a.iscrowd),
                })
                .collect(),
            categories: self
                .gt
                .categories
                .iter()
                .map(|c| Cat {
                    id: c.id,
                    name: &c.name,
                    supercategory: c.supercategory.as_deref().unwrap_or("none"),
                })
                .collect(),
        };
        let dt: Vec<Det> = self
            .dt
            .iter()
            .map(|a| Det {
                image_id: a.image_id,
                category_id: a.category_id,
                bbox: a.bbox.unwrap_or_default(),
                score: a.score.unwrap_or_default(),
            })
            .collect();
        write_json(&dir.join("gt.json"), &gt)?;
        write_json(&dir.join("dt.json"), &dt)
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let io = |error| EvalError::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = std::io::BufWriter::new(file);
    serde_json::to_writer(&mut w, value).map_err(|error| EvalError::Json {
        path: path.to_path_buf(),
        error,
    })?;
    w.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_is_deterministic_and_sized() {
        let spec = CaseSpec {
            images: 50,
            ..Default::default()
        };
        let a = coco_val_like(&spec);
        let b = coco_val_like(&spec);
        assert_eq!(a.dt.len(), 50 * 100);
        assert_eq!(a.gt.annotations.len(), b.gt.annotations.len());
        assert_eq!(a.dt[123].bbox, b.dt[123].bbox);
        let per_image = a.gt.annotations.len() as f64 / 50.0;
        assert!((3.0..12.0).contains(&per_image), "{per_image}");
    }
}
