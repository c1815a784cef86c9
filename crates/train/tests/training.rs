//! End to end on a tiny synthetic `mini` dataset: the loss goes down, validation runs with both
//! protocols, and an interrupted run resumed from its checkpoint ends with exactly the weights of an
//! uninterrupted one.

use evdet_events::preprocess::{self, PreprocessConfig};
use evdet_synth::{self as synth, Preset, SynthConfig};
use evdet_train::checkpoint;
use evdet_train::config::{self, ExperimentConfig};
use evdet_train::trainer::Trainer;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn config_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// A 2-train / 1-val / 1-test sequence `mini` dataset, preprocessed once for all tests.
fn dataset() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut sc = SynthConfig::preset(Preset::Mini);
        sc.seed = 3;
        sc.duration_s = 3.0;
        sc.sequences.train = 2;
        sc.sequences.val = 1;
        sc.sequences.test = 1;
        synth::generate(&dir.path().join("raw"), &sc, &|_| {}).unwrap();
        let pc = PreprocessConfig {
            downsample_by_factor_2: Some(false),
            ..Default::default()
        };
        let splits: Vec<String> = ["train", "val", "test"].map(String::from).to_vec();
        preprocess::preprocess(
            &dir.path().join("raw"),
            &dir.path().join("pre"),
            &splits,
            &pc,
            2,
            &|_| {},
        )
        .unwrap();
        dir
    })
    .path()
}

fn tiny_config(runs: &Path, extra: &[&str]) -> ExperimentConfig {
    let mut o: Vec<String> = vec![
        format!("dataset.path={}", dataset().join("pre").display()),
        format!("logging.runs_dir={}", runs.display()),
        "model.backbone.embed_dim=8".into(),
        "model.backbone.stage.attention.dim_head=8".into(),
        "batch_size.train=2".into(),
        "batch_size.eval=2".into(),
        "dataset.sequence_length=3".into(),
        "validation.val_check_interval=1000".into(),
        "hardware.num_workers.train=2".into(),
        "hardware.cpu_threads=1".into(),
        "logging.log_every_n_steps=1".into(),
    ];
    o.extend(extra.iter().map(|s| s.to_string()));
    config::load(
        &config_root(),
        Path::new("experiment/synthetic/mini.yaml"),
        &o,
    )
    .unwrap()
}

/// A trainer on the CPU for the config's own dataset, starting fresh (no resume).
fn fresh_cpu_trainer(cfg: ExperimentConfig) -> Result<Trainer, evdet_train::trainer::TrainError> {
    let data = cfg.dataset.path.clone();
    Trainer::new(cfg, Path::new(&data), tch::Device::Cpu, false)
}

/// A trainer on the CPU for `tiny_config(runs, extra)`, resuming from the run's checkpoint if `resume`.
fn cpu_trainer(
    runs: &Path,
    extra: &[&str],
    resume: bool,
) -> Result<Trainer, evdet_train::trainer::TrainError> {
    let cfg = tiny_config(runs, extra);
    let data = cfg.dataset.path.clone();
    Trainer::new(cfg, Path::new(&data), tch::Device::Cpu, resume)
}

