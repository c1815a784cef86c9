//! Reading a run directory (DESIGN.md "Run directory"): the resolved `config.yaml`, the
//! `metrics.jsonl` log and whatever `evdet eval` left under `eval/`. Anything but a broken
//! metrics log in the middle is optional: what is missing is recorded, not fatal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use evdet_eval::analysis::SmallObjectAnalysis;
use serde::Deserialize;
use serde_norway::Value;

use crate::error::{ReportError, Result};

/// The two evaluation protocols, in the order reports show them (DESIGN.md "Metric names").
pub const PROTOCOLS: [&str; 2] = ["prophesee", "unfiltered"];

/// COCO's stats in their order (the eval crate's `STAT_NAMES`), then the group and class-agnostic numbers.
pub const STATS: [&str; 14] = {
    let s = evdet_eval::STAT_NAMES;
    [
        s[0],
        s[1],
        s[2],
        s[3],
        s[4],
        s[5],
        s[6],
        s[7],
        s[8],
        s[9],
        s[10],
        s[11],
        "AP_small_classes",
        "agnostic/AP",
    ]
};

/// One line of `metrics.jsonl`: its step and the numeric values it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsLine {
    pub step: u64,
    pub values: BTreeMap<String, f64>,
}

/// One entry of `eval/samples/<split>_samples.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Sample {
    pub file: String,
    #[serde(default)]
    pub sequence: String,
    #[serde(default)]
    pub t_us: i64,
    #[serde(default)]
    pub num_gt: usize,
    #[serde(default)]
    pub num_dt: usize,
}

/// `eval/<split>_analysis.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AnalysisFile {
    #[serde(default)]
    pub split: String,
    /// Height and width of the frame the areas are measured in (the network input).
    #[serde(default)]
    pub frame_hw: Option<[u32; 2]>,
    #[serde(default)]
    pub prophesee: Option<SmallObjectAnalysis>,
    #[serde(default)]
    pub unfiltered: Option<SmallObjectAnalysis>,
}

impl AnalysisFile {
    /// The analysis of `protocol` (`prophesee` or `unfiltered`).
    pub fn protocol(&self, protocol: &str) -> Option<&SmallObjectAnalysis> {
        match protocol {
            "prophesee" => self.prophesee.as_ref(),
            "unfiltered" => self.unfiltered.as_ref(),
            _ => None,
        }
    }
}

/// What `evdet eval` wrote for one split.
#[derive(Debug, Clone, Default)]
pub struct SplitEval {
    /// Flat `{"test/prophesee/AP": 0.21, …}`.
    pub metrics: Option<BTreeMap<String, f64>>,
    pub analysis: Option<AnalysisFile>,
    pub samples: Vec<Sample>,
    /// Folder the sample PNGs are in.
    pub samples_dir: PathBuf,
}

/// Everything a report shows about one run.
#[derive(Debug, Clone)]
pub struct Run {
    /// `logging.experiment_id`, else the folder name.
    pub name: String,
    pub dir: PathBuf,
    pub config: Option<Value>,
    /// Lines of `metrics.jsonl` in file order.
    pub metrics: Vec<MetricsLine>,
    /// Per split (`test`, `val`, …).
    pub eval: BTreeMap<String, SplitEval>,
    /// What was missing or skipped, one sentence each.
    pub notes: Vec<String>,
}

impl Run {
    /// Reads the run directory `dir`. Errors only when `dir` is not a readable folder, or
    /// `metrics.jsonl` has a malformed line before its last one (a killed run may leave a
    /// half-written last line, which is skipped with a note).
    pub fn load(dir: &Path) -> Result<Run> {
        let meta = std::fs::metadata(dir).map_err(|e| ReportError::io("reading run", dir, e))?;
        if !meta.is_dir() {
            return Err(ReportError::format(
                dir,
                "not a run directory (expected a folder with config.yaml and metrics.jsonl)",
            ));
        }
        let mut notes = Vec::new();
        let layout = evdet_run::RunDir::at(dir);
        let config_path = layout.config();
        let config = match std::fs::read_to_string(&config_path) {
            Ok(text) => match serde_norway::from_str::<Value>(&text) {
                Ok(v) => Some(v),
                Err(e) => {
                    notes.push(format!("config.yaml could not be read: {e}"));
                    None
                }
            },
            Err(_) => {
                notes.push("config.yaml is missing".into());
                None
            }
        };
        let metrics_path = layout.metrics_log();
        let metrics = if metrics_path.exists() {
            let (lines, skipped) = read_metrics_jsonl(&metrics_path)?;
            if let Some(n) = skipped {
                notes.push(format!(
                    "metrics.jsonl: the last line ({n}) is incomplete and was skipped (the run was stopped while writing?)"
                ));
            }
            lines
        } else {
            notes.push("metrics.jsonl is missing (no training log)".into());
            Vec::new()
        };
        let folder_name = dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        let name = config
            .as_ref()
            .and_then(|c| lookup(c, "logging.experiment_id"))
            .and_then(value_as_string)
            .unwrap_or(folder_name);
        let eval = read_eval(dir, &mut notes);
        Ok(Run {
            name,
            dir: dir.to_path_buf(),
            config,
            metrics,
            eval,
            notes,
        })
    }

