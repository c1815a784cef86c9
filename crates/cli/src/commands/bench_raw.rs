//! `evdet bench raw`: Prophesee RAW decoding and encoding throughput on one thread (EVT 3.0 with
//! vectors, EVT 2.0, EVT 2.1) on a camera-like recording, and `evdet preprocess` of one recording
//! from `.raw` against from `_td.h5`. `scripts/bench_raw.py` times expelliarmus and the `evt3`
//! package on the same file side by side.

use anyhow::Context;
use evdet_events::evt::{EvtFile, EvtFormat, EvtWriter, TimeOrigin};
use evdet_events::h5_events::{write_raw_events, Compression};
use evdet_events::preprocess::{self, PreprocessConfig};
use evdet_events::testdata;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Measure RAW decoding, encoding and preprocessing from .raw; prints JSON.
///
/// Examples:
///   evdet bench raw                                   # 20 M events, 3 rounds
///   evdet bench raw --keep /tmp/bench_evt3.raw        # keep the EVT 3.0 file for scripts/bench_raw.py
///   evdet bench raw --file /tmp/bench_evt3.raw --decode-only
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Events in the camera-like recording.
    #[arg(long, default_value_t = 20_000_000)]
    events: usize,
    /// Its length in seconds.
    #[arg(long, default_value_t = 6.0)]
    duration_s: f64,
    /// Rounds of each measurement; the median and the range are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Decode this .raw file instead of a generated one (with --decode-only: nothing else).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Only time decoding (of --file, or of the generated EVT 3.0 file).
    #[arg(long)]
    decode_only: bool,
    /// Keep the generated EVT 3.0 file here.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Threads for the preprocessing comparison.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
}

const HW: (usize, usize) = (720, 1280);

fn median_range(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    serde_json::json!({"median": v[v.len() / 2], "min": v[0], "max": v[v.len() - 1]})
}

