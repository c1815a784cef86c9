//! Compares the detector with a reference fixture folder of the `model_*` layout
//! (`tests/fixtures/model_3scale`, `model_4scale_sizeaware`; their README describes the files):
//! loads `config.json` and `weights.safetensors`, runs the eval-mode sequence (states carried over
//! the T steps from zero) and the train-mode pass (backbone over all steps, head + losses on the
//! last step, backward), and compares every tensor of `outputs.safetensors` and
//! `train_outputs.safetensors` and every loss number of `expected.json`. A reference output the
//! implementation does not produce is a failure, not a skip.
//!
//! Pass rules (issue 5): features, logits, decoded boxes, states, BN statistics and size weights:
//! every element |a−b| ≤ 1e-4 + 1e-3·|b|; losses and gradients: max|a−b| / max(max|b|, 1) ≤ 1e-3
//! (reported as `max_rel`); detections match as sets; SimOTA assignments are identical.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::backbone::{AttentionImpl, LstmState};
use crate::config::ModelConfig;
use crate::detector::Detector;
use crate::import::{load_named, read_safetensors, ImportError};
use crate::losses::loss_diagnostics;

/// Elementwise tolerance for features, logits and decoded boxes.
pub const ATOL: f64 = 1e-4;
pub const RTOL: f64 = 1e-3;
/// Tolerance on max|a−b| / max(max|b|, 1) for losses and gradients.
pub const REL_TOL: f64 = 1e-3;

/// Whether a detection row `[x1, y1, x2, y2, obj, cls_conf, cls]` of ours matches the reference's: the
/// same class, scores within `ATOL + RTOL·|b|`, and box edges within `ATOL + RTOL·size`, where size is
/// the largest absolute coordinate of the reference box. An edge is a difference of two numbers of
/// that size (x1 = cx − w/2), so its rounding error scales with them, not with the edge: a tolerance
/// relative to an edge near 0 fails on a CPU whose kernels round differently (issue 25).
pub fn detection_rows_close(mine: &[f64], reference: &[f64]) -> bool {
    if mine.len() != reference.len() || reference.len() < 7 || mine[6] != reference[6] {
        return false;
    }
    let size = reference[..4].iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let coords = mine[..4]
        .iter()
        .zip(&reference[..4])
        .all(|(a, b)| (a - b).abs() <= ATOL + RTOL * size);
    let rest = mine[4..]
        .iter()
        .zip(&reference[4..])
        .all(|(a, b)| (a - b).abs() <= ATOL + RTOL * b.abs());
    coords && rest
}

/// A fixture folder that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{path}: {msg}")]
    Fixture { path: PathBuf, msg: String },
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

