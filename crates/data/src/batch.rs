//! Turning planned rows into tensors: histograms `[L, B, C, H, W]`, labels per step and row, the
//! first-sample and padding masks, with the augmentations of REFERENCE §4.4 applied per row.

use crate::dataset::{DataError, SplitData};
use crate::labels::FrameLabels;
use crate::sampling::{SlotSample, Zoom};
use tch::{Kind, Tensor};

/// One batch of L time steps.
#[derive(Debug)]
pub struct Batch {
    /// uint8 histograms `[L, B, C, H, W]` (the network casts them to its dtype).
    pub ev: Tensor,
    /// `labels[t][b]`: the boxes of row b at step t, when that step is a label frame.
    pub labels: Vec<Vec<Option<FrameLabels>>>,
    /// `(sequence, representation index)` of each step and row; `None` for padding.
    pub origin: Vec<Vec<Option<(usize, usize)>>>,
    pub is_first: Vec<bool>,
    pub rows: Vec<SlotSample>,
}

impl Batch {
    pub fn seq_len(&self) -> usize {
        self.labels.len()
    }
    pub fn batch_size(&self) -> usize {
        self.rows.len()
    }
}

/// Loads and augments the rows of one batch.
pub fn build(
    data: &SplitData,
    rows: &[SlotSample],
    seq_len: usize,
    only_end_labels: bool,
) -> Result<Batch, DataError> {
    let (c, h, w) = data.chw;
    let mut evs = Vec::with_capacity(rows.len());
    let mut labels = vec![Vec::with_capacity(rows.len()); seq_len];
    let mut origin = vec![Vec::with_capacity(rows.len()); seq_len];
    for row in rows {
        let mut ev = Tensor::zeros(
            [seq_len as i64, c as i64, h as i64, w as i64],
            (Kind::Uint8, tch::Device::Cpu),
        );
        let mut row_labels: Vec<Option<FrameLabels>> = vec![None; seq_len];
        let mut row_origin = vec![None; seq_len];
        if let Some(s) = row.seq {
            let n = row.len.min(seq_len);
            let raw = data.histograms(s, row.start, row.start + n)?;
            let loaded = Tensor::from_slice(&raw).view([n as i64, c as i64, h as i64, w as i64]);
            ev.narrow(0, 0, n as i64).copy_(&loaded);
            for (t, slot) in row_labels.iter_mut().enumerate().take(n) {
                row_origin[t] = Some((s, row.start + t));
                if only_end_labels && row.random_access && t + 1 != n {
                    continue;
                }
                *slot = data.labels(s, row.start + t);
            }
            ev = augment(ev, &mut row_labels, row, (h, w));
        }
        evs.push(ev);
        for t in 0..seq_len {
            labels[t].push(row_labels[t].take());
            origin[t].push(row_origin[t]);
        }
    }
    let ev = Tensor::stack(&evs, 1);
    Ok(Batch {
        ev,
        labels,
        origin,
        is_first: rows.iter().map(|r| r.is_first).collect(),
        rows: rows.to_vec(),
    })
}

fn resize_nearest_exact(t: &Tensor, h: i64, w: i64) -> Tensor {
    // nearest-exact on uint8, as torch.nn.functional.interpolate(mode='nearest-exact')
    t.internal_upsample_nearest_exact2d([h, w], None, None)
}

/// REFERENCE §4.4: h-flip, then zoom-in or zoom-out, applied to all steps of the row alike.
fn augment(
    mut ev: Tensor,
    labels: &mut [Option<FrameLabels>],
    row: &SlotSample,
    hw: (usize, usize),
) -> Tensor {
    let (h, w) = (hw.0 as i64, hw.1 as i64);
    if row.aug.hflip {
        ev = ev.flip([-1]);
        labels.iter_mut().flatten().for_each(FrameLabels::flip_lr);
    }
    match row.aug.zoom {
        Zoom::None => ev,
        Zoom::Out { factor, u_x, u_y } => {
            if factor == 1.0 {
                return ev;
            }
            let (zh, zw) = ((h as f64 / factor) as i64, (w as f64 / factor) as i64);
            let x0 = ((w - zw) as f64 * u_x) as i64;
            let y0 = ((h - zh) as f64 * u_y) as i64;
            let small = resize_nearest_exact(&ev, zh, zw);
            let out = ev.zeros_like();
            out.narrow(-2, y0, zh).narrow(-1, x0, zw).copy_(&small);
            labels
                .iter_mut()
                .flatten()
                .for_each(|l| l.zoom_out(x0 as usize, y0 as usize, factor as f32));
            out
        }
        Zoom::In {
            factor,
            u_box,
            u_x,
            u_y,
        } => {
            if factor == 1.0 {
                return ev;
            }
            let (zh, zw) = ((h as f64 / factor) as i64, (w as f64 / factor) as i64);
            // the most recent labelled step with boxes decides the window
            let Some(frame) = labels.iter().rev().flatten().find(|l| !l.is_empty()) else {
                return ev;
            };
            let n = frame.len();
            // RVT draws randint(0, n-1): the last box is only chosen when it is the only one.
            let pick = if n == 1 {
                0
            } else {
                ((u_box * (n - 1) as f64) as usize).min(n - 2)
            };
            let b = frame.boxes[pick];
            let (fw, fh) = (w as f64, h as f64);
            let (x0l, y0l, wl, hl) = (b.x as f64, b.y as f64, b.w as f64, b.h as f64);
            let (x1l, y1l) = (x0l + wl, y0l + hl);
            let zw_i = zw as f64;
            let zh_i = zh as f64;
            let x0v = (x1l - zw_i.max(wl)).max(0.0);
            let y0v = (y1l - zh_i.max(hl)).max(0.0);
            let x1v = ((x0l + zw_i.max(wl)).min(fw - 1.0) - zw_i).max(x0v);
            let y1v = ((y0l + zh_i.max(hl)).min(fh - 1.0) - zh_i).max(y0v);
            let x0 = (x0v + (x1v - x0v) * u_x) as i64;
            let y0 = (y0v + (y1v - y0v) * u_y) as i64;
            let crop = ev
                .narrow(-2, y0, zh.min(h - y0))
                .narrow(-1, x0, zw.min(w - x0));
            let out = resize_nearest_exact(&crop, h, w);
            labels
                .iter_mut()
                .flatten()
                .for_each(|l| l.zoom_in(x0 as usize, y0 as usize, factor as f32));
            out
        }
    }
}

/// YOLOX label tensor `[N, max_boxes, 5]` (class, cx, cy, w, h), zero padded, for a list of frames.
pub fn yolox_targets(frames: &[&FrameLabels]) -> Tensor {
    let max_n = frames.iter().map(|f| f.len()).max().unwrap_or(0).max(1);
    let mut flat = vec![0f32; frames.len() * max_n * 5];
    for (i, f) in frames.iter().enumerate() {
        for (j, r) in f.yolox_rows().iter().enumerate() {
            flat[(i * max_n + j) * 5..][..5].copy_from_slice(r);
        }
    }
    Tensor::from_slice(&flat).view([frames.len() as i64, max_n as i64, 5])
}
