//! Raw recordings → RVT's preprocessed layout, following RVT's `scripts/genx/preprocess_dataset.py`
//! (REFERENCE §5.2): label filters, label frames on a 100 ms grid, representation end timestamps, windows
//! `[T − dt, T]` inclusive at both ends, stacked histograms (ds2 optional).
//!
//! Each sequence is written into a hidden temporary folder and renamed when complete, so a killed run
//! never leaves output a later run takes for finished, and a re-run skips finished sequences.

use crate::error::{EventsError, Result};
use crate::event::EventBatch;
use crate::h5_events::{ReadStats, GEN1_HW, GEN4_HW};
use crate::histogram::{HistogramSpec, StackedHistogram};
use crate::labels::{self, BBox};
use crate::layout::{self, ReprWriter, SequenceIndex, SequencePaths};
use crate::recording::{OpenOptions, Recording, RecordingStream};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which label frame boxes are clipped to (DESIGN.md "Labels and the sensor frame").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum DatasetKind {
    /// 1280×720 whatever the file's sensor size (eTraM, Prophesee 1 Mpx).
    Gen4,
    /// 304×240, Prophesee's psee box filter.
    Gen1,
    /// The sensor size read from each file.
    Auto,
}

impl std::str::FromStr for DatasetKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "gen4" => Ok(Self::Gen4),
            "gen1" => Ok(Self::Gen1),
            "auto" => Ok(Self::Auto),
            o => Err(format!(
                "unknown dataset kind '{o}': use gen4, gen1 or auto"
            )),
        }
    }
}

/// Preprocessing options; `Default` is RVT's gen4 configuration with the `auto` label frame.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PreprocessConfig {
    pub dataset: DatasetKind,
    /// Window duration in ms (the representation step stays 50 ms as in RVT).
    pub dt_ms: u32,
    pub nbins: usize,
    pub count_cutoff: u8,
    /// RVT's ds2 (keep odd rows and columns). `None`: yes for gen4 and for `auto` sensors at least
    /// 1280 wide, else no.
    pub downsample_by_factor_2: Option<bool>,
    /// Raw class id → new class id; ids not in the map are dropped. Empty: keep all.
    pub class_map: BTreeMap<u32, u32>,
    /// Prophesee's min diagonal/side filter instead of RVT's conservative 5 px one (default: gen1 only).
    pub psee_filter: Option<bool>,
    pub apply_faulty_bbox_filter: bool,
    /// Events read per chunk.
    pub read_chunk: usize,
    /// Sensor size and RAW clock for opening recordings.
    pub open: OpenOptions,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::Auto,
            dt_ms: 50,
            nbins: 10,
            count_cutoff: 10,
            downsample_by_factor_2: None,
            class_map: BTreeMap::new(),
            psee_filter: None,
            apply_faulty_bbox_filter: true,
            read_chunk: 1 << 20,
            open: OpenOptions::default(),
        }
    }
}

/// The representation step between consecutive histograms (RVT: `ts_step_ev_repr_ms = 50`).
pub const REPR_STEP_US: i64 = 50_000;
/// Label frames are spaced by ~100 ms (`ts_step_frame_ms`).
const FRAME_STEP_MS: i64 = 100;
/// The first label frame is the first label at or after this time (`align_t_ms`).
const ALIGN_T_US: i64 = 100_000;

/// Why boxes were dropped, counted per reason.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BoxDrops {
    pub not_in_class_map: u64,
    pub invalid_nan_or_negative: u64,
    pub outside_frame: u64,
    pub too_small: u64,
    pub faulty_huge: u64,
    pub off_label_clock: u64,
}

/// What one sequence produced.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SequenceSummary {
    pub name: String,
    pub split: String,
    pub skipped_existing: bool,
    pub no_labels_left: bool,
    pub label_frames: usize,
    pub representations: usize,
    pub boxes_per_class: BTreeMap<u32, u64>,
    pub box_drops: BoxDrops,
    pub events: ReadStats,
}

/// Splits, sequences, frames, boxes and repairs of a whole run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PreprocessSummary {
    pub sequences: Vec<SequenceSummary>,
}

impl PreprocessSummary {
    pub fn total_events(&self) -> ReadStats {
        let mut s = ReadStats::default();
        self.sequences.iter().for_each(|q| s.add(&q.events));
        s
    }
}

/// One raw sequence to process.
#[derive(Debug, Clone)]
pub struct RawSequence {
    pub split: String,
    pub name: String,
    /// The recording: `_td.h5`, `.raw` or `_td.dat`.
    pub events: PathBuf,
    pub bbox: PathBuf,
}

