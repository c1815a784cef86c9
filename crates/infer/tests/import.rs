//! `import-rvt` into a checkpoint folder: the model_3scale fixture's Lightning checkpoint (pickled
//! omegaconf objects beside the tensors) gives exactly the weights of its `weights.safetensors` and
//! imports into a folder whose weights are exactly the reference state dict, with every Adam moment under its
//! parameter's name, and which loads back through the one checkpoint module with a complete
//! experiment configuration; missing and unexpected keys are reported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use evdet_infer::checkpoint;
use evdet_infer::import::{import_rvt as import, ImportOptions, ImportRvtError};
use evdet_model::config::ModelConfig;
use evdet_model::detector::Detector;
use evdet_model::import::{
    infer_config, load_named, read_model_config, read_safetensors, read_weights, ImportSummary,
    SourceFormat,
};
use tch::Tensor;

fn fixture(name: &str) -> PathBuf {
    evdet_fixtures::file(name)
}

fn as_map(v: Vec<(String, Tensor)>) -> HashMap<String, Tensor> {
    v.into_iter().collect()
}

fn assert_same(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) {
    let mut ka: Vec<_> = a.keys().collect();
    let mut kb: Vec<_> = b.keys().collect();
    ka.sort();
    kb.sort();
    assert_eq!(ka, kb);
    for (k, t) in a {
        let u = &b[k];
        assert_eq!(t.kind(), u.kind(), "{k}");
        assert!(t.equal(u), "{k} differs");
    }
}

fn experiment() -> evdet_config::ExperimentConfig {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    evdet_config::load(&root, Path::new("experiment/gen4/default.yaml"), &[]).unwrap()
}

/// The model_3scale fixture's `file` imported with its own model config into `<tmp>/ckpt`.
fn import_fixture(file: &str, tmp: &Path) -> (PathBuf, ModelConfig, ImportSummary) {
    let dir = fixture("model_3scale");
    let out = tmp.join("ckpt");
    let cfg = read_model_config(&dir.join("config.json")).unwrap();
    let summary =
        import_rvt(&dir.join(file), &out, Some(cfg.clone()), [64, 96], false).expect("import");
    (out, cfg, summary)
}

/// `import-rvt` as the command calls it: gen4 experiment defaults, the given model config.
fn import_rvt(
    source: &Path,
    out: &Path,
    model: Option<ModelConfig>,
    data_hw: [usize; 2],
    allow_missing: bool,
) -> Result<ImportSummary, ImportRvtError> {
    let opts = ImportOptions {
        experiment: experiment(),
        experiment_source: "experiment/gen4/default.yaml".into(),
        model,
        data_hw,
        classes: None,
        allow_missing,
    };
    Ok(import(source, out, opts)?.0)
}

#[test]
fn lightning_ckpt_equals_weights_safetensors() {
    let dir = fixture("model_3scale");
    let src = read_weights(&dir.join("lightning.ckpt")).expect("read ckpt");
    assert_eq!(src.format, SourceFormat::Lightning);
    assert_eq!(src.epoch, Some(3));
    assert_eq!(src.global_step, Some(1234));
    let reference = as_map(read_safetensors(&dir.join("weights.safetensors")).unwrap());
    assert_same(&as_map(src.tensors), &reference);
    let opt = src.optimizer.expect("Adam moments");
    assert!(opt
        .per_param
        .values()
        .all(|f| f.contains_key("exp_avg") && f.contains_key("exp_avg_sq")));
}

