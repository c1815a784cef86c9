//! The stable-Rust fuzzing of every reader of outside data, in the normal suite: each target first
//! reads its real seed files (they must read without error, or the target tests nothing), then every
//! input kept under `crates/fuzz/regressions/<target>/` (inputs that once broke a reader), then a
//! bounded number of structure-aware mutations of the seeds (`EVDET_FUZZ_CASES` per target, 1000 by
//! default; the seed of the generator is `EVDET_FUZZ_SEED`, 0 by default). Each input must give a
//! value or an error within 20 s, without a panic, and without asking for an allocation above
//! `alloc_cap::cap_for(len)` (the allocator refuses it, naming the case, and the process aborts).
//! A failing input is written to the temporary folder printed in the failure, to be kept as a
//! regression.

use evdet_events::rng::{derive_seed, Rng};
use evdet_fuzz::alloc_cap::{self, CappedAlloc};
use evdet_fuzz::mutate::mutate;
use evdet_fuzz::targets::{by_name, Target};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

enum Outcome {
    Read,
    Refused(String),
}

/// Runs one input in its own thread with a deadline; a panic or a hang is a failure that keeps the
/// input.
fn run_case(t: &Target, label: &str, bytes: Vec<u8>, scratch: &Path) -> Outcome {
    // A crash in C code (a signal) takes the process before any message: EVDET_FUZZ_VERBOSE=1
    // names every case first.
    if std::env::var_os("EVDET_FUZZ_VERBOSE").is_some() {
        eprintln!("{}: {label}", t.name);
        let _ = std::fs::write(std::env::temp_dir().join("evdet-fuzz-last-input"), &bytes);
    }
    alloc_cap::set_label(label);
    alloc_cap::set_cap(alloc_cap::cap_for(bytes.len()));
    let (tx, rx) = mpsc::channel();
    let (run, scratch_owned, input) = (t.run, scratch.to_path_buf(), bytes.clone());
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| run(&input, &scratch_owned));
        let _ = tx.send(r);
    });
    let outcome = rx.recv_timeout(Duration::from_secs(20));
    alloc_cap::set_cap(usize::MAX);
    match outcome {
        Ok(Ok(Ok(()))) => Outcome::Read,
        Ok(Ok(Err(e))) => Outcome::Refused(e),
        Ok(Err(p)) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            fail(t, label, &bytes, &format!("panicked: {msg}"))
        }
        Err(_) => fail(t, label, &bytes, "no answer within 20 s (a hang)"),
    }
}

fn fail(t: &Target, label: &str, bytes: &[u8], what: &str) -> ! {
    let dir = std::env::temp_dir()
        .join("evdet-fuzz-failures")
        .join(t.name);
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join(format!("{}.bin", label.replace(['/', ' '], "_")));
    let _ = std::fs::write(&p, bytes);
    panic!(
        "{}: {label} {what}; the input is {} (keep it in crates/fuzz/regressions/{}/)",
        t.name,
        p.display(),
        t.name
    );
}

fn regressions(name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(name);
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.path(), std::fs::read(e.path()).ok()?)))
        .collect();
    v.sort();
    v
}

fn fuzz(name: &str) {
    let _serial = serial();
    let t = by_name(name).expect("a target");
    let scratch = tempfile::tempdir().unwrap();
    (t.prepare)(scratch.path());
    let seeds = (t.seeds)();
    assert!(!seeds.is_empty(), "{name}: no seed files");
    for (n, bytes) in &seeds {
        if let Outcome::Refused(e) =
            run_case(&t, &format!("seed {n}"), bytes.clone(), scratch.path())
        {
            panic!("{name}: the seed {n} does not read: {e}");
        }
    }
    for (p, bytes) in regressions(name) {
        run_case(
            &t,
            &format!("regression {}", p.display()),
            bytes,
            scratch.path(),
        );
    }
    let cases = env_u64("EVDET_FUZZ_CASES", 1000);
    let seed = env_u64("EVDET_FUZZ_SEED", 0);
    let (mut read, mut refused, mut largest) = (0u64, 0u64, 0usize);
    for i in 0..cases {
        let mut rng = Rng::new(derive_seed(seed, &[i, name.len() as u64]));
        let a = rng.below(seeds.len() as u64) as usize;
        let b = rng.below(seeds.len() as u64) as usize;
        let (bytes, _) = mutate(&seeds[a].1, &seeds[b].1, &mut rng);
        let len = bytes.len();
        // EVDET_FUZZ_DUMP=DIR EVDET_FUZZ_DUMP_CASES=i,j,… writes those inputs out (to keep as
        // regressions) instead of running them.
        if let (Ok(dir), Ok(list)) = (
            std::env::var("EVDET_FUZZ_DUMP"),
            std::env::var("EVDET_FUZZ_DUMP_CASES"),
        ) {
            if list.split(',').any(|c| c.trim() == i.to_string()) {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(
                    Path::new(&dir).join(format!("{name}_seed{seed}_case{i}.bin")),
                    &bytes,
                )
                .unwrap();
            }
            continue;
        }
        alloc_cap::reset_largest();
        let label = format!(
            "case {i} (EVDET_FUZZ_SEED={seed}, seed file {})",
            seeds[a].0
        );
        match run_case(&t, &label, bytes, scratch.path()) {
            Outcome::Read => read += 1,
            Outcome::Refused(_) => refused += 1,
        }
        let l = alloc_cap::largest();
        assert!(
            l <= alloc_cap::cap_for(len),
            "{name}: {label} allocated {l} bytes"
        );
        largest = largest.max(l);
    }
    eprintln!(
        "{name}: {} seeds, {cases} mutated inputs: {read} read, {refused} refused with an error, 0 panics, 0 hangs; largest allocation {:.1} MiB",
        seeds.len(),
        largest as f64 / (1 << 20) as f64
    );
}

macro_rules! targets {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            fuzz(stringify!($name));
        }
    )*};
}

targets!(
    h5_events,
    raw,
    dat,
    bbox_npy,
    rvt_labels_npz,
    rvt_index_npy,
    rvt_histograms,
    coco_gt_json,
    coco_dt_json,
    config_yaml,
    overrides,
    study_file
);

#[test]
fn every_target_is_tested_here() {
    let names: Vec<&str> = evdet_fuzz::targets::all().iter().map(|t| t.name).collect();
    let src = include_str!("mutations.rs");
    for n in names {
        assert!(
            src.contains(&format!("    {n},")) || src.contains(&format!("    {n}\n")),
            "{n} has no test"
        );
    }
}
