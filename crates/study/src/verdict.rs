//! The verdict of a hypothesis "metric of `arm` op metric of `than` (+ margin)" from the paired
//! difference's 95 % interval: **supported** when the whole interval lies on the claimed side of the
//! margin, **refuted** when it lies entirely on the other side, **inconclusive** when it straddles
//! the margin — or when there is no interval (one seed).

use serde::{Deserialize, Serialize};

/// The comparison a hypothesis claims for `arm − than`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">")]
    Greater,
    #[serde(rename = ">=")]
    GreaterEq,
    #[serde(rename = "<")]
    Less,
    #[serde(rename = "<=")]
    LessEq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Supported,
    Refuted,
    Inconclusive,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Greater => ">",
            Op::GreaterEq => ">=",
            Op::Less => "<",
            Op::LessEq => "<=",
        }
    }
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Refuted => "refuted",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The verdict on the claim `difference op margin` given the difference's interval.
pub fn verdict(op: Op, margin: f64, ci: Option<(f64, f64)>) -> Verdict {
    let Some((lo, hi)) = ci else {
        return Verdict::Inconclusive;
    };
    let (claimed, opposite) = match op {
        Op::Greater => (lo > margin, hi <= margin),
        Op::GreaterEq => (lo >= margin, hi < margin),
        Op::Less => (hi < margin, lo >= margin),
        Op::LessEq => (hi <= margin, lo > margin),
    };
    if claimed {
        Verdict::Supported
    } else if opposite {
        Verdict::Refuted
    } else {
        Verdict::Inconclusive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructed_intervals_give_each_verdict() {
        // "4-scale AP_S > 3-scale": the difference's interval ...
        assert_eq!(
            verdict(Op::Greater, 0.0, Some((0.01, 0.03))),
            Verdict::Supported
        );
        assert_eq!(
            verdict(Op::Greater, 0.0, Some((-0.03, -0.01))),
            Verdict::Refuted
        );
        assert_eq!(
            verdict(Op::Greater, 0.0, Some((-0.01, 0.02))),
            Verdict::Inconclusive
        );
        // Non-inferiority "AP ≥ baseline − 0.005".
        assert_eq!(
            verdict(Op::GreaterEq, -0.005, Some((-0.004, 0.01))),
            Verdict::Supported
        );
        assert_eq!(
            verdict(Op::GreaterEq, -0.005, Some((-0.02, -0.006))),
            Verdict::Refuted
        );
        assert_eq!(
            verdict(Op::GreaterEq, -0.005, Some((-0.02, 0.01))),
            Verdict::Inconclusive
        );
        assert_eq!(
            verdict(Op::Less, 0.0, Some((-0.3, -0.1))),
            Verdict::Supported
        );
        assert_eq!(verdict(Op::LessEq, 0.0, Some((0.1, 0.3))), Verdict::Refuted);
        // One seed: no interval, no verdict either way.
        assert_eq!(verdict(Op::Greater, 0.0, None), Verdict::Inconclusive);
    }
}
