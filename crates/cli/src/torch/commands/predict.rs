//! `evdet predict`: runs a trained recurrent detector over a whole recording in stream order and writes
//! what it saw — a Prophesee `_bbox.npy` in sensor coordinates, PNG frames with class-coloured boxes
//! over the event image, and optionally an MP4 (ffmpeg) or animated GIF.
//!
//! Two inputs: a recording (`<seq>_td.h5`, a Prophesee `.raw` or a `.dat`; histograms are computed on the fly, one window of the
//! checkpoint's `dt` after another, exactly as preprocessing computes them) or a preprocessed sequence
//! folder (its stored histograms, in order). Ground truth, when the input has it, is drawn beside the
//! predictions.

use anyhow::Context;
use evdet_infer::checkpoint;
use evdet_infer::infer::{self, PredictOptions};
use evdet_model::postprocess::PostprocessConfig;
use std::path::PathBuf;

/// Detect objects in a recording with a trained checkpoint and look at the result.
///
/// Examples:
///   evdet predict --checkpoint runs/synthetic/mini/4scale_sizeaware_tiny --input data/mini_raw/test/mini_test_000_td.h5 --video
///   evdet predict --checkpoint runs/x/checkpoints/best --input data/mini/test/mini_test_000 --out pred
///   evdet predict --checkpoint runs/x --input rec_td.h5 --no-frames --confidence-threshold 0.001   # boxes for evaluation
///   evdet predict --checkpoint runs/x --input my_recording.raw --start 10s --end 20s      # a camera file, 10 s of it
///
/// Writes into --out (default predictions/<recording>/): <recording>_bbox.npy (Prophesee dtype: t of
/// the window end, x, y, w, h in sensor pixels, class_id, track_id 0, class_confidence), frames/*.png
/// (white = ON, black = OFF, grey = no events; predictions with class and score, ground truth in a
/// second panel when the input has labels), prediction.json (the input, the checkpoint — path, step,
/// SHA-256 of its weights — and the settings) and, with --video, <recording>.mp4 (ffmpeg on PATH) or
/// .gif. The folder is written whole under a temporary name; an existing one needs --overwrite.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Run folder (checkpoints/best, else last), checkpoint folder, or its model.safetensors.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// A recording (`<seq>_td.h5`, Prophesee `.raw` EVT 2.0/2.1/3.0, `.dat`) or a preprocessed
    /// sequence folder.
    #[arg(long)]
    pub input: PathBuf,
    /// Only windows ending at or after this time (12.5s, 300ms, or µs as in the labels).
    #[arg(long, value_parser = evdet_cli::recording_args::parse_time_us)]
    pub start: Option<i64>,
    /// Only windows ending at or before this time (12.5s, 300ms, or µs).
    #[arg(long, value_parser = evdet_cli::recording_args::parse_time_us)]
    pub end: Option<i64>,
    #[command(flatten)]
    pub recording: evdet_cli::recording_args::RecordingArgs,
    /// Output folder (default: predictions/<recording>). It must not exist unless --overwrite.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an existing output folder (whole: nothing of the earlier prediction stays).
    #[arg(long)]
    pub overwrite: bool,
    /// Also encode the frames as a video (MP4 with ffmpeg, else an animated GIF).
    #[arg(long)]
    pub video: bool,
    /// Keep detections whose objectness × class confidence reaches this (0.1 is the reference's
    /// training-time value; use 0.001 for boxes meant for evaluation).
    #[arg(long, default_value_t = PostprocessConfig::TRAIN_VALIDATION.confidence_threshold)]
    pub confidence_threshold: f64,
    /// Draw only boxes whose objectness × class confidence reaches this (the .npy keeps all).
    #[arg(long, default_value_t = evdet_model::postprocess::DRAW_SCORE)]
    pub draw_threshold: f32,
    /// Do not write PNG frames (and no video).
    #[arg(long)]
    pub no_frames: bool,
    /// Write a picture every N windows.
    #[arg(long, default_value_t = 1)]
    pub frame_every: usize,
    /// Raw recordings: end the windows where `evdet preprocess` would (anchored on the label clock of
    /// the `_bbox.npy` beside the file, val/test rules) instead of at multiples of dt, so predictions
    /// line up with those on the preprocessed sequence.
    #[arg(long)]
    pub align_to_labels: bool,
    /// Stop after this many windows (0 = the whole recording).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Video frame rate (default: real time, 1000 / dt_ms).
    #[arg(long)]
    pub fps: Option<f64>,
    #[command(flatten)]
    pub device: crate::device::DeviceArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = args.device.resolve()?;
    let opened = checkpoint::open(&args.checkpoint, device, |cfg| -> anyhow::Result<()> {
        // A preprocessed sequence fixes the input size; a raw recording is windowed as the
        // checkpoint's dataset is.
        if args.input.is_dir() {
            if let Some(note) = infer::fit_to_sequence(cfg, &args.input)? {
                eprintln!("note: {note}");
            }
        }
        Ok(())
    })?;
    let name = infer::recording_name(&args.input);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("predictions").join(&name));
    if out.exists() && !args.overwrite {
        let what = std::fs::read_to_string(out.join(MANIFEST))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["input"].as_str().map(String::from))
            .map_or_else(String::new, |i| format!(" (a prediction of {i})"));
        anyhow::bail!(
            "{} already exists{what}: give this prediction its own folder with --out DIR, or --overwrite to replace it",
            out.display()
        );
    }
    if let (Some(s), Some(e)) = (args.start, args.end) {
        anyhow::ensure!(s <= e, "--start ({s} µs) is after --end ({e} µs)");
    }
    eprintln!("predicting with {}", opened.provenance.describe());
    // Built in a temporary folder and swapped in whole: a failed or killed prediction leaves the
    // folder as it was, and a replaced one never keeps another input's frames.
    let mut done = None;
    evdet_atomic::replace_dir(&out, |tmp| -> anyhow::Result<()> {
        done = Some(predict_into(&args, &opened, &name, device, tmp)?);
        Ok(())
    })
    .with_context(|| format!("writing the prediction into {}", out.display()))?;
    let (summary, video) = done.ok_or_else(|| anyhow::anyhow!("the prediction wrote nothing"))?;
    eprintln!(
        "{} windows, {} detections -> {}",
        summary.windows,
        summary.detections,
        out.join(file_name(&summary.npy)).display()
    );
    if !args.no_frames {
        eprintln!(
            "{} frames -> {}",
            summary.frames.len(),
            out.join("frames").display()
        );
    }
    if let Some(r) = summary.read.filter(|r| r.truncated_bytes > 0) {
        eprintln!(
            "warning: {} ends in an incomplete RAW word ({} bytes) — the file was cut (an interrupted recording or copy?); the complete words before it were used",
            args.input.display(),
            r.truncated_bytes
        );
    }
    match video {
        Some(v) => eprintln!("video -> {}", out.join(file_name(&v)).display()),
        None if args.video => eprintln!("no video: no frames were written (--no-frames)"),
        None => {}
    }
    eprintln!("provenance -> {}", out.join(MANIFEST).display());
    Ok(())
}

