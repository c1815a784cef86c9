//! Bit-exactness of the stacked histogram and the preprocessing pipeline against the PyTorch reference
//! fixtures in `tests/fixtures/representation` (REFERENCE §5.2–5.4).

use evdet_events::event::EventBatch;
use evdet_events::h5_events::RawEventFile;
use evdet_events::histogram::{downsample_nearest_2, HistogramSpec, StackedHistogram};
use evdet_events::layout::{read_repr_range, SequenceIndex, SequencePaths};
use evdet_events::preprocess::{self, DatasetKind, PreprocessConfig};
use evdet_events::{labels, npy};
use safetensors::SafeTensors;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    evdet_fixtures::dir("representation")
}

fn load(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn i64s(st: &SafeTensors, name: &str) -> Vec<i64> {
    let t = st.tensor(name).unwrap();
    t.data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn u8s(st: &SafeTensors, name: &str) -> Vec<u8> {
    st.tensor(name).unwrap().data().to_vec()
}

fn batch(x: &[i64], y: &[i64], p: &[i64], t: &[i64]) -> EventBatch {
    EventBatch {
        x: x.iter().map(|&v| v as u16).collect(),
        y: y.iter().map(|&v| v as u16).collect(),
        p: p.iter().map(|&v| v as u8).collect(),
        t: t.to_vec(),
    }
}

#[test]
fn direct_windows_are_bit_exact() {
    let inputs = load("direct_inputs.safetensors");
    let expected = load("direct_expected.safetensors");
    let (inp, exp) = (
        SafeTensors::deserialize(&inputs).unwrap(),
        SafeTensors::deserialize(&expected).unwrap(),
    );
    let ev = batch(
        &i64s(&inp, "events_x"),
        &i64s(&inp, "events_y"),
        &i64s(&inp, "events_p"),
        &i64s(&inp, "events_t"),
    );
    let offsets = i64s(&inp, "window_offsets");
    let (hist, hist_ds2) = (u8s(&exp, "hist"), u8s(&exp, "hist_ds2"));
    let full = HistogramSpec::rvt(48, 64, false);
    let ds2 = HistogramSpec::rvt(48, 64, true);
    // One reusable buffer per spec, as preprocessing uses them: stale counts from a previous window would show.
    let (mut hf, mut hd) = (StackedHistogram::new(full), StackedHistogram::new(ds2));
    let n = offsets.len() - 1;
    assert_eq!(n, 7);
    for w in 0..n {
        let win = ev.slice(offsets[w] as usize..offsets[w + 1] as usize);
        let f = hf.compute(win).to_vec();
        assert_eq!(
            f,
            hist[w * full.len()..(w + 1) * full.len()],
            "window {w} full resolution"
        );
        assert_eq!(
            hd.compute(win),
            &hist_ds2[w * ds2.len()..(w + 1) * ds2.len()],
            "window {w} ds2"
        );
        assert_eq!(
            downsample_nearest_2(&f, 20, 48, 64),
            &hist_ds2[w * ds2.len()..(w + 1) * ds2.len()]
        );
    }
}

#[test]
fn full_resolution_window_matches_crops_sums_and_sha256() {
    let inputs = load("fullres_inputs.safetensors");
    let expected = load("fullres_expected.safetensors");
    let (inp, exp) = (
        SafeTensors::deserialize(&inputs).unwrap(),
        SafeTensors::deserialize(&expected).unwrap(),
    );
    let meta: serde_json::Value = serde_json::from_slice(&load("fullres_meta.json")).unwrap();
    let ev = batch(
        &i64s(&inp, "x"),
        &i64s(&inp, "y"),
        &i64s(&inp, "p"),
        &i64s(&inp, "t"),
    );
    let full = StackedHistogram::new(HistogramSpec::rvt(720, 1280, false))
        .compute(ev.as_slice())
        .to_vec();
    let ds2 = StackedHistogram::new(HistogramSpec::rvt(720, 1280, true))
        .compute(ev.as_slice())
        .to_vec();
    let sha = |d: &[u8]| format!("{:x}", Sha256::digest(d));
    assert_eq!(sha(&full), meta["sha256_full_uint8_CHW"].as_str().unwrap());
    assert_eq!(sha(&ds2), meta["sha256_ds2_uint8_CHW"].as_str().unwrap());
    let crop = |d: &[u8],
                h: usize,
                w: usize,
                r: std::ops::Range<usize>,
                c: std::ops::Range<usize>|
     -> Vec<u8> {
        let mut out = Vec::new();
        for ch in 0..20 {
            for y in r.clone() {
                out.extend(c.clone().map(|x| d[(ch * h + y) * w + x]));
            }
        }
        out
    };
    assert_eq!(
        crop(&full, 720, 1280, 0..48, 0..64),
        u8s(&exp, "crop_top_left")
    );
    assert_eq!(
        crop(&full, 720, 1280, 672..720, 1216..1280),
        u8s(&exp, "crop_bottom_right")
    );
    assert_eq!(
        crop(&ds2, 360, 640, 0..24, 0..32),
        u8s(&exp, "ds2_crop_top_left")
    );
    assert_eq!(
        crop(&ds2, 360, 640, 336..360, 608..640),
        u8s(&exp, "ds2_crop_bottom_right")
    );
    let sums = |d: &[u8], plane: usize| -> Vec<i64> {
        d.chunks(plane)
            .map(|c| c.iter().map(|&v| v as i64).sum())
            .collect()
    };
    assert_eq!(sums(&full, 720 * 1280), i64s(&exp, "channel_sums"));
    assert_eq!(sums(&ds2, 360 * 640), i64s(&exp, "ds2_channel_sums"));
}

fn run_tiny_pipeline(out: &Path) -> preprocess::PreprocessSummary {
    let raw = fixtures().join("raw");
    let cfg = PreprocessConfig {
        dataset: DatasetKind::Gen4,
        downsample_by_factor_2: Some(true),
        read_chunk: 4096,
        ..Default::default()
    };
    preprocess::preprocess(&raw, out, &["train".to_string()], &cfg, 2, &|_| {}).unwrap()
}

#[test]
fn tiny_pipeline_writes_exactly_the_reference_layout() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run_tiny_pipeline(dir.path());
    let seq = &summary.sequences[0];
    assert_eq!((seq.label_frames, seq.representations), (4, 8));
    assert_eq!(
        seq.events.timestamps_repaired, 4,
        "the fixture holds 4 out-of-order events"
    );
    assert_eq!(seq.events.dropped_outside_sensor, 0);

    let ours = SequencePaths::new(&dir.path().join("train/tiny_seq_0000"), 50, 10, true);
    let theirs = SequencePaths::new(
        &fixtures().join("preprocessed/train/tiny_seq_0000"),
        50,
        10,
        true,
    );
    assert!(ours.repr_h5.ends_with("event_representations_v2/stacked_histogram_dt=50_nbins=10/event_representations_ds2_nearest.h5"));
    let (a, b) = (
        SequenceIndex::read(&ours).unwrap(),
        SequenceIndex::read(&theirs).unwrap(),
    );
    assert_eq!(a, b);
    let (da, sa) = read_repr_range(&ours.repr_h5, 0, 8).unwrap();
    let (db, sb) = read_repr_range(&theirs.repr_h5, 0, 8).unwrap();
    assert_eq!(sa, sb);
    assert_eq!(da, db, "histograms differ from the reference h5");

    // The h5 dataset layout the reference reads: chunks (1, C, H, W), resizable time axis, blosc.
    let f = hdf5::File::open(&ours.repr_h5).unwrap();
    let d = f.dataset("data").unwrap();
    assert_eq!(d.chunk(), Some(vec![1, 20, 24, 32]));
    assert!(d.is_resizable());
    let filters = d.filters();
    assert!(
        matches!(
            filters.as_slice(),
            [hdf5::filters::Filter::Blosc(
                hdf5::filters::Blosc::ZStd,
                1,
                _
            )]
        ),
        "{filters:?}"
    );

    // Raw npy members byte-compatible with numpy: labels.npz holds the packed 36-byte records.
    let lab = npy::read_npz_member(&ours.labels_npz, "labels").unwrap();
    assert_eq!(lab.dtype.itemsize(), 36);
    let exp = std::fs::read(fixtures().join("pipeline_expected.safetensors")).unwrap();
    let exp = SafeTensors::deserialize(&exp).unwrap();
    assert_eq!(da, u8s(&exp, "ev_repr_ds2"));
    assert_eq!(a.repr_timestamps_us, i64s(&exp, "repr_timestamps_us"));
    assert_eq!(
        a.objframe_idx_2_repr_idx,
        i64s(&exp, "objframe_idx_2_repr_idx")
    );
    assert_eq!(a.label_timestamps_us, i64s(&exp, "label_timestamps_us"));
    assert_eq!(
        a.objframe_idx_2_label_idx,
        i64s(&exp, "objframe_idx_2_label_idx")
    );
}

#[test]
fn reader_repairs_time_and_windows_match_reference_indices() {
    let raw = fixtures().join("raw/train/tiny_seq_0000_td.h5");
    let f = RawEventFile::open(&raw).unwrap();
    assert_eq!(f.stored_sensor_hw(), Some((48, 64)));
    let mut s = f.stream((48, 64), 1000);
    let mut all = EventBatch::default();
    while let Some(c) = s.next_chunk().unwrap() {
        all.extend(&c);
    }
    let exp = std::fs::read(fixtures().join("pipeline_expected.safetensors")).unwrap();
    let exp = SafeTensors::deserialize(&exp).unwrap();
    assert_eq!(all.t, i64s(&exp, "t_corrected"));
    let (starts, ends) = (i64s(&exp, "window_start_idx"), i64s(&exp, "window_end_idx"));
    let full = u8s(&exp, "ev_repr_full_res");
    let mut h = StackedHistogram::new(HistogramSpec::rvt(48, 64, false));
    for (k, &t) in i64s(&exp, "repr_timestamps_us").iter().enumerate() {
        let a = all.t.partition_point(|&e| e < t - 50_000);
        let e = all.t.partition_point(|&e| e <= t);
        assert_eq!((a as i64, e as i64), (starts[k], ends[k]), "window {k}");
        assert_eq!(
            h.compute(all.slice(a..e)),
            &full[k * 20 * 48 * 64..(k + 1) * 20 * 48 * 64],
            "window {k}"
        );
    }
}

#[test]
fn rerun_skips_finished_sequences_and_removes_stale_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    run_tiny_pipeline(dir.path());
    // A killed run leaves a hidden in-progress folder; the final folder only appears on success.
    let stale = dir.path().join("train/.other_seq.in_progress");
    std::fs::create_dir_all(&stale).unwrap();
    let s = run_tiny_pipeline(dir.path());
    assert!(s.sequences[0].skipped_existing);
    let names: Vec<_> = std::fs::read_dir(dir.path().join("train"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.contains(&"tiny_seq_0000".to_string()));
}

#[test]
fn raw_label_file_reads_and_rewrites_identically() {
    let p = fixtures().join("raw/train/tiny_seq_0000_bbox.npy");
    let boxes = labels::read_bbox_npy(&p).unwrap();
    assert_eq!(boxes.len(), 36);
    let original = npy::read_npy(&p).unwrap();
    let ours = npy::parse_npy(&labels::bbox_npy_bytes(&boxes), Path::new("ours")).unwrap();
    assert_eq!(ours.dtype.itemsize(), 40);
    // Same record bytes except the padding, which numpy leaves unspecified.
    for (a, b) in original.data.chunks(40).zip(ours.data.chunks(40)) {
        assert_eq!(a[..36], b[..36]);
    }
}
