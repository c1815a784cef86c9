//! Prophesee RAW through the binary: `synth --format`, `preprocess` of `.raw` recordings (the same
//! bytes as from `_td.h5`), `convert` between every format and back, `synth --describe` on RAW.

mod common;
use common::*;

use evdet_events::recording::{OpenOptions, Recording};
use evdet_events::EventBatch;
use std::path::Path;

fn synth(out: &Path, format: &str) {
    synth_mini(out, 3, "1", "train=1,val=1", &["--format", format]);
}

fn preprocess(raw: &Path, out: &Path) -> String {
    run(evdet()
        .args([
            "preprocess",
            "--splits",
            "train,val",
            "--jobs",
            "1",
            "--raw",
        ])
        .arg(raw)
        .arg("--out")
        .arg(out))
    .0
}

/// Every file under `dir`, relative path → bytes.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn read_all(path: &Path) -> EventBatch {
    let r = Recording::open(path, OpenOptions::default()).unwrap();
    let mut s = r.stream(r.sensor_hw().unwrap(), 1 << 16).unwrap();
    let mut ev = EventBatch::default();
    while let Some(c) = s.next_chunk().unwrap() {
        ev.extend(&c);
    }
    ev
}

#[test]
fn preprocessing_raw_recordings_writes_the_bytes_h5_ones_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for format in ["h5", "raw-evt3", "raw-evt2", "raw-evt21", "dat"] {
        synth(&d.join(format), format);
        let out = preprocess(&d.join(format), &d.join(format!("pre_{format}")));
        assert!(out.contains("preprocessed 2 sequences"), "{format}: {out}");
    }
    assert!(d.join("raw-evt3/train/mini_train_000.raw").exists());
    // synth → raw → decode is synth → h5 → read, event for event.
    let h5 = read_all(&d.join("h5/train/mini_train_000_td.h5"));
    assert!(h5.len() > 10_000);
    assert_eq!(read_all(&d.join("raw-evt3/train/mini_train_000.raw")), h5);
    assert_eq!(read_all(&d.join("raw-evt21/train/mini_train_000.raw")), h5);
    assert!(d.join("dat/val/mini_val_000_td.dat").exists());
    let reference = tree(&d.join("pre_h5"));
    assert!(
        reference.len() >= 8,
        "{:?}",
        reference.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for format in ["raw-evt3", "raw-evt2", "raw-evt21", "dat"] {
        assert!(
            tree(&d.join(format!("pre_{format}"))) == reference,
            "{format}: preprocessed files differ from those of _td.h5"
        );
    }
    // --describe reads RAW folders: the same events as the HDF5 dataset.
    let json = d.join("describe.json");
    run(evdet()
        .arg("synth")
        .arg("--describe")
        .arg(d.join("raw-evt3"))
        .arg("--json")
        .arg(&json));
    let desc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let events_h5: u64 = ["train", "val"]
        .iter()
        .map(|s| {
            Recording::open(
                &d.join(format!("h5/{s}/mini_{s}_000_td.h5")),
                OpenOptions::default(),
            )
            .unwrap()
            .event_count_hint()
        })
        .sum();
    assert_eq!(desc["total"]["events"].as_u64(), Some(events_h5));
}

#[test]
fn convert_round_trips_through_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    synth(&d.join("h5"), "h5");
    let src = d.join("h5/train/mini_train_000_td.h5");
    let want = read_all(&src);
    assert!(want.len() > 10_000);
    let mut prev = src.clone();
    for (i, (name, format)) in [
        ("a.raw", None),
        ("b.raw", Some("raw-evt2")),
        ("c.raw", Some("raw-evt21")),
        ("d_td.dat", None),
        ("e_td.h5", None),
    ]
    .iter()
    .enumerate()
    {
        let out = d.join(name);
        let mut cmd = evdet();
        cmd.arg("convert").arg(&prev).arg(&out);
        if let Some(f) = format {
            cmd.args(["--format", f]);
        }
        let (stdout, _) = run(cmd);
        assert!(
            stdout.contains(&format!("{} events", want.len())),
            "{i}: {stdout}"
        );
        assert_eq!(read_all(&out), want, "{name}");
        prev = out;
    }
    // An existing output is kept unless --overwrite; an unknown output name is an error.
    let o = evdet()
        .arg("convert")
        .arg(&src)
        .arg(d.join("a.raw"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    let o = evdet()
        .arg("convert")
        .arg(&src)
        .arg(d.join("x.txt"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot tell the output format"));
    assert!(!d.join("x.txt").exists());
}

#[test]
fn a_raw_file_without_a_sensor_size_asks_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cam.raw");
    let mut bytes = b"% evt 3.0\n% end\n".to_vec();
    for w in [0x8001u16, 0x0005, 0x6010, 0x2007] {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    std::fs::write(&p, &bytes).unwrap();
    let out = dir.path().join("cam_td.h5");
    let o = evdet().arg("convert").arg(&p).arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--sensor-size"),
        "{err}"
    );
    run(evdet().arg("convert").arg(&p).arg(&out).args([
        "--sensor-size",
        "720x1280",
        "--time-origin",
        "sensor",
    ]));
    let ev = read_all(&out);
    assert_eq!((ev.x[0], ev.y[0], ev.t[0]), (7, 5, 4096 + 0x10));
}