#[test]
fn import_writes_a_checkpoint_that_loads_back() {
    let dir = fixture("model_3scale");
    let tmp = tempfile::tempdir().unwrap();
    let (out, cfg, summary) = import_fixture("lightning.ckpt", tmp.path());
    assert!(
        summary.report.missing.is_empty(),
        "{:?}",
        summary.report.missing
    );
    assert!(
        summary.report.unexpected.is_empty(),
        "{:?}",
        summary.report.unexpected
    );
    assert_eq!(summary.step, 1234);
    for f in [
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
        "config.yaml",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    // model.safetensors holds exactly the reference state dict (RVT names, BN buffers included).
    let written = as_map(read_safetensors(&out.join("model.safetensors")).unwrap());
    let reference = as_map(read_safetensors(&dir.join("weights.safetensors")).unwrap());
    assert_same(&written, &reference);
    // Every parameter has its Adam moments, under its own name and with its own shape.
    let opt = as_map(read_safetensors(&out.join("optimizer.safetensors")).unwrap());
    let params: Vec<&String> = reference
        .keys()
        .filter(|k| !k.contains("running_") && !k.contains("num_batches"))
        .collect();
    assert_eq!(summary.optimizer_params, params.len());
    for p in params {
        let m = &opt[&format!("exp_avg.{p}")];
        assert_eq!(
            opt[&format!("exp_avg_sq.{p}")].size(),
            reference[p].size(),
            "{p}"
        );
        assert_eq!(m.size(), reference[p].size(), "{p}");
    }
    let loaded = checkpoint::open(&out, tch::Device::Cpu, |_| {
        Ok::<_, checkpoint::CheckpointError>(())
    })
    .expect("load back");
    assert_eq!(loaded.state.step, 1234);
    assert_eq!(loaded.state.optimizer_step, 1234);
    assert_eq!(loaded.state.lr, 2e-4);
    assert_eq!(loaded.detector.config(), &cfg);
    // config.yaml is a complete experiment: the gen4 defaults with the imported model and classes,
    // and state.json says where each part came from.
    assert_eq!(loaded.config.dataset.classes.len(), 8);
    assert_eq!(loaded.config.dataset.input_hw(), (64, 96));
    let from = loaded.state.imported_from.expect("imported_from");
    assert_eq!(from["config"]["experiment"], "experiment/gen4/default.yaml");
    assert_eq!(from["config"]["model"], "given (--config)");
    // The inferred configuration of these weights is the fixture's, up to what weights cannot
    // tell (dim_head, partition size).
    let inferred = infer_config(
        &read_safetensors(&dir.join("weights.safetensors")).unwrap(),
        [64, 96],
    )
    .unwrap();
    assert_eq!(inferred.backbone.embed_dim, 16);
    assert_eq!(inferred.fpn.in_stages, vec![2, 3, 4]);
    assert_eq!(inferred.head.num_classes, 8);
    assert!((inferred.fpn.depth - 0.33).abs() < 1e-9);
}

#[test]
fn safetensors_import_reports_missing_and_unexpected_keys() {
    let dir = fixture("model_3scale");
    let cfg = read_model_config(&dir.join("config.json")).unwrap();
    let mut tensors = read_safetensors(&dir.join("weights.safetensors")).unwrap();
    tensors.retain(|(k, _)| k != "yolox_head.obj_preds.0.bias");
    tensors.push((
        "fpn.extra.weight".into(),
        Tensor::zeros([2], (tch::Kind::Float, tch::Device::Cpu)),
    ));
    let (vs, _det) = Detector::build(&cfg, tch::Device::Cpu).unwrap();
    let report = load_named(&vs, &tensors).unwrap();
    assert_eq!(
        report.missing,
        vec!["yolox_head.obj_preds.0.bias".to_string()]
    );
    assert_eq!(report.unexpected, vec!["fpn.extra.weight".to_string()]);
    // A wrong shape is an error naming the key.
    tensors.push((
        "yolox_head.obj_preds.0.bias".into(),
        Tensor::zeros([3], (tch::Kind::Float, tch::Device::Cpu)),
    ));
    let err = load_named(&vs, &tensors).unwrap_err().to_string();
    assert!(err.contains("yolox_head.obj_preds.0.bias"), "{err}");

    // Importing such a file without --allow-missing fails and names the key.
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("w.safetensors");
    tensors.pop();
    Tensor::write_safetensors(&tensors, &st).unwrap();
    let err = import_rvt(
        &st,
        &tmp.path().join("out"),
        Some(cfg.clone()),
        [64, 96],
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("yolox_head.obj_preds.0.bias"), "{err}");
    let ok = import_rvt(&st, &tmp.path().join("out"), Some(cfg), [64, 96], true).unwrap();
    assert_eq!(ok.report.unexpected, vec!["fpn.extra.weight".to_string()]);
    assert!(!tmp.path().join("out/optimizer.safetensors").exists());
}

#[test]
fn init_from_a_head_with_another_class_count_reinitialises_only_the_class_branch() {
    let dir = fixture("model_3scale");
    let mut cfg = read_model_config(&dir.join("config.json")).unwrap();
    cfg.head.num_classes = 3;
    let (vs, _det) = Detector::build(&cfg, tch::Device::Cpu).unwrap();
    let fresh = as_map(evdet_model::import::named_tensors(&vs));
    let report = evdet_infer::import::init_from(&vs, &dir.join("lightning.ckpt")).unwrap();
    // One class-prediction conv per level (weight and bias) keeps its initialisation.
    let mut expected: Vec<String> = (0..3)
        .flat_map(|k| ["weight", "bias"].map(|p| format!("yolox_head.cls_preds.{k}.{p}")))
        .collect();
    expected.sort();
    let mismatched: Vec<String> = report
        .shape_mismatched
        .iter()
        .map(|m| m.split('`').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(mismatched, expected);
    assert!(report.missing.is_empty(), "{:?}", report.missing);
    assert!(report.unexpected.is_empty(), "{:?}", report.unexpected);
    let reference = as_map(read_safetensors(&dir.join("weights.safetensors")).unwrap());
    assert_eq!(report.loaded, reference.len() - expected.len());
    let now = as_map(evdet_model::import::named_tensors(&vs));
    for (name, t) in &now {
        if expected.contains(name) {
            assert!(
                t.equal(&fresh[name]),
                "{name} should keep its initialisation"
            );
        } else {
            assert!(
                t.equal(&reference[name]),
                "{name} should be the checkpoint's"
            );
        }
    }
    // A file with nothing of a detector in it is an error, not a silent random start.
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.safetensors");
    Tensor::write_safetensors(
        &[(
            "x",
            Tensor::zeros([2], (tch::Kind::Float, tch::Device::Cpu)),
        )],
        &junk,
    )
    .unwrap();
    assert!(evdet_infer::import::init_from(&vs, &junk).is_err());
}

/// Reading a checkpoint fails closed: an unreadable `state.json` or `config.yaml`, or none, is an
/// error naming the file, never a resume from step 0 with defaults.
#[test]
fn a_checkpoint_with_a_broken_state_or_config_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, _, _) = import_fixture("weights.safetensors", tmp.path());
    assert_eq!(checkpoint::load(&out).unwrap().state.step, 0);

    let state = out.join("state.json");
    let good = std::fs::read(&state).unwrap();
    std::fs::write(&state, b"{\"step\": 12, \"optimizer_st").unwrap();
    let err = checkpoint::load(&out)
        .err()
        .expect("truncated state.json")
        .to_string();
    assert!(err.contains("state.json"), "{err}");
    std::fs::remove_file(&state).unwrap();
    let err = checkpoint::load(&out)
        .err()
        .expect("no state.json")
        .to_string();
    assert!(err.contains("state.json"), "{err}");
    std::fs::write(&state, good).unwrap();

    let config = out.join("config.yaml");
    std::fs::write(&config, "model: {backbone: 3}\n").unwrap();
    let err = checkpoint::load(&out)
        .err()
        .expect("incomplete config.yaml")
        .to_string();
    assert!(err.contains("config.yaml"), "{err}");
}
