//! Reference weights in: what `evdet import-rvt` reads and checks before `evdet-train`'s checkpoint
//! module writes the folder.
//!
//! Reads an RVT / eTraM PyTorch-Lightning `.ckpt` (its `state_dict`, keys prefixed `mdl.`), a plain
//! `torch.save(state_dict)` file, or a safetensors file — the pickle is parsed by the
//! `pytorch-reader` crate, which never executes pickled code (omegaconf objects and dates beside
//! the tensors are skipped). Loads the tensors into a [`Detector`]'s `VarStore` by name (the module
//! paths are RVT's state-dict names), reporting missing, unexpected and mismatched keys, and names the
//! optimizer's moments after their parameters ([`prepare`]).
//!
//! A Lightning checkpoint indexes its optimizer state by parameter position; positions map to names
//! through RVT's `parameters()` order, which is the creation order of our modules (they are built
//! in RVT's registration order), read back from `VarStore::trainable_variables`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use pytorch_reader::{DType, PickleValue, PytorchReader};
use serde::Serialize;
use tch::{nn, Kind, Tensor};

use crate::config::{ConfigError, ModelConfig};
use crate::detector::Detector;

/// Everything that can go wrong reading weights or writing a checkpoint, with the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable safetensors file: {msg}")]
    Safetensors { path: PathBuf, msg: String },
    #[error("{path}: cannot read the PyTorch checkpoint: {msg}")]
    Pickle { path: PathBuf, msg: String },
    #[error("{path}: tensor `{name}`: {msg}")]
    Tensor {
        path: PathBuf,
        name: String,
        msg: String,
    },
    #[error("{path}: no tensor of a detector found (looked for `backbone.`, `fpn.`, `yolox_head.` keys, with or without the `mdl.` prefix)")]
    NoWeights { path: PathBuf },
    #[error("weights do not fit the model: {0}")]
    Mismatch(String),
    #[error("cannot infer the model configuration from the weights: {0}; pass the model config explicitly")]
    Infer(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {msg}")]
    BadCheckpoint { path: PathBuf, msg: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The container a weights file came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    Safetensors,
    /// A PyTorch-Lightning checkpoint (`state_dict` key).
    Lightning,
    /// A pickled plain state dict (`torch.save(model.state_dict())`).
    StateDict,
}

/// Adam/AdamW moments saved beside the weights (PyTorch `optimizer.state_dict()`), per parameter
/// position.
#[derive(Debug, Default)]
pub struct OptimizerState {
    /// position → (`exp_avg`, `exp_avg_sq`, `step`).
    pub per_param: BTreeMap<usize, HashMap<String, Tensor>>,
    /// The first param group's hyper-parameters (lr, betas, eps, weight_decay, …).
    pub param_group: serde_json::Value,
}

/// What a weights file holds.
#[derive(Debug)]
pub struct SourceWeights {
    pub format: SourceFormat,
    /// Tensors with the `mdl.` prefix removed.
    pub tensors: Vec<(String, Tensor)>,
    pub optimizer: Option<OptimizerState>,
    pub epoch: Option<i64>,
    pub global_step: Option<i64>,
}

/// Reads a safetensors file, a Lightning `.ckpt` or a pickled state dict (detected from the bytes).
pub fn read_weights(path: &Path) -> Result<SourceWeights, ImportError> {
    let mut head = [0u8; 9];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(io_err(path))?;
        let n = f.read(&mut head).map_err(io_err(path))?;
        if n < 9 {
            return Err(ImportError::BadCheckpoint {
                path: path.into(),
                msg: format!("only {n} bytes: not a weights file"),
            });
        }
    }
    // safetensors: u64 little-endian header length, then the JSON header.
    if head[8] == b'{' {
        let tensors = read_safetensors(path)?;
        return Ok(SourceWeights {
            format: SourceFormat::Safetensors,
            tensors: strip_prefix(tensors),
            optimizer: None,
            epoch: None,
            global_step: None,
        });
    }
    read_pytorch(path)
}

/// All tensors of a safetensors file, in file order.
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>, ImportError> {
    Tensor::read_safetensors(path).map_err(|e| ImportError::Safetensors {
        path: path.into(),
        msg: e.to_string(),
    })
}

fn pickle_err(path: &Path) -> impl FnOnce(pytorch_reader::PytorchError) -> ImportError + '_ {
    move |e| ImportError::Pickle {
        path: path.into(),
        msg: e.to_string(),
    }
}

