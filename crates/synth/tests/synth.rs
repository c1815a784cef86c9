//! `evdet synth` end to end, on short recordings: the files pass through the readers and the RVT
//! preprocessing, class and size statistics are those intended, the same seed gives the same bytes,
//! events concentrate on moving objects, and bad settings are refused with clear messages.

use evdet_events::h5_events::RawEventFile;
use evdet_events::labels::{read_bbox_npy, BBox};
use evdet_events::preprocess::{self, PreprocessConfig};
use evdet_events::rng::Rng;
use evdet_events::EventBatch;
use evdet_synth as synth;
use evdet_synth::scene::Layout;
use evdet_synth::traffic::Traffic;
use evdet_synth::{Class, Preset, SplitCounts, SynthConfig, NUM_CLASSES};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn config(preset: Preset, seed: u64, counts: &str, duration_s: f64) -> SynthConfig {
    let mut c = SynthConfig::preset(preset);
    c.seed = seed;
    c.sequences = counts.parse().unwrap();
    c.duration_s = duration_s;
    c.jobs = 2;
    c
}

fn generate(dir: &Path, cfg: &SynthConfig) -> synth::SynthSummary {
    synth::generate(dir, cfg, &|_| {}).unwrap()
}

fn sequences(root: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for split in synth::SPLITS {
        let dir = root.join(split);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with("_td.h5"))
            .collect();
        names.sort();
        for h5 in names {
            let bbox = PathBuf::from(h5.to_string_lossy().replace("_td.h5", "_bbox.npy"));
            out.push((h5, bbox));
        }
    }
    out
}

fn read_all(h5: &Path) -> (EventBatch, (usize, usize)) {
    let f = RawEventFile::open(h5).unwrap();
    let hw = f.stored_sensor_hw().unwrap();
    let mut s = f.stream(hw, 1 << 18);
    let mut all = EventBatch::default();
    while let Some(c) = s.next_chunk().unwrap() {
        all.extend(&c);
    }
    assert_eq!(
        s.stats.timestamps_repaired,
        0,
        "{}: timestamps not sorted",
        h5.display()
    );
    assert_eq!(
        s.stats.dropped_outside_sensor,
        0,
        "{}: events outside the sensor",
        h5.display()
    );
    (all, hw)
}

#[test]
fn mini_files_pass_the_readers_and_the_preprocessing() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let cfg = config(Preset::Mini, 1, "train=1,val=1,test=1", 1.0);
    let summary = generate(&raw, &cfg);
    assert_eq!(summary.sequences.len(), 3);
    for ((h5, bbox), report) in sequences(&raw).iter().zip(&summary.sequences) {
        let (ev, hw) = read_all(h5);
        assert_eq!(hw, (192, 320));
        assert_eq!(ev.len() as u64, report.events);
        assert!(ev.len() > 10_000, "{} events", ev.len());
        assert!(ev.t.windows(2).all(|w| w[0] <= w[1]));
        assert!(ev.t[0] >= 0 && *ev.t.last().unwrap() < 1_000_000);
        assert!(ev.p.iter().all(|&p| p <= 1) && ev.p.contains(&0) && ev.p.contains(&1));

        let boxes = read_bbox_npy(bbox).unwrap();
        assert!(!boxes.is_empty());
        let mut track_class = BTreeMap::new();
        for b in &boxes {
            assert!(
                b.t > 0 && b.t % 33_333 == 0 && b.t <= 1_000_000,
                "label time {}",
                b.t
            );
            assert!(
                b.x >= 0.0 && b.y >= 0.0 && b.x + b.w <= 320.0 && b.y + b.h <= 192.0,
                "{b:?} outside the frame"
            );
            assert!(
                b.w >= 1.0
                    && b.h >= 1.0
                    && (b.class_id as usize) < NUM_CLASSES
                    && b.class_confidence == 1.0
            );
            assert_eq!(
                *track_class.entry(b.track_id).or_insert(b.class_id),
                b.class_id,
                "track {} changed class",
                b.track_id
            );
        }
        // At most one box per track and instant.
        let mut seen = std::collections::BTreeSet::new();
        assert!(boxes.iter().all(|b| seen.insert((b.t, b.track_id))));
    }

    let out = dir.path().join("pre");
    let splits: Vec<String> = ["train", "val", "test"].map(String::from).to_vec();
    let pre = preprocess::preprocess(
        &raw,
        &out,
        &splits,
        &PreprocessConfig::default(),
        2,
        &|_| {},
    )
    .unwrap();
    assert_eq!(pre.sequences.len(), 3);
    for (q, report) in pre.sequences.iter().zip(&summary.sequences) {
        assert!(!q.no_labels_left && !q.skipped_existing, "{q:?}");
        // Label frames every 100 ms from 133 ms: 9 in one second.
        assert!(q.label_frames >= 8, "{} label frames", q.label_frames);
        assert!(q.representations >= q.label_frames);
        assert_eq!(q.events.events_read, report.events);
        assert_eq!(q.events.timestamps_repaired, 0);
        assert_eq!(
            (
                q.box_drops.outside_frame,
                q.box_drops.invalid_nan_or_negative
            ),
            (0, 0)
        );
        assert!(out
            .join(&q.split)
            .join(&q.name)
            .join("labels_v2/labels.npz")
            .is_file());
    }
}

