//! YAML configuration that composes like the reference's Hydra configs.
//!
//! A file may start with a `defaults:` list; each entry is `group: name` (load `config/<group>/<name>.yaml`
//! and merge it under the key `<group>`, e.g. `model: maxvit_yolox/size_aware`) or a bare `name` (a file
//! of the same group to inherit from, e.g. `base`). Defaults merge first, in order, then the file's own
//! keys. The experiment file sits at the root; `config/general.yaml` is always merged first.
//! `dotted.key=value` overrides come last; values are parsed as YAML scalars or flow sequences.
//!
//! The set of valid keys is the merge of the defaults: a key that no default file defines is an error
//! naming the key and the closest valid one (Hydra's struct mode).

use serde_norway::{Mapping, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("unknown config key '{key}'{hint}")]
    UnknownKey { key: String, hint: String },
    #[error("override '{0}' is not of the form dotted.key=value")]
    BadOverride(String),
    #[error("config key '{key}': {message}")]
    Value { key: String, message: String },
    #[error("no config folder found: run from the evdet repository or pass --config-dir")]
    NoConfigDir,
}

/// Where config files live and how they are combined.
#[derive(Debug, Clone)]
pub struct ConfigRoot {
    pub dir: PathBuf,
}

/// A merged configuration tree plus the schema (merged defaults) it was validated against.
#[derive(Debug, Clone)]
pub struct Composed {
    pub value: Value,
    pub sources: Vec<PathBuf>,
}

impl ConfigRoot {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Loads `file` (an experiment YAML, relative to the root or absolute) with `general.yaml` underneath,
    /// applies `overrides`, and checks every key against the defaults.
    pub fn compose(&self, file: &Path, overrides: &[String]) -> Result<Composed, ConfigError> {
        let mut ctx = Ctx::default();
        let mut value = Value::Mapping(Mapping::new());
        let general = self.dir.join("general.yaml");
        if general.exists() {
            let g = self.load_file(&general, Some(""), &mut ctx, 0)?;
            merge(&mut value, g);
        }
        let path = if file.is_absolute() || file.exists() {
            file.to_path_buf()
        } else {
            self.dir.join(file)
        };
        let exp = self.load_file(&path, None, &mut ctx, 0)?;
        // Experiment files (the one asked for and those it inherits from) may only set keys that the
        // general, model and dataset files define.
        for (p, own) in &ctx.experiment_files {
            check_known(own, &ctx.schema, "").map_err(|e| match e {
                ConfigError::UnknownKey { key, hint } => ConfigError::File {
                    path: p.clone(),
                    message: format!("unknown config key '{key}'{hint}"),
                },
                e => e,
            })?;
        }
        merge(&mut value, exp);
        for o in overrides {
            let (key, raw) = o
                .split_once('=')
                .ok_or_else(|| ConfigError::BadOverride(o.clone()))?;
            let key = key.trim().trim_start_matches('+');
            if key.is_empty() {
                return Err(ConfigError::BadOverride(o.clone()));
            }
            let parsed: Value = serde_norway::from_str(raw).map_err(|e| ConfigError::Value {
                key: key.into(),
                message: e.to_string(),
            })?;
            let path: Vec<&str> = key.split('.').collect();
            // The whole key as typed is named, and matched on its last part anywhere in the tree.
            check_path_known(&path, &ctx.schema).map_err(|e| match e {
                ConfigError::UnknownKey { hint, .. } => ConfigError::UnknownKey {
                    hint: hint_anywhere(&ctx.schema, key).unwrap_or(hint),
                    key: key.to_string(),
                },
                e => e,
            })?;
            set_path(&mut value, &path, parsed);
        }
        Ok(Composed {
            value,
            sources: ctx.sources,
        })
    }

