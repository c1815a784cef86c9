//! `evdet bench repr`: stacked-histogram throughput (one thread and all threads, clustered and uniform
//! events, full-resolution 1280×720 50 ms windows including buffer zeroing and clipping) and end-to-end
//! preprocessing throughput (h5 read, blosc decode, histograms, blosc-zstd write).

use anyhow::Context;
use evdet_events::event::EventBatch;
use evdet_events::h5_events::{write_raw_events, Compression};
use evdet_events::histogram::{HistogramSpec, StackedHistogram};
use evdet_events::preprocess::{self, DatasetKind, PreprocessConfig};
use evdet_events::testdata::{self, Pattern};
use rayon::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

/// Measure histogram and preprocessing throughput; prints JSON.
///
/// Example:
///   evdet bench repr --events 20000000 --jobs 2
///   evdet bench repr --raw /tmp/ref_bench/raw   # a recording kept by an earlier --save-raw
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Events per synthetic recording.
    #[arg(long, default_value_t = 20_000_000)]
    events: usize,
    /// Recording length in seconds (20 M events over 6 s is the reference benchmark's density).
    #[arg(long, default_value_t = 6.0)]
    duration_s: f64,
    /// Threads for the "all threads" figures and for preprocessing.
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    jobs: usize,
    /// Preprocess this raw dataset folder (train/rec_*) instead of writing a synthetic one.
    #[arg(long)]
    raw: Option<PathBuf>,
    /// Keep the synthetic raw recording in this folder (reused by later runs with --raw).
    #[arg(long)]
    save_raw: Option<PathBuf>,
    /// Skip the histogram measurements (preprocessing only).
    #[arg(long)]
    skip_histogram: bool,
    /// Repetitions of each histogram measurement. The best is reported, and the median beside it: on a
    /// shared machine, neighbours' use of the L3 cache and memory moves single runs by ±30 %.
    #[arg(long, default_value_t = 9)]
    repeat: usize,
}

const HW: (usize, usize) = (720, 1280);
const WINDOW_US: i64 = 50_000;

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

/// Events per second of the best and of the median repetition.
fn histogram_rate(ev: &EventBatch, threads: usize, repeat: usize) -> anyhow::Result<(f64, f64)> {
    let spec = HistogramSpec::rvt(HW.0, HW.1, false);
    let wins = windows(ev);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let per = wins.len().div_ceil(threads).max(1);
    let mut hists: Vec<StackedHistogram> =
        (0..threads).map(|_| StackedHistogram::new(spec)).collect();
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
    let mut secs: Vec<f64> = (0..repeat.max(1)).map(|_| pass()).collect();
    secs.sort_by(f64::total_cmp);
    let rate = |s: f64| ev.len() as f64 / s;
    Ok((rate(secs[0]), rate(secs[secs.len() / 2])))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let duration_us = (args.duration_s * 1e6) as i64;
    // Generate only what is measured: `--raw` with `--skip-histogram` needs no synthetic events at all.
    let generate = |pattern, seed| {
        let needed = !args.skip_histogram || (pattern == Pattern::Clustered && args.raw.is_none());
        if needed {
            eprintln!(
                "generating {} {pattern:?} events at 1280x720 ...",
                args.events
            );
            testdata::recording(args.events, duration_us, HW, pattern, seed)
        } else {
            EventBatch::default()
        }
    };
    let clustered = generate(Pattern::Clustered, 0);
    let uniform = generate(Pattern::Uniform, 1);
    let (mut rates, mut medians) = (serde_json::Map::new(), serde_json::Map::new());
    let measured: &[(&str, usize)] = if args.skip_histogram {
        &[]
    } else {
        &[("1_thread", 1), ("all_threads", args.jobs)]
    };
    for &(label, threads) in measured {
        let c = histogram_rate(&clustered, threads, args.repeat)?;
        let u = histogram_rate(&uniform, threads, args.repeat)?;
        eprintln!(
            "histogram {label}: clustered {:.1} M events/s (median {:.1}), uniform {:.1} M events/s (median {:.1})",
            c.0 / 1e6,
            c.1 / 1e6,
            u.0 / 1e6,
            u.1 / 1e6
        );
        rates.insert(
            label.into(),
            serde_json::json!({"clustered": c.0, "uniform": u.0}),
        );
        medians.insert(
            label.into(),
            serde_json::json!({"clustered": c.1, "uniform": u.1}),
        );
    }
    drop(uniform);

    let tmp = tempfile::tempdir()?;
    let raw = match &args.raw {
        Some(r) => r.clone(),
        None => {
            let root = args
                .save_raw
                .clone()
                .unwrap_or_else(|| tmp.path().join("raw"));
            let dir = root.join("train");
            std::fs::create_dir_all(&dir)?;
            eprintln!(
                "writing a {}-event blosc-zstd recording ...",
                clustered.len()
            );
            write_raw_events(
                &dir.join("rec_0000_td.h5"),
                &clustered,
                HW,
                Compression::BloscZstd(1),
            )?;
            evdet_events::labels::write_bbox_npy(
                &dir.join("rec_0000_bbox.npy"),
                &testdata::labels_30hz(duration_us, HW, 0),
            )?;
            root
        }
    };
    drop(clustered);
    let out = tmp.path().join("pre");
    let cfg = PreprocessConfig {
        dataset: DatasetKind::Gen4,
        ..Default::default()
    };
    let start = Instant::now();
    let summary =
        preprocess::preprocess(&raw, &out, &["train".to_string()], &cfg, args.jobs, &|_| {})
            .context("preprocessing the benchmark recording")?;
    let secs = start.elapsed().as_secs_f64();
    let n = summary.total_events().events_read;
    eprintln!(
        "preprocess (--jobs {}): {n} events in {secs:.2} s = {:.1} M events/s",
        args.jobs,
        n as f64 / secs / 1e6
    );
    let json = serde_json::json!({
        "events": args.events,
        "histogram_events_per_s": rates,
        "histogram_median_events_per_s": medians,
        "histogram_repeat": args.repeat,
        "preprocess_events_per_s": n as f64 / secs,
        "preprocess_seconds": secs,
        "preprocess_jobs": args.jobs,
    });
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}