/// What a prediction folder says about itself: the input, the checkpoint behind the boxes and the
/// settings that shaped them.
const MANIFEST: &str = "prediction.json";

fn file_name(p: &std::path::Path) -> PathBuf {
    p.file_name().map(PathBuf::from).unwrap_or_default()
}

/// Runs the detector over the input into the empty folder `dir`: boxes, frames, the video and the
/// manifest. Returns the summary and the video written, if any.
fn predict_into(
    args: &Args,
    opened: &checkpoint::Opened,
    name: &str,
    device: tch::Device,
    dir: &std::path::Path,
) -> anyhow::Result<(infer::PredictSummary, Option<PathBuf>)> {
    let opts = PredictOptions {
        out: dir.to_path_buf(),
        confidence_threshold: args.confidence_threshold,
        draw_threshold: args.draw_threshold,
        frames: !args.no_frames,
        frame_every: args.frame_every,
        align_to_labels: args.align_to_labels,
        limit: args.limit,
        open: args.recording.open_options(),
        span: evdet_events::windows::TimeSpan {
            start: args.start,
            end: args.end,
        },
    };
    let pb = crate::progress::bar(0, "windows");
    pb.set_message(format!("predicting {name}"));
    let summary = infer::predict(
        &opened.detector,
        &opened.config,
        device,
        &args.input,
        &opts,
        |done, total| {
            pb.set_length(total);
            pb.set_position(done);
        },
    )?;
    pb.finish_and_clear();
    let video = if args.video && !summary.frames.is_empty() {
        let fps = args
            .fps
            .unwrap_or(1000.0 / summary.dt_ms as f64 / args.frame_every as f64);
        Some(evdet_report::write_video(
            &summary.frames,
            &dir.join(&summary.name),
            fps,
        )?)
    } else {
        None
    };
    let manifest = serde_json::json!({
        "input": args.input.display().to_string(),
        "checkpoint": opened.provenance,
        "windows": summary.windows,
        "detections": summary.detections,
        "boxes": file_name(&summary.npy),
        "frames": summary.frames.len(),
        "video": video.as_deref().map(file_name),
        "confidence_threshold": args.confidence_threshold,
        "draw_threshold": args.draw_threshold,
        "start_us": args.start,
        "end_us": args.end,
        "limit": args.limit,
        "align_to_labels": args.align_to_labels,
        "read": summary.read,
        "evdet_version": env!("CARGO_PKG_VERSION"),
    });
    evdet_atomic::write(
        &dir.join(MANIFEST),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    Ok((summary, video))
}