fn read_pytorch(path: &Path) -> Result<SourceWeights, ImportError> {
    // The whole pickle once, with every tensor under its dotted path
    // (`state_dict.mdl.backbone…`, `optimizer_states.0.state.5.exp_avg`).
    let reader = PytorchReader::new(path).map_err(pickle_err(path))?;
    let all = reader.into_tensors();
    let is_lightning = all.keys().any(|k| k.starts_with("state_dict."));
    let mut weights = Vec::new();
    let mut opt = OptimizerState::default();
    for (name, t) in &all {
        let key = if is_lightning {
            match name.strip_prefix("state_dict.") {
                Some(k) => k.to_string(),
                None => {
                    if let Some((idx, field)) = parse_optimizer_key(name) {
                        opt.per_param
                            .entry(idx)
                            .or_default()
                            .insert(field, to_tch(path, name, t)?);
                    }
                    continue;
                }
            }
        } else {
            name.clone()
        };
        weights.push((key, to_tch(path, name, t)?));
    }
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    let (mut epoch, mut global_step) = (None, None);
    let mut optimizer = None;
    if is_lightning {
        if let Ok(PickleValue::Dict(top)) = PytorchReader::read_pickle_data(path, None) {
            epoch = as_int(top.get("epoch"));
            global_step = as_int(top.get("global_step"));
            opt.param_group = top
                .get("optimizer_states")
                .and_then(|v| match v {
                    PickleValue::List(l) => l.first(),
                    _ => None,
                })
                .and_then(|o| match o {
                    PickleValue::Dict(d) => d.get("param_groups"),
                    _ => None,
                })
                .and_then(|g| match g {
                    PickleValue::List(l) => l.first(),
                    _ => None,
                })
                .map(pickle_to_json)
                .unwrap_or(serde_json::Value::Null);
        }
        if !opt.per_param.is_empty() {
            optimizer = Some(opt);
        }
    }
    Ok(SourceWeights {
        format: if is_lightning {
            SourceFormat::Lightning
        } else {
            SourceFormat::StateDict
        },
        tensors: strip_prefix(weights),
        optimizer,
        epoch,
        global_step,
    })
}

/// `optimizer_states.0.state.<idx>.<field>` → (idx, field); only the first optimizer counts.
fn parse_optimizer_key(name: &str) -> Option<(usize, String)> {
    let rest = name.strip_prefix("optimizer_states.0.state.")?;
    let (idx, field) = rest.split_once('.')?;
    Some((idx.parse().ok()?, field.to_string()))
}

fn as_int(v: Option<&PickleValue>) -> Option<i64> {
    match v {
        Some(PickleValue::Int(i)) => Some(*i),
        _ => None,
    }
}

fn pickle_to_json(v: &PickleValue) -> serde_json::Value {
    use serde_json::Value;
    match v {
        PickleValue::None => Value::Null,
        PickleValue::Bool(b) => Value::Bool(*b),
        PickleValue::Int(i) => Value::from(*i),
        PickleValue::Float(f) => Value::from(*f),
        PickleValue::String(s) => Value::String(s.clone()),
        PickleValue::List(l) => Value::Array(l.iter().map(pickle_to_json).collect()),
        PickleValue::Dict(d) => {
            let m: BTreeMap<_, _> = d
                .iter()
                .map(|(k, v)| (k.clone(), pickle_to_json(v)))
                .collect();
            Value::Object(m.into_iter().collect())
        }
        PickleValue::Bytes(_) => Value::String("<bytes>".into()),
        PickleValue::Unsupported(t) => Value::String(format!("<{t}>")),
    }
}

/// RVT's Lightning module holds the detector as `self.mdl`: its keys start with `mdl.`.
fn strip_prefix(tensors: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    tensors
        .into_iter()
        .map(|(k, t)| match k.strip_prefix("mdl.") {
            Some(s) => (s.to_string(), t),
            None => (k, t),
        })
        .collect()
}

fn to_tch(path: &Path, name: &str, t: &pytorch_reader::Tensor) -> Result<Tensor, ImportError> {
    let bad = |msg: String| ImportError::Tensor {
        path: path.into(),
        name: name.into(),
        msg,
    };
    let kind = match t.dtype() {
        DType::F64 => Kind::Double,
        DType::F32 => Kind::Float,
        DType::F16 => Kind::Half,
        DType::BF16 => Kind::BFloat16,
        DType::I64 => Kind::Int64,
        DType::I32 => Kind::Int,
        DType::I16 => Kind::Int16,
        DType::I8 => Kind::Int8,
        DType::U8 => Kind::Uint8,
        DType::Bool => Kind::Bool,
        other => {
            return Err(bad(format!(
                "element type {other:?} has no libtorch equivalent"
            )))
        }
    };
    let bytes = t.read().map_err(|e| bad(e.to_string()))?;
    let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
    Tensor::f_from_data_size(&bytes, &shape, kind).map_err(|e| bad(e.to_string()))
}

