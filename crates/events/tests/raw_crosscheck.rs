//! evdet's RAW decoder and encoder against files written by independent implementations (faery,
//! expelliarmus) and by hand from Prophesee's format descriptions: `tests/data/raw`, made by
//! `scripts/raw_crosscheck.py`, which also records how faery and expelliarmus read each file.

use evdet_events::evt::{read_evt, write_evt, EvtFile, EvtFormat, TimeOrigin, Trigger};
use evdet_events::EventBatch;
use safetensors::SafeTensors;
use std::path::PathBuf;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/raw")
}

fn cases() -> serde_json::Map<String, serde_json::Value> {
    let text = std::fs::read(data().join("cases.json")).unwrap();
    serde_json::from_slice::<serde_json::Value>(&text)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

fn ints(st: &SafeTensors, name: &str) -> Vec<i64> {
    let t = st.tensor(name).unwrap();
    match t.dtype() {
        safetensors::Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        safetensors::Dtype::I32 => t
            .data()
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as i64)
            .collect(),
        other => panic!("{name}: unexpected dtype {other:?}"),
    }
}

/// The events and triggers a case's file must decode to (sensor clock).
fn expected(name: &str) -> (EventBatch, Vec<Trigger>) {
    let bytes = std::fs::read(data().join(format!("{name}.safetensors"))).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let ev = EventBatch {
        x: ints(&st, "x").iter().map(|&v| v as u16).collect(),
        y: ints(&st, "y").iter().map(|&v| v as u16).collect(),
        p: ints(&st, "p").iter().map(|&v| v as u8).collect(),
        t: ints(&st, "t"),
    };
    let (tt, ti, tp) = (
        ints(&st, "trig_t"),
        ints(&st, "trig_id"),
        ints(&st, "trig_p"),
    );
    let trig = (0..tt.len())
        .map(|i| Trigger {
            t: tt[i],
            id: ti[i] as u8,
            p: tp[i] as u8,
        })
        .collect();
    (ev, trig)
}

#[test]
fn every_file_decodes_to_the_events_its_writer_encoded() {
    let cases = cases();
    assert!(cases.len() >= 13, "the script's cases are all here");
    for (name, meta) in &cases {
        let (want, want_trig) = expected(name);
        // expelliarmus's EVT 2.0 header claims a 640x480 camera whatever the events.
        let given = meta.get("sensor_override").map(|v| {
            (
                v[0].as_u64().unwrap() as usize,
                v[1].as_u64().unwrap() as usize,
            )
        });
        let got = read_evt(
            &data().join(format!("{name}.raw")),
            given,
            TimeOrigin::Sensor,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.events.len(), want.len(), "{name}: event count");
        assert_eq!(got.events, want, "{name}");
        assert_eq!(got.triggers, want_trig, "{name}: triggers");
        let count = |k: &str| meta.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        assert_eq!(got.stats.outside_sensor, count("outside_sensor"), "{name}");
        assert_eq!(got.stats.without_row, count("without_row"), "{name}");
        assert_eq!(got.stats.unknown_words, count("unknown_words"), "{name}");
        assert_eq!(
            got.stats.before_time_high,
            count("before_time_high"),
            "{name}"
        );
        assert_eq!(got.stats.truncated_bytes, 0, "{name}");
    }
}

#[test]
fn metavision_clock_starts_one_time_high_before_the_first() {
    // EVT 3.0: shift (first time high − 1) · 4096; EVT 2.x: first time high · 64 (openeb's rule).
    for (name, shift) in [
        ("handmade_evt3_words", 99 * 4096),
        ("handmade_evt21_little", 5_000_064),
        ("handmade_evt21_legacy", 5_000_064),
    ] {
        let path = data().join(format!("{name}.raw"));
        let sensor = read_evt(&path, None, TimeOrigin::Sensor).unwrap();
        let shifted = read_evt(&path, None, TimeOrigin::Metavision).unwrap();
        let moved: Vec<i64> = sensor.events.t.iter().map(|t| t - shift).collect();
        assert_eq!(shifted.events.t, moved, "{name}");
        assert_eq!(
            shifted.triggers[0].t,
            sensor.triggers[0].t - shift,
            "{name}"
        );
    }
    let path = data().join("faery_evt3.raw");
    let shifted = read_evt(&path, None, TimeOrigin::Metavision).unwrap();
    let first = shifted.events.t[0];
    assert!(
        (4096..8192).contains(&first),
        "shifted EVT 3.0 times start in 4096..8191 µs, got {first}"
    );
}

#[test]
fn evdet_writes_the_files_faery_and_expelliarmus_were_checked_on() {
    // The script had faery and expelliarmus decode these very bytes (cases.json says how they
    // read them); evdet must still write them byte for byte.
    let cases = cases();
    let dir = tempfile::tempdir().unwrap();
    for (name, format) in [
        ("evdet_evt3", EvtFormat::Evt3),
        ("evdet_evt2", EvtFormat::Evt2),
        ("evdet_evt21", EvtFormat::Evt21 { legacy: false }),
    ] {
        let (ev, _) = expected(name);
        let out = dir.path().join(format!("{name}.raw"));
        write_evt(&out, format, (720, 1280), &ev, &[]).unwrap();
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(data().join(format!("{name}.raw"))).unwrap(),
            "{name}"
        );
        if format != (EvtFormat::Evt21 { legacy: false }) {
            // faery 0.7.1 has no EVT 2.1 decoder (it panics "not yet implemented").
            assert_eq!(
                cases[name]["faery"], "exact",
                "{name}: faery read evdet's file"
            );
        }
    }
    assert_eq!(cases["evdet_evt2"]["expelliarmus"], "exact");
    assert_eq!(cases["evdet_evt3_triggers"]["faery_triggers"], "exact");
}

#[test]
fn headers_of_every_writer_parse() {
    for (name, format) in [
        ("faery_evt3", EvtFormat::Evt3),
        ("faery_evt2", EvtFormat::Evt2),
        ("expelliarmus_evt3_short", EvtFormat::Evt3),
        ("handmade_evt21_legacy", EvtFormat::Evt21 { legacy: true }),
        ("handmade_evt21_little", EvtFormat::Evt21 { legacy: false }),
    ] {
        let f = EvtFile::open(&data().join(format!("{name}.raw"))).unwrap();
        assert_eq!(f.header.format, format, "{name}");
        // expelliarmus names no geometry: its system_ID 48 (EVK3 Gen4.1) gives 1280x720.
        assert_eq!(f.header.sensor_hw, Some((720, 1280)), "{name}");
    }
    // expelliarmus's EVT 2.0 header: `evt 2.0`, system_ID 21 (CCAM3 Gen3), no geometry.
    let f = EvtFile::open(&data().join("expelliarmus_evt2.raw")).unwrap();
    assert_eq!(f.header.format, EvtFormat::Evt2);
    assert_eq!(f.header.sensor_hw, Some((480, 640)));
}
