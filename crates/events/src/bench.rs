//! Throughput benchmarks of this crate, behind `evdet bench repr` and `evdet bench raw`: the stacked
//! histogram (one thread and all threads, clustered and uniform events, full-resolution 1280×720 50 ms
//! windows including buffer zeroing and clipping), end-to-end preprocessing, and Prophesee RAW decoding
//! and encoding. Each returns a report that serialises to the JSON the `scripts/` comparisons read.

use crate::error::{EventsError, Result};
use crate::event::EventBatch;
use crate::evt::{self, EvtFile, EvtFormat, EvtWriter, TimeOrigin};
use crate::h5_events::{write_raw_events, Compression};
use crate::histogram::{HistogramSpec, StackedHistogram};
use crate::labels::write_bbox_npy;
use crate::layout::SequencePaths;
use crate::preprocess::{self, DatasetKind, PreprocessConfig};
use crate::testdata::{self, Pattern};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The sensor every benchmark recording is drawn on (eTraM's, and Gen4's).
pub const SENSOR_HW: (usize, usize) = (720, 1280);
const WINDOW_US: i64 = 50_000;

/// The median and the range of repeated measurements.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// Of a non-empty set of measurements (an empty one gives NaN everywhere).
    pub fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        let at = |i: usize| v.get(i).copied().unwrap_or(f64::NAN);
        Spread {
            median: at(v.len() / 2),
            min: at(0),
            max: at(v.len().saturating_sub(1)),
        }
    }
}

/// What `histogram_and_preprocess` measures.
#[derive(Debug, Clone)]
pub struct ReprOptions {
    /// Events per synthetic recording.
    pub events: usize,
    /// Recording length in seconds.
    pub duration_s: f64,
    /// Threads for the "all threads" figures and for preprocessing.
    pub jobs: usize,
    /// Preprocess this raw dataset folder (train/rec_*) instead of a synthetic recording.
    pub raw: Option<PathBuf>,
    /// Keep the synthetic raw recording in this folder.
    pub save_raw: Option<PathBuf>,
    /// Preprocessing only.
    pub skip_histogram: bool,
    /// Repetitions of each histogram measurement.
    pub repeat: usize,
}

/// Events per second of the two event patterns.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PatternRates {
    pub clustered: f64,
    pub uniform: f64,
}

/// The result of `histogram_and_preprocess`.
#[derive(Debug, Clone, Serialize)]
pub struct ReprReport {
    pub events: usize,
    /// Best repetition, by thread count (`1_thread`, `all_threads`).
    pub histogram_events_per_s: BTreeMap<String, PatternRates>,
    /// Median repetition: on a shared machine neighbours' use of L3 and memory moves single runs by ±30 %.
    pub histogram_median_events_per_s: BTreeMap<String, PatternRates>,
    pub histogram_repeat: usize,
    pub preprocess_events_per_s: f64,
    pub preprocess_seconds: f64,
    pub preprocess_jobs: usize,
}

/// Start and end index of every 50 ms window of a time-sorted recording.
fn windows(ev: &EventBatch) -> Vec<(usize, usize)> {
    let end = *ev.t.last().unwrap_or(&0);
    let mut out = Vec::new();
    let mut t = WINDOW_US;
    while t <= end + WINDOW_US {
        out.push((
            ev.t.partition_point(|&e| e < t - WINDOW_US),
            ev.t.partition_point(|&e| e < t),
        ));
        t += WINDOW_US;
    }
    out
}

fn thread_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| EventsError::Write(std::io::Error::other(e)))
}

