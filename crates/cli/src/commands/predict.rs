//! `evdet predict`: runs a trained recurrent detector over a whole recording in stream order and writes
//! what it saw — a Prophesee `_bbox.npy` in sensor coordinates, PNG frames with class-coloured boxes
//! over the event image, and optionally an MP4 (ffmpeg) or animated GIF.
//!
//! Two inputs: a raw recording (`<seq>_td.h5`; histograms are computed on the fly, one window of the
//! checkpoint's `dt` after another, exactly as preprocessing computes them) or a preprocessed sequence
//! folder (its stored histograms, in order). Ground truth, when the input has it, is drawn beside the
//! predictions.

use crate::commands::eval::{load_checkpoint, resolve_checkpoint};
use anyhow::{bail, Context};
use evdet_events::h5_events::{RawEventFile, StreamCursor};
use evdet_events::histogram::{HistogramSpec, StackedHistogram};
use evdet_events::labels::{read_bbox_npy, write_bbox_npy, BBox};
use evdet_events::layout::{self, SequenceIndex, SequencePaths};
use evdet_events::preprocess::label_frames;
use evdet_events::EventBatch;
use evdet_model::detector::Detector;
use evdet_report::picture::{self, DrawBox};
use evdet_train::config::ExperimentConfig;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Detect objects in a recording with a trained checkpoint and look at the result.
///
/// Examples:
///   evdet predict --checkpoint runs/synthetic/mini/4scale_sizeaware_tiny --input data/mini_raw/test/mini_test_000_td.h5 --video
///   evdet predict --checkpoint runs/x/checkpoints/best --input data/mini/test/mini_test_000 --out pred
///   evdet predict --checkpoint runs/x --input rec_td.h5 --no-frames --confidence-threshold 0.001   # boxes for evaluation
///
/// Writes into --out (default predictions/<recording>/): <recording>_bbox.npy (Prophesee dtype: t of
/// the window end, x, y, w, h in sensor pixels, class_id, track_id 0, class_confidence), frames/*.png
/// (white = ON, black = OFF, grey = no events; predictions with class and score, ground truth in a
/// second panel when the input has labels) and, with --video, <recording>.mp4 (ffmpeg on PATH) or .gif.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Run folder (checkpoints/best, else last), checkpoint folder, or its model.safetensors.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// A raw recording `<seq>_td.h5` or a preprocessed sequence folder.
    #[arg(long)]
    pub input: PathBuf,
    /// Output folder (default: predictions/<recording>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also encode the frames as a video (MP4 with ffmpeg, else an animated GIF).
    #[arg(long)]
    pub video: bool,
    /// Keep detections whose objectness × class confidence reaches this (0.1 is the reference's
    /// training-time value; use 0.001 for boxes meant for evaluation).
    #[arg(long, default_value_t = 0.1)]
    pub confidence_threshold: f64,
    /// Draw only boxes whose objectness × class confidence reaches this (the .npy keeps all).
    #[arg(long, default_value_t = 0.3)]
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
    #[arg(long)]
    pub device: Option<String>,
}

/// One window of events, ready for the network.
struct Window {
    t_us: i64,
    /// `[C, H, W]` u8 histogram.
    hist: Vec<u8>,
    /// Ground truth of this window, in network-input pixels, when the input has labels.
    gt: Option<Vec<BBox>>,
}

/// What the network needs to know about the histograms a checkpoint was trained on.
struct ReprParams {
    dt_ms: u32,
    nbins: usize,
    ds2: bool,
}

impl ReprParams {
    fn of(cfg: &ExperimentConfig) -> anyhow::Result<Self> {
        let (nbins, dt_ms) = evdet_train::data::dataset::parse_repr_name(&cfg.dataset.ev_repr_name)
            .with_context(|| {
                format!(
                    "dataset.ev_repr_name '{}' is not stacked_histogram_dt=<ms>_nbins=<n>",
                    cfg.dataset.ev_repr_name
                )
            })?;
        Ok(Self {
            dt_ms,
            nbins,
            ds2: cfg.dataset.downsample_by_factor_2,
        })
    }
    fn scale(&self) -> f32 {
        if self.ds2 {
            2.0
        } else {
            1.0
        }
    }
}

