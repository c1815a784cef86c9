//! evdet-study's statistics against scipy on fixed tables (numbers written by
//! `scripts/study_stats_reference.py`, committed in `tests/data/stats_reference.json`).

use evdet_study::stats::{bootstrap_ci, paired, summarize, t_cdf, t_quantile};

fn reference() -> serde_json::Value {
    serde_json::from_str(include_str!("data/stats_reference.json")).unwrap()
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(f).collect()
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!(
        (a - b).abs() <= tol * b.abs().max(1.0),
        "{what}: {a} vs scipy {b}"
    );
}

#[test]
fn t_distribution_matches_scipy() {
    let r = reference();
    for q in r["t_quantiles"].as_array().unwrap() {
        let got = t_quantile(f(&q["p"]), f(&q["df"]));
        close(got, f(&q["t"]), 1e-10, &format!("t quantile {q}"));
    }
    for c in r["t_cdf"].as_array().unwrap() {
        close(
            t_cdf(f(&c["t"]), f(&c["df"])),
            f(&c["cdf"]),
            1e-12,
            &format!("t cdf {c}"),
        );
    }
}

#[test]
fn per_arm_summaries_match_scipy() {
    for s in reference()["summaries"].as_array().unwrap() {
        let got = summarize(&floats(&s["x"]));
        close(got.mean, f(&s["mean"]), 1e-12, "mean");
        close(got.sd.unwrap(), f(&s["sd"]), 1e-12, "sd");
        let (lo, hi) = got.ci95.unwrap();
        let want = floats(&s["ci95"]);
        close(lo, want[0], 1e-10, "ci low");
        close(hi, want[1], 1e-10, "ci high");
    }
    // One seed: a mean, no interval.
    let one = summarize(&[0.3]);
    assert_eq!((one.mean, one.sd, one.ci95), (0.3, None, None));
}

#[test]
fn paired_differences_match_scipy() {
    for p in reference()["paired"].as_array().unwrap() {
        let got = paired(&floats(&p["a"]), &floats(&p["b"]));
        close(got.mean_diff, f(&p["mean_diff"]), 1e-12, "mean difference");
        let (lo, hi) = got.ci95.unwrap();
        let want = floats(&p["ci95"]);
        close(lo, want[0], 1e-10, "ci low");
        close(hi, want[1], 1e-10, "ci high");
        close(got.p_value.unwrap(), f(&p["p_value"]), 1e-9, "p-value");
    }
    assert_eq!(paired(&[0.3], &[0.2]).p_value, None);
}

#[test]
fn bootstrap_is_deterministic_and_brackets_the_statistic() {
    // Per-recording values; the statistic is their mean.
    let v = [0.2, 0.4, 0.3, 0.5, 0.1, 0.35];
    let mean = |pick: &[usize]| pick.iter().map(|&i| v[i]).sum::<f64>() / pick.len() as f64;
    let a = bootstrap_ci(v.len(), 2000, 7, mean).unwrap();
    let b = bootstrap_ci(v.len(), 2000, 7, mean).unwrap();
    assert_eq!(a, b, "same seed, same interval");
    let m = v.iter().sum::<f64>() / v.len() as f64;
    assert!(a.0 < m && m < a.1, "{a:?} around {m}");
    // The normal-theory width for comparison: the bootstrap's is of the same size.
    assert!(a.1 - a.0 > 0.1 && a.1 - a.0 < 0.3, "{a:?}");
    assert_eq!(bootstrap_ci(0, 100, 1, mean), None);
}