#[test]
fn etram_preset_full_sensor_and_network_sizes_halved() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(Preset::Etram, 2, "train=1", 0.3);
    let s = generate(dir.path(), &cfg);
    let (h5, bbox) = &sequences(dir.path())[0];
    let (ev, hw) = read_all(h5);
    assert_eq!(hw, (720, 1280));
    assert!(ev.x.iter().any(|&x| x >= 640) && ev.y.iter().any(|&y| y >= 360));
    let d = &s.description.sequences[0];
    assert_eq!(d.network_scale, 0.5);
    let boxes = read_bbox_npy(bbox).unwrap();
    let mean_w: f64 = boxes.iter().map(|b| b.w as f64).sum::<f64>() / boxes.len() as f64;
    let described: f64 = d
        .classes
        .values()
        .map(|c| c.mean_w * c.boxes as f64)
        .sum::<f64>()
        / d.classes.values().map(|c| c.boxes).sum::<u64>() as f64;
    assert!(
        (described * 2.0 - mean_w).abs() < 1e-6 * mean_w.max(1.0),
        "{described} vs {mean_w}"
    );
}

/// Class frequencies and sizes over a long stretch of simulated traffic (no rendering needed): how much
/// of the time each class is in view (what box counts measure), and how many objects of each class came.
#[test]
fn class_mix_and_sizes_follow_etram() {
    let mut presence = [0usize; NUM_CLASSES];
    let mut tracks = [0usize; NUM_CLASSES];
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..6 {
        let mut rng = Rng::new(seed);
        let layout = Layout::generate(1280, 720, 1.0, 1.0, &mut rng);
        let mut traffic = Traffic::new(&layout, Rng::new(seed + 100), 0.0);
        let mut t = 0.0;
        while t < 600.0 {
            traffic.step(t, 0.05);
            t += 0.05;
            for a in &traffic.agents {
                let x = a.foot().0;
                if x > 0.0 && x < 1280.0 {
                    presence[a.class as usize] += 1;
                }
                if seen.insert((seed, a.track_id)) {
                    tracks[a.class as usize] += 1;
                    let s = a.class.spec();
                    assert!(
                        a.w >= s.width.0
                            && a.w <= s.width.1
                            && a.h >= s.height.0
                            && a.h <= s.height.1,
                        "{:?} {}x{}",
                        a.class,
                        a.w,
                        a.h
                    );
                }
            }
        }
    }
    let total: usize = presence.iter().sum();
    let share = |c: Class| presence[c as usize] as f64 / total as f64;
    assert!(tracks.iter().sum::<usize>() > 1000, "{tracks:?}");
    // Cars and pedestrians are the two most frequent classes in view and together the great majority;
    // trams and wheelchairs are rare but present.
    let mut order: Vec<usize> = (0..NUM_CLASSES).collect();
    order.sort_by_key(|&c| std::cmp::Reverse(presence[c]));
    let mut top = order[..2].to_vec();
    top.sort();
    assert_eq!(
        top,
        vec![Class::Pedestrian as usize, Class::Car as usize],
        "{presence:?}"
    );
    assert!(
        share(Class::Car) + share(Class::Pedestrian) > 0.7,
        "{presence:?}"
    );
    for c in [Class::Tram, Class::Wheelchair] {
        assert!(
            tracks[c as usize] > 0 && share(c) < 0.03,
            "{c:?}: {presence:?} {tracks:?}"
        );
    }
    assert!(tracks.iter().all(|&n| n > 0), "{tracks:?}");
}

