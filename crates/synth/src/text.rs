//! The text `evdet synth` prints: what a generation wrote and the description of a dataset.

use crate::{Description, SynthSummary, CLASS_NAMES};

impl SynthSummary {
    /// What was written, sequence by sequence, then the description of the dataset: the lines
    /// `evdet synth` prints.
    pub fn lines(&self) -> Vec<String> {
        let s = self;
        let mut lines = Vec::new();
        let c = &s.config;
        let recorded: f64 = s.sequences.iter().map(|q| q.duration_s).sum();
        lines.push(format!(
        "wrote {} {} sequences ({}x{}, seed {}) to {} in {:.1} s: {recorded:.1} s of recording ({:.2} s per wall second), {:.1} M events",
        s.sequences.len(),
        c.preset.name(),
        c.sensor_hw.1,
        c.sensor_hw.0,
        c.seed,
        s.description.root.display(),
        s.wall_s,
        s.recording_s_per_wall_s,
        s.events as f64 / 1e6
    ));
        for q in &s.sequences {
            lines.push(format!(
            "  {}/{}: {:.1} s, {:.2} M events ({:.2} M ev/s mean, {:.2} M ev/s busiest second), {} boxes",
            q.split,
            q.name,
            q.duration_s,
            q.events as f64 / 1e6,
            q.event_rate / 1e6,
            q.peak_event_rate_1s / 1e6,
            q.boxes
        ));
        }
        lines.extend(s.description.lines());
        lines
    }
}

fn class_name(id: u32) -> String {
    CLASS_NAMES
        .get(id as usize)
        .map_or_else(|| format!("class {id}"), |n| n.to_string())
}

impl Description {
    /// Totals, splits, then the class table of the whole dataset: the lines `evdet synth --describe`
    /// prints.
    pub fn lines(&self) -> Vec<String> {
        let d = self;
        let mut lines = Vec::new();
        let t = &d.total;
        lines.push(format!(
            "{}: {} sequences, {:.1} s, {:.1} M events ({:.2} M ev/s), {} boxes at {} label times",
            d.root.display(),
            t.sequences,
            t.duration_s,
            t.events as f64 / 1e6,
            t.event_rate / 1e6,
            t.boxes,
            t.label_times
        ));
        for s in &d.splits {
            lines.push(format!(
            "  {:<5}: {} sequences, {:.1} s, {:.1} M events ({:.2} M ev/s), {} boxes ({:.1} per label time)",
            s.split,
            s.sequences,
            s.duration_s,
            s.events as f64 / 1e6,
            s.event_rate / 1e6,
            s.boxes,
            s.boxes as f64 / s.label_times.max(1) as f64
        ));
        }
        let scales: std::collections::BTreeSet<String> = d
            .sequences
            .iter()
            .map(|q| format!("{}", q.network_scale))
            .collect();
        lines.push(format!(
        "  box sizes in network-input px (x{} of sensor px; sensors >= 1280 wide are downsampled by 2); small < 32^2, medium < 96^2; class names: eTraM 8-class ids",
        scales.into_iter().collect::<Vec<_>>().join("/")
    ));
        lines.push(format!(
            "  {:<12} {:>8} {:>6} {:>7} {:>7} {:>7} {:>7}  {:>13}",
            "class", "boxes", "share", "tracks", "small", "medium", "large", "mean w x h"
        ));
        let total = t.boxes.max(1) as f64;
        for (c, st) in &t.classes {
            lines.push(format!(
                "  {:<12} {:>8} {:>5.1}% {:>7} {:>7} {:>7} {:>7}  {:>6.1} x {:<5.1}",
                format!("{c} {}", class_name(*c)),
                st.boxes,
                100.0 * st.boxes as f64 / total,
                st.tracks,
                st.small,
                st.medium,
                st.large,
                st.mean_w,
                st.mean_h
            ));
        }
        let (s, m, l) = t.classes.values().fold((0, 0, 0), |a, st| {
            (a.0 + st.small, a.1 + st.medium, a.2 + st.large)
        });
        let n = (s + m + l).max(1) as f64;
        lines.push(format!(
            "  {:<12} {:>8} {:>6} {:>7} {:>6.1}% {:>6.1}% {:>6.1}%",
            "all",
            s + m + l,
            "",
            "",
            100.0 * s as f64 / n,
            100.0 * m as f64 / n,
            100.0 * l as f64 / n
        ));
        lines
    }
}
