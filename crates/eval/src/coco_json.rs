//! Reading COCO JSON files — a ground-truth dataset and a detection results list — into the
//! engine's datasets, with errors that name the file and the field (`annotations[3].bbox`).
//!
//! What is accepted is what pycocotools accepts for bbox evaluation, with its crashes turned into
//! messages: ground truth needs `images[].id`, `categories[].id`, and per annotation `id`,
//! `image_id`, `category_id`, `bbox`, `area` (pycocotools reads `area`, not the box, for the size
//! ranges); `iscrowd` defaults to 0. Results are a list (or an object with `annotations`) of
//! `{image_id, category_id, bbox, score}`; like `COCO.loadRes`, a result whose `image_id` is not a
//! ground-truth image is an error, and its area is `w * h`.

use std::collections::HashSet;
use std::path::Path;

use hotcoco::{Annotation, Category, Dataset, Image, COCO};
use serde::Deserialize;

use crate::error::{EvalError, Result};

#[derive(Deserialize)]
struct GtFile {
    images: Option<Vec<GtImage>>,
    annotations: Option<Vec<GtAnn>>,
    categories: Option<Vec<GtCategory>>,
}

#[derive(Deserialize)]
struct GtImage {
    id: u64,
    #[serde(default)]
    width: Option<u32>,
    #[serde(default)]
    height: Option<u32>,
    #[serde(default)]
    file_name: Option<String>,
}

#[derive(Deserialize)]
struct GtCategory {
    id: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    supercategory: Option<String>,
}

/// `iscrowd` appears as `0`/`1`, `true`/`false` (RVT writes `False`) or `0.0`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl Flag {
    fn is_set(&self) -> bool {
        match *self {
            Flag::Bool(b) => b,
            Flag::Int(i) => i != 0,
            Flag::Float(f) => f != 0.0,
        }
    }
}

#[derive(Deserialize)]
struct GtAnn {
    id: Option<u64>,
    image_id: u64,
    category_id: u64,
    bbox: Option<[f64; 4]>,
    area: Option<f64>,
    #[serde(default)]
    iscrowd: Option<Flag>,
}

#[derive(Deserialize)]
struct DtRecord {
    image_id: u64,
    category_id: u64,
    bbox: Option<[f64; 4]>,
    score: Option<f64>,
}

#[derive(Deserialize)]
struct DtWrapped {
    annotations: Vec<DtRecord>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|error| EvalError::Io {
        path: path.to_path_buf(),
        error,
    })
}

