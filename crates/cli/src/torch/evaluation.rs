//! What `evdet eval` and `evdet train` show of an evaluation: a progress bar while it runs, the metric
//! table (both protocols side by side) and where the files went. The evaluation itself and the files
//! are `evdet_train::evaluate`'s.

use evdet_config::ExperimentConfig;
use evdet_infer::checkpoint::Provenance;
use evdet_model::detector::Detector;
use evdet_train::data::SplitData;
use evdet_train::evaluate::{self, SplitEvaluation};
use std::collections::BTreeMap;
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

/// Writes every file of the evaluation (`evdet_train::evaluate::write_outputs`: the metrics with the
/// checkpoint evaluated at `json`, the plot data, frame records and sample pictures beside it) and
/// prints the metric table and where they went.
pub fn write_all(
    ev: &SplitEvaluation,
    cfg: &ExperimentConfig,
    json: &Path,
    weights: &Provenance,
) -> anyhow::Result<()> {
    evaluate::write_outputs(ev, cfg, json, weights)?;
    print_table(&ev.metrics, &ev.split);
    println!("weights: {}", weights.describe());
    println!("metrics written to {}", json.display());
    println!(
        "plot data and sample pictures written to {}",
        json.parent().unwrap_or(Path::new(".")).display()
    );
    Ok(())
}

/// The metric table: both protocols side by side; `-` where a metric is undefined.
fn print_table(m: &BTreeMap<String, f64>, split: &str) {
    use evdet_eval::{metric_key, Protocol};
    println!("{:<22} {:>10} {:>11}", "metric", "prophesee", "unfiltered");
    let get = |p: Protocol, s: &str| {
        m.get(&metric_key(split, p, s))
            .map_or("-".to_string(), |v| format!("{v:.4}"))
    };
    let row = |s: &str| {
        println!(
            "{:<22} {:>10} {:>11}",
            s,
            get(Protocol::Prophesee, s),
            get(Protocol::Unfiltered, s)
        )
    };
    for s in evdet_eval::STAT_NAMES
        .iter()
        .copied()
        .chain(["AP_small_classes", "agnostic/AP"])
    {
        row(s);
    }
    let prefix = metric_key(split, Protocol::Unfiltered, "AP/");
    for c in m.keys().filter_map(|k| k.strip_prefix(&prefix)) {
        row(&format!("AP/{c}"));
    }
}
