//! Bad input gives an error naming the file and the problem (or a counted repair), never a panic, and a
//! failed sequence never leaves output that a later run would take for finished.

use evdet_events::event::EventBatch;
use evdet_events::h5_events::{write_raw_events, Compression, RawEventFile};
use evdet_events::labels::{read_bbox_npy, write_bbox_npy, BBox};
use evdet_events::preprocess::{self, DatasetKind, PreprocessConfig};
use std::path::Path;

fn events(n: usize, hw: (usize, usize)) -> EventBatch {
    EventBatch {
        x: (0..n).map(|i| (i * 7 % hw.1) as u16).collect(),
        y: (0..n).map(|i| (i * 13 % hw.0) as u16).collect(),
        p: (0..n).map(|i| (i % 2) as u8).collect(),
        t: (0..n).map(|i| (i as i64) * 1000).collect(),
    }
}

fn labels(hz: f64, until_us: i64) -> Vec<BBox> {
    let dt = 1e6 / hz;
    (1..)
        .map(|k| (k as f64 * dt) as i64)
        .take_while(|&t| t < until_us)
        .map(|t| BBox {
            t,
            x: 10.0,
            y: 10.0,
            w: 20.0,
            h: 20.0,
            class_id: 1,
            track_id: 1,
            class_confidence: 1.0,
        })
        .collect()
}

/// A raw dataset with one train sequence; returns its root.
fn dataset(dir: &Path, ev: &EventBatch, boxes: &[BBox]) -> std::path::PathBuf {
    let raw = dir.join("raw");
    std::fs::create_dir_all(raw.join("train")).unwrap();
    write_raw_events(
        &raw.join("train/s_td.h5"),
        ev,
        (64, 96),
        Compression::BloscZstd(1),
    )
    .unwrap();
    write_bbox_npy(&raw.join("train/s_bbox.npy"), boxes).unwrap();
    raw
}

fn run(raw: &Path, out: &Path) -> Result<preprocess::PreprocessSummary, evdet_events::EventsError> {
    let cfg = PreprocessConfig {
        dataset: DatasetKind::Auto,
        downsample_by_factor_2: Some(false),
        ..Default::default()
    };
    preprocess::preprocess(raw, out, &["train".into()], &cfg, 1, &|_| {})
}

fn assert_err_mentions(r: Result<impl std::fmt::Debug, evdet_events::EventsError>, parts: &[&str]) {
    let e = r.expect_err("expected an error").to_string();
    for p in parts {
        assert!(e.contains(p), "error '{e}' should mention '{p}'");
    }
}

#[test]
fn a_good_dataset_passes_and_counts_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let mut ev = events(2000, (64, 96));
    ev.x[5] = 96; // outside the 96-wide sensor: dropped, never wrapped into the next row
    ev.t[10] = 0; // decreasing: raised to the running maximum
    let mut b = labels(30.0, 2_000_000);
    b[3].w = f32::NAN;
    b[4].h = -3.0;
    let raw = dataset(dir.path(), &ev, &b);
    let s = run(&raw, &dir.path().join("out")).unwrap();
    let q = &s.sequences[0];
    assert_eq!(q.events.dropped_outside_sensor, 1);
    assert_eq!(q.events.timestamps_repaired, 1);
    assert_eq!(q.box_drops.invalid_nan_or_negative, 2);
    assert!(dir.path().join("out/train/s").is_dir());
}

#[test]
fn irregular_label_clock_is_an_error_naming_the_rate() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dataset(
        dir.path(),
        &events(2000, (64, 96)),
        &labels(25.0, 2_000_000),
    );
    assert_err_mentions(run(&raw, &dir.path().join("out")), &["s_bbox.npy", "25 Hz"]);
    assert!(!dir.path().join("out/train/s").exists());
}

#[test]
fn bad_polarity_fails_and_leaves_no_finished_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut ev = events(2000, (64, 96));
    ev.p[1500] = 3;
    let raw = dataset(dir.path(), &ev, &labels(30.0, 2_000_000));
    assert_err_mentions(
        run(&raw, &dir.path().join("out")),
        &["s_td.h5", "events/p", "polarity 3"],
    );
    // Nothing was finished, so the output folder this run created is gone: no empty folder is
    // left to be mistaken for a dataset.
    assert!(
        !dir.path().join("out").exists(),
        "partial output left behind"
    );
}

#[test]
fn empty_recording_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dataset(dir.path(), &EventBatch::default(), &labels(30.0, 2_000_000));
    assert_err_mentions(
        run(&raw, &dir.path().join("out")),
        &["s_td.h5", "no events"],
    );
}

#[test]
fn truncated_and_garbage_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dataset(
        dir.path(),
        &events(50_000, (64, 96)),
        &labels(30.0, 2_000_000),
    );
    let h5 = raw.join("train/s_td.h5");
    let bytes = std::fs::read(&h5).unwrap();
    std::fs::write(&h5, &bytes[..bytes.len() / 2]).unwrap();
    assert_err_mentions(RawEventFile::open(&h5).map(|_| ()), &["s_td.h5"]);
    assert_err_mentions(run(&raw, &dir.path().join("out")), &["s_td.h5"]);

    let npy = raw.join("train/s_bbox.npy");
    let bytes = std::fs::read(&npy).unwrap();
    std::fs::write(&npy, &bytes[..bytes.len() - 7]).unwrap();
    assert_err_mentions(read_bbox_npy(&npy), &["s_bbox.npy", "truncated"]);
    std::fs::write(&npy, b"not numpy at all").unwrap();
    assert_err_mentions(read_bbox_npy(&npy), &["s_bbox.npy", "magic"]);
}

