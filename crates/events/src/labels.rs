//! Prophesee box labels: the raw `<seq>_bbox.npy` files (40-byte records with a 4-byte pad), the
//! packed 36-byte records inside RVT's `labels.npz`, and the legacy field names `ts` / `confidence`.
//! REFERENCE §5.1 (BBOX_DTYPE) and §5.4.

use crate::error::{EventsError, Result};
use crate::npy::{self, Dtype, NpyArray, Scalar};
use std::path::Path;

/// One box at one instant: top-left corner, size, class and track, in sensor pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BBox {
    pub t: i64,
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    pub class_id: u32,
    pub track_id: u32,
    pub class_confidence: f32,
}

/// The evaluator's box of a Prophesee record (the one conversion; the track id is not evaluated).
impl From<&BBox> for evdet_eval::BBox {
    fn from(b: &BBox) -> Self {
        evdet_eval::BBox {
            t: b.t,
            x: b.x,
            y: b.y,
            w: b.w,
            h: b.h,
            class_id: b.class_id,
            class_confidence: b.class_confidence,
        }
    }
}

const FIELDS: [(&str, Scalar); 8] = [
    ("t", Scalar::I64),
    ("x", Scalar::F32),
    ("y", Scalar::F32),
    ("w", Scalar::F32),
    ("h", Scalar::F32),
    ("class_id", Scalar::U32),
    ("track_id", Scalar::U32),
    ("class_confidence", Scalar::F32),
];

/// Reads a Prophesee box file (`_bbox.npy`, any field order or numeric types, legacy names accepted).
pub fn read_bbox_npy(path: &Path) -> Result<Vec<BBox>> {
    let arr = npy::read_npy(path)?;
    boxes_from_array(&arr, path)
}

/// Reads the `labels` member of RVT's `labels_v2/labels.npz` and the per-frame start rows.
pub fn read_labels_npz(path: &Path) -> Result<(Vec<BBox>, Vec<i64>)> {
    let labels = npy::read_npz_member(path, "labels")?;
    let boxes = boxes_from_array(&labels, path)?;
    let idx = npy::read_npz_member(path, "objframe_idx_2_label_idx")?.to_i64(path)?;
    Ok((boxes, idx))
}

/// Decodes a record array into boxes; `track_id` and `class_confidence` are optional (0 and 1).
pub fn boxes_from_array(arr: &NpyArray, path: &Path) -> Result<Vec<BBox>> {
    let Dtype::Record { itemsize, .. } = &arr.dtype else {
        return Err(EventsError::format(
            path,
            "expected a structured array of boxes (fields t, x, y, w, h, class_id, ...), found a plain array",
        ));
    };
    if arr.shape.len() != 1 {
        return Err(EventsError::format(
            path,
            format!("expected a 1-D box array, found shape {:?}", arr.shape),
        ));
    }
    let find = |names: &[&str]| names.iter().find_map(|n| arr.dtype.field(n)).cloned();
    let need = |names: &[&str]| {
        find(names).ok_or_else(|| EventsError::field(path, names[0], "missing from the box array"))
    };
    let (ft, fx, fy, fw, fh, fc) = (
        need(&["t", "ts"])?,
        need(&["x"])?,
        need(&["y"])?,
        need(&["w"])?,
        need(&["h"])?,
        need(&["class_id"])?,
    );
    let ftrack = find(&["track_id"]);
    let fconf = find(&["class_confidence", "confidence"]);
    let mut out = Vec::with_capacity(arr.len());
    for (i, rec) in arr.data.chunks_exact(*itemsize).enumerate() {
        let get = |f: &npy::Field| &rec[f.offset..f.offset + f.ty.size()];
        let int = |f: &npy::Field| {
            f.ty.read_i64(get(f)).ok_or_else(|| {
                EventsError::field(path, &f.name, format!("row {i} is not an integer"))
            })
        };
        let class_id = int(&fc)?;
        let class_id = u32::try_from(class_id).map_err(|_| {
            EventsError::field(path, "class_id", format!("row {i} has class id {class_id}"))
        })?;
        out.push(BBox {
            t: int(&ft)?,
            x: fx.ty.read_f64(get(&fx)) as f32,
            y: fy.ty.read_f64(get(&fy)) as f32,
            w: fw.ty.read_f64(get(&fw)) as f32,
            h: fh.ty.read_f64(get(&fh)) as f32,
            class_id,
            track_id: match &ftrack {
                Some(f) => int(f)? as u32,
                None => 0,
            },
            class_confidence: fconf.as_ref().map_or(1.0, |f| f.ty.read_f64(get(f)) as f32),
        });
    }
    Ok(out)
}

