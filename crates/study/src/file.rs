//! The study file (`config/study/*.yaml`): which experiment, which seeds, which arms (each a list of
//! `key=value` overrides on top of the experiment), the baseline arm and the hypotheses. Unknown keys
//! are errors naming the closest valid key; hypotheses must name arms that exist.

use crate::verdict::Op;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum StudyFileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// One claim: `metric` of `arm` `op` `metric` of `than`, plus `margin` (non-inferiority: `>=` with a
/// negative margin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hypothesis {
    pub metric: String,
    pub arm: String,
    pub op: Op,
    pub than: String,
    #[serde(default)]
    pub margin: f64,
    /// The difference from the margin this hypothesis should detect with 80 % power: what
    /// `seeds_needed` is computed for (else `--effect`, else |margin| when non-zero, else the
    /// observed difference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyFile {
    /// Name: the runs go to `<runs_dir>/<study>/<arm>/seed<k>/`.
    pub study: String,
    /// The experiment file every run starts from (relative to the config folder, or a path).
    pub experiment: String,
    pub seeds: Vec<u64>,
    pub baseline: String,
    /// Arm name → `key=value` overrides, in file order.
    pub arms: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub hypotheses: Vec<Hypothesis>,
    /// One-sided level of each verdict (0.025: a verdict needs the claim's side of the 95 % interval).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// How the hypotheses' p-values are adjusted as a family: `holm` (default) or `none`.
    #[serde(default)]
    pub correction: crate::multiplicity::Correction,
}

fn default_alpha() -> f64 {
    0.025
}

const KEYS: &[&str] = &[
    "study",
    "experiment",
    "seeds",
    "baseline",
    "arms",
    "hypotheses",
    "alpha",
    "correction",
];
const HYPOTHESIS_KEYS: &[&str] = &["metric", "arm", "op", "than", "margin", "effect"];

fn closest<'a>(key: &str, keys: &[&'a str]) -> &'a str {
    keys.iter()
        .copied()
        .min_by_key(|k| strsim::levenshtein(k, key))
        .unwrap_or("")
}

