//! Bad `.raw` files: each is a clear error naming the file (and the byte, where it helps) or a
//! counted repair; never a panic.

use evdet_events::evt::{read_evt, write_evt, EvtFile, EvtFormat, TimeOrigin};
use evdet_events::recording::{OpenOptions, Recording};
use evdet_events::rng::Rng;
use evdet_events::EventBatch;
use std::path::Path;

fn err_of(path: &Path) -> String {
    match read_evt(path, None, TimeOrigin::Sensor) {
        Ok(d) => panic!("{} decoded: {:?}", path.display(), d.stats),
        Err(e) => e.to_string(),
    }
}

fn sample() -> EventBatch {
    EventBatch {
        x: vec![1, 2, 3, 4, 5, 6],
        y: vec![7, 7, 7, 7, 8, 9],
        p: vec![1, 1, 1, 1, 0, 1],
        t: vec![100, 100, 100, 100, 5000, 90_000],
    }
}

#[test]
fn broken_headers_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[u8], &[&str])] = &[
        ("empty.raw", b"", &["empty.raw", "0 bytes"]),
        (
            "noheader.raw",
            b"\x00\x80\x05\x60",
            &["noheader.raw", "no RAW header"],
        ),
        (
            "noformat.raw",
            b"% date 2024-01-01\n% end\n\x00\x80",
            &["noformat.raw", "names no format"],
        ),
        (
            "unknown.raw",
            b"% format EVT4;height=720;width=1280\n% end\n",
            &["unknown.raw", "EVT4", "not one evdet reads"],
        ),
        (
            "evt21.raw",
            b"% format EVT21;height=720;width=1280\n% system_ID 99\n% end\n",
            &["evt21.raw", "endianness", "unknown system_ID 99"],
        ),
        (
            "cut.raw",
            b"% format EVT3;height=720;width=1280\n% geom",
            &["cut.raw", "byte 36", "no end"],
        ),
    ];
    for (name, bytes, words) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = err_of(&p);
        for w in *words {
            assert!(e.contains(w), "{name}: '{e}' lacks '{w}'");
        }
    }
    // No sensor size anywhere: an error until the user gives it.
    let p = dir.path().join("nosize.raw");
    std::fs::write(&p, b"% evt 3.0\n% end\n\x00\x80").unwrap();
    let e = err_of(&p);
    assert!(
        e.contains("nosize.raw") && e.contains("--sensor-size"),
        "{e}"
    );
    let d = read_evt(&p, Some((720, 1280)), TimeOrigin::Sensor).unwrap();
    assert!(d.events.is_empty());
}

#[test]
fn a_truncated_last_word_is_counted_and_the_rest_decoded() {
    let dir = tempfile::tempdir().unwrap();
    for format in [
        EvtFormat::Evt3,
        EvtFormat::Evt2,
        EvtFormat::Evt21 { legacy: false },
    ] {
        let p = dir.path().join("t.raw");
        write_evt(&p, format, (720, 1280), &sample(), &[]).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.truncate(bytes.len() - 1);
        std::fs::write(&p, &bytes).unwrap();
        let d = read_evt(&p, None, TimeOrigin::Sensor).unwrap();
        assert_eq!(
            d.stats.truncated_bytes as usize,
            format.word_bytes() - 1,
            "{format}"
        );
        assert!(d.events.len() >= 5, "{format}: {}", d.events.len());
    }
}

#[test]
fn time_going_back_is_decoded_then_repaired_and_counted() {
    // EVT 3.0: time high 5, an event, time high 4 (back by one step: a glitch, not a wrap-around),
    // an event; the stream raises its time to the running maximum as RVT does.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("back.raw");
    let mut bytes = b"% format EVT3;height=720;width=1280\n% end\n".to_vec();
    for w in [0x8005u16, 0x0003, 0x2001, 0x8004, 0x2002] {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    std::fs::write(&p, &bytes).unwrap();
    let d = read_evt(&p, None, TimeOrigin::Sensor).unwrap();
    assert_eq!(d.events.t, vec![5 * 4096, 4 * 4096]);
    assert_eq!(d.stats.time_high_backwards, 1);
    assert_eq!(d.stats.time_high_loops, 0);
    let rec = Recording::open(
        &p,
        OpenOptions {
            time_origin: TimeOrigin::Sensor,
            ..Default::default()
        },
    )
    .unwrap();
    let mut s = rec.stream((720, 1280), 1000).unwrap();
    let c = s.next_chunk().unwrap().unwrap();
    assert_eq!(c.t, vec![5 * 4096, 5 * 4096]);
    assert_eq!(s.stats.timestamps_repaired, 1);
}

#[test]
fn mutated_files_never_panic() {
    // Bit flips, truncations, repeated and zeroed stretches of real files of every format: each
    // decodes with counted repairs or fails with an error, and memory stays bounded by the chunk.
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/raw");
    let seeds = [
        "faery_evt3",
        "faery_evt2",
        "handmade_evt21_legacy",
        "handmade_evt3_words",
    ];
    let mut rng = Rng::new(11);
    let mut decoded = 0;
    for name in seeds {
        let orig = std::fs::read(data.join(format!("{name}.raw"))).unwrap();
        for _ in 0..60 {
            let mut b = orig.clone();
            match rng.below(4) {
                0 => {
                    for _ in 0..1 + rng.below(20) {
                        let i = rng.below(b.len() as u64) as usize;
                        b[i] ^= 1 << rng.below(8);
                    }
                }
                1 => b.truncate(rng.below(b.len() as u64) as usize),
                2 => {
                    let i = rng.below(b.len() as u64) as usize;
                    let n = (rng.below(64) as usize).min(b.len() - i);
                    b[i..i + n].fill(0xFF);
                }
                _ => {
                    let i = rng.below(b.len() as u64) as usize;
                    let chunk = b[i..].to_vec();
                    b.extend_from_slice(&chunk);
                }
            }
            let p = dir.path().join("m.raw");
            std::fs::write(&p, &b).unwrap();
            if let Ok(f) = EvtFile::open(&p) {
                let hw = f.sensor_hw_or(Some((720, 1280))).unwrap();
                let mut r = f.reader(hw, TimeOrigin::Metavision, 4096).unwrap();
                while let Ok(Some(c)) = r.next_chunk() {
                    assert!(c.len() <= 4096 * 32, "a chunk is bounded by its words");
                    assert!(c.x.iter().all(|&x| x < 1280) && c.y.iter().all(|&y| y < 720));
                }
                decoded += 1;
            }
        }
    }
    assert!(
        decoded > 100,
        "most mutations keep a readable header: {decoded}"
    );
}
