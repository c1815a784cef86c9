//! Metric keys, one set everywhere (DESIGN.md "Metric names"): `<split>/<protocol>/<stat>`.

use serde::Serialize;

/// The two protocols every evaluation reports side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// The reference's filters (first 0.5 s skipped, minimum diagonal/side): comparable with
    /// published numbers.
    Prophesee,
    /// Every box: keeps the small objects the filters drop.
    Unfiltered,
}

impl Protocol {
    pub const BOTH: [Protocol; 2] = [Protocol::Prophesee, Protocol::Unfiltered];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Prophesee => "prophesee",
            Protocol::Unfiltered => "unfiltered",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `<split>/<protocol>/<stat>`, e.g. `val/prophesee/AP_S`, `test/unfiltered/AP/pedestrian`.
pub fn metric_key(split: &str, protocol: Protocol, stat: &str) -> String {
    format!("{split}/{}/{stat}", protocol.name())
}

/// The metric table of `split` in `m` (keys of [`metric_key`]): both protocols side by side, one row
/// per COCO stat, the small-classes group, class-agnostic AP and AP per class; `-` where undefined.
pub fn metric_table_lines(m: &std::collections::BTreeMap<String, f64>, split: &str) -> Vec<String> {
    let get = |p: Protocol, s: &str| {
        m.get(&metric_key(split, p, s))
            .map_or("-".to_string(), |v| format!("{v:.4}"))
    };
    let row = |s: &str| {
        format!(
            "{:<22} {:>10} {:>11}",
            s,
            get(Protocol::Prophesee, s),
            get(Protocol::Unfiltered, s)
        )
    };
    let mut out = vec![format!(
        "{:<22} {:>10} {:>11}",
        "metric", "prophesee", "unfiltered"
    )];
    for s in crate::STAT_NAMES
        .iter()
        .copied()
        .chain(["AP_small_classes", "agnostic/AP"])
    {
        out.push(row(s));
    }
    let prefix = metric_key(split, Protocol::Unfiltered, "AP/");
    for c in m.keys().filter_map(|k| k.strip_prefix(&prefix)) {
        out.push(row(&format!("AP/{c}")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_both_protocols_and_undefined_as_a_dash() {
        let mut m = std::collections::BTreeMap::new();
        m.insert("test/prophesee/AP".to_string(), 0.25);
        m.insert("test/unfiltered/AP".to_string(), 0.5);
        m.insert("test/unfiltered/AP/car".to_string(), 0.125);
        let t = metric_table_lines(&m, "test");
        assert_eq!(t.len(), 1 + 12 + 2 + 1);
        assert_eq!(
            t[1],
            format!("{:<22} {:>10} {:>11}", "AP", "0.2500", "0.5000")
        );
        assert!(t[4].starts_with("AP_S") && t[4].ends_with(" -"), "{}", t[4]);
        assert_eq!(
            t[15],
            format!("{:<22} {:>10} {:>11}", "AP/car", "-", "0.1250")
        );
    }

    #[test]
    fn keys_follow_design() {
        assert_eq!(
            metric_key("val", Protocol::Prophesee, "AP"),
            "val/prophesee/AP"
        );
        assert_eq!(
            metric_key("test", Protocol::Unfiltered, "agnostic/AP"),
            "test/unfiltered/agnostic/AP"
        );
    }
}