/// Events inside the labelled box of their instant (±16 ms), and the mean share of the image the boxes cover.
fn concentration(ev: &EventBatch, boxes: &[BBox], hw: (usize, usize)) -> (f64, f64) {
    let mut by_t: BTreeMap<i64, Vec<&BBox>> = BTreeMap::new();
    for b in boxes {
        by_t.entry(b.t).or_default().push(b);
    }
    let (mut inside, mut counted) = (0usize, 0usize);
    for i in 0..ev.len() {
        let k = (ev.t[i] + 16_666) / 33_333;
        let Some(bs) = by_t.get(&(k * 33_333)) else {
            continue;
        };
        counted += 1;
        let (x, y) = (ev.x[i] as f32 + 0.5, ev.y[i] as f32 + 0.5);
        if bs.iter().any(|b| {
            x >= b.x - 2.0 && x <= b.x + b.w + 2.0 && y >= b.y - 2.0 && y <= b.y + b.h + 2.0
        }) {
            inside += 1;
        }
    }
    let mut area = 0.0;
    for bs in by_t.values() {
        let mut mask = vec![false; hw.0 * hw.1];
        for b in bs {
            for y in (b.y as usize)..((b.y + b.h).ceil() as usize).min(hw.0) {
                for x in (b.x as usize)..((b.x + b.w).ceil() as usize).min(hw.1) {
                    mask[y * hw.1 + x] = true;
                }
            }
        }
        area += mask.iter().filter(|&&m| m).count() as f64 / mask.len() as f64;
    }
    (
        inside as f64 / counted.max(1) as f64,
        area / by_t.len().max(1) as f64,
    )
}

#[test]
fn sizes_classes_events_and_stopped_objects_in_a_mini_recording() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(Preset::Mini, 3, "train=1", 6.0);
    let s = generate(dir.path(), &cfg);
    let d = &s.description;
    let class = |c: Class| d.total.classes.get(&c.id()).cloned().unwrap_or_default();
    // mini: sizes are eTraM's network-input sizes (half of 1280x720).
    let (ped, car) = (class(Class::Pedestrian), class(Class::Car));
    assert!(ped.boxes > 0 && car.boxes > 0, "{:?}", d.total.classes);
    assert!(
        ped.mean_h > 15.0 && ped.mean_h < 45.0 && ped.mean_w > 5.0 && ped.mean_w < 20.0,
        "{ped:?}"
    );
    assert!(
        car.mean_w > 40.0 && car.mean_w < 100.0 && car.mean_h > 25.0 && car.mean_h < 60.0,
        "{car:?}"
    );
    assert_eq!(
        ped.small, ped.boxes,
        "pedestrians are small objects in the network input"
    );
    assert!(car.medium > car.small, "{car:?}");
    assert!(
        (ped.boxes + car.boxes) as f64 > 0.6 * d.total.boxes as f64,
        "{:?}",
        d.total.classes
    );
    // Objects in (nearly) every label instant.
    assert!(
        d.total.label_times as f64 >= 0.95 * 180.0,
        "{} label times",
        d.total.label_times
    );

    let (h5, bbox) = &sequences(dir.path())[0];
    let (ev, hw) = read_all(h5);
    let boxes = read_bbox_npy(bbox).unwrap();
    let (inside, area) = concentration(&ev, &boxes, hw);
    assert!(
        inside > 0.6 && inside > 3.0 * area,
        "{:.3} of events in boxes covering {:.3} of the image",
        inside,
        area
    );

    // Objects that stand still (same box at consecutive instants) emit far fewer events than moving ones.
    let mut prev: BTreeMap<u32, BBox> = BTreeMap::new();
    let (mut still, mut moving) = ((0.0, 0.0), (0.0, 0.0)); // (events, box area · time)
    let mut sorted = boxes.clone();
    sorted.sort_by_key(|b| (b.track_id, b.t));
    for b in &sorted {
        if let Some(p) = prev.get(&b.track_id) {
            if p.t + 33_333 == b.t {
                let a = ev.t.partition_point(|&t| t < p.t);
                let e = ev.t.partition_point(|&t| t < b.t);
                let n = (a..e)
                    .filter(|&i| {
                        (ev.x[i] as f32) >= b.x
                            && (ev.x[i] as f32) < b.x + b.w
                            && (ev.y[i] as f32) >= b.y
                            && (ev.y[i] as f32) < b.y + b.h
                    })
                    .count() as f64;
                let acc = if (p.x, p.y, p.w, p.h) == (b.x, b.y, b.w, b.h) {
                    &mut still
                } else {
                    &mut moving
                };
                acc.0 += n;
                acc.1 += (b.w * b.h) as f64;
            }
        }
        prev.insert(b.track_id, *b);
    }
    assert!(
        still.1 > 0.0 && moving.1 > 0.0,
        "need both still and moving objects: {still:?} {moving:?}"
    );
    let (rs, rm) = (still.0 / still.1, moving.0 / moving.1);
    assert!(
        rs < 0.1 * rm,
        "still objects {rs:.4} events/px vs moving {rm:.4}"
    );
}