fn record_bytes(boxes: &[BBox], pad: bool) -> Vec<u8> {
    let mut data = Vec::with_capacity(boxes.len() * if pad { 40 } else { 36 });
    for b in boxes {
        data.extend_from_slice(&b.t.to_le_bytes());
        for v in [b.x, b.y, b.w, b.h] {
            data.extend_from_slice(&v.to_le_bytes());
        }
        data.extend_from_slice(&b.class_id.to_le_bytes());
        data.extend_from_slice(&b.track_id.to_le_bytes());
        data.extend_from_slice(&b.class_confidence.to_le_bytes());
        if pad {
            data.extend_from_slice(&[0; 4]);
        }
    }
    data
}

/// `.npy` bytes of the raw Prophesee layout: 40-byte records, the last 4 bytes an unnamed pad.
pub fn bbox_npy_bytes(boxes: &[BBox]) -> Vec<u8> {
    let mut fields = FIELDS.to_vec();
    fields.push(("", Scalar::Void(4)));
    npy::npy_bytes_records(&fields, boxes.len(), &record_bytes(boxes, true))
}

/// `.npy` bytes of the packed 36-byte records RVT stores in `labels.npz`.
pub fn packed_npy_bytes(boxes: &[BBox]) -> Vec<u8> {
    npy::npy_bytes_records(&FIELDS, boxes.len(), &record_bytes(boxes, false))
}

/// Writes a raw `_bbox.npy` file atomically.
pub fn write_bbox_npy(path: &Path, boxes: &[BBox]) -> Result<()> {
    npy::write_atomic(path, &bbox_npy_bytes(boxes))
}

/// Writes RVT's `labels.npz` (`labels` packed records, `objframe_idx_2_label_idx` int64) atomically.
pub fn write_labels_npz(path: &Path, boxes: &[BBox], frame_start: &[i64]) -> Result<()> {
    npy::write_npz(
        path,
        &[
            ("labels", packed_npy_bytes(boxes)),
            ("objframe_idx_2_label_idx", npy::npy_bytes_i64(frame_start)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<BBox> {
        vec![
            BBox {
                t: 33_333,
                x: 1.5,
                y: 2.0,
                w: 30.0,
                h: 60.0,
                class_id: 0,
                track_id: 7,
                class_confidence: 0.9,
            },
            BBox {
                t: 66_666,
                x: 100.0,
                y: 50.0,
                w: 120.0,
                h: 80.0,
                class_id: 1,
                track_id: 8,
                class_confidence: 1.0,
            },
        ]
    }

    #[test]
    fn raw_and_packed_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a_bbox.npy");
        write_bbox_npy(&p, &sample()).unwrap();
        assert_eq!(read_bbox_npy(&p).unwrap(), sample());
        let z = dir.path().join("labels.npz");
        write_labels_npz(&z, &sample(), &[0, 1]).unwrap();
        let (b, idx) = read_labels_npz(&z).unwrap();
        assert_eq!(b, sample());
        assert_eq!(idx, vec![0, 1]);
    }

    #[test]
    fn accepts_legacy_names() {
        let fields = [
            ("ts", Scalar::U64),
            ("x", Scalar::F64),
            ("y", Scalar::F64),
            ("w", Scalar::F64),
            ("h", Scalar::F64),
            ("class_id", Scalar::U8),
            ("confidence", Scalar::F32),
        ];
        let mut data = Vec::new();
        data.extend_from_slice(&5u64.to_le_bytes());
        for v in [1.0f64, 2.0, 3.0, 4.0] {
            data.extend_from_slice(&v.to_le_bytes());
        }
        data.push(2);
        data.extend_from_slice(&0.5f32.to_le_bytes());
        let bytes = npy::npy_bytes_records(&fields, 1, &data);
        let arr = npy::parse_npy(&bytes, Path::new("legacy.npy")).unwrap();
        let b = boxes_from_array(&arr, Path::new("legacy.npy")).unwrap();
        assert_eq!(
            b[0],
            BBox {
                t: 5,
                x: 1.0,
                y: 2.0,
                w: 3.0,
                h: 4.0,
                class_id: 2,
                track_id: 0,
                class_confidence: 0.5
            }
        );
    }

    #[test]
    fn missing_field_names_the_field() {
        let bytes = npy::npy_bytes_records(&[("t", Scalar::I64), ("x", Scalar::F32)], 0, &[]);
        let arr = npy::parse_npy(&bytes, Path::new("m.npy")).unwrap();
        let err = boxes_from_array(&arr, Path::new("m.npy"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("m.npy") && err.contains("'y'"), "{err}");
    }
}
