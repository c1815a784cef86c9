//! The model configuration: one serde struct that mirrors RVT's `model` config keys exactly
//! (`backbone.*`, `fpn.*`, `head.*`, `postprocess.*`; RVT `config/model/maxvit_yolox/default.yaml`,
//! REFERENCE §1.2, §2.1, §3.1), so a resolved RVT config (for instance the `rvt_model_config` of a
//! fixture's `config.json`) deserialises into it unchanged, plus the named presets
//! [`RvtPreset::Tiny`], [`RvtPreset::Small`], [`RvtPreset::Base`].

use serde::{Deserialize, Serialize};

use crate::losses::{ClsLossType, IouLossType, LossConfig, SizeAwareConfig, SizeWeightType};

/// A configuration that cannot be built: says which key is wrong and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("model config key `{key}`: {msg}")]
    Invalid { key: &'static str, msg: String },
}

pub(crate) fn invalid(key: &'static str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        msg: msg.into(),
    }
}

/// `torch.compile` settings RVT keeps in every sub-config; accepted and carried, never used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CompileConfig {
    #[serde(default)]
    pub enable: bool,
    #[serde(default)]
    pub args: serde_json::Value,
}

/// The whole detector (RVT `model`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[serde(default = "default_model_name")]
    pub name: String,
    pub backbone: BackboneConfig,
    pub fpn: FpnConfig,
    pub head: HeadConfig,
    #[serde(default)]
    pub postprocess: PostprocessConfig,
    /// Weights to start training from (fine-tuning): an evdet checkpoint or run folder, or an RVT /
    /// eTraM `.ckpt`, a state dict or a `.safetensors` file. Empty: random initialisation. Variables
    /// whose shape differs (a head with another class count) keep their initialisation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub init_from: String,
    /// Fine-tune from `init_from` even when it fills fewer than half of this model's variables
    /// (weights of another model size, most likely a mistake): off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init_from_partial: bool,
}

fn default_model_name() -> String {
    "rnndet".into()
}

/// RVT `model.backbone` (MaxViT-RNN, REFERENCE §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneConfig {
    #[serde(default = "default_backbone_name")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<CompileConfig>,
    #[serde(default = "default_input_channels")]
    pub input_channels: usize,
    #[serde(default)]
    pub enable_masking: bool,
    #[serde(default = "default_split")]
    pub partition_split_32: usize,
    pub embed_dim: usize,
    #[serde(default = "default_dim_multiplier")]
    pub dim_multiplier: Vec<usize>,
    #[serde(default = "default_num_blocks")]
    pub num_blocks: Vec<usize>,
    /// Read by RVT but unused (no chrono init, REFERENCE §1.1); carried for round trips.
    #[serde(rename = "T_max_chrono_init", default = "default_chrono")]
    pub t_max_chrono_init: Vec<usize>,
    #[serde(default)]
    pub stem: StemConfig,
    #[serde(default)]
    pub stage: StageConfig,
    /// Network input size (set by RVT's config modifier, REFERENCE §1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_res_hw: Option<[usize; 2]>,
}