/// The outcome of loading named tensors into a model.
#[derive(Debug, Default, Clone, Serialize)]
pub struct LoadReport {
    pub loaded: usize,
    /// Model variables the source does not have (they keep their initial values).
    pub missing: Vec<String>,
    /// Source tensors the model has no variable for.
    pub unexpected: Vec<String>,
    /// Variables whose source tensor has another shape (`name: model [..], file [..]`); they keep
    /// their initial values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shape_mismatched: Vec<String>,
}

impl LoadReport {
    /// Variables of the model: loaded, missing from the source or of another shape there.
    pub fn model_variables(&self) -> usize {
        self.loaded + self.missing.len() + self.shape_mismatched.len()
    }

    /// The share of the model's variables the source filled (0 for an empty model).
    pub fn fitted_fraction(&self) -> f64 {
        let n = self.model_variables();
        if n == 0 {
            0.0
        } else {
            self.loaded as f64 / n as f64
        }
    }

    /// One line: what was loaded and, per module, what kept its initialisation (the full names are
    /// in `init_from.json`, not here: a 4-scale head has hundreds).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "loaded {} of the model's {} variables",
            self.loaded,
            self.model_variables()
        );
        if !self.shape_mismatched.is_empty() {
            s.push_str(&format!(
                "; {} have another shape in the file ({})",
                self.shape_mismatched.len(),
                by_module(&self.shape_mismatched)
            ));
        }
        if !self.missing.is_empty() {
            s.push_str(&format!(
                "; {} are not in the file ({})",
                self.missing.len(),
                by_module(&self.missing)
            ));
        }
        if !self.unexpected.is_empty() {
            s.push_str(&format!(
                "; {} tensors of the file have no variable here ({})",
                self.unexpected.len(),
                by_module(&self.unexpected)
            ));
        }
        s
    }
}

