//! From an experiment configuration to a detector: the typed model config (input size and partition
//! filled in from the dataset, as RVT's config modifier does) and the loss options of the head config.

use evdet_config::ExperimentConfig;
use evdet_model::config::{HeadConfig, ModelConfig};
use evdet_model::losses::LossConfig;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("model config: {0}")]
    Model(String),
}

/// The model section typed, with `in_res_hw` set from the dataset's input size.
pub fn model_config(cfg: &ExperimentConfig) -> Result<ModelConfig, SetupError> {
    // The error names the key at fault (`model.head.iou_type: unknown variant ...`).
    let mut m: ModelConfig = serde_path_to_error::deserialize(cfg.model.clone())
        .map_err(|e| SetupError::Model(format!("model.{}: {}", e.path(), e.inner())))?;
    let (h, w) = cfg.dataset.input_hw();
    m.set_input_hw([h, w]);
    if m.head.num_classes != cfg.dataset.classes.len() {
        return Err(SetupError::Model(format!(
            "model.head.num_classes is {} but dataset.classes lists {} names",
            m.head.num_classes,
            cfg.dataset.classes.len()
        )));
    }
    m.validate().map_err(|e| SetupError::Model(e.to_string()))?;
    Ok(m)
}

/// The loss options the head config selects (`size_aware_loss`, `weight_type`, `iou_type`, `cls_loss`, …).
pub fn loss_config(head: &HeadConfig) -> Result<LossConfig, SetupError> {
    head.loss_config()
        .map_err(|e| SetupError::Model(e.to_string()))
}
