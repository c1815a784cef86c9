//! The folder `evdet predict` writes: the boxes (`<recording>_bbox.npy`), the pictures (`frames/`), an
//! optional video and `prediction.json`, which says what was predicted with which checkpoint and
//! settings. The folder is built under a temporary name and swapped in whole, so a failed or killed
//! prediction leaves the folder as it was, and a replaced one never keeps another input's frames.

use crate::checkpoint::Opened;
use crate::infer::{self, InferError, PredictOptions, PredictSummary};
use std::path::{Path, PathBuf};
use tch::Device;

/// What a prediction folder says about itself.
pub const MANIFEST: &str = "prediction.json";

/// One prediction folder to write.
#[derive(Debug, Clone)]
pub struct PredictionRequest {
    /// The recording or preprocessed sequence folder.
    pub input: PathBuf,
    /// The folder to write; it must not exist unless `overwrite`.
    pub out: PathBuf,
    pub overwrite: bool,
    /// Thresholds, pictures and the part of the recording (`options.out` is set here).
    pub options: PredictOptions,
    /// Encode the frames as a video (MP4 with ffmpeg, else an animated GIF) at `fps` (default: real
    /// time, 1000 / dt_ms per written frame).
    pub video: bool,
    pub fps: Option<f64>,
}

/// A written prediction folder.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub out: PathBuf,
    pub summary: PredictSummary,
    pub video: Option<PathBuf>,
}

/// The default folder of a prediction of `input`: `predictions/<recording>`.
pub fn default_out(input: &Path) -> PathBuf {
    PathBuf::from("predictions").join(infer::recording_name(input))
}

/// Refuses an existing `out` unless `overwrite`, naming what it holds.
pub fn check_out(out: &Path, overwrite: bool) -> Result<(), InferError> {
    if !out.exists() || overwrite {
        return Ok(());
    }
    let what = std::fs::read_to_string(out.join(MANIFEST))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["input"].as_str().map(String::from))
        .map_or_else(String::new, |i| format!(" (a prediction of {i})"));
    Err(InferError::Input(format!(
        "{} already exists{what}: give this prediction its own folder with --out DIR, or --overwrite to replace it",
        out.display()
    )))
}

/// Runs the opened checkpoint over `req.input` into `req.out` (whole, or not at all).
/// `on_window(done, total)` reports progress.
pub fn predict_folder(
    opened: &Opened,
    device: Device,
    req: &PredictionRequest,
    mut on_window: impl FnMut(u64, u64),
) -> Result<Prediction, InferError> {
    check_out(&req.out, req.overwrite)?;
    if let (Some(s), Some(e)) = (req.options.span.start, req.options.span.end) {
        if s > e {
            return Err(InferError::Input(format!(
                "--start ({s} µs) is after --end ({e} µs)"
            )));
        }
    }
    let mut done = None;
    evdet_atomic::replace_dir(&req.out, |tmp| -> Result<(), InferError> {
        done = Some(fill(opened, device, req, tmp, &mut on_window)?);
        Ok(())
    })
    .map_err(|e| InferError::Prediction {
        out: req.out.clone(),
        source: Box::new(e),
    })?;
    let (summary, video) =
        done.ok_or_else(|| InferError::Input("the prediction wrote nothing".into()))?;
    Ok(Prediction {
        out: req.out.clone(),
        summary,
        video,
    })
}

fn file_name(p: &Path) -> PathBuf {
    p.file_name().map(PathBuf::from).unwrap_or_default()
}

/// Boxes, frames, the video and the manifest into the empty folder `dir`.
fn fill(
    opened: &Opened,
    device: Device,
    req: &PredictionRequest,
    dir: &Path,
    on_window: &mut impl FnMut(u64, u64),
) -> Result<(PredictSummary, Option<PathBuf>), InferError> {
    let opts = PredictOptions {
        out: dir.to_path_buf(),
        ..req.options.clone()
    };
    let summary = infer::predict(
        &opened.detector,
        &opened.config,
        device,
        &req.input,
        &opts,
        on_window,
    )?;
    let video = if req.video && !summary.frames.is_empty() {
        let fps = req
            .fps
            .unwrap_or(1000.0 / summary.dt_ms as f64 / opts.frame_every as f64);
        Some(evdet_report::write_video(
            &summary.frames,
            &dir.join(&summary.name),
            fps,
        )?)
    } else {
        None
    };
    let manifest = serde_json::json!({
        "input": req.input.display().to_string(),
        "checkpoint": opened.provenance,
        "windows": summary.windows,
        "detections": summary.detections,
        "boxes": file_name(&summary.npy),
        "frames": summary.frames.len(),
        "video": video.as_deref().map(file_name),
        "confidence_threshold": opts.confidence_threshold,
        "draw_threshold": opts.draw_threshold,
        "start_us": opts.span.start,
        "end_us": opts.span.end,
        "limit": opts.limit,
        "align_to_labels": opts.align_to_labels,
        "read": summary.read,
        "evdet_version": env!("CARGO_PKG_VERSION"),
    });
    let path = dir.join(MANIFEST);
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| InferError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    evdet_atomic::write(&path, text.as_bytes()).map_err(|e| InferError::Io { path, source: e })?;
    Ok((summary, video))
}

impl Prediction {
    /// What `evdet predict` prints when done: what went where, and what reading the input repaired.
    pub fn lines(&self, req: &PredictionRequest) -> Vec<String> {
        let s = &self.summary;
        let mut out = vec![format!(
            "{} windows, {} detections -> {}",
            s.windows,
            s.detections,
            self.out.join(file_name(&s.npy)).display()
        )];
        if req.options.frames {
            out.push(format!(
                "{} frames -> {}",
                s.frames.len(),
                self.out.join("frames").display()
            ));
        }
        if let Some(r) = s.read.filter(|r| r.truncated_bytes > 0) {
            out.push(format!(
                "warning: {} ends in an incomplete RAW word ({} bytes) — the file was cut (an interrupted recording or copy?); the complete words before it were used",
                req.input.display(),
                r.truncated_bytes
            ));
        }
        match &self.video {
            Some(v) => out.push(format!(
                "video -> {}",
                self.out.join(file_name(v)).display()
            )),
            None if req.video => out.push("no video: no frames were written (--no-frames)".into()),
            None => {}
        }
        out.push(format!(
            "provenance -> {}",
            self.out.join(MANIFEST).display()
        ));
        out
    }
}