/// Events per second of the best and of the median repetition.
fn histogram_rate(ev: &EventBatch, threads: usize, repeat: usize) -> Result<(f64, f64)> {
    let spec = HistogramSpec::rvt(SENSOR_HW.0, SENSOR_HW.1, false);
    let wins = windows(ev);
    let pool = thread_pool(threads)?;
    let per = wins.len().div_ceil(threads.max(1)).max(1);
    let mut hists: Vec<StackedHistogram> = (0..threads.max(1))
        .map(|_| StackedHistogram::new(spec))
        .collect();
    // Each thread takes a run of consecutive windows with one buffer, as preprocessing does: the sparse
    // zeroing and the line reuse between windows depend on it.
    let mut pass = || {
        let start = Instant::now();
        let checksum: u64 = pool.install(|| {
            hists
                .par_iter_mut()
                .zip(wins.par_chunks(per))
                .map(|(h, run)| {
                    run.iter()
                        .map(|&(a, b)| {
                            h.compute_sorted(ev.slice(a..b))[(a * 7919) % spec.len()] as u64
                        })
                        .sum::<u64>()
                })
                .sum()
        });
        std::hint::black_box(checksum);
        start.elapsed().as_secs_f64()
    };
    // An untimed pass first: the buffers' pages fault in once, as they would early in a long recording.
    pass();
    let secs = Spread::of((0..repeat.max(1)).map(|_| pass()).collect());
    let rate = |s: f64| ev.len() as f64 / s;
    Ok((rate(secs.min), rate(secs.median)))
}

/// Writes `ev` (and 30 Hz labels) as the one recording of `root/train`, blosc-zstd as eTraM ships it.
fn write_h5_recording(root: &Path, ev: &EventBatch, duration_us: i64) -> Result<()> {
    let dir = root.join("train");
    std::fs::create_dir_all(&dir).map_err(|e| EventsError::io(&dir, e))?;
    write_raw_events(
        &dir.join("rec_0000_td.h5"),
        ev,
        SENSOR_HW,
        Compression::BloscZstd(1),
    )?;
    write_bbox_npy(
        &dir.join("rec_0000_bbox.npy"),
        &testdata::labels_30hz(duration_us, SENSOR_HW, 0),
    )
}

/// Stacked-histogram throughput and end-to-end preprocessing throughput (h5 read, blosc decode,
/// histograms, blosc-zstd write). `scratch` holds the temporary files; `note` gets progress lines.
pub fn histogram_and_preprocess(
    opts: &ReprOptions,
    scratch: &Path,
    note: &dyn Fn(&str),
) -> Result<ReprReport> {
    let duration_us = (opts.duration_s * 1e6) as i64;
    // Generate only what is measured: `raw` with `skip_histogram` needs no synthetic events at all.
    let generate = |pattern, seed| {
        let needed = !opts.skip_histogram || (pattern == Pattern::Clustered && opts.raw.is_none());
        if needed {
            note(&format!(
                "generating {} {pattern:?} events at 1280x720 ...",
                opts.events
            ));
            testdata::recording(opts.events, duration_us, SENSOR_HW, pattern, seed)
        } else {
            EventBatch::default()
        }
    };
    let clustered = generate(Pattern::Clustered, 0);
    let uniform = generate(Pattern::Uniform, 1);
    let (mut best, mut median) = (BTreeMap::new(), BTreeMap::new());
    let measured: &[(&str, usize)] = if opts.skip_histogram {
        &[]
    } else {
        &[("1_thread", 1), ("all_threads", opts.jobs)]
    };
    for &(label, threads) in measured {
        let c = histogram_rate(&clustered, threads, opts.repeat)?;
        let u = histogram_rate(&uniform, threads, opts.repeat)?;
        note(&format!(
            "histogram {label}: clustered {:.1} M events/s (median {:.1}), uniform {:.1} M events/s (median {:.1})",
            c.0 / 1e6,
            c.1 / 1e6,
            u.0 / 1e6,
            u.1 / 1e6
        ));
        best.insert(
            label.to_string(),
            PatternRates {
                clustered: c.0,
                uniform: u.0,
            },
        );
        median.insert(
            label.to_string(),
            PatternRates {
                clustered: c.1,
                uniform: u.1,
            },
        );
    }
    drop(uniform);

    let raw = match &opts.raw {
        Some(r) => r.clone(),
        None => {
            let root = opts.save_raw.clone().unwrap_or_else(|| scratch.join("raw"));
            note(&format!(
                "writing a {}-event blosc-zstd recording ...",
                clustered.len()
            ));
            write_h5_recording(&root, &clustered, duration_us)?;
            root
        }
    };
    drop(clustered);
    let cfg = PreprocessConfig {
        dataset: DatasetKind::Gen4,
        ..Default::default()
    };
    let start = Instant::now();
    let summary = preprocess::preprocess(
        &raw,
        &scratch.join("pre"),
        &["train".to_string()],
        &cfg,
        opts.jobs,
        &|_| {},
    )?;
    let secs = start.elapsed().as_secs_f64();
    let n = summary.total_events().events_read;
    note(&format!(
        "preprocess (--jobs {}): {n} events in {secs:.2} s = {:.1} M events/s",
        opts.jobs,
        n as f64 / secs / 1e6
    ));
    Ok(ReprReport {
        events: opts.events,
        histogram_events_per_s: best,
        histogram_median_events_per_s: median,
        histogram_repeat: opts.repeat,
        preprocess_events_per_s: n as f64 / secs,
        preprocess_seconds: secs,
        preprocess_jobs: opts.jobs,
    })
}

