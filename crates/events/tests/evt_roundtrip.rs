//! evdet's RAW encoders and decoders against each other: every format decodes to exactly the events
//! and triggers encoded, across time-high wrap-around, vectors, sensor bounds and chunk edges.

use evdet_events::evt::{read_evt, write_evt, EvtFile, EvtFormat, TimeOrigin, Trigger};
use evdet_events::rng::Rng;
use evdet_events::EventBatch;

const FORMATS: [EvtFormat; 4] = [
    EvtFormat::Evt3,
    EvtFormat::Evt2,
    EvtFormat::Evt21 { legacy: false },
    EvtFormat::Evt21 { legacy: true },
];

/// Traffic-like events: bursts of neighbours on a row at one time stamp (vectors), singles, long
/// silences (a gap of 20 s crosses EVT 3.0's 16.78 s wrap-around).
fn events(seed: u64, n: usize, hw: (usize, usize)) -> EventBatch {
    let mut r = Rng::new(seed);
    let mut ev = EventBatch::default();
    let mut t = 1_000i64;
    while ev.len() < n {
        t += match r.next_u64() % 100 {
            0 => 20_000_000,
            1..=3 => 5_000 + (r.next_u64() % 70_000) as i64,
            _ => (r.next_u64() % 40) as i64,
        };
        let y = (r.next_u64() % hw.0 as u64) as u16;
        let p = (r.next_u64() % 2) as u8;
        let mut x = (r.next_u64() % hw.1 as u64) as u16;
        let burst = 1 + (r.next_u64() % 30) as usize;
        for _ in 0..burst {
            if x as usize >= hw.1 {
                break;
            }
            ev.x.push(x);
            ev.y.push(y);
            ev.p.push(p);
            ev.t.push(t);
            x += 1 + (r.next_u64() % 3) as u16;
        }
    }
    ev
}

#[test]
fn every_format_round_trips_events_and_triggers() {
    let hw = (720, 1280);
    let ev = events(7, 60_000, hw);
    assert!(
        *ev.t.last().unwrap() > 40_000_000,
        "crosses two EVT3 wrap-arounds"
    );
    let triggers: Vec<Trigger> = (0..50)
        .map(|k| Trigger {
            t: ev.t[k * 1000],
            id: (k % 4) as u8,
            p: (k % 2) as u8,
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for format in FORMATS {
        let path = dir.path().join(format!("{}.raw", format.name()));
        write_evt(&path, format, hw, &ev, &triggers).unwrap();
        let f = EvtFile::open(&path).unwrap();
        assert_eq!(f.header.format, format);
        assert_eq!(f.header.sensor_hw, Some(hw));
        for origin in [TimeOrigin::Metavision, TimeOrigin::Sensor] {
            let d = read_evt(&path, None, origin).unwrap();
            assert_eq!(d.events, ev, "{format} {origin:?}");
            assert_eq!(d.triggers, triggers, "{format}");
            assert_eq!(d.stats.outside_sensor, 0);
            assert_eq!(d.stats.unknown_words + d.stats.before_time_high, 0);
            assert_eq!(d.stats.events, ev.len() as u64);
        }
        // Small chunks cut words and vectors at every place.
        let mut r = f.reader(hw, TimeOrigin::Sensor, 4097).unwrap();
        let mut got = EventBatch::default();
        while let Some(c) = r.next_chunk().unwrap() {
            got.extend(&c);
        }
        assert_eq!(got, ev, "{format}, small chunks");
        assert_eq!(
            f.time_range(hw, TimeOrigin::Sensor).unwrap(),
            Some((ev.t[0], *ev.t.last().unwrap()))
        );
    }
    let evt3 = std::fs::metadata(dir.path().join("EVT3.raw"))
        .unwrap()
        .len();
    let evt2 = std::fs::metadata(dir.path().join("EVT2.raw"))
        .unwrap()
        .len();
    assert!(
        evt3 * 2 < evt2,
        "EVT3 vectors make bursts small: {evt3} vs EVT2 {evt2} bytes"
    );
}

#[test]
fn out_of_sensor_events_are_dropped_and_counted() {
    let ev = EventBatch {
        x: vec![5, 1279, 1280, 3, 2000],
        y: vec![5, 719, 2, 720, 1000],
        p: vec![1, 0, 1, 0, 1],
        t: vec![10, 20, 30, 40, 50],
    };
    let dir = tempfile::tempdir().unwrap();
    for format in FORMATS {
        let path = dir.path().join("o.raw");
        write_evt(&path, format, (720, 1280), &ev, &[]).unwrap();
        let d = read_evt(&path, None, TimeOrigin::Sensor).unwrap();
        assert_eq!(d.events.x, vec![5, 1279], "{format}");
        assert_eq!(d.events.t, vec![10, 20], "{format}");
        assert_eq!(d.stats.outside_sensor, 3, "{format}");
    }
}

#[test]
fn skip_to_starts_at_or_before_the_time_asked() {
    let hw = (720, 1280);
    let ev = events(3, 200_000, hw);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.raw");
    write_evt(&path, EvtFormat::Evt3, hw, &ev, &[]).unwrap();
    let f = EvtFile::open(&path).unwrap();
    let target = ev.t[150_000];
    let mut r = f.reader(hw, TimeOrigin::Sensor, 1 << 14).unwrap();
    r.skip_to(target).unwrap();
    let mut got = EventBatch::default();
    while let Some(c) = r.next_chunk().unwrap() {
        got.extend(&c);
    }
    assert!(got.t[0] <= target && got.len() < ev.len(), "skipped some");
    let from = ev.t.partition_point(|&t| t < target);
    let got_from = got.t.partition_point(|&t| t < target);
    assert_eq!(got.t[got_from..], ev.t[from..]);
    assert_eq!(got.x[got_from..], ev.x[from..]);
}