/// Names a sequence's recording may have beside `<name>_bbox.npy`, in order of preference.
pub fn recording_names(name: &str) -> [String; 5] {
    [
        format!("{name}_td.h5"),
        format!("{name}_td.dat.h5"),
        format!("{name}.raw"),
        format!("{name}_td.raw"),
        format!("{name}_td.dat"),
    ]
}

/// Finds `<split>/<name>_bbox.npy` pairs with a recording: `<name>_td.h5` (gen1: `_td.dat.h5`),
/// a Prophesee `<name>.raw` (or `_td.raw`) or `<name>_td.dat`.
pub fn discover(raw: &Path, splits: &[String]) -> Result<Vec<RawSequence>> {
    let mut out = Vec::new();
    for split in splits {
        let dir = raw.join(split);
        if !dir.is_dir() {
            return Err(EventsError::format(&dir, "split folder not found"));
        }
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| EventsError::io(&dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "npy"))
            .collect();
        entries.sort();
        for bbox in entries {
            let stem = bbox
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(name) = stem.strip_suffix("_bbox") else {
                continue;
            };
            let events = recording_names(name)
                .into_iter()
                .map(|f| dir.join(f))
                .find(|p| p.exists())
                .ok_or_else(|| {
                    EventsError::format(
                        &bbox,
                        format!(
                            "no recording {name}_td.h5, {name}.raw or {name}_td.dat next to it"
                        ),
                    )
                })?;
            out.push(RawSequence {
                split: split.clone(),
                name: name.to_string(),
                events,
                bbox,
            });
        }
    }
    Ok(out)
}

/// Label frames of a sequence (REFERENCE §5.2 steps 1–3).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelFrames {
    pub index: SequenceIndex,
    pub drops: BoxDrops,
}

/// How raw boxes become label frames: RVT's label filters for one sequence.
#[derive(Debug, Clone, Copy)]
pub struct LabelRules<'a> {
    /// The label frame boxes are clipped to (gen4 720×1280, gen1 240×304, or the sensor).
    pub frame_hw: (usize, usize),
    /// A train-split sequence (RVT drops boxes wider than 90 % of the frame there only).
    pub train_split: bool,
    /// Prophesee's filter: minimum (diagonal, side) in pixels of the frame; `None`: off.
    pub psee_filter: Option<(f32, f32)>,
    /// RVT's faulty-box filter (boxes of at least 5 pixels a side; wide boxes on train).
    pub faulty_filter: bool,
    /// Class ids renumbered (`from → to`; ids absent from a non-empty map are dropped).
    pub class_map: &'a BTreeMap<u32, u32>,
}

/// No class renumbering.
const NO_CLASS_MAP: &BTreeMap<u32, u32> = &BTreeMap::new();

impl LabelRules<'static> {
    /// What preprocessing applies to a val/test sequence by default: the faulty-box filter only.
    pub fn evaluation(frame_hw: (usize, usize)) -> Self {
        LabelRules {
            frame_hw,
            train_split: false,
            psee_filter: None,
            faulty_filter: true,
            class_map: NO_CLASS_MAP,
        }
    }
}

