//! Streaming evaluation of a detector over a split (REFERENCE §4.3 "Stream, evaluation" and §6): every
//! recording runs through the recurrent backbone in order; at each labelled step the detections
//! (postprocessed, score = class confidence) and the ground truth go to the incremental evaluator,
//! which reports both protocols with the metric names of DESIGN.md.

use evdet_config::ExperimentConfig;
use evdet_data::batch;
use evdet_data::loader::Prefetcher;
use evdet_data::sampling::EvalPlan;
use evdet_data::SplitData;
use evdet_dist::ProcessGroup;
use evdet_eval::{BBox as EvalBox, EvalReport, Evaluator};
use evdet_model::detector::Detector;
use evdet_model::postprocess::Detection;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error(transparent)]
    Data(#[from] evdet_data::DataError),
    #[error("evaluation: {0}")]
    Eval(#[from] evdet_eval::EvalError),
    #[error("postprocess: {0}")]
    Postprocess(String),
    #[error("{0}")]
    Classes(String),
    #[error(transparent)]
    Dist(#[from] evdet_dist::DistError),
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
}

pub use evdet_config::eval_config;

/// Detections and ground truth of one labelled frame, in the evaluator's box type (`dt` carries the
/// class confidence, the COCO score of REFERENCE §6; `dt_score` objectness × class confidence).
pub use evdet_eval::frames::FrameRecord as FrameResult;

/// Where a frame comes in a single process's streaming order: (batch step, time step, slot).
pub type FrameKey = (u64, u64, u64);

/// Which of `world` processes this is, for evaluation sharded by recordings (every recording stays
/// whole on one process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub world: usize,
}

impl Shard {
    pub const ALL: Shard = Shard { rank: 0, world: 1 };
}

/// One evaluation of a detector: the network, the experiment it belongs to, where it runs, the
/// postprocess confidence threshold, how many batches (0: all) and the processes sharing the work.
#[derive(Clone, Copy)]
pub struct EvalRun<'a> {
    pub det: &'a Detector,
    pub cfg: &'a ExperimentConfig,
    pub device: Device,
    /// Postprocess threshold on objectness × class confidence.
    pub conf_threshold: f64,
    /// Batches to run at most; 0 runs the whole split.
    pub limit_batches: usize,
    /// Data parallel: the process group that shares the split (each process receives every frame's
    /// result).
    pub group: Option<&'a ProcessGroup>,
}

impl<'a> EvalRun<'a> {
    /// The whole split in one process.
    pub fn new(
        det: &'a Detector,
        cfg: &'a ExperimentConfig,
        device: Device,
        conf_threshold: f64,
    ) -> Self {
        EvalRun {
            det,
            cfg,
            device,
            conf_threshold,
            limit_batches: 0,
            group: None,
        }
    }

    /// Sharded over the processes of `group`.
    pub fn sharded(self, group: Option<&'a ProcessGroup>) -> Self {
        EvalRun { group, ..self }
    }

    /// At most `limit_batches` batches (0: all).
    pub fn limited(self, limit_batches: usize) -> Self {
        EvalRun {
            limit_batches,
            ..self
        }
    }