#[test]
fn missing_group_field_and_wrong_dtype_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a_td.h5");
    {
        let f = hdf5::File::create(&p).unwrap();
        f.create_group("other").unwrap();
    }
    assert_err_mentions(RawEventFile::open(&p).map(|_| ()), &["a_td.h5", "events"]);
    {
        let f = hdf5::File::create(&p).unwrap();
        let g = f.create_group("events").unwrap();
        g.new_dataset_builder()
            .with_data(&[1.5f32, 2.0])
            .create("x")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&[1u16, 2])
            .create("y")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&[1u8, 0])
            .create("p")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&[1i64, 2])
            .create("t")
            .unwrap();
    }
    assert_err_mentions(
        RawEventFile::open(&p).map(|_| ()),
        &["a_td.h5", "events/x", "integer"],
    );
    {
        let f = hdf5::File::create(&p).unwrap();
        let g = f.create_group("events").unwrap();
        g.new_dataset_builder()
            .with_data(&[1u16, 2])
            .create("x")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&[1u16, 2])
            .create("y")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&[1i64, 2])
            .create("t")
            .unwrap();
    }
    assert_err_mentions(
        RawEventFile::open(&p).map(|_| ()),
        &["a_td.h5", "events/p", "missing"],
    );
}

#[test]
fn any_integer_dtypes_and_minus_one_polarity_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b_td.h5");
    {
        let f = hdf5::File::create(&p).unwrap();
        let g = f.create_group("events").unwrap();
        g.new_dataset_builder()
            .with_data(&[1i32, -4, 70])
            .deflate(4)
            .chunk(2)
            .create("x")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&[2u64, 3, 4])
            .create("y")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&[-1i16, 1, -1])
            .create("p")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&[5u32, 6, 7])
            .create("t")
            .unwrap();
    }
    let f = RawEventFile::open(&p).unwrap();
    assert_eq!(f.stored_sensor_hw(), None);
    let mut s = f.stream((720, 1280), 2);
    let mut all = EventBatch::default();
    while let Some(c) = s.next_chunk().unwrap() {
        all.extend(&c);
    }
    assert_eq!(
        all,
        EventBatch {
            x: vec![1, 70],
            y: vec![2, 4],
            p: vec![0, 0],
            t: vec![5, 7]
        }
    );
    assert_eq!(
        s.stats.dropped_outside_sensor, 1,
        "x = -4 is outside the sensor"
    );
}

/// A file in DSEC's `events/left/events.h5` layout (blosc-compressed like DSEC's own), with or without
/// its `ms_to_idx` index.
fn dsec_file(p: &Path, with_index: bool) {
    let f = hdf5::File::create(p).unwrap();
    let g = f.create_group("events").unwrap();
    let blosc =
        |b: hdf5::DatasetBuilder| b.blosc_zstd(1, hdf5::filters::BloscShuffle::Byte).chunk(2);
    blosc(g.new_dataset_builder())
        .with_data(&[10u16, 639, 5])
        .create("x")
        .unwrap();
    blosc(g.new_dataset_builder())
        .with_data(&[0u16, 479, 3])
        .create("y")
        .unwrap();
    blosc(g.new_dataset_builder())
        .with_data(&[1u8, 0, 1])
        .create("p")
        .unwrap();
    blosc(g.new_dataset_builder())
        .with_data(&[0u32, 900, 2_500])
        .create("t")
        .unwrap();
    f.new_dataset::<i64>()
        .create("t_offset")
        .unwrap()
        .write_scalar(&47_000_000_000i64)
        .unwrap();
    if with_index {
        f.new_dataset_builder()
            .with_data(&[0u64, 2, 2, 3])
            .create("ms_to_idx")
            .unwrap();
    }
}

/// DSEC's `events.h5` has eTraM's field names but times relative to `t_offset`: it is recognised (its
/// 640×480 sensor, the offset added, so converted files and predictions keep DSEC's absolute time of
/// the labels); a `t_offset` without DSEC's index is refused, not guessed at, while an `ms_to_idx`
/// alone is eTraM's / RVT's own layout (the reference fixture has one).
#[test]
fn a_dsec_events_file_is_read_with_its_time_offset_and_half_a_layout_is_refused() {
    use evdet_events::h5_events::H5Layout;
    use evdet_events::recording::{OpenOptions, Recording};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("events.h5");
    dsec_file(&p, true);
    let f = RawEventFile::open(&p).unwrap();
    assert_eq!(
        f.layout(),
        H5Layout::Dsec {
            t_offset: 47_000_000_000
        }
    );
    assert_eq!(f.stored_sensor_hw(), Some((480, 640)));
    let rec = Recording::open(&p, OpenOptions::default()).unwrap();
    assert!(rec.format_name().contains("DSEC"), "{}", rec.format_name());
    let mut s = rec
        .stream(rec.sensor_hw_or((720, 1280)).unwrap(), 2)
        .unwrap();
    let mut all = EventBatch::default();
    while let Some(c) = s.next_chunk().unwrap() {
        all.extend(&c);
    }
    assert_eq!(all.t, vec![47_000_000_000, 47_000_000_900, 47_000_002_500]);
    assert_eq!((all.x, all.y), (vec![10, 639, 5], vec![0, 479, 3]));

    let half = dir.path().join("half.h5");
    dsec_file(&half, false);
    assert_err_mentions(
        RawEventFile::open(&half).map(|_| ()),
        &["half.h5", "t_offset", "ms_to_idx"],
    );
}

#[test]
fn unwritable_output_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dataset(
        dir.path(),
        &events(2000, (64, 96)),
        &labels(30.0, 2_000_000),
    );
    let blocker = dir.path().join("file_not_dir");
    std::fs::write(&blocker, b"x").unwrap();
    assert_err_mentions(run(&raw, &blocker), &["file_not_dir"]);
}
