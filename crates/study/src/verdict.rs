//! The verdict of a hypothesis "metric of `arm` op metric of `than` (+ margin)" from one-sided paired
//! t-tests, after the family's adjustment: **supported** when the claim's adjusted p-value is at most
//! α, **refuted** when the opposite claim's is, **inconclusive** otherwise — or when there is no test
//! (one seed). Without adjustment and at α = 0.025 this is the 95 % interval lying wholly on one side
//! of the margin.

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

/// The verdict from the claim's and the opposite claim's (adjusted) one-sided p-values at `alpha`.
pub fn verdict(p_claim: Option<f64>, p_against: Option<f64>, alpha: f64) -> Verdict {
    let decided = |p: Option<f64>| p.is_some_and(|p| p <= alpha);
    if decided(p_claim) {
        Verdict::Supported
    } else if decided(p_against) {
        Verdict::Refuted
    } else {
        Verdict::Inconclusive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_verdict_from_its_p_values() {
        assert_eq!(verdict(Some(0.01), Some(0.99), 0.025), Verdict::Supported);
        assert_eq!(verdict(Some(0.99), Some(0.01), 0.025), Verdict::Refuted);
        assert_eq!(verdict(Some(0.2), Some(0.8), 0.025), Verdict::Inconclusive);
        // At the level exactly: decided (p ≤ α).
        assert_eq!(verdict(Some(0.025), Some(0.975), 0.025), Verdict::Supported);
        // One seed: no test, no verdict either way.
        assert_eq!(verdict(None, None, 0.025), Verdict::Inconclusive);
    }
}