/// What `raw_codecs` measures.
#[derive(Debug, Clone)]
pub struct RawOptions {
    /// Events in the camera-like recording.
    pub events: usize,
    /// Its length in seconds.
    pub duration_s: f64,
    /// Rounds of each measurement.
    pub rounds: usize,
    /// Only time decoding, skip the preprocessing comparison.
    pub decode_only: bool,
    /// Keep the generated EVT 3.0 file here.
    pub keep: Option<PathBuf>,
    /// Threads for the preprocessing comparison.
    pub jobs: usize,
}

/// Decoding of one existing file.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeReport {
    pub file: PathBuf,
    pub events: u64,
    pub decode_events_per_s: Spread,
    pub decode_seconds: Spread,
}

/// One EVT format's size and speed.
#[derive(Debug, Clone, Serialize)]
pub struct FormatReport {
    pub bytes: u64,
    pub bytes_per_event: f64,
    pub decode_events_per_s: Spread,
    pub encode_events_per_s: Spread,
}

/// `preprocess` of one recording from `_td.h5` and from `.raw`, alternating.
#[derive(Debug, Clone, Serialize)]
pub struct RawPreprocessReport {
    pub jobs: usize,
    pub from_h5_seconds: Spread,
    pub from_raw_seconds: Spread,
    pub raw_speedup: f64,
    pub identical_output: bool,
}

/// The result of `raw_codecs`.
#[derive(Debug, Clone, Serialize)]
pub struct RawReport {
    pub events: usize,
    pub duration_s: f64,
    pub sensor_hw: (usize, usize),
    pub threads: usize,
    pub rounds: usize,
    /// By format name (`evt2`, `evt21`, `evt3`).
    pub formats: BTreeMap<String, FormatReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<RawPreprocessReport>,
}

/// Decodes `path` on this thread `rounds` times: (events, seconds per round).
fn time_decode(path: &Path, rounds: usize) -> Result<(u64, Vec<f64>)> {
    let f = EvtFile::open(path)?;
    let hw = f.sensor_hw_or(Some(SENSOR_HW))?;
    let mut events = 0;
    let mut secs = Vec::new();
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        let mut r = f.reader(hw, TimeOrigin::Metavision, 1 << 20)?;
        let mut n = 0u64;
        let mut c = EventBatch::default();
        while r.next_chunk_into(&mut c)? {
            n += c.len() as u64;
            std::hint::black_box(&c);
        }
        secs.push(start.elapsed().as_secs_f64());
        events = n;
    }
    Ok((events, secs))
}