    /// Folder name of the run directory.
    pub fn folder_name(&self) -> String {
        self.dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// A config value by dotted key (`model.fpn.in_stages`).
    pub fn config_value(&self, key: &str) -> Option<&Value> {
        self.config.as_ref().and_then(|c| lookup(c, key))
    }

    /// `dataset.classes`, empty when unknown.
    pub fn classes(&self) -> Vec<String> {
        string_list(self.config_value("dataset.classes"))
    }

    /// `dataset.small_classes`, empty when unknown.
    pub fn small_classes(&self) -> Vec<String> {
        string_list(self.config_value("dataset.small_classes"))
    }

    /// `3-scale` / `4-scale` from `model.fpn.in_stages`.
    pub fn scales(&self) -> Option<String> {
        match self.config_value("model.fpn.in_stages") {
            Some(Value::Sequence(s)) => Some(format!("{}-scale", s.len())),
            _ => None,
        }
    }

    /// `model.head.size_aware_loss`.
    pub fn size_aware(&self) -> Option<bool> {
        self.config_value("model.head.size_aware_loss")
            .and_then(Value::as_bool)
    }

    /// Largest step in the training log.
    pub fn steps_reached(&self) -> Option<u64> {
        self.metrics.iter().map(|l| l.step).max()
    }

    /// `training.max_steps`.
    pub fn max_steps(&self) -> Option<u64> {
        self.config_value("training.max_steps")
            .and_then(Value::as_u64)
    }

    /// The (height, width) of the network input: `dataset.resolution_hw`, halved when
    /// `dataset.downsample_by_factor_2` is set.
    pub fn input_hw(&self) -> Option<[u32; 2]> {
        let hw = match self.config_value("dataset.resolution_hw") {
            Some(Value::Sequence(s)) if s.len() == 2 => [s[0].as_u64()?, s[1].as_u64()?],
            _ => return None,
        };
        let ds = self
            .config_value("dataset.downsample_by_factor_2")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let f = if ds { 2 } else { 1 };
        Some([(hw[0] / f) as u32, (hw[1] / f) as u32])
    }

    /// Every `(step, value)` of `key` in the training log, in step order.
    pub fn series(&self, key: &str) -> Vec<(f64, f64)> {
        let mut pts: Vec<(f64, f64)> = self
            .metrics
            .iter()
            .filter_map(|l| l.values.get(key).map(|v| (l.step as f64, *v)))
            .filter(|(_, v)| v.is_finite())
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        pts
    }

    /// The run's final numbers: the last logged value of every key of the training log,
    /// overridden by the `eval/<split>_metrics.json` files. Criteria and tables read this.
    pub fn final_metrics(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for line in &self.metrics {
            for (k, v) in &line.values {
                out.insert(k.clone(), *v);
            }
        }
        for split in self.eval.values() {
            if let Some(m) = &split.metrics {
                for (k, v) in m {
                    out.insert(k.clone(), *v);
                }
            }
        }
        out
    }
}

/// Dotted-key lookup in a YAML mapping.
pub fn lookup<'a>(root: &'a Value, key: &str) -> Option<&'a Value> {
    let mut v = root;
    for part in key.split('.') {
        v = v.as_mapping()?.get(part)?;
    }
    Some(v)
}

fn value_as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(s)) => s.iter().filter_map(value_as_string).collect(),
        _ => Vec::new(),
    }
}

