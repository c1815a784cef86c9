//! What `evdet eval` and `evdet train` show of an evaluation: a progress bar while it runs, the metric
//! table (both protocols side by side) and where the files went. The evaluation itself and the files
//! are `evdet_infer::evaluate`'s.

use evdet_config::ExperimentConfig;
use evdet_data::SplitData;
use evdet_infer::checkpoint::Provenance;
use evdet_infer::evaluate::{self, SplitEvaluation};
use evdet_model::detector::Detector;
use std::path::Path;
use std::sync::Arc;

/// Streams `split` of `data` through the detector with a progress bar and summarises both protocols.
pub fn evaluate_split(
    det: &Detector,
    cfg: &ExperimentConfig,
    data: Arc<SplitData>,
    split: &str,
    device: tch::Device,
    conf: f64,
) -> anyhow::Result<SplitEvaluation> {
    let pb = crate::progress::bar(0, "batches");
    pb.set_message(format!("evaluating {split}"));
    let ev = evaluate::EvalRun::new(det, cfg, device, conf).evaluate_split(
        data,
        split,
        |done, total| {
            pb.set_length(total as u64);
            pb.set_position(done as u64);
        },
    )?;
    pb.finish_and_clear();
    Ok(ev)
}

/// Writes every file of the evaluation (`evdet_infer::evaluate::write_outputs`: the metrics with the
/// checkpoint evaluated at `json`, the plot data, frame records and sample pictures beside it) and
/// prints the metric table and where they went.
pub fn write_all(
    ev: &SplitEvaluation,
    cfg: &ExperimentConfig,
    json: &Path,
    weights: &Provenance,
) -> anyhow::Result<()> {
    evaluate::write_outputs(ev, cfg, json, weights)?;
    ev.written_lines(json, weights)
        .iter()
        .for_each(|l| println!("{l}"));
    Ok(())
}