/// Filters the raw boxes and builds label frames and representation timestamps.
pub fn label_frames(raw: &[BBox], path: &Path, rules: &LabelRules) -> Result<Option<LabelFrames>> {
    let LabelRules {
        frame_hw,
        train_split: is_train,
        psee_filter,
        faulty_filter,
        class_map,
    } = *rules;
    let mut drops = BoxDrops::default();
    let (fh, fw) = (frame_hw.0 as f32, frame_hw.1 as f32);
    let max_w = ((9 * frame_hw.1) / 10) as f32;
    let mut boxes: Vec<BBox> = Vec::with_capacity(raw.len());
    for b in raw {
        let mut b = *b;
        if !class_map.is_empty() {
            match class_map.get(&b.class_id) {
                Some(&c) => b.class_id = c,
                None => {
                    drops.not_in_class_map += 1;
                    continue;
                }
            }
        }
        if !(b.x.is_finite() && b.y.is_finite() && b.w.is_finite() && b.h.is_finite())
            || b.w < 0.0
            || b.h < 0.0
        {
            drops.invalid_nan_or_negative += 1;
            continue;
        }
        // crop_to_fov_filter, in float32 like numpy.
        let x1 = b.x.clamp(0.0, fw - 1.0);
        let y1 = b.y.clamp(0.0, fh - 1.0);
        let x2 = (b.x + b.w).clamp(0.0, fw - 1.0);
        let y2 = (b.y + b.h).clamp(0.0, fh - 1.0);
        b.x = x1;
        b.y = y1;
        b.w = x2 - x1;
        b.h = y2 - y1;
        if !(b.w > 0.0 && b.h > 0.0) {
            drops.outside_frame += 1;
            continue;
        }
        let keep = match psee_filter {
            Some((min_diag, min_side)) => {
                b.w * b.w + b.h * b.h >= min_diag * min_diag && b.w >= min_side && b.h >= min_side
            }
            None => b.w >= 5.0 && b.h >= 5.0,
        };
        if !keep {
            drops.too_small += 1;
            continue;
        }
        if is_train && faulty_filter && b.w > max_w {
            drops.faulty_huge += 1;
            continue;
        }
        boxes.push(b);
    }
    if boxes.is_empty() {
        return Ok(None);
    }
    // RVT assumes sorted labels; a stable sort keeps sorted files unchanged.
    boxes.sort_by_key(|b| b.t);
    let mut unique: Vec<i64> = boxes.iter().map(|b| b.t).collect();
    unique.dedup();

    let base_delta = base_delta_us(&unique, path, frame_hw == GEN1_HW)?;
    let first = unique.partition_point(|&t| t < ALIGN_T_US);
    let Some(&t_first) = unique.get(first) else {
        return Err(EventsError::format(
            path,
            format!(
                "no label at or after {} ms: nothing to align label frames to",
                ALIGN_T_US / 1000
            ),
        ));
    };
    let reprs_per_frame = FRAME_STEP_MS * 1000 / REPR_STEP_US;
    let mut frames = vec![t_first];
    let mut reprs_between = Vec::new();
    for &ts in &unique[first + 1..] {
        let reference = *frames.last().unwrap_or(&t_first);
        let diff = ts - reference;
        // numpy round(): half to even.
        let count = (diff as f64 / base_delta as f64).round_ties_even() as i64;
        if (diff - count * base_delta).abs() <= 2000 {
            if count <= 0 {
                return Err(EventsError::format(path, format!("label clock: timestamp {ts} is not after the previous label frame {reference}")));
            }
            frames.push(ts);
            reprs_between.push(count * reprs_per_frame);
        }
    }
    if let Some(d) = frames.windows(2).map(|w| w[1] - w[0]).min() {
        if d <= 98_000 {
            return Err(EventsError::format(
                path,
                format!("label frames only {d} µs apart (must be > 98 ms)"),
            ));
        }
    }
    let mut out_labels = Vec::new();
    let mut frame_start = Vec::with_capacity(frames.len());
    for &f in &frames {
        let a = boxes.partition_point(|b| b.t < f);
        let e = boxes.partition_point(|b| b.t <= f);
        frame_start.push(out_labels.len() as i64);
        out_labels.extend_from_slice(&boxes[a..e]);
    }
    drops.off_label_clock = (boxes.len() - out_labels.len()) as u64;

    let repr_ts = repr_timestamps(&frames, &reprs_between);
    let oi2ri: Vec<i64> = frames
        .iter()
        .map(|f| repr_ts.partition_point(|&t| t < *f) as i64)
        .collect();
    Ok(Some(LabelFrames {
        index: SequenceIndex {
            repr_timestamps_us: repr_ts,
            objframe_idx_2_repr_idx: oi2ri,
            label_timestamps_us: frames,
            objframe_idx_2_label_idx: frame_start,
            labels: out_labels,
        },
        drops,
    }))
}

/// The ~100 ms label frame spacing: 3× (30 Hz) or 6× (60 Hz) the median label interval; gen1: 250 ms.
fn base_delta_us(unique: &[i64], path: &Path, gen1: bool) -> Result<i64> {
    if gen1 {
        return Ok(250_000);
    }
    if unique.len() < 2 {
        return Err(EventsError::format(
            path,
            "label clock: fewer than two label timestamps, cannot measure the label rate",
        ));
    }
    let mut diffs: Vec<i64> = unique.windows(2).map(|w| w[1] - w[0]).collect();
    diffs.sort_unstable();
    let n = diffs.len();
    let median = if n % 2 == 1 {
        diffs[n / 2] as f64
    } else {
        (diffs[n / 2 - 1] + diffs[n / 2]) as f64 / 2.0
    };
    let hz = (1e6 / median).round_ties_even() as i64;
    match hz {
        30 => Ok((3.0 * median) as i64),
        60 => Ok((6.0 * median) as i64),
        _ => Err(EventsError::format(
            path,
            format!("label clock: labels arrive at {hz} Hz (median interval {median} µs); expected 30 or 60 Hz"),
        )),
    }
}