/// Windows of a raw recording, computed on the fly: ends at every multiple of dt from the first
/// event on (or, aligned to labels, at the representation times preprocessing would choose), each
/// window `[end − dt, end]` inclusive at both ends as preprocessing makes them.
struct RawSource {
    file: RawEventFile,
    hist: StackedHistogram,
    buf: EventBatch,
    exhausted: bool,
    /// Window end times, ascending, and the next one to compute.
    ends: Vec<i64>,
    pos: usize,
    dt: i64,
    labels: Vec<BBox>,
    label_scale: f32,
    cursor: StreamCursor,
}

impl RawSource {
    fn open(
        path: &Path,
        cfg: &ExperimentConfig,
        rp: &ReprParams,
        align_to_labels: bool,
    ) -> anyhow::Result<Self> {
        let file = RawEventFile::open(path)?;
        if file.is_empty() {
            bail!("{}: the recording has no events", path.display());
        }
        let [h, w] = cfg.dataset.resolution_hw;
        let sensor_hw = file.stored_sensor_hw().unwrap_or((h, w));
        let first = file.read_raw_range(0, 1)?[3][0];
        let last = file.read_raw_range(file.len() - 1, file.len())?[3][0];
        let dt = rp.dt_ms as i64 * 1000;
        let first_end = (first.div_euclid(dt) + 1) * dt;
        let last_end = last.max(first).div_euclid(dt) * dt + dt;
        let spec = HistogramSpec {
            nbins: rp.nbins,
            count_cutoff: 10,
            height: sensor_hw.0,
            width: sensor_hw.1,
            downsample_by_2: rp.ds2,
        };
        let labels_path = bbox_path_for(path);
        let labels = match &labels_path {
            Some(p) if p.exists() => read_bbox_npy(p)?,
            _ => Vec::new(),
        };
        let ends = if align_to_labels {
            let Some(lp) = labels_path.filter(|p| p.exists()) else {
                bail!(
                    "{}: --align-to-labels needs the recording's <seq>_bbox.npy beside it",
                    path.display()
                );
            };
            // Preprocessing's rules for a val/test recording with default filters, the label frame
            // being the sensor (`--dataset auto`).
            let frames = label_frames(
                &labels,
                &lp,
                sensor_hw,
                false,
                None,
                true,
                &std::collections::BTreeMap::new(),
            )?
            .with_context(|| format!("{}: no label frame survives the filters", lp.display()))?;
            frames.index.repr_timestamps_us
        } else {
            (0..)
                .map(|k| first_end + k * dt)
                .take_while(|&e| e <= last_end)
                .collect()
        };
        Ok(Self {
            file,
            hist: StackedHistogram::new(spec),
            buf: EventBatch::default(),
            exhausted: false,
            ends,
            pos: 0,
            dt,
            labels,
            label_scale: rp.scale(),
            cursor: StreamCursor::new(sensor_hw, 1 << 20),
        })
    }

    fn num_windows(&self) -> u64 {
        (self.ends.len() - self.pos) as u64
    }

    fn next(&mut self) -> anyhow::Result<Option<Window>> {
        let Some(&end) = self.ends.get(self.pos) else {
            return Ok(None);
        };
        while !self.exhausted && self.buf.t.last().is_none_or(|&t| t <= end) {
            match self.cursor.next_chunk(&self.file)? {
                Some(c) => self.buf.extend(&c),
                None => self.exhausted = true,
            }
        }
        let a = self.buf.t.partition_point(|&e| e < end - self.dt);
        let b = self.buf.t.partition_point(|&e| e <= end);
        // The cursor repairs decreasing timestamps, so the buffer is sorted.
        let hist = self.hist.compute_sorted(self.buf.slice(a..b)).to_vec();
        self.pos += 1;
        // Events before the next window's start are never needed again.
        if let Some(&next) = self.ends.get(self.pos) {
            let keep = self.buf.t.partition_point(|&e| e < next - self.dt);
            self.buf.drain_front(keep);
        }
        let gt = (!self.labels.is_empty()).then(|| {
            // The last label time stamp inside this window, if any.
            let lo = self.labels.partition_point(|l| l.t <= end - self.dt);
            let hi = self.labels.partition_point(|l| l.t <= end);
            let t_last = self.labels[lo..hi].last().map(|l| l.t);
            self.labels[lo..hi]
                .iter()
                .filter(|l| Some(l.t) == t_last)
                .map(|l| scale_box(l, 1.0 / self.label_scale))
                .collect()
        });
        Ok(Some(Window {
            t_us: end,
            hist,
            gt,
        }))
    }
}