fn fixture_err(path: &Path, msg: impl Into<String>) -> CheckError {
    CheckError::Fixture {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// How an output is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// |a−b| ≤ 1e-4 + 1e-3·|b| for every element.
    Elementwise,
    /// max|a−b| / max(max|b|, 1) ≤ 1e-3.
    MaxRel,
    /// Identical values.
    Exact,
    /// Same detections, matched as sets (each row elementwise-close to one of ours).
    Set,
}

/// The verdict on one reference output.
#[derive(Debug, Clone, Serialize)]
pub struct OutputCheck {
    pub max_abs: f64,
    /// max|a−b| / max(max|b|, 1).
    pub max_rel: f64,
    pub ok: bool,
    pub rule: Rule,
    /// Elementwise rule: max over elements of |a−b| / (1e-4 + 1e-3·|b|) (passes when ≤ 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tol_ratio: Option<f64>,
    /// Why it failed when there is no number to show (missing output, shape, count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The whole comparison: one entry per reference output, in the order checked.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub fixture: PathBuf,
    pub outputs: Vec<(String, OutputCheck)>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        !self.outputs.is_empty() && self.outputs.iter().all(|(_, c)| c.ok)
    }

    /// `{"ok": bool, "outputs": {"<name>": {"max_abs", "max_rel", "ok", …}}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let outputs: serde_json::Map<String, serde_json::Value> = self
            .outputs
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect();
        serde_json::json!({
            "fixture": self.fixture.display().to_string(),
            "ok": self.ok(),
            "outputs": outputs,
            "groups": self.group_summary(),
        })
    }

    /// Per group (`backbone`, `fpn`, `head`, `decoded`, `detections`, `states`, `losses`,
    /// `grads`, `assign`, `bn`), in order of first appearance: the largest max_abs, max_rel and
    /// elementwise tolerance ratio over its outputs, and how many outputs passed of how many.
    pub fn group_summary(&self) -> Vec<GroupSummary> {
        let mut out: Vec<GroupSummary> = Vec::new();
        for (name, c) in &self.outputs {
            let g = group_of(name);
            let i = match out.iter().position(|s| s.group == g) {
                Some(i) => i,
                None => {
                    out.push(GroupSummary {
                        group: g,
                        max_abs: 0.0,
                        max_rel: 0.0,
                        tol_ratio: None,
                        passed: 0,
                        total: 0,
                    });
                    out.len() - 1
                }
            };
            let s = &mut out[i];
            s.max_abs = s.max_abs.max(c.max_abs);
            s.max_rel = s.max_rel.max(c.max_rel);
            if let Some(t) = c.tol_ratio {
                s.tol_ratio = Some(s.tol_ratio.map_or(t, |x: f64| x.max(t)));
            }
            s.passed += usize::from(c.ok);
            s.total += 1;
        }
        out
    }
}

impl CheckReport {
    /// What `evdet check-reference` prints: a table per output group (rule, max_abs, max_rel,
    /// tolerance ratio, pass/FAIL with the reason), then the worst numbers per group.
    pub fn table_lines(&self) -> Vec<String> {
        let groups = self.group_summary();
        let width = self
            .outputs
            .iter()
            .map(|(n, _)| n.len())
            .max()
            .unwrap_or(10)
            .max(10);
        let tol = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{t:.3}"));
        let mut out = Vec::new();
        for g in &groups {
            out.push(String::new());
            out.push(format!("== {}", g.group));
            out.push(format!(
                "{:<width$}  {:<11}  {:>10}  {:>10}  {:>9}  result",
                "output", "rule", "max_abs", "max_rel", "tol_ratio"
            ));
            for (name, c) in self.outputs.iter().filter(|(n, _)| group_of(n) == g.group) {
                let rule = serde_json::to_value(c.rule)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                out.push(format!(
                    "{name:<width$}  {rule:<11}  {:>10.3e}  {:>10.3e}  {:>9}  {}{}",
                    c.max_abs,
                    c.max_rel,
                    tol(c.tol_ratio),
                    if c.ok { "pass" } else { "FAIL" },
                    c.note
                        .as_ref()
                        .map(|n| format!("  ({n})"))
                        .unwrap_or_default()
                ));
            }
        }
        out.push(String::new());
        out.push("worst per group:".into());
        out.push(format!(
            "  {:<11} {:>10}  {:>10}  {:>9}  passed",
            "group", "max_abs", "max_rel", "tol_ratio"
        ));
        for g in &groups {
            out.push(format!(
                "  {:<11} {:>10.3e}  {:>10.3e}  {:>9}  {}/{}",
                g.group,
                g.max_abs,
                g.max_rel,
                tol(g.tol_ratio),
                g.passed,
                g.total
            ));
        }
        out
    }
}

/// Worst numbers of one output group (see [`CheckReport::group_summary`]).
#[derive(Debug, Clone, Serialize)]
pub struct GroupSummary {
    pub group: &'static str,
    pub max_abs: f64,
    pub max_rel: f64,
    /// Largest |a−b| / (1e-4 + 1e-3·|b|) of the elementwise outputs (≤ 1 passes).
    pub tol_ratio: Option<f64>,
    pub passed: usize,
    pub total: usize,
}

