//! What `evdet eval` and `evdet train` show of an evaluation: a progress bar while it runs, the metric
//! table (both protocols side by side) and where the files went. The evaluation itself and the files
//! are `evdet_train::evaluate`'s.

use evdet_model::detector::Detector;
use evdet_train::checkpoint::Provenance;
use evdet_train::config::ExperimentConfig;
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
    let ev = evaluate::evaluate_split(det, cfg, data, split, device, conf, |done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    })?;
    pb.finish_and_clear();
    Ok(ev)
}

/// Writes the metrics (with the checkpoint they came from), the plot data and the sample pictures of
/// an evaluation into `eval_dir` and prints the metric table.
pub fn write_all(
    ev: &SplitEvaluation,
    cfg: &ExperimentConfig,
    json: &Path,
    weights: &Provenance,
) -> anyhow::Result<()> {
    write_and_print(&ev.metrics, json, weights)?;
    let eval_dir = json.parent().unwrap_or(Path::new("."));
    evaluate::write_analysis(ev, cfg, eval_dir)?;
    println!(
        "plot data and sample pictures written to {}",
        eval_dir.display()
    );
    Ok(())
}

/// Prints the metric table (both protocols side by side) and writes the JSON: the metrics under their
/// keys (`<split>/<protocol>/<stat>`; an undefined metric is absent) and `"checkpoint"`, the weights
/// evaluated (path, step, sha256).
pub fn write_and_print(
    m: &BTreeMap<String, f64>,
    json: &Path,
    weights: &Provenance,
) -> anyhow::Result<()> {
    let split = m
        .keys()
        .next()
        .and_then(|k| k.split('/').next())
        .unwrap_or("test")
        .to_string();
    println!("{:<22} {:>10} {:>11}", "metric", "prophesee", "unfiltered");
    let stats = evdet_eval::STAT_NAMES
        .iter()
        .copied()
        .chain(["AP_small_classes", "agnostic/AP"]);
    let get = |p: &str, s: &str| {
        m.get(&format!("{split}/{p}/{s}"))
            .map_or("-".to_string(), |v| format!("{v:.4}"))
    };
    for s in stats {
        println!(
            "{:<22} {:>10} {:>11}",
            s,
            get("prophesee", s),
            get("unfiltered", s)
        );
    }
    let classes: Vec<&str> = m
        .keys()
        .filter_map(|k| k.strip_prefix(&format!("{split}/unfiltered/AP/")))
        .collect();
    for c in classes {
        println!(
            "{:<22} {:>10} {:>11}",
            format!("AP/{c}"),
            get("prophesee", &format!("AP/{c}")),
            get("unfiltered", &format!("AP/{c}"))
        );
    }
    let mut file: serde_json::Map<String, serde_json::Value> = m
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
        .collect();
    file.insert("checkpoint".into(), serde_json::to_value(weights)?);
    evaluate::write_json(json, &file)?;
    println!("weights: {}", weights.describe());
    println!("metrics written to {}", json.display());
    Ok(())
}