/// libtorch's intra-op thread pool and generator are process-wide: the runs of these tests must not
/// overlap, or float reductions may split differently (resume exactness holds per thread count).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn weights(t: &Trainer) -> Vec<(String, Vec<f32>)> {
    let mut v: Vec<(String, Vec<f32>)> =
        t.vs.variables()
            .into_iter()
            .map(|(n, t)| (n, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
            .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn loss_decreases_and_validation_reports_both_protocols() {
    let _serial = serial();
    let runs = tempfile::tempdir().unwrap();
    let cfg = tiny_config(
        runs.path(),
        &[
            "training.max_steps=30",
            "training.learning_rate=0.003",
            "training.lr_scheduler.use=false",
        ],
    );
    let mut t = fresh_cpu_trainer(cfg).unwrap();
    let mut losses = Vec::new();
    t.fit(
        None,
        |r| losses.extend(r.metrics.get("train/loss").copied()),
        |_| {},
    )
    .unwrap();
    assert!(losses.len() >= 24, "{losses:?}");
    let head: f64 = losses[..6].iter().sum::<f64>() / 6.0;
    let tail: f64 = losses[losses.len() - 6..].iter().sum::<f64>() / 6.0;
    assert!(
        tail < 0.75 * head,
        "loss should fall: first {head:.3}, last {tail:.3} ({losses:?})"
    );
    let m = t.validate().unwrap();
    for k in [
        "val/prophesee/AP",
        "val/unfiltered/AP",
        "val/unfiltered/AP50",
        "val/unfiltered/AP_S",
    ] {
        let v = m.get(k).copied().unwrap_or(f64::NAN);
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    // run folder: resolved config, metrics.jsonl with the training scalars, TensorBoard events, checkpoint
    let dir = t.run.root();
    assert!(dir.join("config.yaml").exists());
    let rows = evdet_train::logs::read_jsonl(&dir.join("metrics.jsonl")).unwrap();
    for k in [
        "train/loss",
        "train/iou_loss",
        "train/conf_loss",
        "train/cls_loss",
        "train/num_fg",
        "train/lr",
        "train/grad_norm",
    ] {
        assert!(rows[0].get(k).is_some(), "metrics.jsonl lacks {k}");
    }
    assert!(std::fs::read_dir(dir).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("events.out.tfevents")));
    assert!(dir.join("checkpoints/last/model.safetensors").exists());
    assert!(dir.join("checkpoints/last/optimizer.safetensors").exists());
}

#[test]
fn an_interrupted_run_resumes_to_identical_weights() {
    let _serial = serial();
    let runs_a = tempfile::tempdir().unwrap();
    let runs_b = tempfile::tempdir().unwrap();
    let extra = ["training.max_steps=6", "logging.ckpt_every_n_steps=1"];
    let mut a = cpu_trainer(runs_a.path(), &extra, false).unwrap();
    a.fit(None, |_| {}, |_| {}).unwrap();

    let mut b1 = cpu_trainer(runs_b.path(), &extra, false).unwrap();
    b1.fit(Some(3), |_| {}, |_| {}).unwrap();
    assert_eq!(b1.state.step, 3);
    drop(b1); // the "killed" process
    let mut b2 = cpu_trainer(runs_b.path(), &extra, true).unwrap();
    assert_eq!(b2.state.step, 3, "resumes from checkpoints/last");
    b2.fit(None, |_| {}, |_| {}).unwrap();
    assert_eq!(b2.state.step, 6);
    let (wa, wb) = (weights(&a), weights(&b2));
    assert_eq!(wa.len(), wb.len());
    for ((na, va), (nb, vb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        assert!(va == vb, "{na} differs after resume");
    }
}

/// `training.ema`: the average is saved beside the weights, a resumed run ends with the uninterrupted
/// run's average bit for bit, and opening the checkpoint for eval / predict / export gives the average.
#[test]
fn the_weights_average_resumes_exactly_and_is_what_inference_opens() {
    let _serial = serial();
    let (runs_a, runs_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let extra = [
        "training.max_steps=6",
        "logging.ckpt_every_n_steps=1",
        "training.ema=true",
    ];
    let mut a = fresh_cpu_trainer(tiny_config(runs_a.path(), &extra)).unwrap();
    a.fit(None, |_| {}, |_| {}).unwrap();
    let mut b = fresh_cpu_trainer(tiny_config(runs_b.path(), &extra)).unwrap();
    b.fit(Some(3), |_| {}, |_| {}).unwrap();
    drop(b);
    let mut b2 = cpu_trainer(runs_b.path(), &extra, true).unwrap();
    assert_eq!(b2.ema.as_ref().unwrap().updates, 3, "the average resumes");
    b2.fit(None, |_| {}, |_| {}).unwrap();
    let (ea, eb) = (a.ema.as_ref().unwrap(), b2.ema.as_ref().unwrap());
    assert_eq!(ea.updates, 6);
    for ((na, ta), (nb, tb)) in ea.named().iter().zip(eb.named()) {
        assert_eq!(na, &nb);
        assert!(ta.equal(&tb), "{na}: the resumed average differs");
    }
    // The average is not the trained weights (it lags them) …
    let trained: std::collections::BTreeMap<String, Vec<f32>> = weights(&a).into_iter().collect();
    let averaged = ea.named();
    let differs = averaged
        .iter()
        .any(|(n, t)| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap() != trained[n]);
    assert!(differs, "the average equals the weights");
    // … and it is what a checkpoint opens for inference.
    let last = a.run.last();
    assert!(last.join(checkpoint::EMA_FILE).is_file());
    let opened = checkpoint::open(
        &last,
        tch::Device::Cpu,
        |_| -> Result<(), checkpoint::CheckpointError> { Ok(()) },
    )
    .unwrap();
    assert!(opened.provenance.ema);
    assert!(opened.provenance.describe().contains("EMA weights"));
    let vars = opened.vs.variables();
    for (n, t) in &averaged {
        assert!(vars[n].equal(t), "{n}: opened weights are not the average");
    }
}

/// Checkpoints verify themselves: a `last` whose tensor bytes changed on disk (one flipped byte) or
/// that was cut short is refused with the file named, the resume goes on from `previous` (the `last`
/// before it) and still ends with the uninterrupted run's weights; with both damaged it is an error.
#[test]
fn a_damaged_last_checkpoint_falls_back_to_the_previous_one() {
    let _serial = serial();
    let (runs_a, runs_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let extra = ["training.max_steps=5", "logging.ckpt_every_n_steps=1"];
    let mut a = fresh_cpu_trainer(tiny_config(runs_a.path(), &extra)).unwrap();
    a.fit(None, |_| {}, |_| {}).unwrap();

    let mut b = fresh_cpu_trainer(tiny_config(runs_b.path(), &extra)).unwrap();
    b.fit(Some(3), |_| {}, |_| {}).unwrap();
    let ckpts = b.run.checkpoints();
    drop(b);
    let (last, previous) = (ckpts.join("last"), ckpts.join("previous"));
    assert_eq!(checkpoint::load(&last).unwrap().state.step, 3);
    assert_eq!(checkpoint::load(&previous).unwrap().state.step, 2);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(last.join("state.json")).unwrap()).unwrap();
    for f in ["model.safetensors", "optimizer.safetensors", "config.yaml"] {
        assert_eq!(
            state["files"][f]["sha256"].as_str().map(str::len),
            Some(64),
            "{f}"
        );
    }

    // One byte of the weights flipped, past the safetensors header.
    let model = last.join("model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x10;
    std::fs::write(&model, &bytes).unwrap();
    let err = checkpoint::load(&last)
        .err()
        .expect("a flipped byte")
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("SHA-256"),
        "{err}"
    );

    let mut resumed = cpu_trainer(runs_b.path(), &extra, true).unwrap();
    assert_eq!(resumed.state.step, 2, "resumes from checkpoints/previous");
    let notice = resumed.notices.join("\n");
    assert!(
        notice.contains("checkpoints/last")
            && notice.contains("SHA-256")
            && notice.contains("previous (step 2)"),
        "{notice}"
    );
    assert!(ckpts.join("last.damaged/model.safetensors").exists() && !last.exists());
    resumed.fit(None, |_| {}, |_| {}).unwrap();
    assert_eq!(resumed.state.step, 5);
    assert_eq!(checkpoint::load(&previous).unwrap().state.step, 4);
    let (wa, wb) = (weights(&a), weights(&resumed));
    for ((na, va), (nb, vb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        assert!(va == vb, "{na} differs after resuming from previous");
    }
    drop(resumed);

    // Both damaged: a truncated `last` optimizer file and a flipped `previous` weight byte.
    let opt = last.join("optimizer.safetensors");
    let len = std::fs::metadata(&opt).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&opt)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let err = checkpoint::load(&last)
        .err()
        .expect("truncated")
        .to_string();
    assert!(
        err.contains("optimizer.safetensors") && err.contains("truncated"),
        "{err}"
    );
    let model = previous.join("model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(&model, &bytes).unwrap();
    let err = cpu_trainer(runs_b.path(), &extra, true)
        .err()
        .expect("nothing to resume from")
        .to_string();
    assert!(err.contains("no checkpoint to resume from"), "{err}");
}

/// `training.precision` bf16 and fp16 run the forward pass under autocast (on the CPU here, as on a
/// GPU): losses stay finite and fall like full precision's, fp16 records its loss scale and resumes it,
/// and an unknown precision is a clear error.
#[test]
fn mixed_precision_trains_and_keeps_its_loss_scale() {
    let _serial = serial();
    for precision in ["bf16", "fp16"] {
        let runs = tempfile::tempdir().unwrap();
        let extra = [
            format!("training.precision={precision}"),
            // fp16 skips its first steps while the loss scale backs off from 2^16 (gradient norms
            // of ~90 overflow fp16 at that scale), as PyTorch's GradScaler does: 20 applied steps each.
            format!(
                "training.max_steps={}",
                if precision == "fp16" { 27 } else { 20 }
            ),
            "training.learning_rate=0.003".into(),
            "training.lr_scheduler.use=false".into(),
        ];
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let cfg = tiny_config(runs.path(), &extra);
        let mut t = fresh_cpu_trainer(cfg).unwrap();
        let mut losses = Vec::new();
        let mut scales = Vec::new();
        t.fit(
            None,
            |r| {
                losses.extend(r.metrics.get("train/loss").copied());
                scales.extend(r.metrics.get("train/loss_scale").copied());
            },
            |_| {},
        )
        .unwrap();
        assert!(losses.len() >= 15, "{precision}: {losses:?}");
        assert!(
            losses.iter().all(|l| l.is_finite()),
            "{precision}: {losses:?}"
        );
        let head: f64 = losses[..5].iter().sum::<f64>() / 5.0;
        let tail: f64 = losses[losses.len() - 5..].iter().sum::<f64>() / 5.0;
        assert!(
            tail < 0.85 * head,
            "{precision}: loss should fall: first {head:.3}, last {tail:.3} ({losses:?}, scales {scales:?})"
        );
        if precision == "fp16" {
            assert_eq!(scales.first(), Some(&65536.0), "{scales:?}");
            let saved = evdet_train::checkpoint::load(&t.run.last()).unwrap().state;
            assert_eq!(saved.loss_scale, t.state.loss_scale);
            assert!(saved.loss_scale_growth_tracker > 0 && saved.loss_scale < 65536.0);
            assert!(
                (1..=8).contains(&t.state.amp_skipped),
                "{} overflowing steps skipped",
                t.state.amp_skipped
            );
        } else {
            assert!(scales.is_empty(), "bf16 needs no loss scaling");
            assert_eq!(t.state.loss_scale, 1.0);
        }
    }
    let runs = tempfile::tempdir().unwrap();
    let cfg = tiny_config(runs.path(), &["training.precision=fp8"]);
    let err = fresh_cpu_trainer(cfg).err().unwrap().to_string();
    assert!(
        err.contains("training.precision") && err.contains("fp8"),
        "{err}"
    );
}

/// A diverging run (an absurd learning rate): non-finite predictions and losses skip their steps, are
/// counted, and enough of them in a row stop the run with a checkpoint and a message — never a panic
/// inside the loss.
#[test]
fn a_diverging_run_stops_cleanly_with_a_checkpoint() {
    let _serial = serial();
    let runs = tempfile::tempdir().unwrap();
    let cfg = tiny_config(
        runs.path(),
        &[
            "training.max_steps=40",
            "training.learning_rate=100000",
            "training.lr_scheduler.use=false",
            "training.max_nonfinite_in_row=2",
        ],
    );
    let mut t = fresh_cpu_trainer(cfg).unwrap();
    let err = t.fit(None, |_| {}, |_| {}).expect_err("the run must stop");
    let msg = err.to_string();
    assert!(msg.contains("non-finite losses in a row"), "{msg}");
    assert_eq!(t.state.nonfinite_in_row, 3);
    assert!(t.state.nonfinite_total >= 3);
    let saved = evdet_train::checkpoint::load(&t.run.last()).unwrap().state;
    assert_eq!(saved.nonfinite_in_row, 3);
}

/// Same build, config, seed and environment: bit-identical weights (equal hashes in
/// `reproducibility.json`); another seed: other weights — the record can tell runs apart.
#[test]
fn reproducibility_record_hashes_bit_identical_runs_equal() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let record = |id: &str, seed: u64| {
        let cfg = tiny_config(
            tmp.path(),
            &[
                "training.max_steps=3",
                &format!("reproduce.seed={seed}"),
                &format!("logging.experiment_id={id}"),
            ],
        );
        let mut t = fresh_cpu_trainer(cfg).unwrap();
        t.fit(None, |_| {}, |_| {}).unwrap();
        let path = t.run.reproducibility();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        v
    };
    let a = record("a", 0);
    let b = record("b", 0);
    let c = record("c", 1);
    assert_eq!(a["step"], 3);
    assert_eq!(a["environment"], b["environment"]);
    assert_eq!(a["environment"]["threads"], 1);
    assert!(["avx512", "avx2", "default"].contains(&a["environment"]["cpu_isa"].as_str().unwrap()));
    assert_eq!(a["weights_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(a["weights_sha256"], b["weights_sha256"]);
    assert_ne!(a["weights_sha256"], c["weights_sha256"]);
}

/// Evaluation and prediction as library calls, without the binary: a trained checkpoint evaluates on
/// the test split (metrics in [0, 1], sample frames kept) and predicts over a preprocessed sequence,
/// one box list per window, boxes in sensor pixels.
#[test]
fn a_checkpoint_evaluates_and_predicts_through_the_library() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), &["training.max_steps=2"]);
    let mut t = fresh_cpu_trainer(cfg).unwrap();
    t.fit(None, |_| {}, |_| {}).unwrap();
    let opened = evdet_train::checkpoint::open(t.run.root(), tch::Device::Cpu, |_| {
        Ok::<_, evdet_train::checkpoint::CheckpointError>(())
    })
    .unwrap();
    let data = Path::new(&opened.config.dataset.path).to_path_buf();
    let mut cfg = opened.config.clone();
    let (split, note) =
        evdet_train::evaluate::open_for_checkpoint(&mut cfg, &data, "test").unwrap();
    assert!(note.is_none(), "{note:?}");
    let ev = evdet_train::evaluate::EvalRun::new(&opened.detector, &cfg, tch::Device::Cpu, 0.001)
        .evaluate_split(std::sync::Arc::new(split), "test", |_, _| {})
        .unwrap();
    for k in [
        "test/prophesee/AP",
        "test/unfiltered/AP50",
        "test/unfiltered/AR100",
    ] {
        assert!(
            (0.0..=1.0).contains(&ev.metrics[k]),
            "{k} = {}",
            ev.metrics[k]
        );
    }
    assert!(!ev.frames.is_empty());
    assert!(ev.frames.iter().all(|f| f.dt.len() == f.dt_score.len()));

    let seq = std::fs::read_dir(data.join("test"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let out = tmp.path().join("pred");
    let opts = evdet_train::infer::PredictOptions {
        out: out.clone(),
        confidence_threshold: 0.001,
        draw_threshold: 0.3,
        frames: false,
        frame_every: 1,
        align_to_labels: false,
        limit: 0,
        open: Default::default(),
        span: Default::default(),
    };
    let mut seen = 0;
    let s = evdet_train::infer::predict(
        &opened.detector,
        &opened.config,
        tch::Device::Cpu,
        &seq,
        &opts,
        |done, _| seen = done,
    )
    .unwrap();
    let n_windows = evdet_events::layout::repr_shape(&opened_sequence_h5(&seq)).unwrap()[0];
    assert_eq!(s.windows, n_windows);
    assert_eq!(seen as usize, n_windows);
    let boxes = evdet_events::labels::read_bbox_npy(&s.npy).unwrap();
    assert_eq!(boxes.len(), s.detections);
    assert!(boxes
        .iter()
        .all(|b| b.x >= -1.0 && b.x + b.w <= 321.0 && b.class_id < 8));
}

/// The histogram file of a preprocessed (not downsampled) sequence folder.
fn opened_sequence_h5(seq: &Path) -> PathBuf {
    evdet_events::layout::SequencePaths::new(seq, 50, 10, false).repr_h5
}