/// Representation end timestamps (REFERENCE §5.2 step 3).
fn repr_timestamps(frames: &[i64], reprs_between: &[i64]) -> Vec<i64> {
    let f0 = frames[0];
    let mut before: Vec<i64> = std::iter::successors(Some(f0), |&t| Some(t - REPR_STEP_US))
        .take_while(|&t| t > 0)
        .collect();
    before.reverse();
    let mut out: Vec<i64> = if before.len() >= 2 {
        before[1..before.len() - 1].to_vec()
    } else {
        Vec::new()
    };
    for (i, (&n, w)) in reprs_between.iter().zip(frames.windows(2)).enumerate() {
        let (a, b) = (w[0], w[1]);
        let last = i + 1 == reprs_between.len();
        let edges = linspace_i64(a, b, n as usize + 1);
        out.extend_from_slice(if last {
            &edges
        } else {
            &edges[..edges.len() - 1]
        });
    }
    if frames.len() == 1 {
        out.push(f0);
    }
    out
}

/// `np.asarray(np.linspace(a, b, num), dtype='int64')`: float64 steps, truncated, exact endpoint.
fn linspace_i64(a: i64, b: i64, num: usize) -> Vec<i64> {
    if num == 1 {
        return vec![a];
    }
    let step = (b - a) as f64 / (num - 1) as f64;
    let mut v: Vec<i64> = (0..num)
        .map(|i| (i as f64 * step + a as f64) as i64)
        .collect();
    v[num - 1] = b;
    v
}

/// The sequences under `raw/<split>/` and the events they hold, read from the headers (for a progress
/// bar's length).
pub fn expected_events(
    raw: &Path,
    splits: &[String],
    open: crate::recording::OpenOptions,
) -> Result<(usize, u64)> {
    let seqs = discover(raw, splits)?;
    let mut total = 0;
    for s in &seqs {
        total += crate::recording::Recording::open(&s.events, open)?.event_count_hint();
    }
    Ok((seqs.len(), total))
}

/// Processes every sequence under `raw/<split>/` into `out/<split>/<name>/`, `jobs` threads in all.
/// `progress` receives the number of events read as work advances (for a progress bar). `out` is
/// created and checked for writing first; a run that fails before writing anything removes the
/// folder it created, so no empty folder is mistaken for a dataset (finished sequences stay:
/// preprocessing resumes from them).
pub fn preprocess(
    raw: &Path,
    out: &Path,
    splits: &[String],
    cfg: &PreprocessConfig,
    jobs: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PreprocessSummary> {
    if cfg.nbins == 0 || cfg.dt_ms == 0 {
        return Err(EventsError::format(
            raw,
            format!(
                "preprocessing needs at least one bin and a window of at least 1 ms (nbins {}, dt_ms {})",
                cfg.nbins, cfg.dt_ms
            ),
        ));
    }
    let created = !out.exists();
    let result = (|| {
        std::fs::create_dir_all(out).map_err(|e| {
            EventsError::format(out, format!("cannot create the output folder: {e}"))
        })?;
        let probe = out.join(".evdet_write_test");
        std::fs::write(&probe, b"")
            .map_err(|e| EventsError::format(out, format!("output folder is not writable: {e}")))?;
        let _ = std::fs::remove_file(&probe);
        let seqs = discover(raw, splits)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.max(1))
            .build()
            .map_err(|e| EventsError::format(out, format!("cannot start {jobs} threads: {e}")))?;
        let results: Vec<Result<SequenceSummary>> = pool.install(|| {
            seqs.par_iter()
                .map(|s| process_sequence(s, out, cfg, progress))
                .collect()
        });
        let mut summary = PreprocessSummary::default();
        for r in results {
            summary.sequences.push(r?);
        }
        Ok(summary)
    })();
    if result.is_err() && created && is_empty_tree(out) {
        let _ = std::fs::remove_dir_all(out);
    }
    result
}

/// True when `dir` holds no files, only (possibly nested) empty folders.
fn is_empty_tree(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .all(|e| e.file_type().is_ok_and(|t| t.is_dir()) && is_empty_tree(&e.path())),
        Err(_) => false,
    }
}