/// Decoding speed of an existing `.raw` file on one thread.
pub fn decode_file(path: &Path, rounds: usize) -> Result<DecodeReport> {
    let (n, secs) = time_decode(path, rounds)?;
    Ok(DecodeReport {
        file: path.to_path_buf(),
        events: n,
        decode_events_per_s: Spread::of(secs.iter().map(|s| n as f64 / s).collect()),
        decode_seconds: Spread::of(secs),
    })
}

/// Prophesee RAW decoding and encoding throughput on one thread (EVT 3.0 with vectors, EVT 2.0,
/// EVT 2.1) on a camera-like recording and, unless `decode_only`, `preprocess` of that recording from
/// `.raw` against from `_td.h5` (whose outputs must be identical).
pub fn raw_codecs(opts: &RawOptions, scratch: &Path, note: &dyn Fn(&str)) -> Result<RawReport> {
    let rounds = opts.rounds.max(1);
    let duration_us = (opts.duration_s * 1e6) as i64;
    let t0 = Instant::now();
    let ev = testdata::camera_like(opts.events, duration_us, SENSOR_HW, 1);
    note(&format!(
        "generated {} events in {:.1} s",
        ev.len(),
        t0.elapsed().as_secs_f64()
    ));
    let mut formats = BTreeMap::new();
    for (name, format) in [
        ("evt3", EvtFormat::Evt3),
        ("evt2", EvtFormat::Evt2),
        ("evt21", EvtFormat::Evt21 { legacy: false }),
    ] {
        let path = match (&opts.keep, format) {
            (Some(k), EvtFormat::Evt3) => k.clone(),
            _ => scratch.join(format!("{name}.raw")),
        };
        let mut enc_secs = Vec::new();
        for _ in 0..rounds {
            let start = Instant::now();
            let mut w = EvtWriter::create(&path, format, SENSOR_HW)?;
            // In chunks, as a streaming writer is fed.
            for a in (0..ev.len()).step_by(1 << 20) {
                w.append_slice(ev.slice(a..(a + (1 << 20)).min(ev.len())), &[])?;
            }
            w.finish()?;
            enc_secs.push(start.elapsed().as_secs_f64());
        }
        let bytes = std::fs::metadata(&path)
            .map_err(|e| EventsError::io(&path, e))?
            .len();
        let (n, dec_secs) = time_decode(&path, rounds)?;
        if n != ev.len() as u64 {
            return Err(EventsError::format(
                &path,
                format!("{name}: decoded {n} of {} events", ev.len()),
            ));
        }
        let per_s = |secs: &[f64]| Spread::of(secs.iter().map(|s| n as f64 / s).collect());
        let (dec, enc) = (per_s(&dec_secs), per_s(&enc_secs));
        note(&format!(
            "{name}: {:.2} bytes/event, decode {:.0} M events/s, encode {:.0} M events/s",
            bytes as f64 / n as f64,
            dec.median / 1e6,
            enc.median / 1e6
        ));
        formats.insert(
            name.to_string(),
            FormatReport {
                bytes,
                bytes_per_event: bytes as f64 / n as f64,
                decode_events_per_s: dec,
                encode_events_per_s: enc,
            },
        );
    }
    let mut report = RawReport {
        events: ev.len(),
        duration_s: opts.duration_s,
        sensor_hw: SENSOR_HW,
        threads: 1,
        rounds,
        formats,
        preprocess: None,
    };
    if opts.decode_only {
        return Ok(report);
    }
    // The same recording from .raw (EVT 3.0) and from _td.h5 (blosc-zstd, as eTraM ships it).
    write_h5_recording(&scratch.join("h5"), &ev, duration_us)?;
    let raw_split = scratch.join("raw").join("train");
    std::fs::create_dir_all(&raw_split).map_err(|e| EventsError::io(&raw_split, e))?;
    write_bbox_npy(
        &raw_split.join("rec_0000_bbox.npy"),
        &testdata::labels_30hz(duration_us, SENSOR_HW, 0),
    )?;
    evt::write_evt(
        &raw_split.join("rec_0000.raw"),
        EvtFormat::Evt3,
        SENSOR_HW,
        &ev,
        &[],
    )?;
    drop(ev);
    let cfg = PreprocessConfig {
        downsample_by_factor_2: Some(true),
        ..Default::default()
    };
    let (mut h5_secs, mut raw_secs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternating, so drift of the machine's speed touches both alike.
        for kind in ["h5", "raw"] {
            let start = Instant::now();
            preprocess::preprocess(
                &scratch.join(kind),
                &scratch.join(format!("out_{kind}_{round}")),
                &["train".to_string()],
                &cfg,
                opts.jobs,
                &|_| {},
            )?;
            let s = start.elapsed().as_secs_f64();
            if kind == "h5" {
                &mut h5_secs
            } else {
                &mut raw_secs
            }
            .push(s);
        }
    }
    let histograms = |kind: &str| {
        let seq = scratch.join(format!("out_{kind}_0")).join("train/rec_0000");
        let path = SequencePaths::new(&seq, cfg.dt_ms, cfg.nbins, true).repr_h5;
        std::fs::read(&path).map_err(|e| EventsError::io(&path, e))
    };
    let identical_output = histograms("h5")? == histograms("raw")?;
    if !identical_output {
        return Err(EventsError::format(
            scratch,
            "preprocessing from .raw and from _td.h5 wrote different histograms",
        ));
    }
    let (h5, raw) = (Spread::of(h5_secs), Spread::of(raw_secs));
    note(&format!(
        "preprocess ({} thread{}): from _td.h5 {:.2} s, from .raw {:.2} s (median of {rounds})",
        opts.jobs,
        if opts.jobs == 1 { "" } else { "s" },
        h5.median,
        raw.median,
    ));
    report.preprocess = Some(RawPreprocessReport {
        jobs: opts.jobs,
        from_h5_seconds: h5,
        from_raw_seconds: raw,
        raw_speedup: h5.median / raw.median,
        identical_output,
    });
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_median_and_range() {
        let s = Spread::of(vec![3.0, 1.0, 2.0, 10.0]);
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 10.0));
        assert!(Spread::of(Vec::new()).median.is_nan());
    }

    #[test]
    fn small_raw_benchmark_decodes_every_event_and_preprocesses_identically() {
        let dir = tempfile::tempdir().unwrap();
        let opts = RawOptions {
            events: 20_000,
            duration_s: 0.6,
            rounds: 1,
            decode_only: false,
            keep: None,
            jobs: 1,
        };
        let r = raw_codecs(&opts, dir.path(), &|_| {}).unwrap();
        assert_eq!(r.formats.len(), 3);
        let evt3 = &r.formats["evt3"];
        assert!(evt3.bytes_per_event > 0.5 && evt3.bytes_per_event < 8.0);
        assert!(r.preprocess.as_ref().unwrap().identical_output);
        let d = decode_file(&dir.path().join("evt3.raw"), 1).unwrap();
        assert_eq!(d.events, r.events as u64);
    }

    #[test]
    fn small_repr_benchmark_reports_both_thread_counts() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ReprOptions {
            events: 20_000,
            duration_s: 0.6,
            jobs: 2,
            raw: None,
            save_raw: None,
            skip_histogram: false,
            repeat: 1,
        };
        let r = histogram_and_preprocess(&opts, dir.path(), &|_| {}).unwrap();
        assert_eq!(
            r.histogram_events_per_s.keys().collect::<Vec<_>>(),
            ["1_thread", "all_threads"]
        );
        assert!(r.histogram_events_per_s["1_thread"].clustered > 0.0);
        assert!(r.preprocess_events_per_s > 0.0);
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["histogram_median_events_per_s"]["all_threads"]["uniform"].is_number());
    }
}