    /// Loads one file with its defaults merged underneath. `group`: `Some(g)` for files of a config group
    /// (`""` for general.yaml), whose keys define what is valid; `None` for experiment files.
    fn load_file(
        &self,
        path: &Path,
        group: Option<&str>,
        ctx: &mut Ctx,
        depth: usize,
    ) -> Result<Value, ConfigError> {
        if depth > 16 {
            return Err(ConfigError::File {
                path: path.into(),
                message: "defaults nest too deeply (a cycle?)".into(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.into(),
            message: e.to_string(),
        })?;
        let mut own: Value = serde_norway::from_str(&text).map_err(|e| ConfigError::File {
            path: path.into(),
            message: e.to_string(),
        })?;
        if own.is_null() {
            own = Value::Mapping(Mapping::new());
        }
        if !own.is_mapping() {
            return Err(ConfigError::File {
                path: path.into(),
                message: "the top level must be a mapping".into(),
            });
        }
        ctx.sources.push(path.to_path_buf());
        let defaults = own.as_mapping_mut().and_then(|m| m.remove("defaults"));
        let mut out = Value::Mapping(Mapping::new());
        for entry in defaults_entries(defaults, path)? {
            match entry {
                (Some(g), name) => {
                    let p = self.dir.join(&g).join(format!("{name}.yaml"));
                    let v = self.load_file(&p, Some(&g), ctx, depth + 1)?;
                    let wrapped = Value::Mapping(Mapping::from_iter([(Value::String(g), v)]));
                    merge(&mut ctx.schema, wrapped.clone());
                    merge(&mut out, wrapped);
                }
                (None, name) => {
                    // A bare name is a sibling file (e.g. `default` next to `maxvit_yolox/size_aware`).
                    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                    let v =
                        self.load_file(&dir.join(format!("{name}.yaml")), group, ctx, depth + 1)?;
                    merge(&mut out, v);
                }
            }
        }
        match group {
            Some("") => merge(&mut ctx.schema, own.clone()),
            Some(_) => {}
            None => ctx.experiment_files.push((path.to_path_buf(), own.clone())),
        }
        merge(&mut out, own);
        Ok(out)
    }
}

#[derive(Default)]
struct Ctx {
    sources: Vec<PathBuf>,
    /// Every key the general, model and dataset files define.
    schema: Value,
    experiment_files: Vec<(PathBuf, Value)>,
}

fn defaults_entries(
    d: Option<Value>,
    path: &Path,
) -> Result<Vec<(Option<String>, String)>, ConfigError> {
    let bad = |m: &str| ConfigError::File {
        path: path.into(),
        message: format!("defaults: {m}"),
    };
    let Some(d) = d else { return Ok(Vec::new()) };
    let items = match d {
        Value::Sequence(s) => s,
        Value::Mapping(m) => m
            .into_iter()
            .map(|(k, v)| Value::Mapping(Mapping::from_iter([(k, v)])))
            .collect(),
        _ => return Err(bad("must be a list")),
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => Ok((None, s)),
            Value::Mapping(m) if m.len() == 1 => {
                let (k, v) = m.into_iter().next().ok_or_else(|| bad("empty entry"))?;
                match (k, v) {
                    (Value::String(k), Value::String(v)) => Ok((Some(k), v)),
                    _ => Err(bad("entries are `group: name` or `name`")),
                }
            }
            _ => Err(bad("entries are `group: name` or `name`")),
        })
        .collect()
}

/// Deep merge: mappings merge key by key, anything else is replaced.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn set_path(v: &mut Value, path: &[&str], new: Value) {
    if path.is_empty() {
        *v = new;
        return;
    }
    if !v.is_mapping() {
        *v = Value::Mapping(Mapping::new());
    }
    if let Value::Mapping(m) = v {
        let slot = m
            .entry(Value::String(path[0].into()))
            .or_insert(Value::Null);
        set_path(slot, &path[1..], new);
    }
}

/// Looks up a dotted key.
pub fn get_path<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(v, |v, k| {
        v.as_mapping().and_then(|m| m.get(Value::String(k.into())))
    })
}

fn keys_of(schema: &Value) -> Vec<String> {
    schema
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn unknown(prefix: &str, key: &str, schema: &Value) -> ConfigError {
    let full = if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    };
    let best = keys_of(schema)
        .into_iter()
        .min_by_key(|k| strsim::levenshtein(k, key));
    let hint = match best {
        Some(b) => format!(
            " (did you mean '{}'?)",
            if prefix.is_empty() {
                b
            } else {
                format!("{prefix}.{b}")
            }
        ),
        None => String::new(),
    };
    ConfigError::UnknownKey { key: full, hint }
}

/// Every dotted key of `schema`, leaves and inner keys alike.
fn all_keys(schema: &Value, prefix: &str, out: &mut Vec<String>) {
    let Some(m) = schema.as_mapping() else { return };
    for (k, v) in m {
        let Some(k) = k.as_str() else { continue };
        let p = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        };
        out.push(p.clone());
        all_keys(v, &p, out);
    }
}

/// A hint for an unknown override key from anywhere in the tree, matched on its last part:
/// `max_steps` → `training.max_steps`, `training.max_step` → `training.max_steps`. `None` when
/// nothing elsewhere is closer than the siblings' best match.
fn hint_anywhere(schema: &Value, key: &str) -> Option<String> {
    let last = key.rsplit('.').next().unwrap_or(key);
    let mut keys = Vec::new();
    all_keys(schema, "", &mut keys);
    let tail = |k: &str| k.rsplit('.').next().unwrap_or(k).to_string();
    let exact: Vec<&String> = keys.iter().filter(|k| tail(k) == last).collect();
    if !exact.is_empty() {
        let names: Vec<String> = exact.iter().take(4).map(|k| format!("'{k}'")).collect();
        return Some(format!(" (did you mean {}?)", names.join(" or ")));
    }
    // A near miss of the last part, only when clearly close (one or two edits).
    // At equal distance a sibling of the key as typed wins.
    let prefix = key.rsplit_once('.').map_or("", |(p, _)| p);
    let (best, d, _) = keys
        .iter()
        .map(|k| {
            let sibling = k.rsplit_once('.').map_or("", |(p, _)| p) == prefix;
            (k, strsim::levenshtein(&tail(k), last), !sibling)
        })
        .min_by_key(|&(_, d, other)| (d, other))?;
    (d <= 2 && d < last.len()).then(|| format!(" (did you mean '{best}'?)"))
}

