//! Fuzzing of every reader of outside data (issue 17). One list of targets ([`targets`]) serves two
//! drivers: the stable-Rust mutation test in the normal suite (`tests/mutations.rs`: structure-aware
//! mutations of real files, a bounded number of cases, run by CI) and the coverage-guided `cargo fuzz`
//! harness in the repository's `fuzz/` folder (nightly). The contract every target checks: a reader
//! given any bytes returns a value or an error — no panic, no hang, no abort — and asks for no
//! allocation larger than the input justifies ([`alloc_cap`]).

pub mod alloc_cap;
pub mod mutate;
pub mod targets;

use std::path::PathBuf;
use std::sync::OnceLock;

/// For the `cargo fuzz` targets: runs target `name` on `data` in a scratch folder prepared once per
/// process. An error is a fine answer; a panic propagates (libFuzzer records it as a crash).
pub fn fuzz_one(name: &str, data: &[u8]) {
    static SCRATCH: OnceLock<std::sync::Mutex<std::collections::HashMap<String, PathBuf>>> =
        OnceLock::new();
    let target = targets::by_name(name).unwrap_or_else(|| panic!("no fuzz target {name}"));
    let dir = {
        let mut m = SCRATCH
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        m.entry(name.to_string())
            .or_insert_with(|| {
                let d =
                    std::env::temp_dir().join(format!("evdet-fuzz-{name}-{}", std::process::id()));
                std::fs::create_dir_all(&d).expect("a scratch folder");
                (target.prepare)(&d);
                d
            })
            .clone()
    };
    let _ = (target.run)(data, &dir);
}
