//! The text `evdet preprocess` prints about a run: sequences written, frames, boxes kept and dropped,
//! events read and repaired.

use crate::preprocess::{BoxDrops, PreprocessSummary};
use std::collections::BTreeMap;

impl BoxDrops {
    fn add(&mut self, b: &BoxDrops) {
        self.not_in_class_map += b.not_in_class_map;
        self.invalid_nan_or_negative += b.invalid_nan_or_negative;
        self.outside_frame += b.outside_frame;
        self.too_small += b.too_small;
        self.faulty_huge += b.faulty_huge;
        self.off_label_clock += b.off_label_clock;
    }
}

impl PreprocessSummary {
    /// The summary of a run that took `secs` seconds.
    pub fn lines(&self, secs: f64) -> Vec<String> {
        let done: Vec<_> = self
            .sequences
            .iter()
            .filter(|q| !q.skipped_existing && !q.no_labels_left)
            .collect();
        let skipped = self.sequences.iter().filter(|q| q.skipped_existing).count();
        let empty: Vec<_> = self
            .sequences
            .iter()
            .filter(|q| q.no_labels_left)
            .map(|q| format!("{}/{}", q.split, q.name))
            .collect();
        let mut lines = vec![format!(
            "preprocessed {} sequences in {secs:.1} s ({skipped} already done, {} without labels after filtering)",
            done.len(),
            empty.len()
        )];
        if !empty.is_empty() {
            lines.push(format!(
                "  no labels left (not written): {}",
                empty.join(", ")
            ));
        }
        let frames: usize = done.iter().map(|q| q.label_frames).sum();
        let reprs: usize = done.iter().map(|q| q.representations).sum();
        lines.push(format!("  label frames: {frames}   event windows: {reprs}"));
        let mut per_class = BTreeMap::<u32, u64>::new();
        let mut d = BoxDrops::default();
        for q in &done {
            for (c, n) in &q.boxes_per_class {
                *per_class.entry(*c).or_default() += n;
            }
            d.add(&q.box_drops);
        }
        let classes: Vec<_> = per_class.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        lines.push(format!(
            "  boxes per class: {}",
            if classes.is_empty() {
                "-".into()
            } else {
                classes.join(", ")
            }
        ));
        lines.push(format!(
            "  boxes dropped: {} not in class map, {} NaN or negative size, {} outside the label frame, {} too small, {} faulty huge (train), {} off the 10 Hz label-frame grid",
            d.not_in_class_map, d.invalid_nan_or_negative, d.outside_frame, d.too_small, d.faulty_huge, d.off_label_clock
        ));
        let ev = self.total_events();
        let rate = if secs > 0.0 {
            ev.events_read as f64 / secs / 1e6
        } else {
            0.0
        };
        lines.push(format!(
            "  events: {} read ({rate:.1} M/s), {} outside the sensor dropped, {} decreasing timestamps raised to the running maximum",
            ev.events_read, ev.dropped_outside_sensor, ev.timestamps_repaired
        ));
        if ev.skipped_words > 0 {
            lines.push(format!(
                "  RAW words skipped: {} (before the first time high or of no known type)",
                ev.skipped_words
            ));
        }
        lines
    }

    /// A warning naming the recordings that end in an incomplete RAW word, if any.
    pub fn truncated_warning(&self) -> Option<String> {
        let cut: Vec<String> = self
            .sequences
            .iter()
            .filter(|q| q.events.truncated_bytes > 0)
            .map(|q| {
                format!(
                    "{}/{} ({} bytes)",
                    q.split, q.name, q.events.truncated_bytes
                )
            })
            .collect();
        (!cut.is_empty()).then(|| {
            format!(
                "warning: {} recording(s) end in an incomplete RAW word — the file was cut (an interrupted recording or copy?); the complete words before it were used: {}",
                cut.len(),
                cut.join(", ")
            )
        })
    }
}