#[test]
fn same_seed_same_bytes_whatever_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    let files = |d: &Path| -> Vec<Vec<u8>> {
        sequences(d)
            .iter()
            .flat_map(|(a, b)| [std::fs::read(a).unwrap(), std::fs::read(b).unwrap()])
            .collect()
    };
    let mut cfg = config(Preset::Etram, 7, "train=1,test=1", 0.25);
    cfg.jobs = 1;
    generate(&dir.path().join("a"), &cfg);
    cfg.jobs = 3;
    generate(&dir.path().join("b"), &cfg);
    cfg.seed = 8;
    generate(&dir.path().join("c"), &cfg);
    let (a, b, c) = (
        files(&dir.path().join("a")),
        files(&dir.path().join("b")),
        files(&dir.path().join("c")),
    );
    assert_eq!(a.len(), 4);
    assert!(a == b, "same seed, different bytes");
    assert!(
        a[0] != c[0] && a[1] != c[1],
        "a different seed gave the same files"
    );
}

#[test]
fn night_is_noisier_than_day() {
    let dir = tempfile::tempdir().unwrap();
    // Share of background pixels (never near a labelled box) with at least one event in a second:
    // noise reaches every pixel, the odd unlabelled object only a few.
    let background = |preset: Preset, name: &str| {
        let mut cfg = config(preset, 4, "train=1", 1.0);
        // The night physics on the small sensor, so the test stays fast.
        cfg.sensor_hw = (192, 320);
        cfg.pixel_scale = 0.5;
        let out = dir.path().join(name);
        generate(&out, &cfg);
        let (h5, bbox) = &sequences(&out)[0];
        let (ev, (h, w)) = read_all(h5);
        let mut near_box = vec![false; h * w];
        for b in read_bbox_npy(bbox).unwrap() {
            let (x0, y0) = ((b.x - 4.0).max(0.0) as usize, (b.y - 4.0).max(0.0) as usize);
            let (x1, y1) = (
                ((b.x + b.w + 4.0) as usize).min(w),
                ((b.y + b.h + 4.0) as usize).min(h),
            );
            for y in y0..y1 {
                near_box[y * w + x0..y * w + x1].fill(true);
            }
        }
        let mut hit = vec![false; h * w];
        for i in 0..ev.len() {
            hit[ev.y[i] as usize * w + ev.x[i] as usize] = true;
        }
        let bg = near_box.iter().filter(|&&n| !n).count();
        assert!(bg > h * w / 5, "too little background: {bg} px");
        (0..h * w).filter(|&i| !near_box[i] && hit[i]).count() as f64 / bg as f64
    };
    let (day, night) = (
        background(Preset::Etram, "day"),
        background(Preset::Night, "night"),
    );
    assert!(
        night > 3.0 * day,
        "background pixels that fired: night {night:.3}, day {day:.3}"
    );
}

#[test]
fn bad_settings_are_refused_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        |cfg: &SynthConfig, out: &Path| synth::generate(out, cfg, &|_| {}).unwrap_err().to_string();
    let base = config(Preset::Mini, 0, "train=1", 0.3);
    for (dur, want) in [
        (0.0, "at least 0.2 s"),
        (-1.0, "at least 0.2 s"),
        (f64::NAN, "at least 0.2 s"),
        (1e9, "at most one day"),
    ] {
        let mut c = base.clone();
        c.duration_s = dur;
        let e = err(&c, dir.path());
        assert!(e.contains(want), "{e}");
    }
    let mut c = base.clone();
    c.sequences = SplitCounts::default();
    assert!(err(&c, dir.path()).contains("no sequences"));
    let mut c = base.clone();
    c.density = 0.0;
    assert!(err(&c, dir.path()).contains("density"));
    // Output path that is a file.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(err(&base, &file).contains("not a folder"));
    // Existing output is not overwritten unless asked.
    let out = dir.path().join("out");
    generate(&out, &base);
    let e = err(&base, &out);
    assert!(
        e.contains("already exists") && e.contains("--overwrite"),
        "{e}"
    );
    let mut again = base.clone();
    again.overwrite = true;
    generate(&out, &again);

    for (s, want) in [
        ("train=x", "not a whole number"),
        ("bogus=1", "unknown split"),
        ("train", "SPLIT=N"),
        ("train=0", "no sequences"),
        ("train=1,train=2", "twice"),
    ] {
        let e = s.parse::<SplitCounts>().unwrap_err();
        assert!(e.contains(want), "{s}: {e}");
    }
    assert!("huge".parse::<Preset>().unwrap_err().contains("etram"));
    let e = synth::describe(&dir.path().join("missing"), Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing") && e.contains("not a folder"), "{e}");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("train")).unwrap();
    assert!(synth::describe(&empty, Default::default())
        .unwrap_err()
        .to_string()
        .contains("no recordings"));
}