/// `<dir>/<seq>_td.h5` → `<dir>/<seq>_bbox.npy`.
fn bbox_path_for(td: &Path) -> Option<PathBuf> {
    let name = td.file_name()?.to_str()?;
    let stem = name.strip_suffix("_td.h5")?;
    Some(td.with_file_name(format!("{stem}_bbox.npy")))
}

fn scale_box(b: &BBox, s: f32) -> BBox {
    BBox {
        x: b.x * s,
        y: b.y * s,
        w: b.w * s,
        h: b.h * s,
        ..*b
    }
}

/// Windows of a preprocessed sequence, read in chunks of its stored histograms.
struct SequenceSource {
    paths: SequencePaths,
    index: SequenceIndex,
    repr_to_frame: std::collections::HashMap<usize, usize>,
    pos: usize,
    cache: Vec<u8>,
    cache_start: usize,
    cache_len: usize,
    frame_len: usize,
    label_scale: f32,
}

impl SequenceSource {
    fn open(dir: &Path, rp: &ReprParams) -> anyhow::Result<Self> {
        let paths = SequencePaths::new(dir, rp.dt_ms, rp.nbins, rp.ds2);
        if !paths.repr_h5.exists() {
            bail!(
                "{}: not a preprocessed sequence for this checkpoint (no {})",
                dir.display(),
                paths.repr_h5.display()
            );
        }
        let index = SequenceIndex::read(&paths)?;
        let shape = layout::repr_shape(&paths.repr_h5)?;
        let repr_to_frame = index.repr_to_frame();
        Ok(Self {
            frame_len: shape[1] * shape[2] * shape[3],
            paths,
            index,
            repr_to_frame,
            pos: 0,
            cache: Vec::new(),
            cache_start: 0,
            cache_len: 0,
            label_scale: rp.scale(),
        })
    }

    fn num_windows(&self) -> u64 {
        self.index.repr_timestamps_us.len() as u64
    }

    fn next(&mut self) -> anyhow::Result<Option<Window>> {
        let n = self.index.repr_timestamps_us.len();
        if self.pos >= n {
            return Ok(None);
        }
        if self.pos >= self.cache_start + self.cache_len {
            let end = (self.pos + 32).min(n);
            let (data, _) = layout::read_repr_range(&self.paths.repr_h5, self.pos, end)?;
            self.cache = data;
            self.cache_start = self.pos;
            self.cache_len = end - self.pos;
        }
        let off = (self.pos - self.cache_start) * self.frame_len;
        let hist = self.cache[off..off + self.frame_len].to_vec();
        let gt = self.repr_to_frame.get(&self.pos).map(|&f| {
            self.index
                .frame_labels(f)
                .iter()
                .map(|l| scale_box(l, 1.0 / self.label_scale))
                .collect()
        });
        let t_us = self.index.repr_timestamps_us[self.pos];
        self.pos += 1;
        Ok(Some(Window { t_us, hist, gt }))
    }
}

enum Source {
    Raw(Box<RawSource>),
    Sequence(Box<SequenceSource>),
}

impl Source {
    fn next(&mut self) -> anyhow::Result<Option<Window>> {
        match self {
            Source::Raw(s) => s.next(),
            Source::Sequence(s) => s.next(),
        }
    }
    fn num_windows(&self) -> u64 {
        match self {
            Source::Raw(s) => s.num_windows(),
            Source::Sequence(s) => s.num_windows(),
        }
    }
}

/// The recurrent detector run window by window at batch size 1.
pub struct StreamingDetector<'a> {
    det: &'a Detector,
    device: Device,
    input_hw: (usize, usize),
    states: Option<Vec<evdet_model::backbone::LstmState>>,
    conf: f64,
    nms: f64,
}

impl<'a> StreamingDetector<'a> {
    pub fn new(det: &'a Detector, cfg: &ExperimentConfig, device: Device, conf: f64) -> Self {
        Self {
            det,
            device,
            input_hw: cfg.dataset.input_hw(),
            states: None,
            conf,
            nms: det.config().postprocess.nms_threshold,
        }
    }