/// `backbone.stages.0 ×52, fpn ×40, …`: names counted by module (the first two parts of the name, three
/// under `backbone.stages`), in order of first appearance, at most eight modules.
pub fn by_module(names: &[String]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for n in names {
        // Shape-mismatch entries read "`name`: model [..], file [..]".
        let name = n.trim_start_matches('`');
        let name = name.split('`').next().unwrap_or(name);
        let parts: Vec<&str> = name.split('.').collect();
        let depth = if parts.first() == Some(&"backbone") && parts.get(1) == Some(&"stages") {
            3
        } else {
            2
        };
        let module = parts[..parts.len().saturating_sub(1).clamp(1, depth)].join(".");
        match counts.iter_mut().find(|(m, _)| *m == module) {
            Some((_, c)) => *c += 1,
            None => counts.push((module, 1)),
        }
    }
    let shown: Vec<String> = counts
        .iter()
        .take(8)
        .map(|(m, c)| format!("{m} ×{c}"))
        .collect();
    let more = counts.len().saturating_sub(8);
    if more > 0 {
        format!("{}, and {more} more modules", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod load_report_tests {
    use super::*;

    #[test]
    fn names_are_counted_by_module() {
        let names: Vec<String> = [
            "`backbone.stages.0.att_blocks.0.w`: model [64], file [32]",
            "`backbone.stages.0.att_blocks.1.w`: model [64], file [32]",
            "`backbone.stages.1.lstm.w`: model [64], file [32]",
            "fpn.lateral_conv0.conv.weight",
            "yolox_head.cls_preds.0.weight",
            "bias",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            by_module(&names),
            "backbone.stages.0 ×2, backbone.stages.1 ×1, fpn.lateral_conv0 ×1, yolox_head.cls_preds ×1, bias ×1"
        );
        let r = LoadReport {
            loaded: 2,
            missing: vec!["fpn.a.w".into()],
            unexpected: Vec::new(),
            shape_mismatched: vec!["`fpn.b.w`: model [1], file [2]".into()],
        };
        assert_eq!(r.model_variables(), 4);
        assert_eq!(r.fitted_fraction(), 0.5);
        assert_eq!(
            r.summary(),
            "loaded 2 of the model's 4 variables; 1 have another shape in the file (fpn.b ×1); 1 are not in the file (fpn.a ×1)"
        );
    }
}

/// Copies `tensors` into the variables of `vs` with the same names (converted to each variable's
/// kind and device). A shape mismatch is an error; missing and unexpected names are reported.
pub fn load_named(
    vs: &nn::VarStore,
    tensors: &[(String, Tensor)],
) -> Result<LoadReport, ImportError> {
    let report = load_matching(vs, tensors);
    if !report.shape_mismatched.is_empty() {
        return Err(ImportError::Mismatch(report.shape_mismatched.join("; ")));
    }
    Ok(report)
}

/// Like [`load_named`], but a variable whose source tensor has another shape keeps its value and is
/// reported in `shape_mismatched` (fine-tuning a head with another class count).
pub fn load_matching(vs: &nn::VarStore, tensors: &[(String, Tensor)]) -> LoadReport {
    let vars = vs.variables();
    let mut report = LoadReport::default();
    let mut seen = HashSet::new();
    for (name, src) in tensors {
        match vars.get(name) {
            Some(var) => {
                seen.insert(name.as_str());
                if var.size() != src.size() {
                    report.shape_mismatched.push(format!(
                        "`{name}`: model {:?}, file {:?}",
                        var.size(),
                        src.size()
                    ));
                    continue;
                }
                tch::no_grad(|| {
                    let mut dst = var.shallow_clone();
                    dst.copy_(&src.to_kind(var.kind()).to_device(var.device()));
                });
                report.loaded += 1;
            }
            None => report.unexpected.push(name.clone()),
        }
    }
    report.missing = vars
        .keys()
        .filter(|k| !seen.contains(k.as_str()))
        .cloned()
        .collect();
    report.missing.sort();
    report.unexpected.sort();
    report.shape_mismatched.sort();
    report
}

/// Names of the trainable parameters in creation order — RVT's `model.parameters()` order, since
/// the modules are created in RVT's registration order.
pub fn parameter_order(vs: &nn::VarStore) -> Vec<String> {
    let by_ptr: HashMap<usize, String> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| (t.data_ptr() as usize, name))
        .collect();
    vs.trainable_variables()
        .iter()
        .filter_map(|t| by_ptr.get(&(t.data_ptr() as usize)).cloned())
        .collect()
}

/// All variables of `vs` (parameters and BatchNorm buffers), sorted by name, as CPU tensors.
pub fn named_tensors(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, t)| (k, t.detach().to_device(tch::Device::Cpu).contiguous()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Guesses the model configuration from RVT weights: stage dims, patch size, FPN stages and
/// depth, class count. What the weights cannot tell (`dim_head`, the partition size) comes from
/// the preset with the same `embed_dim` and from `data_hw` (RVT's config modifier, REFERENCE §1.5).
pub fn infer_config(
    tensors: &[(String, Tensor)],
    data_hw: [usize; 2],
) -> Result<ModelConfig, ImportError> {
    let map: HashMap<&str, &Tensor> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let shape = |k: &str| -> Result<Vec<i64>, ImportError> {
        map.get(k)
            .map(|t| t.size())
            .ok_or_else(|| ImportError::Infer(format!("`{k}` is missing")))
    };
    let stem = shape("backbone.stages.0.downsample_cf2cl.conv.weight")?;
    let embed_dim = stem[0] as usize;
    let input_channels = stem[1] as usize;
    let patch_size = ((stem[2] + 1) / 2) as usize;
    let dim_head = match embed_dim {
        48 => 24,
        d if d % 32 == 0 => 32,
        d if d % 16 == 0 => 16,
        d => d,
    };
    let num_classes = shape("yolox_head.cls_preds.0.weight")?[0] as usize;
    let levels = (0..8)
        .take_while(|k| map.contains_key(format!("yolox_head.stems.{k}.conv.weight").as_str()))
        .count();
    if levels < 2 {
        return Err(ImportError::Infer("fewer than 2 head levels".into()));
    }
    let first_in = shape("yolox_head.stems.0.conv.weight")?[1] as usize;
    let first_stage = (1..=4)
        .find(|s| embed_dim << (s - 1) == first_in)
        .ok_or_else(|| {
            ImportError::Infer(format!(
                "head level 0 has {first_in} channels, no stage has"
            ))
        })?;
    let in_stages: Vec<usize> = (first_stage..first_stage + levels).collect();
    let bottlenecks = (0..16)
        .take_while(|i| map.contains_key(format!("fpn.C3_p4.m.{i}.conv1.conv.weight").as_str()))
        .count();
    let depth = match bottlenecks {
        1 => 0.33,
        2 => 0.67,
        n => n as f64 / 3.0,
    };
    let mut cfg = ModelConfig::custom(embed_dim, dim_head, depth, num_classes, data_hw);
    cfg.backbone.input_channels = input_channels;
    cfg.backbone.stem.patch_size = patch_size;
    cfg.fpn.in_stages = in_stages;
    cfg.fpn.depthwise = map.contains_key("fpn.bu_conv1.dconv.conv.weight");
    cfg.head.depthwise = map.contains_key("yolox_head.cls_convs.0.0.dconv.conv.weight");
    cfg.backbone.stage.lstm.dws_conv =
        map.contains_key("backbone.stages.0.lstm.conv3x3_dws.weight");
    cfg.validate()?;
    Ok(cfg)
}

/// Reads the model configuration from a YAML or JSON file: a bare model config, or one under a
/// `model` key (an experiment / checkpoint `config.yaml`) or under `rvt_model_config` (a fixture's
/// `config.json`).
pub fn read_model_config(path: &Path) -> Result<ModelConfig, ImportError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let value: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| ImportError::BadCheckpoint {
            path: path.into(),
            msg: format!("not YAML/JSON: {e}"),
        })?;
    let inner = value
        .get("model")
        .or_else(|| value.get("rvt_model_config"))
        .cloned()
        .unwrap_or(value);
    let cfg: ModelConfig =
        serde_norway::from_value(inner).map_err(|e| ImportError::BadCheckpoint {
            path: path.into(),
            msg: format!("model config: {e}"),
        })?;
    cfg.validate()?;
    Ok(cfg)
}

/// Summary of an import.
#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    pub source: PathBuf,
    pub format: SourceFormat,
    /// The checkpoint folder written (set by the writer).
    pub out: PathBuf,
    pub report: LoadReport,
    pub optimizer_params: usize,
    /// Why the source's optimizer state was left out, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer_note: Option<String>,
    pub step: i64,
    pub epoch: Option<i64>,
}