fn default_backbone_name() -> String {
    "MaxViTRNN".into()
}
fn default_input_channels() -> usize {
    20
}
fn default_split() -> usize {
    2
}
fn default_dim_multiplier() -> Vec<usize> {
    vec![1, 2, 4, 8]
}
fn default_num_blocks() -> Vec<usize> {
    vec![1, 1, 1, 1]
}
fn default_chrono() -> Vec<usize> {
    vec![4, 8, 16, 32]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StemConfig {
    pub patch_size: usize,
}

impl Default for StemConfig {
    fn default() -> Self {
        Self { patch_size: 4 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    #[serde(default)]
    pub downsample: DownsampleConfig,
    #[serde(default)]
    pub attention: AttentionConfig,
    #[serde(default)]
    pub lstm: LstmConfig,
}

/// `stage.downsample` (REFERENCE §1.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownsampleConfig {
    #[serde(rename = "type", default = "default_patch")]
    pub kind: String,
    #[serde(default = "yes")]
    pub overlap: bool,
    #[serde(default = "yes")]
    pub norm_affine: bool,
}

fn default_patch() -> String {
    "patch".into()
}
fn yes() -> bool {
    true
}

impl Default for DownsampleConfig {
    fn default() -> Self {
        Self {
            kind: default_patch(),
            overlap: true,
            norm_affine: true,
        }
    }
}

/// `stage.attention` (REFERENCE §1.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionConfig {
    #[serde(default)]
    pub use_torch_mha: bool,
    /// Window / grid size (p0, p1); when absent it is derived from `in_res_hw` (REFERENCE §1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_size: Option<[usize; 2]>,
    #[serde(default = "default_dim_head")]
    pub dim_head: usize,
    #[serde(default = "yes")]
    pub attention_bias: bool,
    #[serde(default = "default_gelu")]
    pub mlp_activation: String,
    #[serde(default)]
    pub mlp_gated: bool,
    #[serde(default = "yes")]
    pub mlp_bias: bool,
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: usize,
    #[serde(default)]
    pub drop_mlp: f64,
    #[serde(default)]
    pub drop_path: f64,
    #[serde(default = "default_ls")]
    pub ls_init_value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm_eps: Option<f64>,
}

fn default_dim_head() -> usize {
    32
}
fn default_gelu() -> String {
    "gelu".into()
}
fn default_mlp_ratio() -> usize {
    4
}
fn default_ls() -> f64 {
    1e-5
}

impl Default for AttentionConfig {
    fn default() -> Self {
        Self {
            use_torch_mha: false,
            partition_size: None,
            dim_head: 32,
            attention_bias: true,
            mlp_activation: default_gelu(),
            mlp_gated: false,
            mlp_bias: true,
            mlp_ratio: 4,
            drop_mlp: 0.0,
            drop_path: 0.0,
            ls_init_value: 1e-5,
            norm_eps: None,
        }
    }
}

/// `stage.lstm` (REFERENCE §1.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LstmConfig {
    #[serde(default)]
    pub dws_conv: bool,
    #[serde(default = "yes")]
    pub dws_conv_only_hidden: bool,
    #[serde(default = "default_dws_k")]
    pub dws_conv_kernel_size: usize,
    #[serde(default)]
    pub drop_cell_update: f64,
}

fn default_dws_k() -> usize {
    3
}

impl Default for LstmConfig {
    fn default() -> Self {
        Self {
            dws_conv: false,
            dws_conv_only_hidden: true,
            dws_conv_kernel_size: 3,
            drop_cell_update: 0.0,
        }
    }
}

/// RVT `model.fpn` (PAFPN, REFERENCE §2.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FpnConfig {
    #[serde(default = "default_fpn_name")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<CompileConfig>,
    #[serde(default = "default_depth")]
    pub depth: f64,
    /// Backbone stages fed to the FPN (1-based): `[2, 3, 4]` (RVT) or `[1, 2, 3, 4]` (4-scale).
    #[serde(default = "default_in_stages")]
    pub in_stages: Vec<usize>,
    #[serde(default)]
    pub depthwise: bool,
    #[serde(default = "default_silu")]
    pub act: String,
}

fn default_fpn_name() -> String {
    "PAFPN".into()
}
fn default_depth() -> f64 {
    0.67
}
fn default_in_stages() -> Vec<usize> {
    vec![2, 3, 4]
}
fn default_silu() -> String {
    "silu".into()
}

