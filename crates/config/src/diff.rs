//! Which keys differ between two configuration trees, and how: used to explain a resume with another
//! config, a study run folder of another study, and what tells two compared runs apart.

use serde_norway::Value;

/// One dotted key whose value differs; `None` where a side lacks the key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDiff {
    pub key: String,
    pub left: Option<Value>,
    pub right: Option<Value>,
}

impl KeyDiff {
    /// `model.backbone.embed_dim: 32 → 64`.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} → {}",
            self.key,
            show(self.left.as_ref()),
            show(self.right.as_ref())
        )
    }
}

/// A value on one line, as it would be written in an override (`[1, 2, 3]`, `bf16`, `(absent)`).
pub fn show(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) => "null".into(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
    }
}

/// The leaves where `a` and `b` differ, in `a`'s key order then `b`'s extra keys; a sub-tree present
/// on one side only is one entry. Two non-mapping values that differ are one entry under their key
/// (`path`, empty at the root: then named "the whole file").
pub fn differing_keys(a: &Value, b: &Value) -> Vec<KeyDiff> {
    let mut out = Vec::new();
    walk(a, b, "", &mut out);
    out
}

fn walk(a: &Value, b: &Value, path: &str, out: &mut Vec<KeyDiff>) {
    if a == b {
        return;
    }
    match (a.as_mapping(), b.as_mapping()) {
        (Some(x), Some(y)) => {
            let keys = x.keys().chain(y.keys().filter(|k| !x.contains_key(*k)));
            for k in keys {
                let name = k
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| show(Some(k)));
                let p = if path.is_empty() {
                    name
                } else {
                    format!("{path}.{name}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => walk(u, v, &p, out),
                    (u, v) => out.push(KeyDiff {
                        key: p,
                        left: u.cloned(),
                        right: v.cloned(),
                    }),
                }
            }
        }
        _ => out.push(KeyDiff {
            key: if path.is_empty() {
                "the whole file".into()
            } else {
                path.into()
            },
            left: Some(a.clone()),
            right: Some(b.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        serde_norway::from_str(s).unwrap()
    }

    #[test]
    fn leaves_that_differ_are_named_with_both_values() {
        let a = y("model: {backbone: {embed_dim: 32, name: maxvit}, fpn: {in_stages: [2, 3, 4]}}\ntraining: {max_steps: 10}");
        let b = y("model: {backbone: {embed_dim: 64, name: maxvit}, fpn: {in_stages: [1, 2, 3, 4]}}\ntraining: {max_steps: 10, extra: true}");
        let d: Vec<String> = differing_keys(&a, &b)
            .iter()
            .map(KeyDiff::describe)
            .collect();
        assert_eq!(
            d,
            [
                "model.backbone.embed_dim: 32 → 64",
                "model.fpn.in_stages: [2,3,4] → [1,2,3,4]",
                "training.extra: (absent) → true"
            ]
        );
        assert!(differing_keys(&a, &a).is_empty());
        assert_eq!(differing_keys(&y("1"), &y("2"))[0].key, "the whole file");
    }
}
