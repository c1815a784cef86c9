//! Fuzzing of the readers of outside data that need libtorch (issue 17), driven like the
//! `evdet-fuzz` mutation test: safetensors weights and Lightning `.ckpt` files as `import-rvt` and
//! `model.init_from` read them, and a checkpoint folder's `state.json` as resume, `eval` and `predict`
//! read it. Seeds are the model_3scale fixture's real files and a checkpoint folder written here;
//! `EVDET_FUZZ_CASES` mutated inputs per target (300 by default).

use evdet_events::rng::{derive_seed, Rng};
use evdet_fuzz::alloc_cap::{self, CappedAlloc};
use evdet_fuzz::mutate::mutate;
use std::path::Path;

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn cases() -> u64 {
    std::env::var("EVDET_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// Mutations of `seeds`, each written to `path` and given to `read`; returns (read, refused).
fn fuzz(
    name: &str,
    seeds: &[Vec<u8>],
    path: &Path,
    read: impl Fn(&Path) -> Result<(), String>,
) -> (u64, u64) {
    for s in seeds {
        std::fs::write(path, s).unwrap();
        if let Err(e) = read(path) {
            panic!("{name}: a seed does not read: {e}");
        }
    }
    let (mut ok, mut refused) = (0, 0);
    for i in 0..cases() {
        let mut rng = Rng::new(derive_seed(0, &[i, name.len() as u64]));
        let a = rng.below(seeds.len() as u64) as usize;
        let (bytes, muts) = mutate(&seeds[a], &seeds[(a + 1) % seeds.len()], &mut rng);
        std::fs::write(path, &bytes).unwrap();
        let label = format!("{name} case {i}");
        alloc_cap::set_label(&label);
        alloc_cap::set_cap(alloc_cap::cap_for(bytes.len()));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(path)));
        alloc_cap::set_cap(usize::MAX);
        match r {
            Ok(Ok(())) => ok += 1,
            Ok(Err(_)) => refused += 1,
            Err(_) => {
                let keep = std::env::temp_dir().join(format!("evdet-fuzz-{name}-{i}.bin"));
                std::fs::write(&keep, &bytes).unwrap();
                panic!(
                    "{label} ({muts:?}) panicked; input kept as {}",
                    keep.display()
                );
            }
        }
    }
    eprintln!(
        "{name}: {} seeds, {} mutated inputs: {ok} read, {refused} refused, 0 panics",
        seeds.len(),
        cases()
    );
    (ok, refused)
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(evdet_fixtures::file(rel)).unwrap()
}

#[test]
fn safetensors_weights() {
    let _s = serial();
    let d = tempfile::tempdir().unwrap();
    let seeds = vec![
        fixture("model_3scale/weights.safetensors"),
        fixture("model_4scale_sizeaware/weights.safetensors"),
    ];
    let (_, refused) = fuzz(
        "safetensors",
        &seeds,
        &d.path().join("w.safetensors"),
        |p| {
            evdet_model::import::read_weights(p)
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    );
    assert!(refused > 0);
}

#[test]
fn lightning_ckpt() {
    let _s = serial();
    let d = tempfile::tempdir().unwrap();
    let seeds = vec![fixture("model_3scale/lightning.ckpt")];
    let (_, refused) = fuzz("lightning_ckpt", &seeds, &d.path().join("m.ckpt"), |p| {
        evdet_model::import::read_weights(p)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    assert!(refused > 0);
}

/// A real checkpoint folder (imported from the fixture), its `state.json` mutated.
#[test]
fn checkpoint_state_json() {
    let _s = serial();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("ckpt");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let experiment =
        evdet_config::load(&root, Path::new("experiment/gen4/default.yaml"), &[]).unwrap();
    let dir = evdet_fixtures::dir("model_3scale");
    let cfg = evdet_model::import::read_model_config(&dir.join("config.json")).unwrap();
    evdet_infer::import::import_rvt(
        &dir.join("weights.safetensors"),
        &out,
        evdet_infer::import::ImportOptions {
            model: Some(cfg),
            experiment,
            experiment_source: "experiment/gen4/default.yaml".into(),
            data_hw: [64, 96],
            classes: None,
            allow_missing: false,
        },
    )
    .unwrap();
    let state = out.join("state.json");
    let seeds = vec![std::fs::read(&state).unwrap()];
    fuzz("state_json", &seeds, &state, |_| {
        evdet_infer::checkpoint::load(&out)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
}