/// RVT `model.head` (YOLOX head, REFERENCE §3.1) plus the fork's size-aware loss keys (§3.6)
/// and evdet's classification-loss choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadConfig {
    #[serde(default = "default_head_name")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<CompileConfig>,
    #[serde(default)]
    pub depthwise: bool,
    #[serde(default = "default_silu")]
    pub act: String,
    pub num_classes: usize,
    /// Fork switch: replace the IoU loss with the size-aware IoU loss (REFERENCE §3.6).
    #[serde(default)]
    pub size_aware_loss: bool,
    #[serde(default = "default_sa_weight")]
    pub size_aware_weight: f64,
    #[serde(default = "default_small")]
    pub small_threshold: f64,
    #[serde(default = "default_medium")]
    pub medium_threshold: f64,
    /// `exponential` | `step` | `linear`.
    #[serde(default)]
    pub weight_type: SizeWeightType,
    /// IoU loss type: `iou` (1 − IoU², RVT) | `giou`.
    #[serde(default)]
    pub iou_type: IouLossType,
    /// Classification loss: `bce` (RVT) | `focal` | `size_aware_focal`.
    #[serde(default)]
    pub cls_loss: ClsLossType,
    /// YOLOX L1 loss; RVT never switches it on (REFERENCE §3.5).
    #[serde(default)]
    pub use_l1: bool,
    /// Weight of the IoU loss in the total (RVT: 5.0, REFERENCE §3.5).
    #[serde(default = "default_reg_weight")]
    pub reg_weight: f64,
    #[serde(default = "default_focal_gamma")]
    pub focal_gamma: f64,
    #[serde(default = "default_focal_alpha")]
    pub focal_alpha: f64,
    /// SimOTA's small-object options (`cost: iou|nwd|iou_nwd`, `nwd_constant`, `nwd_max_area`,
    /// `stride4_max_side`); the defaults are YOLOX's assignment.
    #[serde(default)]
    pub assignment: crate::assign::AssignOptions,
    /// `num_fg` (YOLOX) | `per_level`.
    #[serde(default)]
    pub obj_loss_norm: crate::losses::ObjLossNorm,
    /// `iou` (the fork: the size weight touches the IoU loss only) | `iou_obj_cls`.
    #[serde(default)]
    pub size_aware_targets: crate::losses::SizeAwareTargets,
}

fn default_reg_weight() -> f64 {
    5.0
}
fn default_focal_gamma() -> f64 {
    2.0
}
fn default_focal_alpha() -> f64 {
    0.25
}

impl HeadConfig {
    /// The loss settings these keys describe (plain YOLOX unless `size_aware_loss` / `cls_loss`
    /// say otherwise).
    pub fn loss_config(&self) -> Result<LossConfig, ConfigError> {
        let size_aware = if self.size_aware_loss {
            Some(SizeAwareConfig {
                weight_type: self.weight_type,
                size_aware_weight: self.size_aware_weight,
                small_threshold: self.small_threshold,
                medium_threshold: self.medium_threshold,
            })
        } else {
            None
        };
        let cfg = LossConfig {
            iou_type: self.iou_type,
            reg_weight: self.reg_weight,
            use_l1: self.use_l1,
            size_aware,
            cls_loss: self.cls_loss,
            focal_gamma: self.focal_gamma,
            focal_alpha: self.focal_alpha,
            assignment: self.assignment,
            obj_loss_norm: self.obj_loss_norm,
            size_aware_targets: self.size_aware_targets,
        };
        cfg.validate().map_err(|e| invalid("head", e.to_string()))?;
        Ok(cfg)
    }
}

fn default_head_name() -> String {
    "YoloX".into()
}
fn default_sa_weight() -> f64 {
    2.0
}
fn default_small() -> f64 {
    1024.0
}
fn default_medium() -> f64 {
    9216.0
}

/// RVT `model.postprocess` (REFERENCE §3.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostprocessConfig {
    #[serde(default = "default_conf")]
    pub confidence_threshold: f64,
    #[serde(default = "default_nms")]
    pub nms_threshold: f64,
}

fn default_conf() -> f64 {
    0.1
}
fn default_nms() -> f64 {
    0.45
}

impl Default for PostprocessConfig {
    fn default() -> Self {
        Self {
            confidence_threshold: 0.1,
            nms_threshold: 0.45,
        }
    }
}

/// The published RVT sizes (REFERENCE §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RvtPreset {
    Tiny,
    Small,
    Base,
}

