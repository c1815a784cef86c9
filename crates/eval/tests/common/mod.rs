//! Shared test helpers: fixture paths, a minimal reader for the fixtures' Prophesee `_bbox.npy`
//! files (40-byte records), and float comparison.
#![allow(dead_code)]

use evdet_eval::BBox;
use std::path::{Path, PathBuf};

/// The repository's reference fixtures (`tests/fixtures`).
pub fn fixtures() -> PathBuf {
    evdet_fixtures::root()
}

pub fn coco_dir() -> PathBuf {
    fixtures().join("coco_eval")
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// Asserts `|a - b| <= 1e-12` element-wise, naming `what` and the index on failure.
pub fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-12, "{what}[{i}]: got {g}, want {w}");
    }
}

/// Reads a numpy structured array with RVT's BBOX_DTYPE (t<i8, x,y,w,h <f4, class_id <u4,
/// track_id <u4, class_confidence <f4, 4 pad bytes: itemsize 40).
pub fn read_bbox_npy(path: &Path) -> Vec<BBox> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..6],
        b"\x93NUMPY",
        "{}: not an npy file",
        path.display()
    );
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    for field in [
        "'t', '<i8'",
        "'x', '<f4'",
        "'class_id', '<u4'",
        "'class_confidence', '<f4'",
    ] {
        assert!(
            header.contains(field),
            "{}: unexpected dtype {header}",
            path.display()
        );
    }
    let data = &bytes[start + header_len..];
    assert_eq!(data.len() % 40, 0);
    let f32_at = |r: &[u8], o: usize| f32::from_le_bytes(r[o..o + 4].try_into().unwrap());
    data.chunks_exact(40)
        .map(|r| BBox {
            t: i64::from_le_bytes(r[0..8].try_into().unwrap()),
            x: f32_at(r, 8),
            y: f32_at(r, 12),
            w: f32_at(r, 16),
            h: f32_at(r, 20),
            class_id: u32::from_le_bytes(r[24..28].try_into().unwrap()),
            class_confidence: f32_at(r, 32),
        })
        .collect()
}

/// Checks one category's numbers against a fixture's `per_category[<id>]` entry (pycocotools'
/// per-category AP and AR100 by area), to 1e-12.
pub fn assert_category(what: &str, c: &evdet_eval::coco::ClassSummary, e: &serde_json::Value) {
    let pairs = [
        ("AP_all", c.ap),
        ("AP50", c.ap50),
        ("AP75", c.ap75),
        ("AP_small", c.ap_s),
        ("AP_medium", c.ap_m),
        ("AP_large", c.ap_l),
        ("AR100_all", c.ar100),
        ("AR100_small", c.ar_s),
        ("AR100_medium", c.ar_m),
        ("AR100_large", c.ar_l),
    ];
    for (k, got) in pairs {
        let want = e[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{what} category {} {k}: not in the fixture", c.cat_id));
        assert!(
            (got - want).abs() <= 1e-12,
            "{what} category {} {k}: got {got}, want {want}",
            c.cat_id
        );
    }
}