    /// Runs the detector over `shard` of `data` in streaming order; `on_frame` sees every labelled
    /// frame's result with its place in the single-process order.
    pub fn run_stream(
        &self,
        data: Arc<SplitData>,
        shard: Shard,
        mut on_frame: impl FnMut(FrameKey, FrameResult),
        mut on_batch: impl FnMut(usize, usize),
    ) -> Result<(), EvaluateError> {
        let EvalRun {
            det,
            cfg,
            device,
            conf_threshold,
            limit_batches,
            ..
        } = *self;
        let l = cfg.dataset.sequence_length;
        let single = EvalPlan::new(&data, l, cfg.batch_size.eval);
        // Each process runs batches of the single-process shape (`batch_size.eval` is per process, and a
        // detection then does not depend on how many processes share the work: kernels may round
        // differently for another batch size, not for another row of the same shape). The global plan
        // deals the recordings over all processes' slots; process r takes slots r·B .. (r+1)·B.
        let rows = single.slots.len();
        let (plan, order) = if shard.world <= 1 {
            (single, None)
        } else {
            let global = EvalPlan::new(&data, l, rows * shard.world);
            let slots = (shard.rank * rows..(shard.rank + 1) * rows)
                .map(|i| global.slots.get(i).cloned().unwrap_or_default())
                .collect();
            // Where each labelled frame comes in the single-process order.
            let mut order = std::collections::HashMap::new();
            for (slot, chunks) in single.slots.iter().enumerate() {
                for (step, c) in chunks.iter().enumerate() {
                    for t in 0..c.len {
                        if let Some(seq) = c.seq {
                            order.insert((seq, c.start + t), (step as u64, t as u64, slot as u64));
                        }
                    }
                }
            }
            (EvalPlan { slots }, Some(order))
        };
        let plan = Arc::new(plan);
        let mut steps = plan.num_steps();
        if limit_batches > 0 {
            steps = steps.min(limit_batches);
        }
        let nms = det.config().postprocess.nms_threshold;
        let (p2, d2) = (plan.clone(), data.clone());
        let mut loader = Prefetcher::new(
            0,
            steps as u64,
            cfg.hardware.num_workers.eval,
            4,
            move |s| batch::build(&d2, &p2.rows(s as usize), l, false),
        );
        let mut states = None;
        let mut done = 0;
        let mut step = 0u64;
        while let Some((b, _wait)) = loader.next_timed() {
            let b = b?;
            step += 1;
            tch::no_grad(|| -> Result<(), EvaluateError> {
                let reset = Tensor::from_slice(&b.is_first).to_device(device);
                for t in 0..b.seq_len() {
                    let x = b.ev.get(t as i64).to_device(device).to_kind(Kind::Float);
                    let (feats, new_states) = det.forward_backbone_step(
                        &x,
                        states.as_deref(),
                        (t == 0).then_some(&reset),
                        false,
                    );
                    states = Some(new_states);
                    let rows: Vec<usize> = (0..b.batch_size())
                        .filter(|&r| b.labels[t][r].is_some() && b.origin[t][r].is_some())
                        .collect();
                    if rows.is_empty() {
                        continue;
                    }
                    let idx =
                        Tensor::from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>())
                            .to_device(device);
                    let sel: Vec<Tensor> = feats.iter().map(|f| f.index_select(0, &idx)).collect();
                    let out = det.forward_detect(&sel, false);
                    let dets = evdet_model::postprocess::postprocess(
                        &out.decoded.to_kind(Kind::Float),
                        conf_threshold,
                        nms,
                    )
                    .map_err(|e| EvaluateError::Postprocess(e.to_string()))?;
                    for (k, &r) in rows.iter().enumerate() {
                        let (seq, repr) = b.origin[t][r].unwrap_or_default();
                        let Some(labels) = &b.labels[t][r] else {
                            continue;
                        };
                        let s = &data.sequences[seq];
                        let tstamp = s
                            .repr_to_frame
                            .get(&repr)
                            .map(|&f| s.index.label_timestamps_us[f])
                            .unwrap_or(s.index.repr_timestamps_us[repr]);
                        let gt = labels
                            .boxes
                            .iter()
                            .map(|g| EvalBox::gt(tstamp, g.x, g.y, g.w, g.h, g.class_id as u32))
                            .collect();
                        let found = Detection::from_tensor(&dets[k])
                            .map_err(|e| EvaluateError::Postprocess(e.to_string()))?;
                        // REFERENCE §6: the COCO score is the class confidence alone
                        let dt = found
                            .iter()
                            .map(|d| {
                                EvalBox::det(
                                    tstamp,
                                    d.x1,
                                    d.y1,
                                    d.width(),
                                    d.height(),
                                    d.class_id,
                                    d.class_conf,
                                )
                            })
                            .collect();
                        let dt_score = found.iter().map(Detection::score).collect();
                        let key = match &order {
                            None => (step - 1, t as u64, r as u64),
                            Some(o) => o.get(&(seq, repr)).copied().unwrap_or((u64::MAX, 0, 0)),
                        };
                        on_frame(
                            key,
                            FrameResult {
                                seq,
                                repr,
                                t: tstamp,
                                gt,
                                dt,
                                dt_score,
                            },
                        );
                    }
                }
                Ok(())
            })?;
            done += 1;
            on_batch(done, steps);
        }
        Ok(())
    }

    /// Every labelled frame's result in single-process streaming order. Data parallel (`group`), each
    /// process runs its shard and every process receives all frames, so that every process computes the
    /// same metrics — equal to a single process's, frame order included (it breaks COCO's score ties).
    pub fn collect_frames(
        &self,
        data: Arc<SplitData>,
        on_batch: impl FnMut(usize, usize),
    ) -> Result<Vec<FrameResult>, EvaluateError> {
        let group = self.group;
        let shard = group.map_or(Shard::ALL, |g| Shard {
            rank: g.rank,
            world: g.world_size,
        });
        let mut frames: Vec<(FrameKey, FrameResult)> = Vec::new();
        self.run_stream(data, shard, |k, f| frames.push((k, f)), on_batch)?;
        if let Some(g) = group {
            let parts = g.all_gather_bytes(
                &evdet_eval::frames::encode_frames(&frames),
                "gathering evaluation results",
            )?;
            frames = parts
                .iter()
                .enumerate()
                .map(|(r, b)| {
                    evdet_eval::frames::decode_frames(b).ok_or_else(|| {
                        EvaluateError::Postprocess(format!(
                            "rank {r} sent malformed evaluation results"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flatten()
                .collect();
            frames.sort_by_key(|(k, _)| *k);
        }
        Ok(frames.into_iter().map(|(_, f)| f).collect())
    }

    /// Evaluates `det` on `data` and summarises both protocols (sharded over the processes of `group`).
    pub fn evaluate(
        &self,
        data: Arc<SplitData>,
        on_batch: impl FnMut(usize, usize),
    ) -> Result<EvalReport, EvaluateError> {
        let mut ev = Evaluator::new(eval_config(self.cfg))?;
        for f in &self.collect_frames(data, on_batch)? {
            ev.add_frame(&f.gt, &f.dt);
        }
        Ok(ev.summarize()?)
    }
}

/// Makes `cfg`'s dataset geometry that of the preprocessed `data` (`[C, H, W]` of its histograms and
/// whether they were downsampled by 2), as RVT's config modifier derives the input size from the
/// dataset: a checkpoint trained or imported for one sensor can then be run on another's data. Returns
/// a sentence saying what changed, or `None` when the data already had the configured geometry.
pub fn fit_to_split(cfg: &mut ExperimentConfig, data: &SplitData) -> Option<String> {
    crate::infer::fit_geometry(cfg, (data.chw.1, data.chw.2), data.downsample_by_factor_2())
}

/// Where an evaluation of the checkpoint folder `checkpoint` writes its metrics by default: a run's
/// checkpoint into the run's `eval/`, any other checkpoint folder (an import) inside itself.
pub fn default_metrics_path(checkpoint: &std::path::Path, split: &str) -> std::path::PathBuf {
    let eval_dir = match evdet_run::RunDir::of_checkpoint(checkpoint) {
        Some(run) => run.eval(),
        None => evdet_run::EvalDir::at(checkpoint.join("eval")),
    };
    eval_dir.metrics(split)
}

/// Opens `split` of the preprocessed dataset at `root` for evaluating a checkpoint configured by
/// `cfg`: the dataset geometry is fitted to the data ([`fit_to_split`]; the note, if any, is
/// returned), and labels of a class the head does not predict are an error, not silently unmatched
/// ground truth.
pub fn open_for_checkpoint(
    cfg: &mut ExperimentConfig,
    root: &std::path::Path,
    split: &str,
) -> Result<(SplitData, Option<String>), EvaluateError> {
    let geometry = |cfg: &ExperimentConfig| evdet_data::LabelGeometry {
        frame_hw: (cfg.dataset.resolution_hw[0], cfg.dataset.resolution_hw[1]),
        downsample_by_factor_2: cfg.dataset.downsample_by_factor_2,
    };
    let mut data = SplitData::open(root, split, &cfg.dataset.ev_repr_name, geometry(cfg))?;
    let note = fit_to_split(cfg, &data);
    data.geometry = geometry(cfg);
    let n = cfg.dataset.classes.len();
    if let Some(max) = data
        .sequences
        .iter()
        .flat_map(|s| s.index.labels.iter().map(|b| b.class_id))
        .max()
        .filter(|&c| c as usize >= n)
    {
        return Err(EvaluateError::Classes(format!(
            "{}: the labels have class ids up to {max} but the checkpoint's head predicts {n} classes ({}); \
             preprocess the data with a class map that fits (e.g. `evdet preprocess --class-map etram8to3` for a 3-class eTraM model)",
            data.root.display(),
            cfg.dataset.classes.join(", ")
        )));
    }
    Ok((data, note))
}

/// Opens the checkpoint at `path` on `device` with `split` of the dataset at `data` (default: the
/// checkpoint's `dataset.path`), its input size fitted to that data ([`open_for_checkpoint`]).
/// Returns the note of the fit, if any.
pub fn open_with_split(
    path: &std::path::Path,
    device: Device,
    data: Option<&std::path::Path>,
    split: &str,
) -> Result<(crate::checkpoint::Opened, Arc<SplitData>, Option<String>), EvaluateError> {
    let mut opened_split = None;
    let opened = crate::checkpoint::open(path, device, |cfg| -> Result<(), EvaluateError> {
        let root = data.map_or_else(
            || std::path::PathBuf::from(&cfg.dataset.path),
            |d| d.to_path_buf(),
        );
        opened_split = Some(open_for_checkpoint(cfg, &root, split)?);
        Ok(())
    })?;
    let (sd, note) = opened_split
        .ok_or_else(|| EvaluateError::Classes(format!("the {split} split was not opened")))?;
    Ok((opened, Arc::new(sd), note))
}

/// Detections whose objectness × class confidence is below this are not drawn in the sample pictures.
const SAMPLE_DRAW_THRESHOLD: f32 = evdet_model::postprocess::DRAW_SCORE;
/// Sample pictures per evaluation.
const NUM_SAMPLES: usize = 6;

impl SplitEvaluation {
    /// What `evdet eval` and `evdet train` print once the files are written to `json` and beside it:
    /// the metric table (both protocols), the weights and where everything went.
    pub fn written_lines(
        &self,
        json: &std::path::Path,
        weights: &crate::checkpoint::Provenance,
    ) -> Vec<String> {
        let mut out = evdet_eval::metrics::metric_table_lines(&self.metrics, &self.split);
        out.push(format!("weights: {}", weights.describe()));
        out.push(format!("metrics written to {}", json.display()));
        out.push(format!(
            "plot data and sample pictures written to {}",
            json.parent().unwrap_or(std::path::Path::new(".")).display()
        ));
        out
    }
}

/// The outcome of evaluating one split.
pub struct SplitEvaluation {
    pub split: String,
    pub metrics: std::collections::BTreeMap<String, f64>,
    pub report: EvalReport,
    pub data: Arc<SplitData>,
    /// Labelled frames with ground truth, kept for pictures: detections above the drawing threshold
    /// only, their `class_confidence` replaced by objectness × class confidence, the score drawn.
    pub frames: Vec<FrameResult>,
    /// Every labelled frame with all its detections, in evaluation order, as
    /// `evdet_eval::frames` bytes (written as `<split>_frames.bin`).
    pub records: Vec<u8>,
}

impl EvalRun<'_> {
    /// Streams `data` (one split) through the detector and summarises both protocols; keeps the frames
    /// for pictures and the records of `<split>_frames.bin`. `on_batch(done, total)` reports progress.
    pub fn evaluate_split(
        &self,
        data: Arc<SplitData>,
        split: &str,
        on_batch: impl FnMut(usize, usize),
    ) -> Result<SplitEvaluation, EvaluateError> {
        let cfg = self.cfg;
        let mut ev = Evaluator::new(eval_config(cfg))?;
        let mut frames = Vec::new();
        let all = self.collect_frames(data.clone(), on_batch)?;
        let records = evdet_eval::frames::encode_frames(
            &all.iter()
                .enumerate()
                .map(|(i, f)| ((i as u64, 0, 0), f.clone()))
                .collect::<Vec<_>>(),
        );
        for f in all {
            ev.add_frame(&f.gt, &f.dt);
            if !f.gt.is_empty() {
                let (dt, dt_score) =
                    f.dt.into_iter()
                        .zip(f.dt_score)
                        .filter(|(_, s)| *s >= SAMPLE_DRAW_THRESHOLD)
                        .map(|(d, s)| {
                            let drawn = EvalBox {
                                class_confidence: s,
                                ..d
                            };
                            (drawn, s)
                        })
                        .unzip();
                frames.push(FrameResult { dt, dt_score, ..f });
            }
        }
        let report = ev.summarize()?;
        frames.sort_by_key(|f| (f.seq, f.repr));
        Ok(SplitEvaluation {
            split: split.to_string(),
            metrics: report.metrics(split),
            report,
            data,
            frames,
            records,
        })
    }
}

/// Errors of writing what an evaluation produced, with the path at fault.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{path}: {message}")]
    Other {
        path: std::path::PathBuf,
        message: String,
    },
}

/// Writes `value` as pretty JSON to `path`, atomically, creating its folder.
pub fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> Result<(), WriteError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", parent.display())))?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| WriteError::Other {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(evdet_atomic::write(path, text.as_bytes())?)
}

/// Every file of an evaluation: the metrics file at `metrics_path` (the metrics under their keys, an
/// undefined one absent, and `"checkpoint"`: the weights evaluated), and in its folder
/// ([`evdet_run::EvalDir`]) the plot data, the frame records and the sample pictures.
pub fn write_outputs(
    ev: &SplitEvaluation,
    cfg: &ExperimentConfig,
    metrics_path: &std::path::Path,
    weights: &crate::checkpoint::Provenance,
) -> Result<(), WriteError> {
    let mut file: serde_json::Map<String, serde_json::Value> = ev
        .metrics
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
        .collect();
    file.insert(
        "checkpoint".into(),
        serde_json::to_value(weights).map_err(|e| WriteError::Other {
            path: metrics_path.to_path_buf(),
            message: e.to_string(),
        })?,
    );
    write_json(metrics_path, &file)?;
    let dir = metrics_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    write_analysis(ev, cfg, &evdet_run::EvalDir::at(dir))
}

/// Writes what the plots of a report are drawn from: `<split>_analysis.json` (per protocol: AP by
/// class and size bin, the small-class group, PR curves, confusion matrix) and sample pictures
/// (prediction beside ground truth) with their index `samples/<split>_samples.json`.
pub fn write_analysis(
    ev: &SplitEvaluation,
    cfg: &ExperimentConfig,
    eval_dir: &evdet_run::EvalDir,
) -> Result<(), WriteError> {
    use evdet_report::picture::{self, DrawBox};
    let (h, w) = cfg.dataset.input_hw();
    let analysis = serde_json::json!({
        "split": ev.split,
        "frame_hw": [h, w],
        "prophesee": ev.report.prophesee.analysis,
        "unfiltered": ev.report.unfiltered.analysis,
    });
    write_json(&eval_dir.analysis(&ev.split), &analysis)?;
    // Every frame's ground truth and detections, for resampling recordings (`evdet study`).
    let records = eval_dir.frames(&ev.split);
    evdet_atomic::write(&records, &ev.records)
        .map_err(|e| std::io::Error::other(format!("{}: {e}", records.display())))?;

    let samples_dir = eval_dir.samples_dir();
    std::fs::create_dir_all(&samples_dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", samples_dir.display())))?;
    let n = ev.frames.len();
    let picks: Vec<usize> = if n <= NUM_SAMPLES {
        (0..n).collect()
    } else {
        // Evenly spread over the split (frames are in sequence order).
        (0..NUM_SAMPLES)
            .map(|i| i * (n - 1) / (NUM_SAMPLES - 1))
            .collect()
    };
    let mut index = Vec::new();
    for (k, &i) in picks.iter().enumerate() {
        let f = &ev.frames[i];
        let seq = &ev.data.sequences[f.seq];
        let (hist, shape) =
            evdet_events::layout::read_repr_range(&seq.paths.repr_h5, f.repr, f.repr + 1).map_err(
                |e| WriteError::Other {
                    path: seq.paths.repr_h5.clone(),
                    message: e.to_string(),
                },
            )?;
        let to_draw = |b: &[EvalBox], scored: bool| -> Vec<DrawBox> {
            b.iter()
                .map(|b| {
                    let score = scored.then_some(b.class_confidence);
                    DrawBox::from_xywh(b.x, b.y, b.w, b.h, b.class_id as usize, score)
                })
                .collect()
        };
        let file = format!("{}_{k:03}.png", ev.split);
        let path = samples_dir.join(&file);
        let picture_err = |e: evdet_report::ReportError| WriteError::Other {
            path: path.clone(),
            message: e.to_string(),
        };
        let img = picture::frame_picture(
            &hist,
            (shape[1], shape[2], shape[3]),
            &to_draw(&f.dt, true),
            Some(&to_draw(&f.gt, false)),
            &cfg.dataset.classes,
        )
        .map_err(picture_err)?;
        picture::save_png(&img, &path).map_err(picture_err)?;
        index.push(serde_json::json!({
            "file": file,
            "sequence": seq.name,
            "t_us": f.t,
            "num_gt": f.gt.len(),
            "num_dt": f.dt.len(),
        }));
    }
    write_json(
        &eval_dir.samples_index(&ev.split),
        &serde_json::Value::Array(index),
    )
}
