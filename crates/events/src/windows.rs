//! Windows of events for streaming inference, one `[C, H, W]` stacked histogram per window in time
//! order: from a raw recording (histograms computed on the fly, windows ending at multiples of dt, or
//! where preprocessing would end them when aligned to the labels) or from a preprocessed sequence (its
//! stored histograms). The ground truth of a window, when the input has labels, comes with it in
//! histogram pixels.

use crate::error::{EventsError, Result};
use crate::histogram::{HistogramSpec, StackedHistogram};
use crate::labels::{read_bbox_npy, BBox};
use crate::layout::{self, SequenceIndex, SequencePaths};
use crate::preprocess::{label_frames, LabelRules};
use crate::recording::{OpenOptions, Recording, RecordingStream};
use crate::EventBatch;
use std::path::{Path, PathBuf};

/// One window of events, ready for the network.
pub struct Window {
    /// End of the window (µs).
    pub t_us: i64,
    /// `[C, H, W]` u8 histogram.
    pub hist: Vec<u8>,
    /// Ground truth of this window, in network-input pixels, when the input has labels.
    pub gt: Option<Vec<BBox>>,
}

/// What the network needs to know about the histograms a checkpoint was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowParams {
    /// Window length in milliseconds.
    pub dt_ms: u32,
    pub nbins: usize,
    /// Whether histograms are downsampled by 2 (RVT's `downsample_by_factor_2`).
    pub downsample_by_factor_2: bool,
}

impl WindowParams {
    /// Factor from histogram pixels to sensor pixels.
    pub fn scale(&self) -> f32 {
        if self.downsample_by_factor_2 {
            2.0
        } else {
            1.0
        }
    }
}

/// Windows of a raw recording, computed on the fly: ends at every multiple of dt from the first
/// event on (or, aligned to labels, at the representation times preprocessing would choose), each
/// window `[end − dt, end]` inclusive at both ends as preprocessing makes them.
pub struct RawWindows {
    stream: RecordingStream,
    pub hist: StackedHistogram,
    buf: EventBatch,
    exhausted: bool,
    /// Window end times, ascending, and the next one to compute.
    ends: Vec<i64>,
    pos: usize,
    dt: i64,
    labels: Vec<BBox>,
    label_scale: f32,
}

/// Which part of a recording to run on: windows whose end time lies in `[start, end]` (µs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeSpan {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl TimeSpan {
    fn contains(&self, t: i64) -> bool {
        self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t <= e)
    }
}

impl RawWindows {
    /// `default_sensor_hw` is used when an HDF5 or DAT file does not store its sensor size (a RAW
    /// file must say, or `opts` give it).
    pub fn open(
        path: &Path,
        rp: &WindowParams,
        default_sensor_hw: (usize, usize),
        align_to_labels: bool,
        opts: OpenOptions,
        span: TimeSpan,
    ) -> Result<Self> {
        let file = Recording::open(path, opts)?;
        let sensor_hw = file.sensor_hw_or(default_sensor_hw)?;
        let Some((first, last)) = file.time_range(sensor_hw)? else {
            return Err(EventsError::format(path, "the recording has no events"));
        };
        let dt = rp.dt_ms as i64 * 1000;
        let first_end = (first.div_euclid(dt) + 1) * dt;
        let last_end = last.max(first).div_euclid(dt) * dt + dt;
        let spec = HistogramSpec {
            nbins: rp.nbins,
            count_cutoff: 10,
            height: sensor_hw.0,
            width: sensor_hw.1,
            downsample_by_factor_2: rp.downsample_by_factor_2,
        };
        let labels_path = bbox_path_for(path);
        let labels = match &labels_path {
            Some(p) if p.exists() => read_bbox_npy(p)?,
            _ => Vec::new(),
        };
        let mut ends = if align_to_labels {
            let Some(lp) = labels_path.filter(|p| p.exists()) else {
                return Err(EventsError::format(
                    path,
                    "aligning windows to labels needs the recording's <seq>_bbox.npy beside it",
                ));
            };
            // Preprocessing's rules for a val/test recording with default filters, the label frame
            // being the sensor (`--dataset auto`).
            let frames = label_frames(&labels, &lp, &LabelRules::evaluation(sensor_hw))?
                .ok_or_else(|| EventsError::format(&lp, "no label frame survives the filters"))?;
            frames.index.repr_timestamps_us
        } else {
            (0..)
                .map(|k| first_end + k * dt)
                .take_while(|&e| e <= last_end)
                .collect()
        };
        ends.retain(|&e| span.contains(e));
        if ends.is_empty() {
            return Err(EventsError::format(
                path,
                format!(
                    "no window ends inside the time span asked (the recording's events run from \
                     {first} to {last} µs)"
                ),
            ));
        }
        let mut stream = file.stream(sensor_hw, 1 << 20)?;
        if span.start.is_some() {
            stream.skip_to(ends[0] - dt)?;
        }
        Ok(Self {
            stream,
            hist: StackedHistogram::new(spec),
            buf: EventBatch::default(),
            exhausted: false,
            ends,
            pos: 0,
            dt,
            labels,
            label_scale: rp.scale(),
        })
    }

