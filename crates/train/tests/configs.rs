//! The shipped configuration files compose, type-check and carry the seed experiment's settings.

use evdet_train::config::{self, get_path, ConfigRoot, Sampling};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

fn load(exp: &str, overrides: &[&str]) -> config::ExperimentConfig {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    config::load(&root(), Path::new(exp), &o).unwrap_or_else(|e| panic!("{exp}: {e}"))
}

#[test]
fn every_shipped_experiment_loads() {
    let mut n = 0;
    for group in std::fs::read_dir(root().join("experiment")).unwrap() {
        for f in std::fs::read_dir(group.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            let rel = p
                .strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            load(&rel, &[]);
            n += 1;
        }
    }
    assert!(n >= 14, "{n} experiments");
}

/// RVT's recipes under RVT's names compose to RVT's values (every key of the table read from RVT's own
/// config files, `tests/fixtures/rvt_recipes`).
#[test]
fn rvt_recipes_compose_to_rvt_s_values() {
    let table: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(evdet_fixtures::file("rvt_recipes/recipes.json")).unwrap(),
    )
    .unwrap();
    let recipes = table["recipes"].as_object().unwrap();
    assert_eq!(recipes.len(), 6);
    for (name, values) in recipes {
        let exp = format!("experiment/{name}.yaml");
        let composed = ConfigRoot::new(root())
            .compose(Path::new(&exp), &[])
            .unwrap_or_else(|e| panic!("{exp}: {e}"));
        load(&exp, &[]);
        for (key, want) in values.as_object().unwrap() {
            let got = get_path(&composed.value, key).unwrap_or_else(|| panic!("{exp}: no {key}"));
            let got = serde_json::to_value(got).unwrap();
            // RVT's Lightning precision 16 is fp16 autocast.
            let want = match (key.as_str(), want) {
                ("training.precision", w) if w == 16 => serde_json::json!("fp16"),
                _ => want.clone(),
            };
            let same = match (got.as_f64(), want.as_f64()) {
                (Some(a), Some(b)) => a == b,
                _ => got == want,
            };
            assert!(same, "{exp}: {key} is {got}, RVT's is {want}");
        }
    }
}

#[test]
fn the_four_gen4_experiments_share_one_schedule_and_differ_only_in_the_model() {
    let names = ["default", "4scale", "size_aware", "3scale_sizeaware"];
    let cfgs: Vec<_> = names
        .iter()
        .map(|n| load(&format!("experiment/gen4/{n}.yaml"), &[]))
        .collect();
    for c in &cfgs {
        assert_eq!(c.training.max_steps, 100_000);
        assert_eq!(c.training.learning_rate, 2e-4);
        assert_eq!(c.training.weight_decay, 0.0);
        assert_eq!(c.training.gradient_clip_val, 1.0);
        assert_eq!(
            (
                c.training.lr_scheduler.pct_start,
                c.training.lr_scheduler.div_factor,
                c.training.lr_scheduler.final_div_factor
            ),
            (0.005, 25.0, 10_000.0)
        );
        assert_eq!((c.batch_size.train, c.batch_size.eval), (6, 2));
        assert_eq!(c.dataset.train.sampling, Sampling::Stream);
        assert_eq!(c.dataset.sequence_length, 5);
        assert_eq!(c.dataset.classes.len(), 8);
        assert!(c.dataset.downsample_by_factor_2);
        assert_eq!(
            get_path(&c.model, "backbone.embed_dim").unwrap().as_u64(),
            Some(64),
            "RVT-base"
        );
    }
    let stages = |c: &config::ExperimentConfig| {
        get_path(&c.model, "fpn.in_stages")
            .unwrap()
            .as_sequence()
            .unwrap()
            .len()
    };
    let sa = |c: &config::ExperimentConfig| {
        get_path(&c.model, "head.size_aware_loss")
            .unwrap()
            .as_bool()
            .unwrap()
    };
    assert_eq!(
        cfgs.iter().map(|c| (stages(c), sa(c))).collect::<Vec<_>>(),
        vec![(3, false), (4, false), (4, true), (3, true)]
    );
    let s = &cfgs[2];
    assert_eq!(
        get_path(&s.model, "head.size_aware_weight")
            .unwrap()
            .as_f64(),
        Some(2.5)
    );
    assert_eq!(
        get_path(&s.model, "head.weight_type").unwrap().as_str(),
        Some("exponential")
    );
    assert_eq!(
        get_path(&s.model, "head.small_threshold").unwrap().as_f64(),
        Some(1024.0)
    );
    assert_eq!(
        get_path(&s.model, "head.medium_threshold")
            .unwrap()
            .as_f64(),
        Some(9216.0)
    );
    assert_eq!(s.logging.experiment_id, "4scale_sizeaware_100k");
    assert_eq!(s.success_criteria.len(), 3);
    assert_eq!(
        s.success_criteria[2].baseline.as_deref(),
        Some("3scale_baseline")
    );
}

#[test]
fn overrides_apply_and_typos_are_caught_with_a_suggestion() {
    let c = load(
        "experiment/gen4/size_aware.yaml",
        &[
            "training.max_steps=10",
            "dataset.train.sampling=random",
            "model.head.size_aware_weight=4",
        ],
    );
    assert_eq!(c.training.max_steps, 10);
    assert_eq!(c.dataset.train.sampling, Sampling::Random);
    assert_eq!(
        get_path(&c.model, "head.size_aware_weight")
            .unwrap()
            .as_f64(),
        Some(4.0)
    );
    let e = ConfigRoot::new(root())
        .compose(
            Path::new("experiment/gen4/default.yaml"),
            &["model.head.size_awre_loss=true".into()],
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("did you mean 'model.head.size_aware_loss'"),
        "{e}"
    );
    let e = config::load(
        &root(),
        Path::new("experiment/gen4/default.yaml"),
        &["dataset.train.sampling=sometimes".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("sometimes"), "{e}");
    let e = config::load(
        &root(),
        Path::new("experiment/gen4/default.yaml"),
        &["dataset.small_classes=[dog]".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("dataset.small_classes") && e.contains("dog"),
        "{e}"
    );
}

#[test]
fn resolved_config_round_trips_through_yaml() {
    let c = load("experiment/synthetic/mini.yaml", &[]);
    let text = c.to_yaml();
    let back =
        config::ExperimentConfig::from_value(serde_norway::from_str(&text).unwrap()).unwrap();
    assert_eq!(back.to_yaml(), text);
    assert_eq!(c.dataset.input_hw(), (192, 320));
}

/// The head's loss choices are enums: a misspelt one is an error that names the key and the choices.
#[test]
fn a_misspelt_loss_choice_names_the_key_and_the_choices() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let cfg = evdet_train::config::load(
        &root,
        Path::new("experiment/synthetic/mini.yaml"),
        &["model.head.iou_type=diou".to_string()],
    )
    .unwrap();
    let err = evdet_train::model_setup::model_config(&cfg)
        .unwrap_err()
        .to_string();
    assert!(err.contains("iou_type") && err.contains("giou"), "{err}");
}