impl RvtPreset {
    pub const ALL: [RvtPreset; 3] = [RvtPreset::Tiny, RvtPreset::Small, RvtPreset::Base];

    /// `(embed_dim, dim_head, fpn depth)` from `config/experiment/gen4/{tiny,small,base}.yaml`.
    pub fn dims(self) -> (usize, usize, f64) {
        match self {
            RvtPreset::Tiny => (32, 32, 0.33),
            RvtPreset::Small => (48, 24, 0.33),
            RvtPreset::Base => (64, 32, 0.67),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RvtPreset::Tiny => "tiny",
            RvtPreset::Small => "small",
            RvtPreset::Base => "base",
        }
    }
}

impl std::str::FromStr for RvtPreset {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tiny" | "t" | "rvt-t" => Ok(RvtPreset::Tiny),
            "small" | "s" | "rvt-s" => Ok(RvtPreset::Small),
            "base" | "b" | "rvt-b" => Ok(RvtPreset::Base),
            _ => Err(invalid(
                "preset",
                format!("unknown preset '{s}': use tiny, small or base"),
            )),
        }
    }
}

impl ModelConfig {
    /// An RVT preset for a given data size (the sensor size, already halved for eTraM ds2),
    /// resolved as RVT's config modifier does (REFERENCE §1.5): `in_res_hw` rounded up to a
    /// multiple of `32 * partition_split_32 = 64`, partition size `in_res_hw / 64`.
    pub fn preset(preset: RvtPreset, num_classes: usize, data_hw: [usize; 2]) -> Self {
        let (embed_dim, dim_head, depth) = preset.dims();
        Self::custom(embed_dim, dim_head, depth, num_classes, data_hw)
    }

