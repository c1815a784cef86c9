//! The whole detector (RVT `YoloXDetector`, `models/detection/yolox_extension/models/detector.py`):
//! MaxViT-RNN backbone + PAFPN + YOLOX head, built from one [`ModelConfig`]. Parameter paths are
//! RVT's state-dict names (`backbone.stages.0…`, `fpn.C3_p4…`, `yolox_head.stems.0…`), so a
//! `VarStore` loads the reference weights as they are.
//!
//! The recurrent step and the detection part are separate, as in RVT's training step
//! (REFERENCE §4.2): [`Detector::forward_backbone_step`] runs once per time step and carries the
//! LSTM states; [`Detector::forward_detect`] runs FPN + head on (possibly concatenated) features.

pub mod bench;

use tch::{nn, Device, Tensor};

use crate::backbone::{AttentionImpl, LstmState, MaxVitRnn};
use crate::config::{ConfigError, ModelConfig};
use crate::fpn::Pafpn;
use crate::head::{HeadTrainOutput, YoloxHead};
use crate::losses::{yolox_loss, LossConfig, LossError, LossOutput};
use crate::postprocess::{postprocess, PostprocessError};

/// FPN + head results of one [`Detector::forward_detect`] call.
#[derive(Debug)]
pub struct DetectOutput {
    /// PAFPN outputs, finest first.
    pub fpn: Vec<Tensor>,
    /// Raw head outputs per level, [B, 4+1+C, h, w].
    pub levels: Vec<Tensor>,
    /// Eval-mode decoding, [B, A, 5+C] (boxes in pixels, sigmoid scores; REFERENCE §3.2).
    pub decoded: Tensor,
    /// Train mode only: what the losses consume.
    pub train: Option<HeadTrainOutput>,
}

/// `YoloXDetector`.
#[derive(Debug)]
pub struct Detector {
    pub backbone: MaxVitRnn,
    pub fpn: Pafpn,
    pub yolox_head: YoloxHead,
    config: ModelConfig,
    loss: LossConfig,
}

impl Detector {
    /// Builds the modules under `p` (normally the `VarStore` root) in RVT's registration order.
    pub fn new(p: nn::Path, cfg: &ModelConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let backbone = MaxVitRnn::new(&p / "backbone", &cfg.backbone)?;
        let in_channels = cfg.fpn_in_channels();
        let fpn = Pafpn::new(&p / "fpn", &cfg.fpn, &in_channels)?;
        let yolox_head = YoloxHead::new(
            &p / "yolox_head",
            &cfg.head,
            &in_channels,
            &cfg.head_strides(),
        );
        Ok(Self {
            backbone,
            fpn,
            yolox_head,
            config: cfg.clone(),
            loss: cfg.head.loss_config()?,
        })
    }

    /// A fresh `VarStore` on `device` holding a newly initialised detector.
    pub fn build(cfg: &ModelConfig, device: Device) -> Result<(nn::VarStore, Self), ConfigError> {
        let vs = nn::VarStore::new(device);
        let det = Self::new(vs.root(), cfg)?;
        Ok((vs, det))
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Fused (default, fastest) or RVT's explicit attention ops (bit-identical to PyTorch RVT).
    pub fn set_attention_impl(&mut self, imp: AttentionImpl) {
        self.backbone.set_attention_impl(imp);
    }

    /// The loss settings from `head.*` (plain YOLOX by default).
    pub fn loss_config(&self) -> &LossConfig {
        &self.loss
    }

    /// One recurrent step: `x` [N, 20, H, W] float (padded inside to the partition multiple),
    /// `states` from the previous step (`None` = zeros), `reset_mask` bool [N] zeroing the state
    /// rows of sequences that start here. Returns the 4 stage features and the new states.
    pub fn forward_backbone_step(
        &self,
        x: &Tensor,
        states: Option<&[LstmState]>,
        reset_mask: Option<&Tensor>,
        train: bool,
    ) -> (Vec<Tensor>, Vec<LstmState>) {
        self.backbone.forward_t(x, states, reset_mask, train)
    }

    /// FPN + head on the 4 stage features (index 0 = stage 1). In train mode BatchNorm uses
    /// batch statistics and the loss inputs are returned too.
    pub fn forward_detect(&self, features: &[Tensor], train: bool) -> DetectOutput {
        let fpn = self.fpn.forward_t(features, train);
        let levels = self.yolox_head.forward_t(&fpn, train);
        let decoded = self.yolox_head.decode(&levels);
        let train = train.then(|| self.yolox_head.train_outputs(&levels));
        DetectOutput {
            fpn,
            levels,
            decoded,
            train,
        }
    }

    /// The YOLOX losses with SimOTA (REFERENCE §3.4–3.6) on a train-mode output; `labels`
    /// [B, N, 5] rows `(class, cx, cy, w, h)` in input pixels, zero-padded.
    pub fn loss(&self, train: &HeadTrainOutput, labels: &Tensor) -> Result<LossOutput, LossError> {
        // A forward pass under autocast leaves bf16/fp16 outputs; SimOTA and the losses run in
        // float32, as YOLOX runs them (a no-op for float32 outputs).
        yolox_loss(
            &train.outputs.to_kind(tch::Kind::Float),
            Some(&train.raw_reg.to_kind(tch::Kind::Float)),
            &train.grid,
            labels,
            &self.loss,
        )
    }

    /// Detections per image `[n, 7]` (x1, y1, x2, y2, obj, class conf, class id) from the eval
    /// decoding, with `model.postprocess` thresholds unless given (REFERENCE §3.7).
    pub fn postprocess(
        &self,
        decoded: &Tensor,
        thresholds: Option<(f64, f64)>,
    ) -> Result<Vec<Tensor>, PostprocessError> {
        let (conf, nms) = thresholds.unwrap_or((
            self.config.postprocess.confidence_threshold,
            self.config.postprocess.nms_threshold,
        ));
        postprocess(decoded, conf, nms)
    }
}