/// Decodes `path` on this thread `rounds` times; (events, seconds per round).
fn time_decode(path: &Path, rounds: usize) -> anyhow::Result<(u64, Vec<f64>)> {
    let f = EvtFile::open(path)?;
    let hw = f.sensor_hw_or(Some(HW))?;
    let mut events = 0;
    let mut secs = Vec::new();
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        let mut r = f.reader(hw, TimeOrigin::Metavision, 1 << 20)?;
        let mut n = 0u64;
        let mut c = evdet_events::EventBatch::default();
        while r.next_chunk_into(&mut c)? {
            n += c.len() as u64;
            std::hint::black_box(&c);
        }
        secs.push(start.elapsed().as_secs_f64());
        events = n;
    }
    Ok((events, secs))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let dir = tempfile::tempdir().context("creating a temporary folder")?;
    if args.decode_only {
        if let Some(file) = &args.file {
            let (n, secs) = time_decode(file, args.rounds)?;
            let rates = secs.iter().map(|s| n as f64 / s).collect();
            let out = serde_json::json!({
                "file": file, "events": n,
                "decode_events_per_s": median_range(rates),
                "decode_seconds": median_range(secs),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(());
        }
    }
    let duration_us = (args.duration_s * 1e6) as i64;
    let t0 = Instant::now();
    let ev = testdata::camera_like(args.events, duration_us, HW, 1);
    eprintln!(
        "generated {} events in {:.1} s",
        ev.len(),
        t0.elapsed().as_secs_f64()
    );
    let mut formats = serde_json::Map::new();
    for (name, format) in [
        ("evt3", EvtFormat::Evt3),
        ("evt2", EvtFormat::Evt2),
        ("evt21", EvtFormat::Evt21 { legacy: false }),
    ] {
        let path = match (&args.keep, format) {
            (Some(k), EvtFormat::Evt3) => k.clone(),
            _ => dir.path().join(format!("{name}.raw")),
        };
        let mut enc_secs = Vec::new();
        for _ in 0..args.rounds {
            let start = Instant::now();
            let mut w = EvtWriter::create(&path, format, HW)?;
            // In chunks, as a streaming writer is fed.
            for a in (0..ev.len()).step_by(1 << 20) {
                w.append_slice(ev.slice(a..(a + (1 << 20)).min(ev.len())), &[])?;
            }
            w.finish()?;
            enc_secs.push(start.elapsed().as_secs_f64());
        }
        let bytes = std::fs::metadata(&path)?.len();
        let (n, dec_secs) = time_decode(&path, args.rounds)?;
        anyhow::ensure!(
            n == ev.len() as u64,
            "{name}: decoded {n} of {} events",
            ev.len()
        );
        eprintln!(
            "{name}: {:.2} bytes/event, decode {:.0} M events/s, encode {:.0} M events/s",
            bytes as f64 / n as f64,
            n as f64 / dec_secs[dec_secs.len() / 2] / 1e6,
            n as f64 / enc_secs[enc_secs.len() / 2] / 1e6
        );
        formats.insert(
            name.to_string(),
            serde_json::json!({
                "bytes": bytes,
                "bytes_per_event": bytes as f64 / n as f64,
                "decode_events_per_s": median_range(dec_secs.iter().map(|s| n as f64 / s).collect()),
                "encode_events_per_s": median_range(enc_secs.iter().map(|s| n as f64 / s).collect()),
            }),
        );
    }
    let mut out = serde_json::json!({
        "events": ev.len(),
        "duration_s": args.duration_s,
        "sensor_hw": HW,
        "threads": 1,
        "rounds": args.rounds,
        "formats": formats,
    });
    if args.decode_only {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    // The same recording from .raw (EVT 3.0) and from _td.h5 (blosc-zstd, as eTraM ships it).
    let labels = testdata::labels_30hz(duration_us, HW, 0);
    for (kind, file) in [("h5", "rec_0000_td.h5"), ("raw", "rec_0000.raw")] {
        let split = dir.path().join(kind).join("train");
        std::fs::create_dir_all(&split)?;
        evdet_events::labels::write_bbox_npy(&split.join("rec_0000_bbox.npy"), &labels)?;
        if kind == "h5" {
            write_raw_events(&split.join(file), &ev, HW, Compression::BloscZstd(1))?;
        } else {
            evdet_events::evt::write_evt(&split.join(file), EvtFormat::Evt3, HW, &ev, &[])?;
        }
    }
    drop(ev);
    let cfg = PreprocessConfig::default();
    let (mut h5_secs, mut raw_secs) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        // Alternating, so drift of the machine's speed touches both alike.
        for kind in ["h5", "raw"] {
            let out_dir = dir.path().join(format!("out_{kind}_{round}"));
            let start = Instant::now();
            preprocess::preprocess(
                &dir.path().join(kind),
                &out_dir,
                &["train".to_string()],
                &cfg,
                args.jobs,
                &|_| {},
            )
            .with_context(|| format!("preprocessing from {kind}"))?;
            let s = start.elapsed().as_secs_f64();
            if kind == "h5" {
                &mut h5_secs
            } else {
                &mut raw_secs
            }
            .push(s);
        }
    }
    let same = std::fs::read(
        dir.path()
            .join("out_h5_0/train/rec_0000/event_representations_v2/stacked_histogram_dt=50_nbins=10/event_representations_ds2_nearest.h5"),
    )? == std::fs::read(
        dir.path()
            .join("out_raw_0/train/rec_0000/event_representations_v2/stacked_histogram_dt=50_nbins=10/event_representations_ds2_nearest.h5"),
    )?;
    anyhow::ensure!(
        same,
        "preprocessing from .raw and from _td.h5 wrote different histograms"
    );
    let med = |v: &Vec<f64>| {
        let mut s = v.clone();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    };
    eprintln!(
        "preprocess ({} thread{}): from _td.h5 {:.2} s, from .raw {:.2} s (median of {})",
        args.jobs,
        if args.jobs == 1 { "" } else { "s" },
        med(&h5_secs),
        med(&raw_secs),
        args.rounds
    );
    out["preprocess"] = serde_json::json!({
        "jobs": args.jobs,
        "from_h5_seconds": median_range(h5_secs.clone()),
        "from_raw_seconds": median_range(raw_secs.clone()),
        "raw_speedup": med(&h5_secs) / med(&raw_secs),
        "identical_output": same,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