/// Every key of `v` must exist in `schema`; below a key whose schema value is not a mapping (a leaf,
/// a list, or null meaning "free-form") anything goes.
fn check_known(v: &Value, schema: &Value, prefix: &str) -> Result<(), ConfigError> {
    let (Some(vm), Some(sm)) = (v.as_mapping(), schema.as_mapping()) else {
        return Ok(());
    };
    for (k, sub) in vm {
        let Some(key) = k.as_str() else { continue };
        match sm.get(k) {
            None => return Err(unknown(prefix, key, schema)),
            Some(s) => {
                let p = if prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{prefix}.{key}")
                };
                check_known(sub, s, &p)?;
            }
        }
    }
    Ok(())
}

fn check_path_known(path: &[&str], schema: &Value) -> Result<(), ConfigError> {
    let mut s = schema;
    for (i, k) in path.iter().enumerate() {
        match s.as_mapping() {
            Some(m) => match m.get(Value::String((*k).into())) {
                Some(next) => s = next,
                None => return Err(unknown(&path[..i].join("."), k, s)),
            },
            None => return Ok(()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn root() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "general.yaml",
            "training:\n  max_steps: 10\n  learning_rate: 0.1\nbatch_size:\n  train: 2\n",
        );
        write(d.path(), "model/base.yaml", "fpn:\n  in_stages: [2, 3, 4]\n  depth: 0.67\nhead:\n  num_classes: 3\n  size_aware_loss: false\n");
        write(d.path(), "model/sa.yaml", "defaults:\n  - base\nfpn:\n  in_stages: [1, 2, 3, 4]\nhead:\n  size_aware_loss: true\n");
        write(d.path(), "dataset/d.yaml", "name: d\nclasses: [a, b]\n");
        write(d.path(), "experiment/e.yaml", "defaults:\n  - model: sa\n  - dataset: d\ntraining:\n  max_steps: 100\nmodel:\n  head:\n    num_classes: 8\n");
        d
    }

    #[test]
    fn composes_defaults_then_file_then_overrides() {
        let d = root();
        let c = ConfigRoot::new(d.path())
            .compose(
                Path::new("experiment/e.yaml"),
                &["model.fpn.depth=0.33".into(), "batch_size.train=6".into()],
            )
            .unwrap();
        let v = &c.value;
        assert_eq!(
            get_path(v, "training.max_steps").unwrap().as_u64(),
            Some(100)
        );
        assert_eq!(
            get_path(v, "training.learning_rate").unwrap().as_f64(),
            Some(0.1)
        );
        assert_eq!(
            get_path(v, "model.head.num_classes").unwrap().as_u64(),
            Some(8)
        );
        assert_eq!(
            get_path(v, "model.head.size_aware_loss").unwrap().as_bool(),
            Some(true)
        );
        assert_eq!(
            get_path(v, "model.fpn.in_stages")
                .unwrap()
                .as_sequence()
                .unwrap()
                .len(),
            4
        );
        assert_eq!(get_path(v, "model.fpn.depth").unwrap().as_f64(), Some(0.33));
        assert_eq!(get_path(v, "batch_size.train").unwrap().as_u64(), Some(6));
        assert_eq!(
            get_path(v, "dataset.classes")
                .unwrap()
                .as_sequence()
                .unwrap()
                .len(),
            2
        );
        assert!(get_path(v, "defaults").is_none());
    }

    #[test]
    fn an_unknown_override_is_matched_on_its_last_part_anywhere_in_the_tree() {
        let d = root();
        let r = ConfigRoot::new(d.path());
        let e = |o: &str| {
            r.compose(Path::new("experiment/e.yaml"), &[o.into()])
                .unwrap_err()
                .to_string()
        };
        let m = e("max_steps=5");
        assert!(
            m.contains("'max_steps'") && m.contains("did you mean 'training.max_steps'"),
            "{m}"
        );
        let m = e("head.size_aware_los=true");
        assert!(
            m.contains("did you mean 'model.head.size_aware_loss'"),
            "{m}"
        );
        let m = e("training.max_step=5");
        assert!(m.contains("did you mean 'training.max_steps'"), "{m}");
    }

    #[test]
    fn unknown_keys_name_the_closest_valid_key() {
        let d = root();
        let r = ConfigRoot::new(d.path());
        let e = r
            .compose(
                Path::new("experiment/e.yaml"),
                &["model.head.num_clases=3".into()],
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.head.num_clases")
                && e.contains("did you mean 'model.head.num_classes'"),
            "{e}"
        );
        write(
            d.path(),
            "experiment/bad.yaml",
            "defaults:\n  - model: sa\ntrainig:\n  max_steps: 1\n",
        );
        let e = r
            .compose(Path::new("experiment/bad.yaml"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("'trainig'") && e.contains("'training'"), "{e}");
        let e = r
            .compose(Path::new("experiment/e.yaml"), &["oops".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("dotted.key=value"), "{e}");
        let e = r
            .compose(Path::new("experiment/missing.yaml"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.yaml"), "{e}");
    }
}
