//! Power, one-sided p-values, Holm's adjustment and group-sequential boundaries against statsmodels,
//! scipy and gsDesign (numbers written by `scripts/study_power_reference.py`, committed in
//! `tests/data/power_reference.json`).

use evdet_study::multiplicity::holm;
use evdet_study::power::{min_detectable_effect, nct_sf, power, seeds_needed};
use evdet_study::sequential::{boundaries, crossing_probabilities};
use evdet_study::stats::one_sided;
use serde_json::Value;

fn reference() -> Value {
    serde_json::from_str(include_str!("data/power_reference.json")).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(f).collect()
}

/// |a − b| within `abs` plus `rel` of b's magnitude.
fn close(a: f64, b: f64, abs: f64, rel: f64, what: &str) {
    assert!(
        (a - b).abs() <= abs + rel * b.abs(),
        "{what}: {a} vs reference {b}"
    );
}

#[test]
fn noncentral_t_matches_scipy() {
    for c in reference()["nct_sf"].as_array().unwrap() {
        let got = nct_sf(f(&c["t"]), f(&c["df"]), f(&c["nc"]));
        close(got, f(&c["sf"]), 1e-9, 1e-7, &format!("nct.sf {c}"));
    }
}

#[test]
fn power_mde_and_seeds_needed_match_statsmodels() {
    let r = reference();
    for c in r["power"].as_array().unwrap() {
        let n = c["n"].as_u64().unwrap() as usize;
        let got = power(f(&c["effect"]), n, f(&c["alpha"]));
        close(got, f(&c["power"]), 1e-8, 1e-7, &format!("power {c}"));
    }
    for c in r["mde"].as_array().unwrap() {
        let n = c["n"].as_u64().unwrap() as usize;
        let got = min_detectable_effect(n, f(&c["alpha"]), f(&c["power"]));
        close(got, f(&c["effect"]), 1e-7, 1e-7, &format!("MDE {c}"));
    }
    for c in r["seeds_needed"].as_array().unwrap() {
        let got = seeds_needed(f(&c["effect"]), f(&c["alpha"]), f(&c["power"]));
        assert_eq!(got, Some(c["n"].as_u64().unwrap() as usize), "{c}");
    }
}

#[test]
fn one_sided_paired_p_values_match_scipy() {
    for c in reference()["one_sided"].as_array().unwrap() {
        let (g, l) = one_sided(&floats(&c["a"]), &floats(&c["b"]), f(&c["margin"])).unwrap();
        close(
            g,
            f(&c["p_greater"]),
            1e-10,
            1e-8,
            &format!("p greater {c}"),
        );
        close(l, f(&c["p_less"]), 1e-10, 1e-8, &format!("p less {c}"));
    }
    assert_eq!(one_sided(&[0.3], &[0.2], 0.0), None);
}

#[test]
fn holm_matches_statsmodels() {
    for c in reference()["holm"].as_array().unwrap() {
        let got = holm(&floats(&c["p"]));
        for (g, w) in got.iter().zip(floats(&c["adjusted"])) {
            close(*g, w, 1e-12, 0.0, &format!("Holm {c}"));
        }
        let reject: Vec<bool> = got.iter().map(|p| *p <= f(&c["alpha"])).collect();
        let want: Vec<bool> = c["reject"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_bool().unwrap())
            .collect();
        assert_eq!(reject, want, "{c}");
    }
}

#[test]
fn obrien_fleming_boundaries_match_the_multivariate_normal_and_gsdesign() {
    let r = reference();
    for d in r["obf_boundaries"].as_array().unwrap() {
        let got = boundaries(&floats(&d["fractions"]), f(&d["alpha"]));
        for (g, w) in got.iter().zip(floats(&d["upper"])) {
            close(*g, w, 2e-5, 0.0, &format!("boundary {d}"));
        }
    }
    // gsDesign publishes 4 decimals.
    for d in r["obf_published"].as_array().unwrap() {
        let got = boundaries(&floats(&d["fractions"]), f(&d["alpha"]));
        for (g, w) in got.iter().zip(floats(&d["upper"])) {
            close(*g, w, 5e-5 + 1e-6, 0.0, &format!("gsDesign {d}"));
        }
    }
    // gsDesign's unit tests: repeating a 1.96 test at k equal looks, rounded to 3 decimals.
    for c in r["repeated_testing_published"].as_array().unwrap() {
        let k = c["k"].as_u64().unwrap() as usize;
        let fr: Vec<f64> = (1..=k).map(|i| i as f64 / k as f64).collect();
        let total: f64 = crossing_probabilities(&vec![f(&c["z"]); k], &fr)
            .iter()
            .sum();
        close(
            total,
            f(&c["prob"]),
            5e-4 + 1e-9,
            0.0,
            &format!("repeated {c}"),
        );
    }
}
