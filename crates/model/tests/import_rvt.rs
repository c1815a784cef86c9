//! Weight import: the model_3scale fixture's Lightning checkpoint (pickled omegaconf objects beside
//! the tensors) gives exactly the weights of its `weights.safetensors`. (Writing the checkpoint folder
//! and the missing / unexpected key reports are tested in evdet-train's `tests/import.rs`.)

use std::collections::HashMap;
use std::path::PathBuf;

use evdet_model::import::{read_safetensors, read_weights, SourceFormat};
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