    /// A free size: any `embed_dim`, `dim_head` and FPN `depth` on the RVT layout.
    pub fn custom(
        embed_dim: usize,
        dim_head: usize,
        depth: f64,
        num_classes: usize,
        data_hw: [usize; 2],
    ) -> Self {
        let mut cfg = ModelConfig {
            name: default_model_name(),
            backbone: BackboneConfig {
                name: default_backbone_name(),
                compile: None,
                input_channels: 20,
                enable_masking: false,
                partition_split_32: 2,
                embed_dim,
                dim_multiplier: default_dim_multiplier(),
                num_blocks: default_num_blocks(),
                t_max_chrono_init: default_chrono(),
                stem: StemConfig::default(),
                stage: StageConfig {
                    attention: AttentionConfig {
                        dim_head,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                in_res_hw: None,
            },
            fpn: FpnConfig {
                name: default_fpn_name(),
                compile: None,
                depth,
                in_stages: default_in_stages(),
                depthwise: false,
                act: default_silu(),
            },
            head: HeadConfig {
                name: default_head_name(),
                version: None,
                compile: None,
                depthwise: false,
                act: default_silu(),
                num_classes,
                size_aware_loss: false,
                size_aware_weight: 2.0,
                small_threshold: 1024.0,
                medium_threshold: 9216.0,
                weight_type: SizeWeightType::default(),
                iou_type: IouLossType::default(),
                cls_loss: ClsLossType::default(),
                use_l1: false,
                reg_weight: 5.0,
                focal_gamma: 2.0,
                focal_alpha: 0.25,
                assignment: Default::default(),
                obj_loss_norm: Default::default(),
                size_aware_targets: Default::default(),
            },
            postprocess: PostprocessConfig::default(),
            init_from: String::new(),
            init_from_partial: false,
        };
        cfg.set_input_hw(data_hw);
        cfg
    }

    /// Sets `in_res_hw` and the partition size from the data size as RVT's config modifier does
    /// (REFERENCE §1.5).
    pub fn set_input_hw(&mut self, data_hw: [usize; 2]) {
        let multiple = 32 * self.backbone.partition_split_32.max(1);
        let in_res = data_hw.map(|x| x.div_ceil(multiple) * multiple);
        self.backbone.in_res_hw = Some(in_res);
        self.backbone.stage.attention.partition_size = Some(in_res.map(|x| x / multiple));
    }

    /// The 4-scale variant (`fpn.in_stages = [1, 2, 3, 4]`, strides 4/8/16/32, REFERENCE §2.4).
    pub fn four_scale(mut self) -> Self {
        self.fpn.in_stages = vec![1, 2, 3, 4];
        self
    }

    /// Checks everything the modules rely on, naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.backbone.validate()?;
        let n = self.fpn.in_stages.len();
        if !(2..=4).contains(&n) {
            return Err(invalid(
                "fpn.in_stages",
                format!("{n} stages given; the PAFPN takes 2 to 4 consecutive stages"),
            ));
        }
        for w in self.fpn.in_stages.windows(2) {
            if w[1] != w[0] + 1 {
                return Err(invalid(
                    "fpn.in_stages",
                    format!(
                        "{:?} must be consecutive ascending stages (the PAFPN upsamples by 2)",
                        self.fpn.in_stages
                    ),
                ));
            }
        }
        if self.fpn.in_stages[0] < 1 || *self.fpn.in_stages.last().unwrap_or(&0) > 4 {
            return Err(invalid("fpn.in_stages", "stages are numbered 1 to 4"));
        }
        if !self.fpn.depth.is_finite() || self.fpn.depth <= 0.0 {
            return Err(invalid("fpn.depth", "must be positive"));
        }
        check_act("fpn.act", &self.fpn.act)?;
        check_act("head.act", &self.head.act)?;
        if self.head.num_classes == 0 {
            return Err(invalid("head.num_classes", "must be at least 1"));
        }
        Ok(())
    }

    /// Channels of the stages the FPN takes (RVT `get_stage_dims(in_stages)`).
    pub fn fpn_in_channels(&self) -> Vec<usize> {
        let dims = self.backbone.stage_dims();
        self.fpn.in_stages.iter().map(|&s| dims[s - 1]).collect()
    }

    /// Strides of the head levels (RVT `get_strides(in_stages)`).
    pub fn head_strides(&self) -> Vec<usize> {
        let strides = self.backbone.strides();
        self.fpn.in_stages.iter().map(|&s| strides[s - 1]).collect()
    }

    /// Head width: `int(256 * in_channels[-1] / 1024)` (REFERENCE §3.1).
    pub fn head_hidden_dim(&self) -> usize {
        let last = self.fpn_in_channels().last().copied().unwrap_or(0);
        (256.0 * (last as f64 / 1024.0)) as usize
    }
}

fn check_act(key: &'static str, act: &str) -> Result<(), ConfigError> {
    if ["silu", "relu", "lrelu"].contains(&act) {
        Ok(())
    } else {
        Err(invalid(key, format!("'{act}': use silu, relu or lrelu")))
    }
}

impl BackboneConfig {
    /// `embed_dim * dim_multiplier[i]` per stage.
    pub fn stage_dims(&self) -> Vec<usize> {
        self.dim_multiplier
            .iter()
            .map(|m| m * self.embed_dim)
            .collect()
    }

    /// Cumulative strides: `patch_size` for stage 1, ×2 after (REFERENCE §1.1).
    pub fn strides(&self) -> Vec<usize> {
        let mut s = 1;
        (0..self.num_blocks.len())
            .map(|i| {
                s *= if i == 0 { self.stem.patch_size } else { 2 };
                s
            })
            .collect()
    }

    /// The partition size (p0, p1): the configured one, else `in_res_hw / (32 * split)`.
    pub fn partition_size(&self) -> Result<[usize; 2], ConfigError> {
        if let Some(p) = self.stage.attention.partition_size {
            return Ok(p);
        }
        let hw = self.in_res_hw.ok_or_else(|| {
            invalid(
                "backbone.stage.attention.partition_size",
                "missing, and backbone.in_res_hw is not set to derive it from",
            )
        })?;
        let m = 32 * self.partition_split_32.max(1);
        Ok(hw.map(|x| x / m))
    }