/// The group an output name belongs to, for tables and summaries.
pub fn group_of(name: &str) -> &'static str {
    if name.starts_with("loss.") {
        "losses"
    } else if name.starts_with("grad.") {
        "grads"
    } else if name.starts_with("assign.") {
        "assign"
    } else if name.starts_with("train_bn_after.") {
        "bn"
    } else if name.starts_with("final.") {
        "states"
    } else if name.contains(".backbone.") {
        "backbone"
    } else if name.contains(".fpn.") {
        "fpn"
    } else if name.contains(".head.decoded") {
        "decoded"
    } else if name.contains(".head.") {
        "head"
    } else if name.contains(".detections") {
        "detections"
    } else {
        "other"
    }
}

/// What the fixture's `config.json` says.
#[derive(Debug, Clone)]
pub struct FixtureConfig {
    pub model: ModelConfig,
    pub conf_thre: f64,
    pub nms_thre: f64,
    /// `[T, B, C, H, W]`.
    pub input: [i64; 5],
}

/// Reads `config.json`: the RVT model config plus the size-aware loss settings.
pub fn read_fixture_config(dir: &Path) -> Result<FixtureConfig, CheckError> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| fixture_err(&path, e.to_string()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fixture_err(&path, e.to_string()))?;
    let mut model: ModelConfig = serde_json::from_value(v["rvt_model_config"].clone())
        .map_err(|e| fixture_err(&path, format!("rvt_model_config: {e}")))?;
    if let Some(sa) = v.get("size_aware").filter(|s| !s.is_null()) {
        let num = |k: &str| {
            sa[k]
                .as_f64()
                .ok_or_else(|| fixture_err(&path, format!("size_aware.{k} is not a number")))
        };
        model.head.size_aware_loss = true;
        model.head.size_aware_weight = num("size_aware_weight")?;
        model.head.small_threshold = num("small_threshold")?;
        model.head.medium_threshold = num("medium_threshold")?;
        model.head.weight_type =
            serde_json::from_value(sa["weight_type"].clone()).map_err(|e| {
                fixture_err(
                    &path,
                    format!("size_aware.weight_type: {e} (exponential, step or linear)"),
                )
            })?;
    }
    if v["use_l1"].as_bool() == Some(true) {
        model.head.use_l1 = true;
    }
    model.validate()?;
    let pp = &v["postprocess"];
    let conf_thre = pp["conf_thre"]
        .as_f64()
        .unwrap_or(model.postprocess.confidence_threshold);
    let nms_thre = pp["nms_thre"]
        .as_f64()
        .unwrap_or(model.postprocess.nms_threshold);
    let inp = &v["input"];
    let dim = |k: &str| {
        inp[k]
            .as_i64()
            .ok_or_else(|| fixture_err(&path, format!("input.{k} is missing")))
    };
    let input = [dim("T")?, dim("B")?, dim("C")?, dim("H")?, dim("W")?];
    Ok(FixtureConfig {
        model,
        conf_thre,
        nms_thre,
        input,
    })
}

/// Collects verdicts and remembers which reference outputs were looked at.
struct Checker {
    expected: HashMap<String, Tensor>,
    used: std::collections::HashSet<String>,
    outputs: Vec<(String, OutputCheck)>,
}

/// (max_abs, max_rel, tol_ratio, elementwise_ok) of `ours` against `exp`.
fn stats(ours: &Tensor, exp: &Tensor) -> (f64, f64, f64, bool) {
    let a = ours.to_kind(Kind::Double).to_device(Device::Cpu);
    let b = exp.to_kind(Kind::Double).to_device(Device::Cpu);
    if a.numel() == 0 {
        return (0.0, 0.0, 0.0, true);
    }
    let diff = (&a - &b).abs();
    let max_abs = diff.max().double_value(&[]);
    let max_b = b.abs().max().double_value(&[]);
    let max_rel = max_abs / max_b.max(1.0);
    let tol_ratio = (&diff / (b.abs() * RTOL + ATOL)).max().double_value(&[]);
    let finite = a.isfinite().all().int64_value(&[]) != 0;
    (max_abs, max_rel, tol_ratio, tol_ratio <= 1.0 && finite)
}