impl ImportSummary {
    /// What `evdet import-rvt` prints: source, tensors loaded / missing / unexpected, optimizer
    /// moments, step and where the folder went. The optimizer note is a warning of its own.
    pub fn lines(&self) -> Vec<String> {
        let list = |names: &[String]| {
            if names.is_empty() {
                String::new()
            } else {
                format!(": {}", names.join(", "))
            }
        };
        let r = &self.report;
        let mut out = vec![
            format!("source      {} ({:?})", self.source.display(), self.format),
            format!("loaded      {} tensors", r.loaded),
            format!("missing     {}{}", r.missing.len(), list(&r.missing)),
            format!("unexpected  {}{}", r.unexpected.len(), list(&r.unexpected)),
        ];
        if self.optimizer_params > 0 {
            out.push(format!(
                "optimizer   Adam moments of {} parameters",
                self.optimizer_params
            ));
        }
        out.push(format!(
            "step        {} (epoch {})",
            self.step,
            self.epoch.map_or("-".into(), |e| e.to_string())
        ));
        out.push(format!("written     {}", self.out.display()));
        out
    }
}

/// Weights read and checked against the model, ready to be written as a checkpoint folder.
pub struct Prepared {
    pub config: ModelConfig,
    /// Whether `config` was inferred from the weights (else given).
    pub config_inferred: bool,
    /// Every model variable by RVT name (CPU).
    pub model: Vec<(String, Tensor)>,
    /// AdamW moments named `exp_avg.<parameter>` / `exp_avg_sq.<parameter>` (the training loop's
    /// names); empty when the source has none or they could not be matched.
    pub optimizer: Vec<(String, Tensor)>,
    /// Adam's own step count (else Lightning's global step).
    pub optimizer_step: i64,
    pub lr: f64,
    pub summary: ImportSummary,
    /// What loaded and what did not, the optimizer's parameter order: for `state.json`.
    pub report_json: serde_json::Value,
}