    /// The input height and width must be multiples of this (REFERENCE §1.5): the total stride
    /// times the partition size, so every stage's map splits into whole windows and grids.
    pub fn input_multiple(&self) -> Result<[usize; 2], ConfigError> {
        let total = self.strides().last().copied().unwrap_or(1);
        Ok(self.partition_size()?.map(|p| p * total))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.name != "MaxViTRNN" {
            return Err(invalid(
                "backbone.name",
                format!("'{}': only MaxViTRNN exists", self.name),
            ));
        }
        // RVT asserts exactly four stages (maxvit_rnn.py).
        if self.num_blocks.len() != 4 {
            return Err(invalid("backbone.num_blocks", "RVT has exactly 4 stages"));
        }
        if self.dim_multiplier.len() != 4 {
            return Err(invalid("backbone.dim_multiplier", "needs 4 entries"));
        }
        if self.num_blocks.contains(&0) {
            return Err(invalid("backbone.num_blocks", "every stage needs a block"));
        }
        if ![2, 4, 8].contains(&self.stem.patch_size) {
            return Err(invalid(
                "backbone.stem.patch_size",
                "RVT's downsampling accepts 2, 4 or 8",
            ));
        }
        if self.enable_masking {
            return Err(invalid(
                "backbone.enable_masking",
                "token masking is not implemented (RVT never enables it)",
            ));
        }
        if self.stage.downsample.kind != "patch" {
            return Err(invalid(
                "backbone.stage.downsample.type",
                "only 'patch' exists",
            ));
        }
        let att = &self.stage.attention;
        if att.use_torch_mha {
            return Err(invalid(
                "backbone.stage.attention.use_torch_mha",
                "only RVT's own SelfAttentionCl (false) is implemented",
            ));
        }
        if att.mlp_gated {
            return Err(invalid(
                "backbone.stage.attention.mlp_gated",
                "the gated MLP is not implemented (RVT uses false)",
            ));
        }
        if !["gelu", "silu", "relu"].contains(&att.mlp_activation.as_str()) {
            return Err(invalid(
                "backbone.stage.attention.mlp_activation",
                format!("'{}': use gelu, silu or relu", att.mlp_activation),
            ));
        }
        for (i, d) in self.stage_dims().iter().enumerate() {
            if att.dim_head == 0 || d % att.dim_head != 0 {
                return Err(invalid(
                    "backbone.stage.attention.dim_head",
                    format!(
                        "stage {} dim {d} is not a multiple of {}",
                        i + 1,
                        att.dim_head
                    ),
                ));
            }
        }
        let p = self.partition_size()?;
        if p.contains(&0) {
            return Err(invalid(
                "backbone.stage.attention.partition_size",
                "must be positive",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_resolve_like_rvt_modifier() {
        let c = ModelConfig::preset(RvtPreset::Base, 3, [360, 640]);
        assert_eq!(c.backbone.in_res_hw, Some([384, 640]));
        assert_eq!(c.backbone.stage.attention.partition_size, Some([6, 10]));
        assert_eq!(c.fpn_in_channels(), vec![128, 256, 512]);
        assert_eq!(c.head_strides(), vec![8, 16, 32]);
        assert_eq!(c.head_hidden_dim(), 128);
        assert_eq!(c.backbone.input_multiple().unwrap(), [192, 320]);
        let t = ModelConfig::preset(RvtPreset::Tiny, 3, [360, 640]).four_scale();
        assert_eq!(t.head_strides(), vec![4, 8, 16, 32]);
        assert_eq!(t.head_hidden_dim(), 64);
        t.validate().unwrap();
    }

    #[test]
    fn rejects_bad_keys_by_name() {
        let mut c = ModelConfig::preset(RvtPreset::Tiny, 3, [360, 640]);
        c.fpn.in_stages = vec![1, 3, 4];
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("fpn.in_stages"), "{e}");
        let json =
            r#"{"backbone": {"embed_dim": 32, "bogus": 1}, "fpn": {}, "head": {"num_classes": 3}}"#;
        let e = serde_json::from_str::<ModelConfig>(json)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }
}