impl StudyFile {
    pub fn load(path: &Path) -> Result<Self, StudyFileError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| StudyFileError::Io {
            path: p.clone(),
            source: e,
        })?;
        Self::parse(&text).map_err(|message| StudyFileError::Invalid { path: p, message })
    }

    /// Parses and checks a study file's text; the error names the key at fault.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = quote_arm_overrides(text)?;
        let raw: serde_norway::Value = serde_norway::from_str(&text).map_err(|e| e.to_string())?;
        let map = raw.as_mapping().ok_or(
            "a study file is a mapping of study, experiment, seeds, baseline, arms, hypotheses",
        )?;
        for k in map.keys().filter_map(|k| k.as_str()) {
            if !KEYS.contains(&k) {
                return Err(format!(
                    "unknown key '{k}' (did you mean '{}'?)",
                    closest(k, KEYS)
                ));
            }
        }
        if let Some(hs) = map.get("hypotheses").and_then(|h| h.as_sequence()) {
            for (i, h) in hs.iter().enumerate() {
                for k in h
                    .as_mapping()
                    .into_iter()
                    .flat_map(|m| m.keys())
                    .filter_map(|k| k.as_str())
                {
                    if !HYPOTHESIS_KEYS.contains(&k) {
                        return Err(format!(
                            "hypotheses[{i}]: unknown key '{k}' (did you mean '{}'?)",
                            closest(k, HYPOTHESIS_KEYS)
                        ));
                    }
                }
            }
        }
        let f: StudyFile = serde_norway::from_value(raw).map_err(|e| e.to_string())?;
        f.check()?;
        Ok(f)
    }

    fn check(&self) -> Result<(), String> {
        let ok_name = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        if !ok_name(&self.study) {
            return Err(format!(
                "study: '{}' must be a folder name (letters, digits, _ - .)",
                self.study
            ));
        }
        if self.seeds.is_empty() {
            return Err("seeds: list at least one seed".into());
        }
        if self.alpha.is_nan() || self.alpha <= 0.0 || self.alpha >= 0.5 {
            return Err(format!(
                "alpha: {} is not a one-sided level between 0 and 0.5 (e.g. 0.025)",
                self.alpha
            ));
        }
        let mut seen = self.seeds.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != self.seeds.len() {
            return Err(format!("seeds: {:?} repeats a seed", self.seeds));
        }
        if self.arms.is_empty() {
            return Err("arms: name at least one arm".into());
        }
        for (name, overrides) in &self.arms {
            if !ok_name(name) {
                return Err(format!(
                    "arms: '{name}' must be a folder name (letters, digits, _ - .)"
                ));
            }
            for o in overrides {
                if !o.contains('=') {
                    return Err(format!("arms.{name}: '{o}' is not a key=value override"));
                }
            }
        }
        let arm = |what: &str, a: &str| {
            if self.arms.contains_key(a) {
                Ok(())
            } else {
                Err(format!(
                    "{what}: '{a}' is not an arm (arms: {})",
                    self.arms.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            }
        };
        arm("baseline", &self.baseline)?;
        for (i, h) in self.hypotheses.iter().enumerate() {
            arm(&format!("hypotheses[{i}].arm"), &h.arm)?;
            arm(&format!("hypotheses[{i}].than"), &h.than)?;
            if h.arm == h.than {
                return Err(format!("hypotheses[{i}]: compares '{}' with itself", h.arm));
            }
            if h.effect
                .is_some_and(|e| e.is_nan() || e <= 0.0 || e.is_infinite())
            {
                return Err(format!(
                    "hypotheses[{i}].effect must be a positive difference (in the metric's units)"
                ));
            }
            if !h.margin.is_finite() {
                return Err(format!("hypotheses[{i}].margin must be a number"));
            }
        }
        Ok(())
    }

    /// Every (arm, seed) run in order: seeds in file order, and within a seed the baseline first, then
    /// the other arms in name order. Seed-major, so that a study stopped part way has every arm's
    /// first seed (and the baseline's) to look at, and its first paired differences, as early as can be.
    pub fn runs(&self) -> Vec<(String, u64)> {
        let arms: Vec<&String> = std::iter::once(&self.baseline)
            .filter(|b| self.arms.contains_key(*b))
            .chain(self.arms.keys().filter(|a| **a != self.baseline))
            .collect();
        self.seeds
            .iter()
            .flat_map(|&s| arms.iter().map(move |a| ((*a).clone(), s)))
            .collect()
    }
}

/// Arms are written as `name: [key=value, key=[1,2,3], …]`, which YAML cannot read (a flow list
/// item may not contain brackets). Each such line under `arms:` becomes a list of quoted strings,
/// split at the commas outside brackets; other lines are left as they are.
fn quote_arm_overrides(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut in_arms = false;
    for (no, line) in text.lines().enumerate() {
        let indented = line.starts_with(' ') || line.starts_with('\t');
        if !indented && !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            in_arms = line.trim_start().starts_with("arms:");
        }
        let rewritten = in_arms && indented && {
            if let Some((head, rest)) = line.split_once(':') {
                let rest = rest.trim_start();
                if let Some(body) = rest.strip_prefix('[') {
                    // The list ends at the bracket that closes depth 0; a comment may follow.
                    let mut depth = 0i32;
                    let mut end = None;
                    for (i, c) in body.char_indices() {
                        match c {
                            '[' => depth += 1,
                            ']' if depth == 0 => {
                                end = Some(i);
                                break;
                            }
                            ']' => depth -= 1,
                            _ => {}
                        }
                    }
                    let end = end.ok_or_else(|| {
                        format!(
                            "line {}: arm '{}': the override list has no closing ']'",
                            no + 1,
                            head.trim()
                        )
                    })?;
                    let mut items = Vec::new();
                    let (mut depth, mut cur) = (0i32, String::new());
                    for c in body[..end].chars() {
                        match c {
                            '[' => depth += 1,
                            ']' => depth -= 1,
                            ',' if depth == 0 => {
                                items.push(std::mem::take(&mut cur));
                                continue;
                            }
                            _ => {}
                        }
                        cur.push(c);
                    }
                    items.push(cur);
                    let quoted: Vec<String> = items
                        .iter()
                        .map(|i| i.trim())
                        .filter(|i| !i.is_empty())
                        .map(|i| serde_json::to_string(i).unwrap_or_default())
                        .collect();
                    out.push_str(&format!("{head}: [{}]\n", quoted.join(", ")));
                    true
                } else {
                    false
                }
            } else {
                false
            }
        };
        if !rewritten {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
study: size_aware_mini
experiment: experiment/synthetic/mini.yaml
seeds: [0, 1, 2]
baseline: 3scale
arms:
  3scale: [model.fpn.in_stages=[2,3,4], model.head.size_aware_loss=false]
  4scale_sa: [model.fpn.in_stages=[1,2,3,4], model.head.size_aware_loss=true]
hypotheses:
  - {metric: test/prophesee/AP_S, arm: 4scale_sa, op: ">", than: 3scale}
  - {metric: test/prophesee/AP, arm: 4scale_sa, op: ">=", than: 3scale, margin: -0.005}
"#;

    #[test]
    fn the_issue_s_form_parses() {
        let f = StudyFile::parse(OK).unwrap();
        assert_eq!(f.seeds, vec![0, 1, 2]);
        assert_eq!(f.arms["3scale"][0], "model.fpn.in_stages=[2,3,4]");
        assert_eq!(f.hypotheses[1].op, Op::GreaterEq);
        assert_eq!(f.hypotheses[1].margin, -0.005);
        assert_eq!(f.runs().len(), 6);
        assert_eq!(f.runs()[0], ("3scale".to_string(), 0));
        // Seed-major: both arms' seed 0 before any seed 1.
        assert_eq!(f.runs()[1], ("4scale_sa".to_string(), 0));
        assert_eq!(f.runs()[2], ("3scale".to_string(), 1));
    }

    #[test]
    fn mistakes_are_named() {
        let e = StudyFile::parse(&OK.replace("seeds:", "seed:")).unwrap_err();
        assert!(
            e.contains("unknown key 'seed' (did you mean 'seeds'?)"),
            "{e}"
        );
        let e =
            StudyFile::parse(&OK.replace("arm: 4scale_sa, op: \">\"", "arm: 4scale, op: \">\""))
                .unwrap_err();
        assert!(
            e.contains("hypotheses[0].arm: '4scale' is not an arm"),
            "{e}"
        );
        let e = StudyFile::parse(&OK.replace("baseline: 3scale", "baseline: base")).unwrap_err();
        assert!(e.contains("baseline: 'base' is not an arm"), "{e}");
        let e =
            StudyFile::parse(&OK.replace("than: 3scale}", "than: 3scale, margn: 0}")).unwrap_err();
        assert!(e.contains("did you mean 'margin'"), "{e}");
        let e = StudyFile::parse(&OK.replace("[0, 1, 2]", "[0, 1, 1]")).unwrap_err();
        assert!(e.contains("repeats a seed"), "{e}");
        let e =
            StudyFile::parse(&OK.replace("model.head.size_aware_loss=true", "oops")).unwrap_err();
        assert!(e.contains("not a key=value"), "{e}");
        let e = StudyFile::parse(&OK.replace("op: \">\"", "op: \"=>\"")).unwrap_err();
        assert!(e.contains("unknown variant"), "{e}");
    }
}
