//! Streaming inference over one recording, as `evdet predict` runs it: the recurrent detector at
//! batch size 1, window after window in time order, its states carried. Writes what it saw: a
//! Prophesee `_bbox.npy` in sensor pixels, PNG frames (predictions over the event image, ground truth
//! beside them when the input has labels) and optionally a video.

use evdet_config::ExperimentConfig;
use evdet_events::labels::{write_bbox_npy, BBox};
use evdet_events::windows::{WindowParams, WindowSource};
use evdet_model::backbone::LstmState;
use evdet_model::detector::Detector;
use evdet_model::postprocess::Detection;
use evdet_report::picture::{self, DrawBox};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error(transparent)]
    Events(#[from] evdet_events::EventsError),
    #[error(transparent)]
    Report(#[from] evdet_report::ReportError),
    #[error("{0}")]
    Input(String),
    #[error("postprocess: {0}")]
    Postprocess(#[from] evdet_model::postprocess::PostprocessError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Swapping a finished folder in.
    #[error(transparent)]
    Swap(#[from] std::io::Error),
    #[error("writing the prediction into {}: {source}", out.display())]
    Prediction {
        out: PathBuf,
        source: Box<InferError>,
    },
}

/// The windows a checkpoint's network expects: dt and bins of `dataset.ev_repr_name`, and
/// `dataset.downsample_by_factor_2`.
pub fn window_params(cfg: &ExperimentConfig) -> Result<WindowParams, InferError> {
    let (nbins, dt_ms) = evdet_events::layout::parse_repr_dir_name(&cfg.dataset.ev_repr_name)
        .map_err(|e| InferError::Input(format!("dataset.ev_repr_name: {e}")))?;
    Ok(WindowParams {
        dt_ms,
        nbins,
        downsample_by_factor_2: cfg.dataset.downsample_by_factor_2,
    })
}

/// [`fit_geometry`] for one preprocessed sequence folder (`evdet predict` on a sequence).
pub fn fit_to_sequence(
    cfg: &mut ExperimentConfig,
    dir: &Path,
) -> Result<Option<String>, InferError> {
    let WindowParams {
        dt_ms: dt, nbins, ..
    } = window_params(cfg)?;
    let Some(paths) = [true, false]
        .into_iter()
        .map(|ds2| evdet_events::layout::SequencePaths::new(dir, dt, nbins, ds2))
        .find(|p| p.repr_h5.exists())
    else {
        // Not a sequence of this representation: the reader says so with the path.
        return Ok(None);
    };
    let shape = evdet_events::layout::repr_shape(&paths.repr_h5)?;
    let ds2 = paths.repr_h5.file_name()
        == Some(std::ffi::OsStr::new(evdet_events::layout::repr_file_name(
            true,
        )));
    Ok(fit_geometry(cfg, (shape[2], shape[3]), ds2))
}

/// Makes `cfg`'s dataset geometry that of preprocessed histograms of `h`×`w` (downsampled by 2 or
/// not), as RVT's config modifier derives the input size from the dataset: a checkpoint trained or
/// imported for one sensor can then be run on another's data. Returns a sentence saying what changed,
/// or `None` when the data already had the configured geometry.
pub fn fit_geometry(
    cfg: &mut ExperimentConfig,
    (h, w): (usize, usize),
    ds2: bool,
) -> Option<String> {
    if cfg.dataset.input_hw() == (h, w) && cfg.dataset.downsample_by_factor_2 == ds2 {
        return None;
    }
    let before = (
        cfg.dataset.resolution_hw,
        cfg.dataset.downsample_by_factor_2,
    );
    let factor = if ds2 { 2 } else { 1 };
    cfg.dataset.resolution_hw = [h * factor, w * factor];
    cfg.dataset.downsample_by_factor_2 = ds2;
    Some(format!(
        "the data's histograms are {h}×{w}{}: dataset.resolution_hw {:?} → {:?}, downsample_by_factor_2 {} → {} (the checkpoint's config said otherwise)",
        if ds2 { " (downsampled by 2)" } else { "" },
        before.0,
        cfg.dataset.resolution_hw,
        before.1,
        ds2
    ))
}

/// The recurrent detector run window by window at batch size 1.
pub struct StreamingDetector<'a> {
    det: &'a Detector,
    device: Device,
    input_hw: (usize, usize),
    states: Option<Vec<LstmState>>,
    conf: f64,
    nms: f64,
}

impl<'a> StreamingDetector<'a> {
    /// `conf`: the postprocess confidence threshold (on objectness × class confidence).
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

    /// Detections of the next window (`hist`: `[C, H, W]` u8), in network-input pixels. A window
    /// smaller than the network input is padded at the bottom and right, as RVT pads.
    pub fn step(
        &mut self,
        hist: &[u8],
        chw: (usize, usize, usize),
    ) -> Result<Vec<Detection>, InferError> {
        let decoded = self.step_decoded(hist, chw)?;
        tch::no_grad(|| {
            let dets = evdet_model::postprocess::postprocess(
                &decoded.to_kind(Kind::Float),
                self.conf,
                self.nms,
            )?;
            Ok(Detection::from_tensor(&dets[0])?)
        })
    }

    /// The decoded head outputs `[1, anchors, 5 + classes]` of the next window (what an exported
    /// model returns), states carried.
    pub fn step_decoded(
        &mut self,
        hist: &[u8],
        chw: (usize, usize, usize),
    ) -> Result<Tensor, InferError> {
        let (c, h, w) = chw;
        let (ih, iw) = self.input_hw;
        if h > ih || w > iw {
            return Err(InferError::Input(format!(
                "the recording's histograms are {h}×{w} but the checkpoint was trained on {ih}×{iw} \
                 (dataset.resolution_hw / downsample_by_factor_2 of its config)"
            )));
        }
        Ok(tch::no_grad(|| {
            let mut x = Tensor::from_slice(hist)
                .view([1, c as i64, h as i64, w as i64])
                .to_device(self.device)
                .to_kind(Kind::Float);
            if h < ih || w < iw {
                x = x.constant_pad_nd([0, (iw - w) as i64, 0, (ih - h) as i64]);
            }
            // [1, C, H, W] -> features per level, new LSTM states
            let (feats, states) =
                self.det
                    .forward_backbone_step(&x, self.states.as_deref(), None, false);
            self.states = Some(states);
            self.det.forward_detect(&feats, false).decoded
        }))
    }

    /// The postprocess thresholds `(confidence, nms)` this detector applies.
    pub fn thresholds(&self) -> (f64, f64) {
        (self.conf, self.nms)
    }
}

/// Boxes for the picture of a frame, scored by objectness × class confidence, those below
/// `min_score` left out.
pub fn draw_boxes_of(dets: &[Detection], min_score: f32) -> Vec<DrawBox> {
    dets.iter()
        .filter(|d| d.score() >= min_score)
        .map(|d| DrawBox {
            x1: d.x1,
            y1: d.y1,
            x2: d.x2,
            y2: d.y2,
            class_id: d.class_id as usize,
            score: Some(d.score()),
        })
        .collect()
}

/// Ground-truth boxes for the picture of a frame.
pub fn gt_boxes_of(gt: &[BBox]) -> Vec<DrawBox> {
    gt.iter()
        .map(|g| DrawBox::from_xywh(g.x, g.y, g.w, g.h, g.class_id as usize, None))
        .collect()
}

/// The recording's name: `<seq>` of `<seq>_td.h5`, or the sequence folder's name.
pub fn recording_name(input: &Path) -> String {
    evdet_events::windows::sequence_name(input)
        .or_else(|| input.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "recording".into())
}

/// What `evdet predict` asks for.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Output folder.
    pub out: PathBuf,
    /// Postprocess threshold on objectness × class confidence.
    pub confidence_threshold: f64,
    /// Pictures draw only boxes whose score reaches this (the `.npy` keeps all).
    pub draw_threshold: f32,
    /// Write PNG frames, one every `frame_every` windows.
    pub frames: bool,
    pub frame_every: usize,
    /// Raw recordings: end windows where preprocessing would (label clock of the `_bbox.npy`).
    pub align_to_labels: bool,
    /// Stop after this many windows (0: the whole recording).
    pub limit: usize,
    /// Sensor size and RAW clock for opening the recording.
    pub open: evdet_events::recording::OpenOptions,
    /// Only the windows ending in this span.
    pub span: evdet_events::windows::TimeSpan,
}

/// What a prediction run wrote.
#[derive(Debug, Clone)]
pub struct PredictSummary {
    pub name: String,
    pub windows: usize,
    pub detections: usize,
    pub npy: PathBuf,
    pub frames: Vec<PathBuf>,
    /// Window length, for a real-time video.
    pub dt_ms: u32,
    /// What reading a recording repaired or dropped (`None` for a preprocessed sequence).
    pub read: Option<evdet_events::h5_events::ReadStats>,
}

/// Runs `det` (configured by `cfg`) over `input` (a `<seq>_td.h5` recording or a preprocessed
/// sequence folder). `on_window(done, total)` reports progress.
pub fn predict(
    det: &Detector,
    cfg: &ExperimentConfig,
    device: Device,
    input: &Path,
    opts: &PredictOptions,
    mut on_window: impl FnMut(u64, u64),
) -> Result<PredictSummary, InferError> {
    if opts.frame_every == 0 {
        return Err(InferError::Input("frame_every must be at least 1".into()));
    }
    let rp = window_params(cfg)?;
    let [sh, sw] = cfg.dataset.resolution_hw;
    let mut source = WindowSource::open(
        input,
        &rp,
        (sh, sw),
        opts.align_to_labels,
        opts.open,
        opts.span,
    )?;
    let name = recording_name(input);
    let frames_dir = opts.out.join("frames");
    let dir = if opts.frames { &frames_dir } else { &opts.out };
    std::fs::create_dir_all(dir).map_err(|e| InferError::Io {
        path: dir.clone(),
        source: e,
    })?;
    let mut total = source.num_windows();
    if opts.limit > 0 {
        total = total.min(opts.limit as u64);
    }
    let mut sd = StreamingDetector::new(det, cfg, device, opts.confidence_threshold);
    let scale = rp.scale();
    let mut boxes: Vec<BBox> = Vec::new();
    let mut frames = Vec::new();
    let (ih, iw) = cfg.dataset.input_hw();
    let c = 2 * rp.nbins;
    let mut k = 0usize;
    while let Some(win) = source.next_window()? {
        if opts.limit > 0 && k >= opts.limit {
            break;
        }
        let hw = win.hist.len() / c;
        // Histograms of a raw recording have its sensor's size; stored ones the layout's.
        let (h, w) = match &source {
            WindowSource::Raw(s) => s.hist.spec().out_hw(),
            WindowSource::Sequence(_) if hw == ih * iw => (ih, iw),
            WindowSource::Sequence(_) => {
                return Err(InferError::Input(format!(
                    "{}: histograms of {hw} pixels do not match the checkpoint's {ih}×{iw} input",
                    input.display()
                )))
            }
        };
        let dets = sd.step(&win.hist, (c, h, w))?;
        boxes.extend(dets.iter().map(|d| BBox {
            t: win.t_us,
            x: d.x1 * scale,
            y: d.y1 * scale,
            w: d.width() * scale,
            h: d.height() * scale,
            class_id: d.class_id,
            track_id: 0,
            class_confidence: d.class_conf,
        }));
        if opts.frames && k.is_multiple_of(opts.frame_every) {
            let gt = win.gt.as_deref().map(gt_boxes_of);
            let img = picture::frame_picture(
                &win.hist,
                (c, h, w),
                &draw_boxes_of(&dets, opts.draw_threshold),
                gt.as_deref(),
                &cfg.dataset.classes,
            )?;
            let path = frames_dir.join(format!("{name}_{k:06}.png"));
            picture::save_png(&img, &path)?;
            frames.push(path);
        }
        k += 1;
        on_window(k as u64, total);
    }
    let npy = opts.out.join(format!("{name}_bbox.npy"));
    write_bbox_npy(&npy, &boxes)?;
    let read = match &source {
        WindowSource::Raw(s) => Some(s.read_stats()),
        _ => None,
    };
    Ok(PredictSummary {
        read,
        name,
        windows: k,
        detections: boxes.len(),
        npy,
        frames,
        dt_ms: rp.dt_ms,
    })
}