    /// The stream's counts so far (events read, dropped, repaired).
    pub fn read_stats(&self) -> crate::h5_events::ReadStats {
        self.stream.stats
    }

    pub fn num_windows(&self) -> u64 {
        (self.ends.len() - self.pos) as u64
    }

    pub fn next_window(&mut self) -> Result<Option<Window>> {
        let Some(&end) = self.ends.get(self.pos) else {
            return Ok(None);
        };
        while !self.exhausted && self.buf.t.last().is_none_or(|&t| t <= end) {
            match self.stream.next_chunk()? {
                Some(c) => self.buf.extend(&c),
                None => self.exhausted = true,
            }
        }
        let a = self.buf.t.partition_point(|&e| e < end - self.dt);
        let b = self.buf.t.partition_point(|&e| e <= end);
        // The stream repairs decreasing timestamps, so the buffer is sorted (events before a skip
        // target may be fewer, never out of order).
        let hist = self.hist.compute_sorted(self.buf.slice(a..b)).to_vec();
        self.pos += 1;
        // Events before the next window's start are never needed again.
        if let Some(&next) = self.ends.get(self.pos) {
            let keep = self.buf.t.partition_point(|&e| e < next - self.dt);
            self.buf.drain_front(keep);
        }
        let gt = (!self.labels.is_empty()).then(|| {
            // The last label time stamp inside this window, if any.
            let lo = self.labels.partition_point(|l| l.t <= end - self.dt);
            let hi = self.labels.partition_point(|l| l.t <= end);
            let t_last = self.labels[lo..hi].last().map(|l| l.t);
            self.labels[lo..hi]
                .iter()
                .filter(|l| Some(l.t) == t_last)
                .map(|l| scale_box(l, 1.0 / self.label_scale))
                .collect()
        });
        Ok(Some(Window {
            t_us: end,
            hist,
            gt,
        }))
    }
}

/// `<dir>/<seq>_td.h5` (or `<seq>.raw`, `<seq>_td.raw`, `<seq>_td.dat`) → `<dir>/<seq>_bbox.npy`.
pub fn bbox_path_for(td: &Path) -> Option<PathBuf> {
    Some(td.with_file_name(format!("{}_bbox.npy", sequence_name(td)?)))
}

/// The sequence name of a recording file: its name without `_td.h5`, `_td.dat.h5`, `_td.raw`,
/// `.raw`, `_td.dat` or `.dat`.
pub fn sequence_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    [
        "_td.dat.h5",
        "_td.h5",
        "_td.raw",
        "_td.dat",
        ".raw",
        ".dat",
        ".h5",
    ]
    .iter()
    .find_map(|suffix| name.strip_suffix(suffix))
    .map(str::to_string)
}

fn scale_box(b: &BBox, s: f32) -> BBox {
    BBox {
        x: b.x * s,
        y: b.y * s,
        w: b.w * s,
        h: b.h * s,
        ..*b
    }
}

/// Windows of a preprocessed sequence, read in chunks of its stored histograms.
pub struct SequenceWindows {
    paths: SequencePaths,
    index: SequenceIndex,
    repr_to_frame: std::collections::HashMap<usize, usize>,
    pos: usize,
    /// One past the last window to return.
    end: usize,
    cache: Vec<u8>,
    cache_start: usize,
    cache_len: usize,
    frame_len: usize,
    label_scale: f32,
}