/// Where a tensor is furthest outside the elementwise tolerance, for failure notes.
fn worst_element(ours: &Tensor, exp: &Tensor) -> String {
    let a = ours
        .to_kind(Kind::Double)
        .to_device(Device::Cpu)
        .flatten(0, -1);
    let b = exp
        .to_kind(Kind::Double)
        .to_device(Device::Cpu)
        .flatten(0, -1);
    if a.numel() == 0 {
        return String::new();
    }
    let excess = (&a - &b).abs() / (b.abs() * RTOL + ATOL);
    let i = excess.argmax(None, false).int64_value(&[]);
    let mut idx = Vec::new();
    let mut rest = i;
    for d in exp.size().iter().rev() {
        idx.push(rest % d.max(&1));
        rest /= d.max(&1);
    }
    idx.reverse();
    format!(
        "worst element {idx:?}: ours {:.6e}, reference {:.6e}, {:.2}x the tolerance",
        a.double_value(&[i]),
        b.double_value(&[i]),
        excess.double_value(&[i])
    )
}

impl Checker {
    fn new(expected: HashMap<String, Tensor>) -> Self {
        Self {
            expected,
            used: Default::default(),
            outputs: Vec::new(),
        }
    }

    fn push(&mut self, name: &str, check: OutputCheck) {
        self.used.insert(name.to_string());
        self.outputs.push((name.to_string(), check));
    }

    fn fail(&mut self, name: &str, rule: Rule, note: impl Into<String>) {
        self.push(
            name,
            OutputCheck {
                max_abs: f64::INFINITY,
                max_rel: f64::INFINITY,
                ok: false,
                rule,
                tol_ratio: None,
                note: Some(note.into()),
            },
        );
    }

    /// Compares `ours` with the reference tensor `name` (if the fixture has it).
    fn tensor(&mut self, name: &str, ours: Option<&Tensor>, rule: Rule) {
        let Some(exp) = self.expected.get(name).map(|t| t.shallow_clone()) else {
            return;
        };
        let Some(ours) = ours else {
            self.fail(name, rule, "not produced by the implementation");
            return;
        };
        if ours.size() != exp.size() {
            let note = format!("shape {:?}, reference {:?}", ours.size(), exp.size());
            self.fail(name, rule, note);
            return;
        }
        let (max_abs, max_rel, tol_ratio, elementwise_ok) = stats(ours, &exp);
        let ok = match rule {
            Rule::Elementwise => elementwise_ok,
            Rule::MaxRel => max_rel <= REL_TOL && max_rel.is_finite(),
            Rule::Exact | Rule::Set => max_abs == 0.0,
        };
        let note = (!ok).then(|| worst_element(ours, &exp));
        self.push(
            name,
            OutputCheck {
                max_abs,
                max_rel,
                ok,
                rule,
                tol_ratio: (rule == Rule::Elementwise).then_some(tol_ratio),
                note,
            },
        );
    }

    /// A scalar from `expected.json` (losses): MaxRel rule.
    fn scalar(&mut self, name: &str, ours: Option<f64>, exp: f64) {
        let Some(a) = ours else {
            self.fail(name, Rule::MaxRel, "not produced by the implementation");
            return;
        };
        let max_abs = (a - exp).abs();
        let max_rel = max_abs / exp.abs().max(1.0);
        self.push(
            name,
            OutputCheck {
                max_abs,
                max_rel,
                ok: max_rel <= REL_TOL,
                rule: Rule::MaxRel,
                tol_ratio: None,
                note: None,
            },
        );
    }

