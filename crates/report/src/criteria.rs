//! Success criteria of an experiment config (DESIGN.md "Metric names"): `{metric, op, value}`
//! or `{metric, op, baseline: <run name>}`, evaluated against a run's final metrics and marked
//! met, not met or unknown (metric missing or undefined).

use std::collections::BTreeMap;
use std::fmt;

use serde_norway::Value;

use crate::run::Run;

/// Comparison operator of a criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    /// Parses `>`, `>=`, `<`, `<=`.
    pub fn parse(s: &str) -> Option<Op> {
        match s.trim() {
            ">" => Some(Op::Gt),
            ">=" => Some(Op::Ge),
            "<" => Some(Op::Lt),
            "<=" => Some(Op::Le),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }

    /// `lhs op rhs`.
    pub fn holds(self, lhs: f64, rhs: f64) -> bool {
        match self {
            Op::Gt => lhs > rhs,
            Op::Ge => lhs >= rhs,
            Op::Lt => lhs < rhs,
            Op::Le => lhs <= rhs,
        }
    }
}

/// What a metric is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Value(f64),
    /// The same metric of the run with this name.
    Baseline(String),
}

/// One criterion as declared in a config.
#[derive(Debug, Clone, PartialEq)]
pub struct Criterion {
    pub metric: String,
    pub op: Op,
    pub target: Target,
}

/// Outcome of a criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Met,
    NotMet,
    /// The metric (or the baseline's) is missing or undefined, or the criterion is malformed.
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::NotMet => "not met",
            Status::Unknown => "unknown",
        }
    }
}

/// A criterion of one run, evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct CriterionResult {
    /// The run whose config declares the criterion.
    pub run: String,
    /// `None` when the config entry could not be read (see `note`).
    pub criterion: Option<Criterion>,
    /// The run's value of the metric.
    pub measured: Option<f64>,
    /// The value compared with: the literal value, or the baseline run's metric.
    pub reference: Option<f64>,
    pub status: Status,
    /// Why the status is unknown, or what was compared; empty when nothing to add.
    pub note: String,
}

impl fmt::Display for CriterionResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into());
        match &self.criterion {
            Some(c) => {
                let target = match &c.target {
                    Target::Value(v) => format!("{v}"),
                    Target::Baseline(b) => format!("{b} ({})", num(self.reference)),
                };
                write!(
                    f,
                    "{}: {} {} {}: {} (measured {})",
                    self.run,
                    c.metric,
                    c.op.as_str(),
                    target,
                    self.status.as_str(),
                    num(self.measured)
                )?;
            }
            None => write!(f, "{}: {}", self.run, self.status.as_str())?,
        }
        if !self.note.is_empty() {
            write!(f, " — {}", self.note)?;
        }
        Ok(())
    }
}

/// Reads `success_criteria` of a config: each entry a criterion or an error message.
pub fn parse_criteria(config: &Value) -> Vec<Result<Criterion, String>> {
    let Some(list) = config.as_mapping().and_then(|m| m.get("success_criteria")) else {
        return Vec::new();
    };
    let Value::Sequence(items) = list else {
        if list.is_null() {
            return Vec::new();
        }
        return vec![Err("success_criteria is not a list".into())];
    };
    items.iter().map(parse_one).collect()
}

fn parse_one(item: &Value) -> Result<Criterion, String> {
    let map = item
        .as_mapping()
        .ok_or_else(|| format!("criterion is not a mapping: {}", short(item)))?;
    let get = |k: &str| map.get(k).filter(|v| !v.is_null());
    let metric = get("metric")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("criterion without a metric: {}", short(item)))?
        .to_string();
    let op_text = get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("criterion on {metric} without an op"))?;
    let op = Op::parse(op_text)
        .ok_or_else(|| format!("criterion on {metric}: op {op_text:?} is not one of > >= < <="))?;
    let target =
        match (get("value"), get("baseline")) {
            (Some(v), None) => Target::Value(v.as_f64().ok_or_else(|| {
                format!("criterion on {metric}: value {} is not a number", short(v))
            })?),
            (None, Some(b)) => Target::Baseline(match b {
                Value::String(s) => s.clone(),
                other => short(other),
            }),
            (Some(_), Some(_)) => {
                return Err(format!(
                    "criterion on {metric} has both a value and a baseline; give one"
                ))
            }
            (None, None) => {
                return Err(format!(
                    "criterion on {metric} has neither a value nor a baseline"
                ))
            }
        };
    Ok(Criterion { metric, op, target })
}

fn short(v: &Value) -> String {
    serde_norway::to_string(v)
        .map(|s| s.trim().replace('\n', " "))
        .unwrap_or_default()
}

/// A metric value that counts: present, finite and not the "undefined" −1.
fn defined(metrics: &BTreeMap<String, f64>, key: &str) -> Result<f64, String> {
    match metrics.get(key) {
        None => Err(format!("{key} is missing")),
        Some(v) if !v.is_finite() || *v < 0.0 => {
            Err(format!("{key} is undefined (no ground truth)"))
        }
        Some(v) => Ok(*v),
    }
}

/// Evaluates every criterion of `run`'s config. `find_run` resolves a baseline name to a run
/// (by `logging.experiment_id` or folder name).
pub fn evaluate_run<'a>(
    run: &Run,
    find_run: &dyn Fn(&str) -> Option<&'a Run>,
) -> Vec<CriterionResult> {
    let Some(config) = &run.config else {
        return Vec::new();
    };
    let metrics = run.final_metrics();
    parse_criteria(config)
        .into_iter()
        .map(|parsed| {
            let criterion = match parsed {
                Ok(c) => c,
                Err(note) => {
                    return CriterionResult {
                        run: run.name.clone(),
                        criterion: None,
                        measured: None,
                        reference: None,
                        status: Status::Unknown,
                        note,
                    }
                }
            };
            let mut notes = Vec::new();
            let measured = defined(&metrics, &criterion.metric)
                .map_err(|e| notes.push(e))
                .ok();
            let reference = match &criterion.target {
                Target::Value(v) => Some(*v),
                Target::Baseline(name) => match find_run(name) {
                    Some(base) => defined(&base.final_metrics(), &criterion.metric)
                        .map_err(|e| notes.push(format!("baseline {name}: {e}")))
                        .ok(),
                    None => {
                        notes.push(format!("baseline run {name} not found"));
                        None
                    }
                },
            };
            let status = match (measured, reference) {
                (Some(m), Some(r)) if criterion.op.holds(m, r) => Status::Met,
                (Some(_), Some(_)) => Status::NotMet,
                _ => Status::Unknown,
            };
            CriterionResult {
                run: run.name.clone(),
                criterion: Some(criterion),
                measured,
                reference,
                status,
                note: notes.join("; "),
            }
        })
        .collect()
}