impl SequenceWindows {
    pub fn open(dir: &Path, rp: &WindowParams) -> Result<Self> {
        let paths = SequencePaths::new(dir, rp.dt_ms, rp.nbins, rp.downsample_by_factor_2);
        if !paths.repr_h5.exists() {
            return Err(EventsError::format(
                dir,
                format!(
                    "not a preprocessed sequence for these windows (no {})",
                    paths.repr_h5.display()
                ),
            ));
        }
        let index = SequenceIndex::read(&paths)?;
        let n = index.repr_timestamps_us.len();
        let shape = layout::repr_shape(&paths.repr_h5)?;
        let repr_to_frame = index.repr_to_frame();
        Ok(Self {
            frame_len: shape[1] * shape[2] * shape[3],
            paths,
            index,
            repr_to_frame,
            pos: 0,
            end: n,
            cache: Vec::new(),
            cache_start: 0,
            cache_len: 0,
            label_scale: rp.scale(),
        })
    }

    pub fn num_windows(&self) -> u64 {
        (self.end - self.pos) as u64
    }

    /// Keeps only the windows ending inside `span`.
    pub fn restrict(&mut self, span: TimeSpan) {
        let ts = &self.index.repr_timestamps_us;
        self.pos = span.start.map_or(0, |s| ts.partition_point(|&t| t < s));
        self.end = span
            .end
            .map_or(ts.len(), |e| ts.partition_point(|&t| t <= e));
        self.end = self.end.max(self.pos);
    }

    pub fn next_window(&mut self) -> Result<Option<Window>> {
        let n = self.end;
        if self.pos >= n {
            return Ok(None);
        }
        if self.pos >= self.cache_start + self.cache_len || self.pos < self.cache_start {
            let end = (self.pos + 32).min(n);
            let (data, _) = layout::read_repr_range(&self.paths.repr_h5, self.pos, end)?;
            self.cache = data;
            self.cache_start = self.pos;
            self.cache_len = end - self.pos;
        }
        let off = (self.pos - self.cache_start) * self.frame_len;
        let hist = self.cache[off..off + self.frame_len].to_vec();
        let gt = self.repr_to_frame.get(&self.pos).map(|&f| {
            self.index
                .frame_labels(f)
                .iter()
                .map(|l| scale_box(l, 1.0 / self.label_scale))
                .collect()
        });
        let t_us = self.index.repr_timestamps_us[self.pos];
        self.pos += 1;
        Ok(Some(Window { t_us, hist, gt }))
    }
}

/// The windows of a raw recording or of a preprocessed sequence.
pub enum WindowSource {
    Raw(Box<RawWindows>),
    Sequence(Box<SequenceWindows>),
}

impl WindowSource {
    /// A recording file or a preprocessed sequence folder, whichever `input` is.
    /// `default_sensor_hw` is used for a recording that does not store its sensor size.
    pub fn open(
        input: &Path,
        rp: &WindowParams,
        default_sensor_hw: (usize, usize),
        align_to_labels: bool,
        opts: OpenOptions,
        span: TimeSpan,
    ) -> Result<Self> {
        if input.is_dir() {
            let mut s = SequenceWindows::open(input, rp)?;
            s.restrict(span);
            Ok(Self::Sequence(Box::new(s)))
        } else if input.is_file() {
            Ok(Self::Raw(Box::new(RawWindows::open(
                input,
                rp,
                default_sensor_hw,
                align_to_labels,
                opts,
                span,
            )?)))
        } else {
            Err(EventsError::format(
                input,
                "no such file or folder (give a recording (_td.h5, .raw, .dat) or a preprocessed \
                 sequence folder)",
            ))
        }
    }

    /// The next window, `None` after the last.
    pub fn next_window(&mut self) -> Result<Option<Window>> {
        match self {
            WindowSource::Raw(s) => s.next_window(),
            WindowSource::Sequence(s) => s.next_window(),
        }
    }
    /// Windows left.
    pub fn num_windows(&self) -> u64 {
        match self {
            WindowSource::Raw(s) => s.num_windows(),
            WindowSource::Sequence(s) => s.num_windows(),
        }
    }
}
