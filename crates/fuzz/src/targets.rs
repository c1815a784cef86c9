//! The fuzz targets: every reader of outside data, each as a function from bytes to "a value or a
//! clean error", driven the way the commands drive it (a recording is streamed to its end, labels are
//! evaluated, a config is composed and typed), plus the real files that seed it.

use evdet_events::evt::{write_evt, EvtFormat, TimeOrigin};
use evdet_events::h5_events::{write_raw_events, Compression};
use evdet_events::labels::{self, BBox};
use evdet_events::recording::{OpenOptions, Recording};
use evdet_events::EventBatch;
use std::path::{Path, PathBuf};

/// A reader under test.
pub struct Target {
    pub name: &'static str,
    /// Runs the reader on `bytes`; `scratch` is a folder of its own (it may hold prepared files).
    pub run: fn(bytes: &[u8], scratch: &Path) -> Result<(), String>,
    /// The real files that seed it (name, bytes).
    pub seeds: fn() -> Vec<(String, Vec<u8>)>,
    /// Prepares `scratch` once before the first run (e.g. a copy of the config tree).
    pub prepare: fn(scratch: &Path),
}

fn repo() -> PathBuf {
    evdet_fixtures::root()
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn read_dir_files(dir: &Path, ext: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .filter_map(|p| {
            Some((
                p.file_name()?.to_string_lossy().into_owned(),
                std::fs::read(&p).ok()?,
            ))
        })
        .collect();
    v.sort();
    v
}

fn file(rel: &str) -> (String, Vec<u8>) {
    let p = repo().join(rel);
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("seed {}: {e}", p.display()));
    (rel.to_string(), bytes)
}

/// A small camera-like event stream: rows of neighbours firing together (EVT 3.0 vectors), both
/// polarities, time going forward with a few repeats.
pub fn sample_events() -> EventBatch {
    let mut ev = EventBatch::default();
    let mut t = 1_000i64;
    for k in 0..300u32 {
        t += (k % 7) as i64 * 13;
        let (x0, y) = ((k * 37) % 300, (k * 11) % 180);
        for dx in 0..(1 + k % 5) {
            ev.x.push((x0 + dx) as u16);
            ev.y.push(y as u16);
            ev.p.push((k % 2) as u8);
            ev.t.push(t);
        }
    }
    ev
}

fn tmp_bytes(name: &str, write: impl FnOnce(&Path)) -> Vec<u8> {
    let d = tempfile::tempdir().expect("a temporary folder");
    let p = d.path().join(name);
    write(&p);
    std::fs::read(&p).unwrap_or_default()
}

fn sample_boxes() -> Vec<BBox> {
    (0..12)
        .map(|i| BBox {
            t: 50_000 * (i / 3) as i64,
            x: 10.0 * i as f32,
            y: 5.0 + i as f32,
            w: 8.0 + i as f32,
            h: 16.0,
            class_id: i % 3,
            track_id: i,
            class_confidence: 0.5 + 0.03 * i as f32,
        })
        .collect()
}

/// Streams a recording to its end, as preprocessing and predict do.
fn stream_recording(path: &Path) -> Result<(), String> {
    let rec = Recording::open(path, OpenOptions::default()).map_err(|e| e.to_string())?;
    let hw = rec.sensor_hw_or((180, 320)).map_err(|e| e.to_string())?;
    let mut s = rec.stream(hw, 4096).map_err(|e| e.to_string())?;
    while s.next_chunk().map_err(|e| e.to_string())?.is_some() {}
    rec.time_range(hw).map_err(|e| e.to_string())?;
    Ok(())
}

fn write_and(scratch: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
    let p = scratch.join(name);
    std::fs::write(&p, bytes).map_err(|e| format!("scratch: {e}"))?;
    Ok(p)
}

fn nothing(_: &Path) {}

fn h5_events(bytes: &[u8], scratch: &Path) -> Result<(), String> {
    stream_recording(&write_and(scratch, "rec_td.h5", bytes)?)
}

fn h5_events_seeds() -> Vec<(String, Vec<u8>)> {
    let ev = sample_events();
    [
        ("blosc_zstd_td.h5", Compression::BloscZstd(1)),
        ("gzip_td.h5", Compression::Gzip(4)),
        ("plain_td.h5", Compression::None),
    ]
    .into_iter()
    .map(|(n, c)| {
        (
            n.to_string(),
            tmp_bytes(n, |p| {
                write_raw_events(p, &ev, (180, 320), c).expect("seed h5")
            }),
        )
    })
    .collect()
}

