//! The data pipeline against the reference: label loading on the preprocessed fixture, and the sampling
//! rules of REFERENCE §4.3 on a synthetic split.

use evdet_data::batch;
use evdet_data::dataset::{LabelGeometry, Sequence, SplitData};
use evdet_data::sampling::{labelled_subsequences, EvalPlan, RandomPlan, StreamPlan, SubSequence};
use evdet_events::layout::{SequenceIndex, SequencePaths};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    evdet_fixtures::dir("representation")
}

#[test]
fn labels_load_exactly_as_the_reference_loader_yields_them() {
    let geom = LabelGeometry {
        frame_hw: (720, 1280),
        downsample_by_factor_2: true,
    };
    let data = SplitData::open(
        &fixtures().join("preprocessed"),
        "train",
        "stacked_histogram_dt=50_nbins=10",
        geom,
    )
    .unwrap();
    assert_eq!(data.chw, (20, 24, 32));
    let exp =
        tch::Tensor::read_safetensors(fixtures().join("pipeline_expected.safetensors")).unwrap();
    let get = |n: &str| {
        exp.iter()
            .find(|(k, _)| k == n)
            .map(|(_, t)| t.shallow_clone())
            .unwrap()
    };
    let seq = &data.sequences[0];
    for (f, &r) in seq.index.objframe_idx_2_repr_idx.iter().enumerate() {
        let l = data.labels(0, r as usize).expect("a label frame");
        let rows: Vec<f32> = l
            .boxes
            .iter()
            .flat_map(|b| [b.t, b.x, b.y, b.w, b.h, b.class_id, b.class_confidence])
            .collect();
        let want = Vec::<f32>::try_from(get(&format!("objframe{f}_object_labels")).flatten(0, -1))
            .unwrap();
        assert_eq!(rows, want, "frame {f} object labels");
        let y = batch::yolox_targets(&[&l]).squeeze_dim(0);
        let want = get(&format!("objframe{f}_yolox"));
        assert!(
            y.allclose(&want, 0.0, 0.0, false),
            "frame {f} yolox {y} vs {want}"
        );
    }
    // Histograms read through the dataset equal the reference's.
    let h = data.histograms(0, 0, 8).unwrap();
    assert_eq!(
        h,
        Vec::<u8>::try_from(get("ev_repr_ds2").flatten(0, -1)).unwrap()
    );
}

/// A split with sequences whose labelled representation indices and lengths are given.
fn fake_split(seqs: &[(&[usize], usize)]) -> SplitData {
    let sequences = seqs
        .iter()
        .enumerate()
        .map(|(i, (labelled, n))| {
            let index = SequenceIndex {
                repr_timestamps_us: (0..*n as i64).map(|k| 50_000 * (k + 1)).collect(),
                objframe_idx_2_repr_idx: labelled.iter().map(|&r| r as i64).collect(),
                label_timestamps_us: labelled.iter().map(|&r| 50_000 * (r as i64 + 1)).collect(),
                objframe_idx_2_label_idx: vec![0; labelled.len()],
                labels: vec![],
            };
            Sequence {
                name: format!("s{i}"),
                paths: SequencePaths::new(Path::new("/nonexistent"), 50, 10, true),
                repr_to_frame: labelled
                    .iter()
                    .enumerate()
                    .map(|(f, &r)| (r, f))
                    .collect::<HashMap<_, _>>(),
                index,
            }
        })
        .collect();
    SplitData {
        root: PathBuf::new(),
        sequences,
        geometry: LabelGeometry {
            frame_hw: (720, 1280),
            downsample_by_factor_2: true,
        },
        chw: (20, 8, 8),
    }
}

fn aug_off() -> evdet_config::AugmentParams {
    serde_norway::from_str("{prob_hflip: 0, zoom: {prob: 0, zoom_in: {weight: 0, factor: {min: 1, max: 1}}, zoom_out: {weight: 1, factor: {min: 1, max: 1}}}}").unwrap()
}