fn first_byte(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Loads a ground-truth dataset file.
pub fn load_gt(path: &Path) -> Result<COCO> {
    parse_gt(&read(path)?, path)
}

/// Parses a ground-truth dataset; `path` only names the source in errors.
pub fn parse_gt(bytes: &[u8], path: &Path) -> Result<COCO> {
    if first_byte(bytes) == Some(b'[') {
        return Err(EvalError::field(
            path,
            "(top level)",
            "expected a COCO dataset object with `images`, `annotations` and `categories`, found a list \
             (is this a detection results file? pass it as --dt)",
        ));
    }
    let file: GtFile = serde_json::from_slice(bytes).map_err(|error| EvalError::Json {
        path: path.to_path_buf(),
        error,
    })?;
    let images = file
        .images
        .ok_or_else(|| EvalError::field(path, "images", "missing field"))?;
    let anns = file
        .annotations
        .ok_or_else(|| EvalError::field(path, "annotations", "missing field"))?;
    let cats = file
        .categories
        .ok_or_else(|| EvalError::field(path, "categories", "missing field"))?;
    if cats.is_empty() {
        return Err(EvalError::field(
            path,
            "categories",
            "is empty: nothing to evaluate",
        ));
    }
    let image_ids: HashSet<u64> = images.iter().map(|i| i.id).collect();
    let cat_ids: HashSet<u64> = cats.iter().map(|c| c.id).collect();

    let mut annotations = Vec::with_capacity(anns.len());
    for (i, a) in anns.into_iter().enumerate() {
        let at = |f: &str| format!("annotations[{i}].{f}");
        let id =
            a.id.ok_or_else(|| EvalError::field(path, at("id"), "missing field"))?;
        let bbox = a.bbox.ok_or_else(|| {
            EvalError::field(
                path,
                at("bbox"),
                "missing field (bbox evaluation needs [x, y, w, h])",
            )
        })?;
        check_box(path, &at("bbox"), &bbox)?;
        let area = a.area.ok_or_else(|| {
            EvalError::field(
                path,
                at("area"),
                "missing field (pycocotools assigns size ranges by `area`)",
            )
        })?;
        if !area.is_finite() {
            return Err(EvalError::field(
                path,
                at("area"),
                format!("is not a finite number ({area})"),
            ));
        }
        if !image_ids.contains(&a.image_id) {
            return Err(EvalError::field(
                path,
                at("image_id"),
                format!("{} is not an id in `images`", a.image_id),
            ));
        }
        if !cat_ids.contains(&a.category_id) {
            return Err(EvalError::field(
                path,
                at("category_id"),
                format!("{} is not an id in `categories`", a.category_id),
            ));
        }
        annotations.push(Annotation {
            id,
            image_id: a.image_id,
            category_id: a.category_id,
            bbox: Some(bbox),
            area: Some(area),
            iscrowd: a.iscrowd.as_ref().is_some_and(Flag::is_set),
            ..Default::default()
        });
    }
    let dataset = Dataset {
        images: images
            .into_iter()
            .map(|i| Image {
                id: i.id,
                width: i.width.unwrap_or(0),
                height: i.height.unwrap_or(0),
                file_name: i.file_name.unwrap_or_default(),
                ..Default::default()
            })
            .collect(),
        annotations,
        categories: cats
            .into_iter()
            .map(|c| Category {
                id: c.id,
                name: c.name.unwrap_or_else(|| c.id.to_string()),
                supercategory: c.supercategory,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    Ok(COCO::from_dataset(dataset))
}

fn check_box(path: &Path, field: &str, b: &[f64; 4]) -> Result<()> {
    if b.iter().any(|v| !v.is_finite()) {
        return Err(EvalError::field(
            path,
            field,
            format!("has a non-finite value: {b:?}"),
        ));
    }
    if b[2] < 0.0 || b[3] < 0.0 {
        return Err(EvalError::field(
            path,
            field,
            format!("has a negative width or height: {b:?}"),
        ));
    }
    Ok(())
}

/// Detections loaded against a ground truth, with the non-fatal findings.
pub struct Detections {
    pub coco: COCO,
    /// E.g. results whose category is not in the ground truth (pycocotools ignores them silently).
    pub warnings: Vec<String>,
}

/// Loads a detection results file against `gt` (as `COCO.loadRes` does).
pub fn load_dt(gt: &COCO, path: &Path) -> Result<Detections> {
    parse_dt(gt, &read(path)?, path)
}

/// Parses detection results; `path` only names the source in errors.
pub fn parse_dt(gt: &COCO, bytes: &[u8], path: &Path) -> Result<Detections> {
    let json_err = |error| EvalError::Json {
        path: path.to_path_buf(),
        error,
    };
    let (records, prefix) = match first_byte(bytes) {
        Some(b'{') => (
            serde_json::from_slice::<DtWrapped>(bytes)
                .map_err(json_err)?
                .annotations,
            "annotations",
        ),
        _ => (
            serde_json::from_slice::<Vec<DtRecord>>(bytes).map_err(json_err)?,
            "",
        ),
    };
    let mut unknown_cats = HashSet::new();
    let mut anns = Vec::with_capacity(records.len());
    for (i, r) in records.into_iter().enumerate() {
        let at = |f: &str| format!("{prefix}[{i}].{f}");
        let bbox = r.bbox.ok_or_else(|| {
            EvalError::field(
                path,
                at("bbox"),
                "missing field (bbox evaluation needs [x, y, w, h])",
            )
        })?;
        check_box(path, &at("bbox"), &bbox)?;
        let score = r
            .score
            .ok_or_else(|| EvalError::field(path, at("score"), "missing field"))?;
        if !score.is_finite() {
            return Err(EvalError::field(
                path,
                at("score"),
                format!("is not a finite number ({score})"),
            ));
        }
        if gt.get_img(r.image_id).is_none() {
            return Err(EvalError::field(
                path,
                at("image_id"),
                format!("{} is not an image of the ground truth (results do not correspond to this dataset)", r.image_id),
            ));
        }
        if gt.get_cat(r.category_id).is_none() {
            // Never evaluated (pycocotools only visits `params.catIds`, in both matching modes);
            // dropped here so the numbering of the rest, and so every number, is unchanged.
            unknown_cats.insert(r.category_id);
            continue;
        }
        anns.push(Annotation {
            image_id: r.image_id,
            category_id: r.category_id,
            bbox: Some(bbox),
            score: Some(score),
            ..Default::default()
        });
    }
    let mut warnings = Vec::new();
    if !unknown_cats.is_empty() {
        let mut ids: Vec<u64> = unknown_cats.into_iter().collect();
        ids.sort_unstable();
        warnings.push(format!(
            "{}: detections with category ids {ids:?}, which the ground truth does not define, are ignored",
            path.display()
        ));
    }
    // `load_res_anns` numbers the results 1.., sets iscrowd 0 and area = w * h, like `loadRes`.
    let coco = gt.load_res_anns(anns)?;
    Ok(Detections { coco, warnings })
}