    /// Detections of step `t` as sets: per image the same count, and every reference row matched
    /// to a distinct row of ours with the same class and elementwise-close values.
    fn detections(&mut self, t: usize, ours: Option<&[Tensor]>) {
        let name = format!("t{t}.detections");
        let count_name = format!("t{t}.detections_count");
        let (Some(exp), Some(counts)) = (
            self.expected.get(&name).map(|t| t.shallow_clone()),
            self.expected.get(&count_name).map(|t| t.shallow_clone()),
        ) else {
            return;
        };
        self.used.insert(count_name.clone());
        let Some(ours) = ours else {
            self.fail(&name, Rule::Set, "not produced by the implementation");
            self.fail(
                &count_name,
                Rule::Exact,
                "not produced by the implementation",
            );
            return;
        };
        // A count tensor that cannot be read is a failed check, never an empty list that would
        // compare equal to "no detections".
        let counts: Vec<i64> = match Vec::<i64>::try_from(counts.to_kind(Kind::Int64)) {
            Ok(c) => c,
            Err(e) => {
                let why =
                    format!("cannot read the reference counts (expected [images] int64): {e}");
                self.fail(&count_name, Rule::Exact, &why);
                self.fail(&name, Rule::Set, &why);
                return;
            }
        };
        let exp = exp.to_kind(Kind::Double);
        let (mut max_abs, mut max_b) = (0.0f64, 0.0f64);
        let mut problems = Vec::new();
        let mut count_diff = 0i64;
        for (b, &n) in counts.iter().enumerate() {
            let mine = ours
                .get(b)
                .map(|d| d.to_kind(Kind::Double).to_device(Device::Cpu));
            let mine_n = mine.as_ref().map_or(0, |d| d.size()[0]);
            count_diff = count_diff.max((mine_n - n).abs());
            if mine_n != n {
                problems.push(format!("image {b}: {mine_n} detections, reference {n}"));
                continue;
            }
            let Some(mine) = mine else { continue };
            let rows = |t: &Tensor| -> Result<Vec<Vec<f64>>, tch::TchError> {
                (0..n).map(|i| Vec::<f64>::try_from(t.get(i))).collect()
            };
            let (rows_ref, rows_mine) = match (rows(&exp.get(b as i64)), rows(&mine)) {
                (Ok(r), Ok(m)) => (r, m),
                (Err(e), _) | (_, Err(e)) => {
                    problems.push(format!("image {b}: rows cannot be read: {e}"));
                    continue;
                }
            };
            let mut taken = vec![false; rows_mine.len()];
            for (i, r) in rows_ref.iter().enumerate() {
                max_b = r.iter().fold(max_b, |m, x| m.max(x.abs()));
                let close = |m: &Vec<f64>| detection_rows_close(m, r);
                match (0..rows_mine.len()).find(|&j| !taken[j] && close(&rows_mine[j])) {
                    Some(j) => {
                        taken[j] = true;
                        let d = rows_mine[j]
                            .iter()
                            .zip(r)
                            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
                        max_abs = max_abs.max(d);
                    }
                    None => problems.push(format!("image {b}: reference row {i} {r:?} unmatched")),
                }
            }
        }
        let ok = problems.is_empty();
        self.push(
            &name,
            OutputCheck {
                max_abs: if ok { max_abs } else { f64::INFINITY },
                max_rel: if ok {
                    max_abs / max_b.max(1.0)
                } else {
                    f64::INFINITY
                },
                ok,
                rule: Rule::Set,
                tol_ratio: None,
                note: (!ok).then(|| problems.join("; ")),
            },
        );
        self.push(
            &count_name,
            OutputCheck {
                max_abs: count_diff as f64,
                max_rel: count_diff as f64,
                ok: count_diff == 0,
                rule: Rule::Exact,
                tol_ratio: None,
                note: None,
            },
        );
    }

