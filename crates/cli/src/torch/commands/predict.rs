//! `evdet predict`: runs a trained recurrent detector over a whole recording in stream order and writes
//! what it saw — a Prophesee `_bbox.npy` in sensor coordinates, PNG frames with class-coloured boxes
//! over the event image, and optionally an MP4 (ffmpeg) or animated GIF.
//!
//! Two inputs: a recording (`<seq>_td.h5`, a Prophesee `.raw` or a `.dat`; histograms are computed on the fly, one window of the
//! checkpoint's `dt` after another, exactly as preprocessing computes them) or a preprocessed sequence
//! folder (its stored histograms, in order). Ground truth, when the input has it, is drawn beside the
//! predictions.

use evdet_infer::checkpoint;
use evdet_infer::infer::{self, PredictOptions};
use evdet_infer::prediction::{self, PredictionRequest};
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
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| prediction::default_out(&args.input));
    // Refused before the checkpoint is read: an existing folder is a mistake found in a second.
    prediction::check_out(&out, args.overwrite)?;
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
    let req = PredictionRequest {
        input: args.input.clone(),
        out,
        overwrite: args.overwrite,
        options: PredictOptions {
            out: PathBuf::new(),
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
        },
        video: args.video,
        fps: args.fps,
    };
    eprintln!("predicting with {}", opened.provenance.describe());
    let pb = crate::progress::bar(0, "windows");
    pb.set_message(format!("predicting {}", infer::recording_name(&args.input)));
    let done = prediction::predict_folder(&opened, device, &req, |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    })?;
    pb.finish_and_clear();
    done.lines(&req).iter().for_each(|l| eprintln!("{l}"));
    Ok(())
}
