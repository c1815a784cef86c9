//! Per-frame evaluation records as bytes: a frame's place in an evaluation's order, its recording and
//! representation index, time stamp, ground truth and detections. Distributed evaluation gathers
//! them from every process in this form, and a run keeps its test split's records in
//! `eval/test_frames.bin`, so that a study can resample test recordings (bootstrap) without
//! running the network again. Little-endian; a box is t, x, y, w, h, class, confidence.

use crate::BBox as EvalBox;

/// Where a frame comes in an evaluation's order: (batch step, time step, slot).
pub type FrameKey = (u64, u64, u64);

/// One labelled frame's evaluation input.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameRecord {
    /// Recording index in its split (sorted by name).
    pub seq: usize,
    /// Representation index in the recording.
    pub repr: usize,
    pub t: i64,
    pub gt: Vec<EvalBox>,
    /// Detections with the COCO score (class confidence) as `class_confidence`.
    pub dt: Vec<EvalBox>,
    /// Each detection's objectness × class confidence.
    pub dt_score: Vec<f32>,
}

/// Frame records as bytes.
pub fn encode_frames(frames: &[(FrameKey, FrameRecord)]) -> Vec<u8> {
    let mut out = Vec::new();
    let u64s = |out: &mut Vec<u8>, v: u64| out.extend_from_slice(&v.to_le_bytes());
    u64s(&mut out, frames.len() as u64);
    for ((a, b, c), f) in frames {
        for v in [*a, *b, *c, f.seq as u64, f.repr as u64, f.t as u64] {
            u64s(&mut out, v);
        }
        for boxes in [&f.gt, &f.dt] {
            u64s(&mut out, boxes.len() as u64);
            for x in boxes.iter() {
                out.extend_from_slice(&x.t.to_le_bytes());
                for v in [x.x, x.y, x.w, x.h] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.extend_from_slice(&x.class_id.to_le_bytes());
                out.extend_from_slice(&x.class_confidence.to_le_bytes());
            }
        }
        u64s(&mut out, f.dt_score.len() as u64);
        for v in &f.dt_score {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// The inverse of `encode_frames`; `None` on malformed bytes.
pub fn decode_frames(b: &[u8]) -> Option<Vec<(FrameKey, FrameRecord)>> {
    struct R<'a>(&'a [u8]);
    impl R<'_> {
        fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
            let (h, t) = self.0.split_at_checked(N)?;
            self.0 = t;
            h.try_into().ok()
        }
        fn u64(&mut self) -> Option<u64> {
            self.take::<8>().map(u64::from_le_bytes)
        }
        fn f32(&mut self) -> Option<f32> {
            self.take::<4>().map(f32::from_le_bytes)
        }
        /// A count that the remaining bytes can hold at `size` bytes each.
        fn count(&mut self, size: usize) -> Option<usize> {
            let n = usize::try_from(self.u64()?).ok()?;
            (n.checked_mul(size)? <= self.0.len()).then_some(n)
        }
    }
    let mut r = R(b);
    let n = r.count(48)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let key = (r.u64()?, r.u64()?, r.u64()?);
        let (seq, repr, t) = (r.u64()? as usize, r.u64()? as usize, r.u64()? as i64);
        let mut boxes = [Vec::new(), Vec::new()];
        for list in boxes.iter_mut() {
            let m = r.count(32)?;
            for _ in 0..m {
                let t = r.u64()? as i64;
                let (x, y, w, h) = (r.f32()?, r.f32()?, r.f32()?, r.f32()?);
                let class_id = u32::from_le_bytes(r.take::<4>()?);
                let class_confidence = r.f32()?;
                list.push(EvalBox {
                    t,
                    x,
                    y,
                    w,
                    h,
                    class_id,
                    class_confidence,
                });
            }
        }
        let m = r.count(4)?;
        let dt_score = (0..m).map(|_| r.f32()).collect::<Option<Vec<_>>>()?;
        let [gt, dt] = boxes;
        out.push((
            key,
            FrameRecord {
                seq,
                repr,
                t,
                gt,
                dt,
                dt_score,
            },
        ));
    }
    r.0.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    type FrameResult = FrameRecord;

    #[test]
    fn frames_survive_the_wire_and_bad_bytes_are_refused() {
        let b = |t, c| EvalBox {
            t,
            x: 1.5,
            y: -2.0,
            w: 3.25,
            h: 4.0,
            class_id: c,
            class_confidence: 0.75,
        };
        let frames = vec![
            (
                (3, 1, 2),
                FrameResult {
                    seq: 4,
                    repr: 9,
                    t: 50_000,
                    gt: vec![b(50_000, 1)],
                    dt: vec![b(50_000, 0), b(50_000, 2)],
                    dt_score: vec![0.5, 0.25],
                },
            ),
            (
                (0, 0, 0),
                FrameResult {
                    seq: 0,
                    repr: 0,
                    t: -1,
                    gt: vec![],
                    dt: vec![],
                    dt_score: vec![],
                },
            ),
        ];
        let bytes = encode_frames(&frames);
        let back = decode_frames(&bytes).expect("decodes");
        assert_eq!(back.len(), 2);
        for ((k1, f1), (k2, f2)) in frames.iter().zip(&back) {
            assert_eq!(k1, k2);
            assert_eq!((f1.seq, f1.repr, f1.t), (f2.seq, f2.repr, f2.t));
            assert_eq!(
                (&f1.gt, &f1.dt, &f1.dt_score),
                (&f2.gt, &f2.dt, &f2.dt_score)
            );
        }
        assert!(decode_frames(&bytes[..bytes.len() - 1]).is_none());
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_frames(&huge).is_none());
    }
}