    /// Every reference tensor nobody compared is a failure.
    fn finish(mut self, fixture: &Path) -> CheckReport {
        let mut left: Vec<String> = self
            .expected
            .keys()
            .filter(|k| !self.used.contains(*k))
            .cloned()
            .collect();
        left.sort();
        for k in left {
            self.fail(&k, Rule::Exact, "not produced by the implementation");
        }
        CheckReport {
            fixture: fixture.to_path_buf(),
            outputs: self.outputs,
        }
    }
}

/// How to run the comparison.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    pub device: Device,
    pub attention: AttentionImpl,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            attention: AttentionImpl::Reference,
        }
    }
}

/// Builds the detector of the fixture with its weights.
fn build_loaded(
    cfg: &ModelConfig,
    dir: &Path,
    opts: CheckOptions,
) -> Result<(tch::nn::VarStore, Detector), CheckError> {
    let (vs, mut det) = Detector::build(cfg, opts.device)?;
    det.set_attention_impl(opts.attention);
    let wpath = dir.join("weights.safetensors");
    let weights = read_safetensors(&wpath)?;
    let report = load_named(&vs, &weights)?;
    if !report.missing.is_empty() || !report.unexpected.is_empty() {
        return Err(fixture_err(
            &wpath,
            format!(
                "does not fit the model: missing {:?}, unexpected {:?}",
                report.missing, report.unexpected
            ),
        ));
    }
    Ok((vs, det))
}

fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>, CheckError> {
    Ok(read_safetensors(path)?.into_iter().collect())
}

/// Losses, assignment and gradients of the train pass; `None` where the loss code does not
/// produce a value.
#[derive(Debug, Default)]
pub struct TrainResult {
    pub losses: BTreeMap<String, f64>,
    /// Per image: fg anchor indices, matched gt indices, matched classes, IoUs.
    pub assignments: Vec<[Tensor; 4]>,
    pub size_weights_all_fg: Option<Tensor>,
}