#[test]
fn subsequences_cut_where_labels_are_more_than_l_apart() {
    let d = fake_split(&[(&[4, 6, 11, 20, 22, 40], 50), (&[2], 10)]);
    let subs = labelled_subsequences(&d, 5);
    assert_eq!(
        subs,
        vec![
            SubSequence {
                seq: 0,
                start: 0,
                end: 12
            },
            SubSequence {
                seq: 0,
                start: 16,
                end: 23
            },
            SubSequence {
                seq: 0,
                start: 36,
                end: 41
            },
            SubSequence {
                seq: 1,
                start: 0,
                end: 3
            },
        ]
    );
}

#[test]
fn each_stream_slot_visits_every_chunk_once_per_round_in_its_own_order() {
    let d = fake_split(&[(&[4, 6, 11, 20, 22, 40], 50), (&[2], 10), (&[30, 31], 40)]);
    let plan = StreamPlan::new(&d, 5, 7, aug_off());
    let total = plan.total_chunks();
    assert_eq!(total, 3 + 2 + 1 + 1 + 2);
    let mut orders = Vec::new();
    for slot in 0..3 {
        let samples: Vec<_> = (0..total).map(|s| plan.sample(slot, s)).collect();
        let mut seen: Vec<(usize, usize)> =
            samples.iter().map(|s| (s.seq.unwrap(), s.start)).collect();
        // consecutive chunks of one sub-sequence follow each other; chunk 0 starts the state
        for w in samples.windows(2) {
            if !w[1].is_first {
                assert_eq!((w[1].seq, w[1].start), (w[0].seq, w[0].start + 5));
            }
        }
        orders.push(seen.clone());
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len() as u64, total, "slot {slot} saw a chunk twice");
        // the round after is a different shuffle but the same chunks
        assert!(plan.sample(slot, total).is_first);
    }
    assert!(
        orders[0] != orders[1] || orders[1] != orders[2],
        "slots should shuffle independently"
    );
    // deterministic
    let again = StreamPlan::new(&d, 5, 7, aug_off());
    assert_eq!(
        (0..total).map(|s| again.sample(1, s)).collect::<Vec<_>>(),
        (0..total).map(|s| plan.sample(1, s)).collect::<Vec<_>>()
    );
    // the last chunk of a sub-sequence is padded: len < L
    assert!((0..total).map(|s| plan.sample(0, s)).any(|s| s.len < 5));
}

#[test]
fn random_windows_end_at_label_frames_and_drop_the_last_partial_batch() {
    let d = fake_split(&[(&[2, 4, 6, 11], 20), (&[9], 10)]);
    let plan = RandomPlan::new(&d, 5, 2, 3, aug_off());
    assert_eq!(plan.len(), 4, "frame at repr 2 cannot end a window of 5");
    assert_eq!(plan.batches_per_epoch(), 2);
    let mut starts: Vec<_> = (0..2)
        .flat_map(|s| plan.rows(s, 5).unwrap())
        .map(|r| (r.seq.unwrap(), r.start, r.is_first))
        .collect();
    starts.sort();
    assert_eq!(
        starts,
        vec![(0, 0, true), (0, 2, true), (0, 7, true), (1, 5, true)]
    );
}

#[test]
fn evaluation_streams_cover_recordings_and_deal_them_zig_zag() {
    // lengths after trimming: s0 50, s1 10, s2 40, s3 30, s4 20 (first labels at 0)
    let d = fake_split(&[(&[0], 50), (&[0], 10), (&[0], 40), (&[0], 30), (&[0], 20)]);
    let plan = EvalPlan::new(&d, 10, 2);
    let seqs = |slot: usize| {
        let mut v: Vec<usize> = plan.slots[slot].iter().map(|s| s.seq.unwrap()).collect();
        v.dedup();
        v
    };
    // sorted by length: s0, s2, s3, s4, s1 -> slots 0, 1 | 1, 0 | 0
    assert_eq!(seqs(0), vec![0, 4, 1]);
    assert_eq!(seqs(1), vec![2, 3]);
    assert_eq!(plan.num_steps(), 5 + 2 + 1);
    assert_eq!(plan.rows(7)[1].seq, None, "exhausted slots get padding");
    assert!(plan.slots[0][0].is_first && !plan.slots[0][1].is_first && plan.slots[0][5].is_first);
}