/// Reads `source`, loads it into a detector built from `config` (inferred from the weights when
/// `None`, with `data_hw` for the partition size). Missing keys are an error unless `allow_missing`.
pub fn prepare(
    source: &Path,
    config: Option<ModelConfig>,
    data_hw: [usize; 2],
    allow_missing: bool,
) -> Result<Prepared, ImportError> {
    let src = read_weights(source)?;
    if !src
        .tensors
        .iter()
        .any(|(k, _)| k.starts_with("backbone.") || k.starts_with("yolox_head."))
    {
        return Err(ImportError::NoWeights {
            path: source.into(),
        });
    }
    let config_inferred = config.is_none();
    let cfg = match config {
        Some(c) => c,
        None => infer_config(&src.tensors, data_hw)?,
    };
    let (vs, _det) = Detector::build(&cfg, tch::Device::Cpu)?;
    let report = load_named(&vs, &src.tensors)?;
    if !report.missing.is_empty() && !allow_missing {
        return Err(ImportError::Mismatch(format!(
            "{} has no value for {} model variable(s): {}",
            source.display(),
            report.missing.len(),
            report.missing.join(", ")
        )));
    }
    let (opt_tensors, optimizer_order, optimizer_note) = match &src.optimizer {
        Some(opt) => match optimizer_tensors(&vs, opt) {
            Ok((tensors, order)) => (tensors, Some(order), None),
            Err(why) => (
                Vec::new(),
                None,
                Some(format!("optimizer state not imported: {why}")),
            ),
        },
        None => (Vec::new(), None, None),
    };
    let optimizer_params = opt_tensors
        .iter()
        .filter(|(k, _)| k.starts_with("exp_avg."))
        .count();
    let step = src.global_step.unwrap_or(0);
    // Adam's own step count (a per-parameter scalar in PyTorch), else Lightning's global step.
    let adam_step = src
        .optimizer
        .as_ref()
        .and_then(|o| o.per_param.values().next())
        .and_then(|f| f.get("step"))
        .map(|t| t.to_kind(Kind::Double).double_value(&[]) as i64)
        .unwrap_or(step);
    let lr = src
        .optimizer
        .as_ref()
        .and_then(|o| o.param_group["lr"].as_f64())
        .unwrap_or(0.0);
    let report_json = serde_json::json!({
        "file": source.display().to_string(),
        "format": src.format,
        "missing": report.missing,
        "unexpected": report.unexpected,
        "optimizer": optimizer_order.map(|order| serde_json::json!({
            "type": "AdamW",
            "param_group": src.optimizer.as_ref().map(|o| o.param_group.clone()),
            "source_parameter_order": order,
        })),
        "optimizer_note": optimizer_note,
    });
    Ok(Prepared {
        model: named_tensors(&vs),
        config: cfg,
        config_inferred,
        optimizer: opt_tensors,
        optimizer_step: adam_step,
        lr,
        report_json,
        summary: ImportSummary {
            source: source.into(),
            format: src.format,
            out: PathBuf::new(),
            report,
            optimizer_params,
            optimizer_note,
            step,
            epoch: src.epoch,
        },
    })
}

/// Names the optimizer state's per-position tensors. PyTorch indexes them by the position of the
/// parameter in the list the optimizer was built with: RVT passes `model.parameters()`
/// (registration order); other tools pass parameters sorted by name. The first order under which
/// every moment has its parameter's shape is taken (the two differ at position 0 for RVT models:
/// the stem conv vs a LayerScale gamma).
/// Named optimizer tensors plus the label of the parameter order they were indexed by.
type NamedOptimizer = (Vec<(String, Tensor)>, &'static str);

fn optimizer_tensors(vs: &nn::VarStore, opt: &OptimizerState) -> Result<NamedOptimizer, String> {
    let registration = parameter_order(vs);
    let mut sorted = registration.clone();
    sorted.sort();
    let vars = vs.variables();
    let n = opt.per_param.keys().max().map_or(0, |m| m + 1);
    if n != registration.len() {
        return Err(format!(
            "it has {n} parameters, the model {}",
            registration.len()
        ));
    }
    let fits = |order: &[String]| {
        opt.per_param.iter().all(|(&i, fields)| {
            fields
                .iter()
                .all(|(f, t)| f == "step" || t.size() == vars[&order[i]].size())
        })
    };
    let (order, label) = if fits(&registration) {
        (registration, "rvt_parameters")
    } else if fits(&sorted) {
        (sorted, "sorted_names")
    } else {
        return Err("its moments fit neither RVT's parameter order nor the sorted names".into());
    };
    let mut out = Vec::new();
    for (&idx, fields) in &opt.per_param {
        // The per-parameter `step` scalar goes to state.json's `optimizer_step`.
        for field in ["exp_avg", "exp_avg_sq"] {
            if let Some(t) = fields.get(field) {
                out.push((format!("{field}.{}", order[idx]), t.shallow_clone()));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, label))
}