/// Runs the comparison on `dir`.
pub fn check_reference(dir: &Path, opts: CheckOptions) -> Result<CheckReport, CheckError> {
    let device = opts.device;
    let fx = read_fixture_config(dir)?;
    let inputs = read_tensors(&dir.join("inputs.safetensors"))?;
    let ipath = dir.join("inputs.safetensors");
    let ev = inputs
        .get("ev_repr")
        .ok_or_else(|| fixture_err(&ipath, "no `ev_repr` tensor"))?
        .to_kind(Kind::Float)
        .to_device(device);
    let targets = inputs
        .get("targets")
        .ok_or_else(|| fixture_err(&ipath, "no `targets` tensor"))?
        .to_kind(Kind::Float)
        .to_device(device);
    let steps = ev.size()[0];

    let mut expected = read_tensors(&dir.join("outputs.safetensors"))?;
    let train_path = dir.join("train_outputs.safetensors");
    if train_path.exists() {
        expected.extend(read_tensors(&train_path)?);
    }
    let mut checker = Checker::new(expected);

    // Eval mode: states carried over the T steps from zero.
    let (_vs, det) = build_loaded(&fx.model, dir, opts)?;
    tch::no_grad(|| {
        let mut states: Option<Vec<LstmState>> = None;
        for t in 0..steps {
            let (feats, new_states) =
                det.forward_backbone_step(&ev.get(t), states.as_deref(), None, false);
            for (s, f) in feats.iter().enumerate() {
                checker.tensor(
                    &format!("t{t}.backbone.stage{}", s + 1),
                    Some(f),
                    Rule::Elementwise,
                );
            }
            let out = det.forward_detect(&feats, false);
            for (i, f) in out.fpn.iter().enumerate() {
                checker.tensor(&format!("t{t}.fpn.level{i}"), Some(f), Rule::Elementwise);
            }
            for (k, l) in out.levels.iter().enumerate() {
                checker.tensor(
                    &format!("t{t}.head.level{k}.logits"),
                    Some(l),
                    Rule::Elementwise,
                );
            }
            checker.tensor(
                &format!("t{t}.head.decoded"),
                Some(&out.decoded),
                Rule::Elementwise,
            );
            let dets = postprocess_hook(&det, &out.decoded, fx.conf_thre, fx.nms_thre);
            checker.detections(t as usize, dets.as_deref());
            states = Some(new_states);
        }
        if let Some(states) = &states {
            for (s, st) in states.iter().enumerate() {
                checker.tensor(
                    &format!("final.lstm_h.stage{}", s + 1),
                    Some(&st.h),
                    Rule::Elementwise,
                );
                checker.tensor(
                    &format!("final.lstm_c.stage{}", s + 1),
                    Some(&st.c),
                    Rule::Elementwise,
                );
            }
        }
    });

    // Train mode on a fresh copy of the weights: backbone over all steps (states not detached),
    // FPN + head + losses on the last step with targets[T-1], then backward.
    let expected_json: serde_json::Value = {
        let p = dir.join("expected.json");
        let text = std::fs::read_to_string(&p).map_err(|e| fixture_err(&p, e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| fixture_err(&p, e.to_string()))?
    };
    let (vs, det) = build_loaded(&fx.model, dir, opts)?;
    let mut states: Option<Vec<LstmState>> = None;
    let mut last_feats = Vec::new();
    for t in 0..steps {
        let (feats, new_states) =
            det.forward_backbone_step(&ev.get(t), states.as_deref(), None, true);
        last_feats = feats;
        states = Some(new_states);
    }
    let out = det.forward_detect(&last_feats, true);
    let vars = vs.variables();
    for which in ["running_mean", "running_var"] {
        let name = format!("train_bn_after.yolox_head.stems.0.bn.{which}");
        let ours = vars.get(&format!("yolox_head.stems.0.bn.{which}"));
        checker.tensor(&name, ours, Rule::Elementwise);
    }
    let train = out
        .train
        .as_ref()
        .and_then(|tr| loss_hook(&det, tr, &targets.get(steps - 1)));
    let empty = serde_json::Map::new();
    let exp_losses = expected_json["train_losses_last_step"]
        .as_object()
        .unwrap_or(&empty);
    for (k, v) in exp_losses {
        let ours = train.as_ref().and_then(|r| r.result.losses.get(k).copied());
        checker.scalar(&format!("loss.{k}"), ours, v.as_f64().unwrap_or(f64::NAN));
    }
    // Gradients of the total loss.
    let total = train
        .as_ref()
        .and_then(|r| r.loss_tensor.as_ref().map(|t| t.shallow_clone()));
    if let Some(loss) = &total {
        loss.backward();
    }
    let grad_names: Vec<String> = checker
        .expected
        .keys()
        .filter(|k| k.starts_with("grad."))
        .cloned()
        .collect();
    for name in grad_names {
        let param = &name["grad.".len()..];
        let g = total
            .as_ref()
            .and_then(|_| vars.get(param))
            .map(|v| v.grad())
            .filter(|g| g.defined());
        checker.tensor(&name, g.as_ref(), Rule::MaxRel);
    }
    // SimOTA assignment.
    let b = fx.input[1];
    for img in 0..b {
        let a = train
            .as_ref()
            .and_then(|r| r.result.assignments.get(img as usize));
        let fields = [
            "fg_anchor_indices",
            "matched_gt_inds",
            "gt_matched_classes",
            "pred_ious_this_matching",
        ];
        for (f, field) in fields.iter().enumerate() {
            let name = format!("assign.img{img}.{field}");
            let rule = if f == 3 {
                Rule::Elementwise
            } else {
                Rule::Exact
            };
            checker.tensor(&name, a.map(|a| &a[f]), rule);
        }
    }
    let sw = train
        .as_ref()
        .and_then(|r| r.result.size_weights_all_fg.as_ref());
    checker.tensor("assign.size_weights_all_fg", sw, Rule::Elementwise);
    Ok(checker.finish(dir))
}

/// The train pass's loss outputs plus the graph-carrying total loss.
struct TrainPass {
    result: TrainResult,
    loss_tensor: Option<Tensor>,
}

/// Detections per image `[n, 7]` from the eval decoding.
fn postprocess_hook(det: &Detector, decoded: &Tensor, conf: f64, nms: f64) -> Option<Vec<Tensor>> {
    det.postprocess(decoded, Some((conf, nms))).ok()
}

/// Losses (RVT's logged ones, plus the size-aware fixture's diagnostics), SimOTA assignments and
/// size weights of the train pass; `None` when the loss fails.
fn loss_hook(
    det: &Detector,
    out: &crate::head::HeadTrainOutput,
    targets: &Tensor,
) -> Option<TrainPass> {
    let lo = det.loss(out, targets).ok()?;
    let scalar = |t: &Tensor| t.to_kind(Kind::Double).double_value(&[]);
    let mut losses = BTreeMap::new();
    losses.insert("loss".to_string(), scalar(&lo.loss));
    losses.insert("iou_loss".to_string(), scalar(&lo.iou_loss));
    losses.insert("conf_loss".to_string(), scalar(&lo.conf_loss));
    losses.insert("cls_loss".to_string(), scalar(&lo.cls_loss));
    losses.insert("l1_loss".to_string(), scalar(&lo.l1_loss));
    losses.insert("num_fg".to_string(), lo.num_fg);
    losses.insert("num_fg_total".to_string(), lo.num_fg_total as f64);
    losses.insert("num_gts_total".to_string(), lo.num_gts_total as f64);
    if let Ok(d) = loss_diagnostics(&lo, det.loss_config()) {
        losses.insert("iou_loss_unweighted".to_string(), d.iou_loss_unweighted);
        losses.insert("giou_loss_sizeaware".to_string(), d.giou_loss_sizeaware);
        losses.insert("giou_loss_unweighted".to_string(), d.giou_loss_unweighted);
        losses.insert(
            "cls_loss_focal_sizeaware".to_string(),
            d.cls_loss_focal_sizeaware,
        );
        losses.insert(
            "cls_loss_focal_unweighted".to_string(),
            d.cls_loss_focal_unweighted,
        );
    }
    let assignments = lo
        .assignments
        .iter()
        .map(|a| {
            [
                a.fg_anchor_indices.shallow_clone(),
                a.matched_gt_inds.shallow_clone(),
                a.gt_matched_classes.shallow_clone(),
                a.pred_ious_this_matching.shallow_clone(),
            ]
        })
        .collect();
    Some(TrainPass {
        result: TrainResult {
            losses,
            assignments,
            size_weights_all_fg: lo.fg.size_weights.as_ref().map(|w| w.detach()),
        },
        loss_tensor: Some(lo.loss),
    })
}

#[cfg(test)]
mod detection_tolerance_tests {
    use super::*;

    /// The row the Intel Xeon (AMX) run reported unmatched: x1 = 0.0863, a box edge near 0 of a box
    /// about 64 px across. Its edge differs from ours by 3e-4 (last-bit differences of cx and w ≈ 60),
    /// within the tolerance of numbers of that size, though far outside 1e-4 + 1e-3·0.0863.
    #[test]
    fn an_edge_near_zero_is_compared_at_the_scale_of_its_box() {
        let reference = [0.0863, 63.807, 41.2, 120.5, 0.91, 0.87, 1.0];
        let mut mine = reference;
        mine[0] += 3e-4;
        assert!(detection_rows_close(&mine, &reference));
        // A real difference is still one: an edge off by 1 px, another class, another score.
        let mut off = reference;
        off[0] += 1.0;
        assert!(!detection_rows_close(&off, &reference));
        let mut class = reference;
        class[6] = 2.0;
        assert!(!detection_rows_close(&class, &reference));
        let mut score = reference;
        score[4] += 0.01;
        assert!(!detection_rows_close(&score, &reference));
        assert!(!detection_rows_close(&reference[..6], &reference[..6]));
    }
}
