//! `evdet synth --describe DIR`: what a raw dataset (real or synthetic) holds — per split and class the box
//! and track counts and the small / medium / large mix, and the event rates.
//!
//! Sizes are measured where the network sees them (DESIGN.md): boxes are clipped to the sensor and, for
//! sensors at least 1280 wide (which RVT downsamples by 2), halved; COCO's limits apply there (small
//! < 32², medium < 96² px²). Only file headers and the first and last events are read, so describing
//! hours of recordings takes seconds.

use evdet_events::error::{EventsError, Result};
use evdet_events::h5_events::GEN4_HW;
use evdet_events::labels::read_bbox_npy;
use evdet_events::preprocess;
use evdet_events::recording::{OpenOptions, Recording};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// COCO's size limits (areas in network-input px²).
pub const SMALL_MAX_AREA: f64 = 32.0 * 32.0;
pub const MEDIUM_MAX_AREA: f64 = 96.0 * 96.0;

/// Boxes of one class.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ClassStats {
    pub boxes: u64,
    pub tracks: u64,
    pub small: u64,
    pub medium: u64,
    pub large: u64,
    /// Mean box width and height, network-input px.
    pub mean_w: f64,
    pub mean_h: f64,
}

impl ClassStats {
    fn add(&mut self, o: &ClassStats) {
        let n = (self.boxes + o.boxes) as f64;
        if n > 0.0 {
            self.mean_w = (self.mean_w * self.boxes as f64 + o.mean_w * o.boxes as f64) / n;
            self.mean_h = (self.mean_h * self.boxes as f64 + o.mean_h * o.boxes as f64) / n;
        }
        self.boxes += o.boxes;
        self.tracks += o.tracks;
        self.small += o.small;
        self.medium += o.medium;
        self.large += o.large;
    }
}

/// One recording.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SequenceDescription {
    pub split: String,
    pub name: String,
    /// Sensor (height, width) from the file, else Gen4's.
    pub sensor_hw: (usize, usize),
    /// Network-input px per sensor px: 0.5 when RVT downsamples (width ≥ 1280), else 1.
    pub network_scale: f64,
    pub events: u64,
    /// Time from the first to the last event, seconds.
    pub duration_s: f64,
    pub event_rate: f64,
    /// Distinct label timestamps.
    pub label_times: u64,
    pub boxes: u64,
    /// Boxes lying entirely outside the sensor (not counted in the classes).
    pub boxes_outside: u64,
    pub classes: BTreeMap<u32, ClassStats>,
}

/// A split, or the whole dataset (`split = "all"`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SplitDescription {
    pub split: String,
    pub sequences: usize,
    pub events: u64,
    pub duration_s: f64,
    pub event_rate: f64,
    pub label_times: u64,
    pub boxes: u64,
    pub classes: BTreeMap<u32, ClassStats>,
}

impl SplitDescription {
    fn add(&mut self, s: &SequenceDescription) {
        self.sequences += 1;
        self.events += s.events;
        self.duration_s += s.duration_s;
        self.event_rate = self.events as f64 / self.duration_s.max(1e-9);
        self.label_times += s.label_times;
        self.boxes += s.boxes;
        for (c, st) in &s.classes {
            self.classes.entry(*c).or_default().add(st);
        }
    }
}

/// A raw dataset's contents.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Description {
    pub root: PathBuf,
    pub sequences: Vec<SequenceDescription>,
    pub splits: Vec<SplitDescription>,
    pub total: SplitDescription,
}

/// Describes `root`: a folder with `train/`, `val/`, `test/` (any present), or one split folder itself.
pub fn describe(root: &Path, opts: OpenOptions) -> Result<Description> {
    if !root.is_dir() {
        return Err(EventsError::format(
            root,
            "not a folder (expected a raw dataset with train/, val/, test/)",
        ));
    }
    let splits: Vec<String> = super::SPLITS
        .iter()
        .filter(|s| root.join(s).is_dir())
        .map(|s| s.to_string())
        .collect();
    let seqs = if splits.is_empty() {
        // A single split folder: describe it under its own name.
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into());
        let parent = root.parent().unwrap_or(Path::new("."));
        preprocess::discover(parent, &[name])?
    } else {
        preprocess::discover(root, &splits)?
    };
    if seqs.is_empty() {
        return Err(EventsError::format(
            root,
            "no recordings found (expected <split>/<name>_bbox.npy next to <name>_td.h5, <name>.raw \
             or <name>_td.dat)",
        ));
    }
    let mut out = Description {
        root: root.to_path_buf(),
        total: SplitDescription {
            split: "all".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    for seq in &seqs {
        let d = describe_sequence(&seq.split, &seq.name, &seq.events, &seq.bbox, opts)?;
        match out.splits.iter_mut().find(|s| s.split == d.split) {
            Some(s) => s.add(&d),
            None => {
                let mut s = SplitDescription {
                    split: d.split.clone(),
                    ..Default::default()
                };
                s.add(&d);
                out.splits.push(s);
            }
        }
        out.total.add(&d);
        out.sequences.push(d);
    }
    Ok(out)
}

fn describe_sequence(
    split: &str,
    name: &str,
    events: &Path,
    bbox: &Path,
    opts: OpenOptions,
) -> Result<SequenceDescription> {
    let file = Recording::open(events, opts)?;
    let sensor_hw = file.sensor_hw_or(GEN4_HW)?;
    let scale = if sensor_hw.1 >= 1280 { 0.5 } else { 1.0 };
    let summary = file.summary(sensor_hw)?;
    let n = summary.events;
    let duration_s = summary
        .time_range
        .map_or(0.0, |(first, last)| (last - first).max(0) as f64 * 1e-6);
    let boxes = read_bbox_npy(bbox)?;
    let (hf, wf) = (sensor_hw.0 as f64, sensor_hw.1 as f64);
    let mut classes: BTreeMap<u32, ClassStats> = BTreeMap::new();
    let mut tracks: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    let mut times = BTreeSet::new();
    let mut outside = 0;
    for b in &boxes {
        times.insert(b.t);
        let (x0, y0) = ((b.x as f64).max(0.0), (b.y as f64).max(0.0));
        let (x1, y1) = (((b.x + b.w) as f64).min(wf), ((b.y + b.h) as f64).min(hf));
        if !(x1 > x0 && y1 > y0) {
            outside += 1;
            continue;
        }
        let (w, h) = ((x1 - x0) * scale, (y1 - y0) * scale);
        let st = classes.entry(b.class_id).or_default();
        st.mean_w += w;
        st.mean_h += h;
        st.boxes += 1;
        let area = w * h;
        if area < SMALL_MAX_AREA {
            st.small += 1;
        } else if area < MEDIUM_MAX_AREA {
            st.medium += 1;
        } else {
            st.large += 1;
        }
        tracks.entry(b.class_id).or_default().insert(b.track_id);
    }
    for (c, st) in classes.iter_mut() {
        st.mean_w /= st.boxes.max(1) as f64;
        st.mean_h /= st.boxes.max(1) as f64;
        st.tracks = tracks.get(c).map_or(0, |t| t.len() as u64);
    }
    Ok(SequenceDescription {
        split: split.to_string(),
        name: name.to_string(),
        sensor_hw,
        network_scale: scale,
        events: n,
        duration_s,
        event_rate: if duration_s > 0.0 {
            n as f64 / duration_s
        } else {
            0.0
        },
        label_times: times.len() as u64,
        boxes: boxes.len() as u64,
        boxes_outside: outside,
        classes,
    })
}