    /// Detections `(x1, y1, x2, y2, obj, class confidence, class id)` in network-input pixels.
    pub fn step(
        &mut self,
        hist: &[u8],
        chw: (usize, usize, usize),
    ) -> anyhow::Result<Vec<[f32; 7]>> {
        let (c, h, w) = chw;
        let (ih, iw) = self.input_hw;
        if h > ih || w > iw {
            bail!(
                "the recording's histograms are {h}×{w} but the checkpoint was trained on {ih}×{iw} \
                 (dataset.resolution_hw / downsample_by_factor_2 of its config)"
            );
        }
        tch::no_grad(|| {
            let mut x = Tensor::from_slice(hist)
                .view([1, c as i64, h as i64, w as i64])
                .to_device(self.device)
                .to_kind(Kind::Float);
            if h < ih || w < iw {
                x = x.constant_pad_nd([0, (iw - w) as i64, 0, (ih - h) as i64]);
            }
            let (feats, states) =
                self.det
                    .forward_backbone_step(&x, self.states.as_deref(), None, false);
            self.states = Some(states);
            let out = self.det.forward_detect(&feats, false);
            let dets = evdet_model::postprocess::postprocess(
                &out.decoded.to_kind(Kind::Float),
                self.conf,
                self.nms,
            )
            .map_err(|e| anyhow::anyhow!("postprocess: {e}"))?;
            let d = dets[0].to_device(Device::Cpu).to_kind(Kind::Float);
            let v = Vec::<f32>::try_from(d.flatten(0, -1))?;
            Ok(v.chunks_exact(7)
                .map(|r| [r[0], r[1], r[2], r[3], r[4], r[5], r[6]])
                .collect())
        })
    }
}

/// Boxes for the picture of a frame, scored by objectness × class confidence.
pub fn draw_boxes_of(dets: &[[f32; 7]], min_score: f32) -> Vec<DrawBox> {
    dets.iter()
        .filter(|d| d[4] * d[5] >= min_score)
        .map(|d| DrawBox {
            x1: d[0],
            y1: d[1],
            x2: d[2],
            y2: d[3],
            class_id: d[6] as usize,
            score: Some(d[4] * d[5]),
        })
        .collect()
}

/// Ground-truth boxes for the picture of a frame.
pub fn gt_boxes_of(gt: &[BBox]) -> Vec<DrawBox> {
    gt.iter()
        .map(|g| DrawBox::from_xywh(g.x, g.y, g.w, g.h, g.class_id as usize, None))
        .collect()
}

/// The picture of one window: predictions over the event image, ground truth beside it if given.
pub fn frame_picture(
    hist: &[u8],
    chw: (usize, usize, usize),
    dets: &[DrawBox],
    gt: Option<&[DrawBox]>,
    classes: &[String],
) -> anyhow::Result<picture::RgbImage> {
    let (c, h, w) = chw;
    let zoom = picture_zoom(w);
    let base = picture::scale(&picture::event_image(hist, c, h, w)?, zoom);
    let mut pred = base.clone();
    picture::draw_boxes(
        &mut pred,
        &scaled(dets, zoom as f32),
        classes,
        &picture::BoxStyle::prediction(),
    );
    match gt {
        Some(g) => {
            let mut truth = base;
            picture::draw_boxes(
                &mut truth,
                &scaled(g, zoom as f32),
                classes,
                &picture::BoxStyle::ground_truth(),
            );
            Ok(picture::side_by_side(
                &pred,
                &truth,
                "prediction",
                "ground truth",
            ))
        }
        None => Ok(pred),
    }
}

/// Small sensors (the synthetic `mini` sample is 320 wide) are enlarged so labels stay readable.
fn picture_zoom(width: usize) -> usize {
    if width < 480 {
        2
    } else {
        1
    }
}

fn scaled(b: &[DrawBox], s: f32) -> Vec<DrawBox> {
    b.iter().map(|d| d.scaled(s)).collect()
}