/// Processes one sequence (skipped when its output folder already exists).
pub fn process_sequence(
    seq: &RawSequence,
    out: &Path,
    cfg: &PreprocessConfig,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<SequenceSummary> {
    let mut summary = SequenceSummary {
        name: seq.name.clone(),
        split: seq.split.clone(),
        ..Default::default()
    };
    let split_dir = out.join(&seq.split);
    let final_dir = split_dir.join(&seq.name);
    if final_dir.is_dir() {
        summary.skipped_existing = true;
        return Ok(summary);
    }
    std::fs::create_dir_all(&split_dir).map_err(|e| EventsError::io(&split_dir, e))?;

    let events = Recording::open(&seq.events, cfg.open)?;
    if events.event_count_hint() == 0 {
        return Err(EventsError::format(
            &seq.events,
            "the recording holds no events",
        ));
    }
    let sensor_hw = events.sensor_hw_or(match cfg.dataset {
        DatasetKind::Gen1 => GEN1_HW,
        _ => GEN4_HW,
    })?;
    let frame_hw = match cfg.dataset {
        DatasetKind::Gen4 => GEN4_HW,
        DatasetKind::Gen1 => GEN1_HW,
        DatasetKind::Auto => sensor_hw,
    };
    let ds2 = match cfg.downsample_by_factor_2 {
        Some(ds2) => ds2,
        None => match cfg.dataset {
            DatasetKind::Gen4 => true,
            DatasetKind::Gen1 => false,
            DatasetKind::Auto => sensor_hw.1 >= 1280,
        },
    };
    let psee = cfg.psee_filter.unwrap_or(cfg.dataset == DatasetKind::Gen1);
    let psee = psee.then(|| {
        if frame_hw == GEN1_HW {
            (30.0, 10.0)
        } else {
            (60.0, 20.0)
        }
    });

    let raw_boxes = labels::read_bbox_npy(&seq.bbox)?;
    if raw_boxes.is_empty() {
        return Err(EventsError::format(
            &seq.bbox,
            "the label file holds no boxes",
        ));
    }
    let rules = LabelRules {
        frame_hw,
        train_split: seq.split == "train",
        psee_filter: psee,
        faulty_filter: cfg.apply_faulty_bbox_filter,
        class_map: &cfg.class_map,
    };
    let Some(frames) = label_frames(&raw_boxes, &seq.bbox, &rules)? else {
        summary.no_labels_left = true;
        summary.box_drops.outside_frame = raw_boxes.len() as u64;
        return Ok(summary);
    };
    summary.box_drops = frames.drops.clone();
    for b in &frames.index.labels {
        *summary.boxes_per_class.entry(b.class_id).or_default() += 1;
    }
    summary.label_frames = frames.index.label_timestamps_us.len();
    summary.representations = frames.index.repr_timestamps_us.len();

    // The sequence folder appears under its name only when complete; a killed run leaves a hidden
    // temporary folder that the next run replaces.
    evdet_atomic::replace_dir(&final_dir, |tmp_dir| {
        let paths = SequencePaths::new(tmp_dir, cfg.dt_ms, cfg.nbins, ds2);
        paths.create_dirs()?;
        frames.index.write(&paths)?;
        let spec = HistogramSpec {
            nbins: cfg.nbins,
            count_cutoff: cfg.count_cutoff,
            height: sensor_hw.0,
            width: sensor_hw.1,
            downsample_by_factor_2: ds2,
        };
        summary.events = write_histograms(
            &events,
            &paths,
            &frames.index.repr_timestamps_us,
            cfg,
            spec,
            progress,
        )?;
        Ok::<_, EventsError>(())
    })?;
    Ok(summary)
}

/// Reads chunks until one ends after `last_t` or the file ends; `have` is the last time already read.
fn read_until(
    stream: &mut RecordingStream,
    exhausted: &mut bool,
    last_t: i64,
    mut have: i64,
) -> Result<Vec<EventBatch>> {
    let mut chunks = Vec::new();
    while !*exhausted && have <= last_t {
        match stream.next_chunk()? {
            Some(c) => {
                have = c.t.last().copied().unwrap_or(have);
                chunks.push(c);
            }
            None => *exhausted = true,
        }
    }
    Ok(chunks)
}

/// Streams the events once, computing the histogram of every window `[T − dt, T]` and writing it.
fn write_histograms(
    file: &Recording,
    paths: &SequencePaths,
    repr_ts: &[i64],
    cfg: &PreprocessConfig,
    spec: HistogramSpec,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ReadStats> {
    let (oh, ow) = spec.out_hw();
    let writer = ReprWriter::create(&paths.repr_h5, repr_ts.len(), (spec.channels(), oh, ow))?;
    let mut stream = file.stream((spec.height, spec.width), cfg.read_chunk)?;
    let dt = cfg.dt_ms as i64 * 1000;
    let mut buf = EventBatch::default();
    let mut exhausted = false;
    // Windows are computed in batches, a run of consecutive windows per thread, each thread reusing one
    // histogram buffer (sparse zeroing only pays across consecutive windows).
    let threads = rayon::current_num_threads().max(1);
    let batch = threads * 8;
    let mut hists: Vec<StackedHistogram> =
        (0..threads).map(|_| StackedHistogram::new(spec)).collect();
    let mut reported = 0u64;
    let batches: Vec<&[i64]> = repr_ts.chunks(batch).collect();
    if let Some(first) = batches.first() {
        let last_t = *first.last().unwrap_or(&0);
        for c in read_until(&mut stream, &mut exhausted, last_t, i64::MIN)? {
            buf.extend(&c);
        }
    }
    for (b, ts) in batches.iter().enumerate() {
        let windows: Vec<(usize, usize)> = ts
            .iter()
            .map(|&t| {
                (
                    buf.t.partition_point(|&e| e < t - dt),
                    buf.t.partition_point(|&e| e <= t),
                )
            })
            .collect();
        let per = windows.len().div_ceil(hists.len()).max(1);
        // The next batch's events are read on a thread of their own while the pool computes and
        // compresses this one: reading (HDF5 decompression) is serial and would otherwise idle the cores.
        let next_last_t = batches.get(b + 1).and_then(|n| n.last().copied());
        let have = buf.t.last().copied().unwrap_or(i64::MIN);
        let (chunks, ahead) = std::thread::scope(|scope| {
            let reader = next_last_t.map(|last_t| {
                let (stream, exhausted) = (&mut stream, &mut exhausted);
                scope.spawn(move || read_until(stream, exhausted, last_t, have))
            });
            let chunks: Vec<Vec<u8>> = hists
                .par_iter_mut()
                .zip(windows.par_chunks(per))
                .flat_map_iter(|(h, ws)| {
                    ws.iter()
                        .map(|&(a, e)| layout::compress_chunk(h.compute_sorted(buf.slice(a..e))))
                        .collect::<Vec<_>>()
                })
                .collect();
            let ahead = match reader {
                Some(r) => r.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                None => Ok(Vec::new()),
            };
            (chunks, ahead)
        });
        for (i, c) in chunks.iter().enumerate() {
            writer.write_compressed(b * batch + i, c)?;
        }
        // Keep only what later windows can still reach, then append what was read ahead.
        if let Some(&next) = batches.get(b + 1).and_then(|n| n.first()) {
            let keep_from = buf.t.partition_point(|&e| e < next - dt);
            buf.drain_front(keep_from);
        }
        for c in ahead? {
            buf.extend(&c);
        }
        progress(stream.stats.events_read - reported);
        reported = stream.stats.events_read;
    }
    // Count the events after the last window too, so the summary covers the whole file.
    while stream.next_chunk()?.is_some() {}
    progress(stream.stats.events_read - reported);
    writer.finish()?;
    Ok(stream.stats)
}

/// eTraM's 8 classes onto its 3 (DESIGN.md "Classes"): pedestrian → pedestrian; car, bus, truck,
/// tram → vehicle; bicycle, motorbike, wheelchair → micromobility.
pub const ETRAM_8_TO_3: [(u32, u32); 8] = [
    (0, 0),
    (1, 1),
    (2, 2),
    (3, 1),
    (4, 2),
    (5, 1),
    (6, 1),
    (7, 2),
];

/// A class map as the `--class-map` flag writes it: `etram8to3`, or `FROM:TO` pairs separated by
/// commas (`0:0,1:1,3:1`). Errors name the pair at fault.
pub fn parse_class_map(s: &str) -> std::result::Result<BTreeMap<u32, u32>, String> {
    if s == "etram8to3" {
        return Ok(ETRAM_8_TO_3.into_iter().collect());
    }
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (a, b) = pair
                .split_once(':')
                .ok_or_else(|| format!("--class-map: '{pair}' is not FROM:TO"))?;
            let id = |v: &str| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("--class-map: bad class id '{v}'"))
            };
            Ok((id(a)?, id(b)?))
        })
        .collect()
}
