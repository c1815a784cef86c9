//! What a training session says to the user, as text: the line that starts it (what is trained on
//! what, where, resumed or not), the progress message of a step, the validation line. `evdet train`
//! prints them; they live here so that the command stays argument parsing plus calls.

use crate::trainer::{StepReport, Trainer};
use std::collections::BTreeMap;
use std::path::Path;

/// A metric for the console: 4 decimals, or `-` where it is undefined (no ground truth).
pub fn shown(m: &BTreeMap<String, f64>, key: &str) -> String {
    m.get(key).map_or("-".into(), |v| format!("{v:.4}"))
}

impl Trainer {
    /// The lines before the first step: the trainer's notices, what `model.init_from` loaded, and what
    /// is trained (`config`) on what (`data`), on which device(s) and precision, into which folder.
    pub fn start_lines(&self, config: &Path, data: &Path) -> Vec<String> {
        let mut out = self.notices.clone();
        if let Some(r) = &self.init_report {
            out.push(format!(
                "model.init_from {}: {} (every name in {})",
                self.cfg.model["init_from"].as_str().unwrap_or_default(),
                r.summary(),
                self.run.init_from().display()
            ));
        }
        let start = self.state.step;
        let resuming = if start > 0 {
            format!(" (resuming at step {start})")
        } else {
            String::new()
        };
        let (_, world) = self.rank_world();
        out.push(match self.parallel() {
            Some(p) => format!(
                "training {} on {} with {world} processes ({}, global batch {}) on {:?} per rank, {} -> {}{resuming}",
                config.display(),
                data.display(),
                p.pg.backend.name(),
                self.cfg.batch_size.train * world,
                self.device,
                self.precision.name(),
                self.run.root().display(),
            ),
            None => format!(
                "training {} on {} ({} train sequences) on {:?}, {} -> {}{resuming}",
                config.display(),
                data.display(),
                self.train_data().sequences.len(),
                self.device,
                self.precision.name(),
                self.run.root().display(),
            ),
        });
        out
    }
}

impl StepReport {
    /// The progress message of a step: the losses, the learning rate and the share of time spent
    /// waiting for data.
    pub fn message(&self) -> String {
        let g = |k: &str| self.metrics.get(k).copied().unwrap_or(f64::NAN);
        format!(
            "loss {:.3} (iou {:.3} obj {:.3} cls {:.3}) lr {:.2e} data {:.0}% ",
            g("train/loss"),
            g("train/iou_loss"),
            g("train/conf_loss"),
            g("train/cls_loss"),
            g("train/lr"),
            100.0 * self.data_s / (self.data_s + self.compute_s).max(1e-9)
        )
    }
}

/// The line a validation prints: AP and AP50 of both protocols, `-` where undefined.
pub fn validation_line(m: &BTreeMap<String, f64>) -> String {
    format!(
        "validation: AP {} AP50 {} (prophesee)  AP {} AP50 {} (unfiltered)",
        shown(m, "val/prophesee/AP"),
        shown(m, "val/prophesee/AP50"),
        shown(m, "val/unfiltered/AP"),
        shown(m, "val/unfiltered/AP50"),
    )
}
