//! Streaming evaluation of a detector over a split (REFERENCE §4.3 "Stream, evaluation" and §6): every
//! recording runs through the recurrent backbone in order; at each labelled step the detections
//! (postprocessed, score = class confidence) and the ground truth go to the incremental evaluator,
//! which reports both protocols with the metric names of DESIGN.md.

use crate::config::ExperimentConfig;
use crate::data::batch;
use crate::data::loader::Prefetcher;
use crate::data::sampling::EvalPlan;
use crate::data::SplitData;
use evdet_eval::{BBox as EvalBox, Camera, EvalConfig, EvalReport, Evaluator};
use evdet_model::detector::Detector;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error("evaluation: {0}")]
    Eval(#[from] evdet_eval::EvalError),
    #[error("postprocess: {0}")]
    Postprocess(String),
}

/// The evaluator settings of an experiment's dataset.
pub fn eval_config(cfg: &ExperimentConfig) -> EvalConfig {
    let (h, w) = cfg.dataset.input_hw();
    let mut e = EvalConfig::new(cfg.dataset.classes.clone())
        .with_small_classes(cfg.dataset.small_classes.clone());
    e.camera = if cfg.dataset.eval.camera == "gen1" {
        Camera::Gen1
    } else {
        Camera::Gen4
    };
    e.downsampled_by_2 = cfg.dataset.eval.filter_downsampled_by_2;
    e.height = h as u32;
    e.width = w as u32;
    e
}

/// Detections and ground truth of one labelled frame, in the evaluator's box type.
pub struct FrameResult {
    pub seq: usize,
    pub repr: usize,
    pub t: i64,
    pub gt: Vec<EvalBox>,
    pub dt: Vec<EvalBox>,
    /// Each detection's objectness × class confidence (the postprocess threshold's score; `dt`
    /// carries the class confidence alone, the COCO score of REFERENCE §6).
    pub dt_score: Vec<f32>,
}

/// Runs the detector over `data` in streaming order; `on_frame` sees every labelled frame's result.
#[allow(clippy::too_many_arguments)]
pub fn run_stream(
    det: &Detector,
    data: Arc<SplitData>,
    cfg: &ExperimentConfig,
    device: Device,
    conf_threshold: f64,
    limit_batches: usize,
    mut on_frame: impl FnMut(FrameResult),
    mut on_batch: impl FnMut(usize, usize),
) -> Result<(), EvaluateError> {
    let l = cfg.dataset.sequence_length;
    let plan = Arc::new(EvalPlan::new(&data, l, cfg.batch_size.eval));
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
    while let Some((b, _wait)) = loader.next_timed() {
        let b = b?;
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
                let idx = Tensor::from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>())
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
                    let d = dets[k].to_device(Device::Cpu).to_kind(Kind::Float);
                    let rows_f: Vec<f32> =
                        Vec::<f32>::try_from(d.flatten(0, -1)).unwrap_or_default();
                    // REFERENCE §6: score = class confidence only (column 5), class = column 6
                    let dt = rows_f
                        .chunks_exact(7)
                        .map(|r| {
                            EvalBox::det(
                                tstamp,
                                r[0],
                                r[1],
                                r[2] - r[0],
                                r[3] - r[1],
                                r[6] as u32,
                                r[5],
                            )
                        })
                        .collect();
                    let dt_score = rows_f.chunks_exact(7).map(|r| r[4] * r[5]).collect();
                    on_frame(FrameResult {
                        seq,
                        repr,
                        t: tstamp,
                        gt,
                        dt,
                        dt_score,
                    });
                }
            }
            Ok(())
        })?;
        done += 1;
        on_batch(done, steps);
    }
    Ok(())
}

/// Evaluates `det` on `data` and summarises both protocols.
pub fn evaluate(
    det: &Detector,
    data: Arc<SplitData>,
    cfg: &ExperimentConfig,
    device: Device,
    conf_threshold: f64,
    limit_batches: usize,
    on_batch: impl FnMut(usize, usize),
) -> Result<EvalReport, EvaluateError> {
    let mut ev = Evaluator::new(eval_config(cfg))?;
    run_stream(
        det,
        data,
        cfg,
        device,
        conf_threshold,
        limit_batches,
        |f| ev.add_frame(&f.gt, &f.dt),
        on_batch,
    )?;
    Ok(ev.summarize()?)
}