/// Reads `metrics.jsonl`. Returns the lines and, if the last non-empty line was malformed
/// (and skipped), its 1-based number. A malformed line before the last is an error naming the
/// file and the line.
pub fn read_metrics_jsonl(path: &Path) -> Result<(Vec<MetricsLine>, Option<usize>)> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::io("reading", path, e))?;
    let numbered: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let mut out = Vec::with_capacity(numbered.len());
    let mut skipped = None;
    for (idx, &(lineno, line)) in numbered.iter().enumerate() {
        match parse_metrics_line(line) {
            Ok(l) => out.push(l),
            Err(_) if idx + 1 == numbered.len() => skipped = Some(lineno),
            Err(message) => {
                return Err(ReportError::Line {
                    path: path.to_path_buf(),
                    line: lineno,
                    message,
                })
            }
        }
    }
    Ok((out, skipped))
}

fn parse_metrics_line(line: &str) -> std::result::Result<MetricsLine, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| "not a JSON object".to_string())?;
    let step = obj
        .get("step")
        .and_then(|s| s.as_u64().or_else(|| s.as_f64().map(|f| f.max(0.0) as u64)))
        .ok_or_else(|| "no numeric \"step\"".to_string())?;
    let values = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "step")
        .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
        .collect();
    Ok(MetricsLine { step, values })
}

/// Reads a flat `{"key": number}` JSON file (non-numbers are ignored).
pub fn read_flat_metrics(path: &Path) -> Result<BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::io("reading", path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ReportError::format(path, format!("not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ReportError::format(path, "expected a JSON object of metrics"))?;
    Ok(obj
        .iter()
        .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
        .collect())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::io("reading", path, e))?;
    serde_json::from_str(&text).map_err(|e| ReportError::format(path, format!("{e}")))
}

/// Reads `eval/` ([`evdet_run::EvalDir`]): every `<split>_metrics.json`, `<split>_analysis.json` and
/// `samples/<split>_samples.json`; unreadable files become notes.
fn read_eval(dir: &Path, notes: &mut Vec<String>) -> BTreeMap<String, SplitEval> {
    use evdet_run::EvalFile;
    let eval_dir = evdet_run::RunDir::at(dir).eval();
    let mut out: BTreeMap<String, SplitEval> = BTreeMap::new();
    let names_in = |d: &Path| -> Option<Vec<String>> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        Some(v)
    };
    let Some(names) = names_in(eval_dir.dir()) else {
        notes.push("eval/ is missing: no final evaluation yet (run `evdet eval`)".into());
        return out;
    };
    for name in &names {
        match EvalFile::parse(name) {
            Some((EvalFile::Metrics, split)) => match read_flat_metrics(&eval_dir.metrics(split)) {
                Ok(m) => out.entry(split.to_string()).or_default().metrics = Some(m),
                Err(e) => notes.push(format!("{e}")),
            },
            Some((EvalFile::Analysis, split)) => {
                match read_json::<AnalysisFile>(&eval_dir.analysis(split)) {
                    Ok(a) => out.entry(split.to_string()).or_default().analysis = Some(a),
                    Err(e) => notes.push(format!("{e}")),
                }
            }
            _ => {}
        }
    }
    let samples_dir = eval_dir.samples_dir();
    for name in names_in(&samples_dir).unwrap_or_default() {
        if let Some((EvalFile::SamplesIndex, split)) = EvalFile::parse(&name) {
            match read_json::<Vec<Sample>>(&eval_dir.samples_index(split)) {
                Ok(s) => {
                    let entry = out.entry(split.to_string()).or_default();
                    entry.samples = s;
                    entry.samples_dir = samples_dir.clone();
                }
                Err(e) => notes.push(format!("{e}")),
            }
        }
    }
    for (split, e) in &out {
        if e.metrics.is_none() {
            notes.push(format!("eval/{split}_metrics.json is missing"));
        }
        if e.analysis.is_none() {
            notes.push(format!(
                "eval/{split}_analysis.json is missing (no PR curves, size bins or confusion matrix)"
            ));
        }
        if e.samples.is_empty() {
            notes.push(format!(
                "eval/samples/{split}_samples.json is missing (no sample detections)"
            ));
        }
    }
    if out.is_empty() {
        notes.push("eval/ holds no <split>_metrics.json yet (run `evdet eval`)".into());
    }
    out
}
