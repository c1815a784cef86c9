//! Bad COCO files give errors that name the file and the field, never a panic.

use evdet_eval::coco_json::{load_gt, parse_dt, parse_gt};
use std::path::Path;

const GT: &str = r#"{"images": [{"id": 1}, {"id": 2}],
  "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
                  {"id": 2, "image_id": 2, "category_id": 2, "bbox": [5, 5, 20, 10], "area": 200, "iscrowd": false}],
  "categories": [{"id": 1, "name": "pedestrian"}, {"id": 2, "name": "car"}]}"#;

fn gt_err(text: &str) -> String {
    match parse_gt(text.as_bytes(), Path::new("gt.json")) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

fn dt_err(text: &str) -> String {
    let gt = parse_gt(GT.as_bytes(), Path::new("gt.json")).unwrap();
    match parse_dt(&gt, text.as_bytes(), Path::new("dt.json")) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

fn has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "`{msg}` lacks `{p}`");
    }
}

#[test]
fn good_files_load() {
    let gt = parse_gt(GT.as_bytes(), Path::new("gt.json")).unwrap();
    assert_eq!(gt.dataset.annotations.len(), 2);
    let dt = parse_dt(&gt, br#"{"annotations": [{"image_id": 1, "category_id": 1, "bbox": [0,0,10,10], "score": 0.5}]}"#, Path::new("dt.json")).unwrap();
    assert_eq!(dt.coco.dataset.annotations.len(), 1);
    assert_eq!(dt.coco.dataset.annotations[0].area, Some(100.0));
}

#[test]
fn malformed_json_names_file_and_position() {
    has(&gt_err(r#"{"images": [}"#), &["gt.json", "line 1"]);
    has(&dt_err("[{"), &["dt.json"]);
    has(
        &dt_err(r#"[{"image_id": "one", "category_id": 1, "bbox": [0,0,1,1], "score": 1}]"#),
        &["dt.json", "invalid type"],
    );
}

#[test]
fn missing_fields_are_named() {
    has(
        &gt_err(r#"{"annotations": [], "categories": [{"id": 1}]}"#),
        &["gt.json", "images", "missing"],
    );
    has(
        &gt_err(r#"{"images": [], "annotations": []}"#),
        &["gt.json", "categories"],
    );
    has(
        &gt_err(&GT.replace(r#""area": 200, "#, "")),
        &["gt.json", "annotations[1].area", "missing"],
    );
    has(
        &gt_err(&GT.replace(r#""bbox": [0, 0, 10, 10], "#, "")),
        &["annotations[0].bbox"],
    );
    has(
        &gt_err(&GT.replace(r#"{"id": 2, "image_id""#, r#"{"image_id""#)),
        &["annotations[1].id"],
    );
    has(
        &gt_err(&GT.replace(r#""category_id": 2"#, r#""category_id": 9"#)),
        &["annotations[1].category_id", "9"],
    );
    has(
        &gt_err(r#"[{"image_id": 1}]"#),
        &["gt.json", "detection results"],
    );
    has(
        &dt_err(r#"[{"image_id": 1, "category_id": 1, "bbox": [0,0,1,1]}]"#),
        &["dt.json", "[0].score", "missing"],
    );
    has(
        &dt_err(r#"[{"image_id": 1, "category_id": 1, "score": 1}]"#),
        &["dt.json", "[0].bbox"],
    );
    has(
        &dt_err(r#"[{"image_id": 1, "bbox": [0,0,1,1], "score": 1}]"#),
        &["dt.json", "category_id"],
    );
    has(
        &dt_err(r#"[{"image_id": 1, "category_id": 1, "bbox": [0,0,1], "score": 1}]"#),
        &["dt.json"],
    );
    has(
        &dt_err(r#"[{"image_id": 1, "category_id": 1, "bbox": [0,0,-1,1], "score": 1}]"#),
        &["[0].bbox", "negative"],
    );
}

#[test]
fn detections_for_unknown_images_are_errors() {
    let msg = dt_err(
        r#"[{"image_id": 1, "category_id": 1, "bbox": [0,0,1,1], "score": 1},
            {"image_id": 7, "category_id": 1, "bbox": [0,0,1,1], "score": 1}]"#,
    );
    has(&msg, &["dt.json", "[1].image_id", "7", "not an image"]);
}

#[test]
fn unknown_categories_are_a_warning_and_ignored() {
    let gt = parse_gt(GT.as_bytes(), Path::new("gt.json")).unwrap();
    let dt = parse_dt(
        &gt,
        br#"[{"image_id": 1, "category_id": 5, "bbox": [0,0,1,1], "score": 1},
             {"image_id": 1, "category_id": 1, "bbox": [0,0,10,10], "score": 0.5}]"#,
        Path::new("dt.json"),
    )
    .unwrap();
    assert_eq!(dt.coco.dataset.annotations.len(), 1);
    assert_eq!(dt.warnings.len(), 1);
    has(&dt.warnings[0], &["dt.json", "[5]"]);
}

#[test]
fn missing_file_names_the_path() {
    let err = load_gt(Path::new("/nonexistent/gt.json"))
        .err()
        .expect("error")
        .to_string();
    has(&err, &["/nonexistent/gt.json"]);
}
