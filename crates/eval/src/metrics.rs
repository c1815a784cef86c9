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

#[cfg(test)]
mod tests {
    use super::*;

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