fn raw(bytes: &[u8], scratch: &Path) -> Result<(), String> {
    stream_recording(&write_and(scratch, "rec.raw", bytes)?)?;
    // Whole-file decoding with the triggers, as `convert` does.
    evdet_events::evt::read_evt(
        &scratch.join("rec.raw"),
        Some((180, 320)),
        TimeOrigin::Sensor,
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

fn raw_seeds() -> Vec<(String, Vec<u8>)> {
    let ev = sample_events();
    let mut v = read_dir_files(&repo().join("crates/events/tests/data/raw"), ".raw");
    for (n, f) in [
        ("evt3.raw", EvtFormat::Evt3),
        ("evt2.raw", EvtFormat::Evt2),
        ("evt21.raw", EvtFormat::Evt21 { legacy: false }),
    ] {
        v.push((
            n.into(),
            tmp_bytes(n, |p| {
                write_evt(p, f, (180, 320), &ev, &[]).expect("seed raw")
            }),
        ));
    }
    v
}

fn dat(bytes: &[u8], scratch: &Path) -> Result<(), String> {
    stream_recording(&write_and(scratch, "rec_td.dat", bytes)?)?;
    evdet_events::dat::read_dat(&scratch.join("rec_td.dat"))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn dat_seeds() -> Vec<(String, Vec<u8>)> {
    read_dir_files(&evdet_fixtures::root().join("dat"), ".dat")
}

/// Prophesee `_bbox.npy` labels and detections: read, then evaluated as `coco-eval --prophesee` does.
fn bbox_npy(bytes: &[u8], scratch: &Path) -> Result<(), String> {
    let boxes = labels::read_bbox_npy(&write_and(scratch, "x_bbox.npy", bytes)?)
        .map_err(|e| e.to_string())?;
    let conv = |b: &[BBox]| -> Vec<evdet_eval::BBox> { b.iter().map(Into::into).collect() };
    let classes: Vec<String> = ["pedestrian", "car", "bicycle"].map(String::from).to_vec();
    let mut ev = evdet_eval::Evaluator::new(evdet_eval::EvalConfig::new(classes))
        .map_err(|e| e.to_string())?;
    ev.add_sequence(&conv(&sample_boxes()), &conv(&boxes));
    ev.add_sequence(&conv(&boxes), &conv(&sample_boxes()));
    ev.summarize().map(|_| ()).map_err(|e| e.to_string())
}

fn bbox_npy_seeds() -> Vec<(String, Vec<u8>)> {
    let mut v = read_dir_files(&evdet_fixtures::root().join("coco_eval/prophesee"), ".npy");
    v.push((
        "synthetic_bbox.npy".into(),
        labels::bbox_npy_bytes(&sample_boxes()),
    ));
    v
}

const PRE: &str = "representation/preprocessed/train/tiny_seq_0000";
const REPR: &str = "event_representations_v2/stacked_histogram_dt=50_nbins=10";

/// RVT's layout: a preprocessed sequence folder whose `labels.npz` is `bytes` (the other files real).
fn rvt_labels_npz(bytes: &[u8], scratch: &Path) -> Result<(), String> {
    let seq = scratch.join("seq");
    write_and(&seq.join("labels_v2"), "labels.npz", bytes)?;
    let paths = evdet_events::layout::SequencePaths::new(&seq, 50, 10, true);
    let idx = evdet_events::layout::SequenceIndex::read(&paths).map_err(|e| e.to_string())?;
    let _ = idx.repr_to_frame();
    Ok(())
}

fn prepare_sequence(scratch: &Path) {
    let src = evdet_fixtures::root().join(PRE);
    let dst = scratch.join("seq");
    for rel in [
        "labels_v2/labels.npz".to_string(),
        "labels_v2/timestamps_us.npy".into(),
        format!("{REPR}/timestamps_us.npy"),
        format!("{REPR}/objframe_idx_2_repr_idx.npy"),
        format!("{REPR}/event_representations_ds2_nearest.h5"),
    ] {
        let to = dst.join(&rel);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("scratch folder");
        std::fs::copy(src.join(&rel), to).expect("copy of the fixture sequence");
    }
}

fn rvt_labels_npz_seeds() -> Vec<(String, Vec<u8>)> {
    let boxes = sample_boxes();
    let synthetic = tmp_bytes("labels.npz", |p| {
        labels::write_labels_npz(p, &boxes, &[0, 3, 6, 9]).expect("seed npz")
    });
    vec![
        file(&format!("tests/fixtures/{PRE}/labels_v2/labels.npz")),
        ("synthetic_labels.npz".into(), synthetic),
    ]
}

/// Any `.npy` of RVT's layout (timestamps, index arrays), read as the loader reads them.
fn rvt_index_npy(bytes: &[u8], scratch: &Path) -> Result<(), String> {
    let p = write_and(scratch, "timestamps_us.npy", bytes)?;
    let arr = evdet_events::npy::read_npy(&p).map_err(|e| e.to_string())?;
    arr.to_i64(&p).map(|_| ()).map_err(|e| e.to_string())
}

fn rvt_index_npy_seeds() -> Vec<(String, Vec<u8>)> {
    vec![
        file(&format!("tests/fixtures/{PRE}/labels_v2/timestamps_us.npy")),
        file(&format!(
            "tests/fixtures/{PRE}/{REPR}/objframe_idx_2_repr_idx.npy"
        )),
        (
            "i64.npy".into(),
            evdet_events::npy::npy_bytes_i64(&[0, 50_000, 100_000]),
        ),
    ]
}

/// The histogram file of RVT's layout: its shape, then its first time step, as the data loader reads
/// (one frame: a frame may be 256 MiB, `layout::MAX_FRAME_BYTES`, which the allocation cap allows).
fn rvt_histograms(bytes: &[u8], scratch: &Path) -> Result<(), String> {
    let p = write_and(scratch, "event_representations_ds2_nearest.h5", bytes)?;
    let [t, ..] = evdet_events::layout::repr_shape(&p).map_err(|e| e.to_string())?;
    evdet_events::layout::read_repr_range(&p, 0, t.min(1))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn rvt_histograms_seeds() -> Vec<(String, Vec<u8>)> {
    vec![file(&format!(
        "tests/fixtures/{PRE}/{REPR}/event_representations_ds2_nearest.h5"
    ))]
}

fn coco_gt(bytes: &[u8], _: &Path) -> Result<(), String> {
    let gt =
        evdet_eval::coco_json::parse_gt(bytes, Path::new("gt.json")).map_err(|e| e.to_string())?;
    let dt_bytes = std::fs::read(evdet_fixtures::root().join("coco_eval/case1_dt.json"))
        .map_err(|e| e.to_string())?;
    coco_evaluate(gt, &dt_bytes)
}

fn coco_dt(bytes: &[u8], _: &Path) -> Result<(), String> {
    let gt_bytes = std::fs::read(evdet_fixtures::root().join("coco_eval/case1_gt.json"))
        .map_err(|e| e.to_string())?;
    let gt = evdet_eval::coco_json::parse_gt(&gt_bytes, Path::new("gt.json"))
        .map_err(|e| e.to_string())?;
    coco_evaluate(gt, bytes)
}

/// Parse the detections against `gt` and evaluate, as `coco-eval` does.
fn coco_evaluate(gt: evdet_eval::hotcoco::COCO, dt_bytes: &[u8]) -> Result<(), String> {
    use std::sync::Arc;
    let dt = evdet_eval::coco_json::parse_dt(&gt, dt_bytes, Path::new("dt.json"))
        .map_err(|e| e.to_string())?;
    let opts = evdet_eval::CocoOptions::default();
    evdet_eval::CocoEval::run(&Arc::new(gt), &Arc::new(dt.coco), &opts)
        .map(|ev| {
            let _ = ev.stats();
        })
        .map_err(|e| e.to_string())
}

fn coco_gt_seeds() -> Vec<(String, Vec<u8>)> {
    read_dir_files(&evdet_fixtures::root().join("coco_eval"), "_gt.json")
}

/// Detections of the ground truth [`coco_dt`] evaluates against (case 1's).
fn coco_dt_seeds() -> Vec<(String, Vec<u8>)> {
    vec![file("tests/fixtures/coco_eval/case1_dt.json")]
}

fn prepare_configs(scratch: &Path) {
    copy_tree(&repo().join("config"), &scratch.join("config"));
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("scratch config folder");
    for e in std::fs::read_dir(from)
        .expect("the config folder")
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy of a config file");
        }
    }
}

/// An experiment YAML file, composed over the shipped config tree and typed, as `evdet train` does.
fn config_yaml(bytes: &[u8], scratch: &Path) -> Result<(), String> {
    let root = scratch.join("config");
    write_and(&root.join("experiment"), "fuzz.yaml", bytes)?;
    evdet_config::load(&root, Path::new("experiment/fuzz.yaml"), &[])
        .map(|c| {
            let _ = evdet_config::eval_config(&c);
        })
        .map_err(|e| e.to_string())
}

fn config_yaml_seeds() -> Vec<(String, Vec<u8>)> {
    [
        "config/experiment/synthetic/mini.yaml",
        "config/experiment/gen4/default.yaml",
    ]
    .into_iter()
    .map(file)
    .collect()
}

/// `key=value` overrides, one per line, on the main job's experiment.
fn overrides(bytes: &[u8], scratch: &Path) -> Result<(), String> {
    let text = String::from_utf8_lossy(bytes);
    let o: Vec<String> = text.lines().map(String::from).collect();
    evdet_config::load(
        &scratch.join("config"),
        Path::new("experiment/synthetic/mini.yaml"),
        &o,
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

fn overrides_seeds() -> Vec<(String, Vec<u8>)> {
    vec![(
        "overrides.txt".into(),
        b"model.fpn.in_stages=[1,2,3,4]\nmodel.head.size_aware_loss=true\ntraining.max_steps=200\nbatch_size.train=2\nmodel.head.assignment.cost=nwd\ndataset.path=data/x\ntraining.learning_rate=0.001\nlogging.runs_dir=runs\n"
            .to_vec(),
    )]
}

fn study_file(bytes: &[u8], _: &Path) -> Result<(), String> {
    evdet_study::file::StudyFile::parse(&String::from_utf8_lossy(bytes)).map(|_| ())
}

fn study_file_seeds() -> Vec<(String, Vec<u8>)> {
    vec![
        file("config/study/size_aware_mini.yaml"),
        file("config/study/size_aware_etram.yaml"),
    ]
}

/// Every target, in a fixed order.
pub fn all() -> Vec<Target> {
    vec![
        Target {
            name: "h5_events",
            run: h5_events,
            seeds: h5_events_seeds,
            prepare: nothing,
        },
        Target {
            name: "raw",
            run: raw,
            seeds: raw_seeds,
            prepare: nothing,
        },
        Target {
            name: "dat",
            run: dat,
            seeds: dat_seeds,
            prepare: nothing,
        },
        Target {
            name: "bbox_npy",
            run: bbox_npy,
            seeds: bbox_npy_seeds,
            prepare: nothing,
        },
        Target {
            name: "rvt_labels_npz",
            run: rvt_labels_npz,
            seeds: rvt_labels_npz_seeds,
            prepare: prepare_sequence,
        },
        Target {
            name: "rvt_index_npy",
            run: rvt_index_npy,
            seeds: rvt_index_npy_seeds,
            prepare: nothing,
        },
        Target {
            name: "rvt_histograms",
            run: rvt_histograms,
            seeds: rvt_histograms_seeds,
            prepare: nothing,
        },
        Target {
            name: "coco_gt_json",
            run: coco_gt,
            seeds: coco_gt_seeds,
            prepare: nothing,
        },
        Target {
            name: "coco_dt_json",
            run: coco_dt,
            seeds: coco_dt_seeds,
            prepare: nothing,
        },
        Target {
            name: "config_yaml",
            run: config_yaml,
            seeds: config_yaml_seeds,
            prepare: prepare_configs,
        },
        Target {
            name: "overrides",
            run: overrides,
            seeds: overrides_seeds,
            prepare: prepare_configs,
        },
        Target {
            name: "study_file",
            run: study_file,
            seeds: study_file_seeds,
            prepare: nothing,
        },
    ]
}

/// The target called `name`.
pub fn by_name(name: &str) -> Option<Target> {
    all().into_iter().find(|t| t.name == name)
}