/// The recording's name: `<seq>` of `<seq>_td.h5`, or the sequence folder's name.
fn recording_name(input: &Path) -> String {
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "recording".into());
    name.strip_suffix("_td.h5")
        .or_else(|| name.strip_suffix(".h5"))
        .unwrap_or(&name)
        .to_string()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.frame_every == 0 {
        bail!("--frame-every must be at least 1");
    }
    let ckpt = resolve_checkpoint(&args.checkpoint)?;
    let dev: evdet_model::device::DeviceChoice =
        args.device.as_deref().unwrap_or("auto").parse()?;
    let device = dev.resolve()?;
    let (cfg, _vs, det) = load_checkpoint(&ckpt, device)?;
    let rp = ReprParams::of(&cfg)?;
    let mut source = if args.input.is_dir() {
        Source::Sequence(Box::new(SequenceSource::open(&args.input, &rp)?))
    } else if args.input.is_file() {
        Source::Raw(Box::new(RawSource::open(
            &args.input,
            &cfg,
            &rp,
            args.align_to_labels,
        )?))
    } else {
        bail!(
            "{}: no such file or folder (give a <seq>_td.h5 recording or a preprocessed sequence folder)",
            args.input.display()
        );
    };
    let name = recording_name(&args.input);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("predictions").join(&name));
    let frames_dir = out.join("frames");
    std::fs::create_dir_all(if args.no_frames { &out } else { &frames_dir })
        .with_context(|| format!("creating {}", out.display()))?;

    let mut total = source.num_windows();
    if args.limit > 0 {
        total = total.min(args.limit as u64);
    }
    let pb = crate::progress::bar(total, "frames");
    pb.set_message(format!("predicting {name}"));
    let mut sd = StreamingDetector::new(&det, &cfg, device, args.confidence_threshold);
    let scale = rp.scale();
    let mut boxes: Vec<BBox> = Vec::new();
    let mut frames = Vec::new();
    let (ih, iw) = cfg.dataset.input_hw();
    let c = 2 * rp.nbins;
    let mut k = 0usize;
    while let Some(win) = source.next()? {
        if args.limit > 0 && k >= args.limit {
            break;
        }
        let hw = win.hist.len() / c;
        // Histograms of a raw recording have its sensor's size; stored ones the layout's.
        let (h, w) = match &source {
            Source::Raw(s) => s.hist.spec().out_hw(),
            Source::Sequence(_) => {
                if hw == ih * iw {
                    (ih, iw)
                } else {
                    bail!(
                        "{}: histograms of {hw} pixels do not match the checkpoint's {ih}×{iw} input",
                        args.input.display()
                    );
                }
            }
        };
        let dets = sd.step(&win.hist, (c, h, w))?;
        for d in &dets {
            boxes.push(BBox {
                t: win.t_us,
                x: d[0] * scale,
                y: d[1] * scale,
                w: (d[2] - d[0]) * scale,
                h: (d[3] - d[1]) * scale,
                class_id: d[6] as u32,
                track_id: 0,
                class_confidence: d[5],
            });
        }
        if !args.no_frames && k.is_multiple_of(args.frame_every) {
            let gt = win.gt.as_deref().map(gt_boxes_of);
            let img = frame_picture(
                &win.hist,
                (c, h, w),
                &draw_boxes_of(&dets, args.draw_threshold),
                gt.as_deref(),
                &cfg.dataset.classes,
            )?;
            let path = frames_dir.join(format!("{name}_{k:06}.png"));
            picture::save_png(&img, &path)?;
            frames.push(path);
        }
        k += 1;
        pb.set_position(k as u64);
    }
    pb.finish_and_clear();
    let npy = out.join(format!("{name}_bbox.npy"));
    write_bbox_npy(&npy, &boxes)?;
    eprintln!(
        "{k} windows, {} detections -> {}",
        boxes.len(),
        npy.display()
    );
    if !args.no_frames {
        eprintln!("{} frames -> {}", frames.len(), frames_dir.display());
    }
    if args.video && !frames.is_empty() {
        let fps = args
            .fps
            .unwrap_or(1000.0 / rp.dt_ms as f64 / args.frame_every as f64);
        let video = evdet_report::write_video(&frames, &out.join(&name), fps)?;
        eprintln!("video -> {}", video.display());
    } else if args.video {
        eprintln!("no video: no frames were written (--no-frames)");
    }
    Ok(())
}
