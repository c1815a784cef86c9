//! The HTML page of a study (`<runs_dir>/<study>/study.html`), from `study.json`'s content: the
//! hypotheses with their verdicts and a forest plot of the paired differences, per metric each arm's
//! mean with its 95 % interval and every seed's value, per-class AP by arm, and links to every run's
//! report. Plots are inline SVG drawn here (intervals need whiskers, not bars).

use crate::plots::{escape, palette};
use serde_json::Value;
use std::fmt::Write;

/// One row of an interval plot: label, centre, interval, individual values.
struct Row {
    label: String,
    mean: f64,
    ci: Option<(f64, f64)>,
    points: Vec<f64>,
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

/// Width of `text` at 12 px in the page's sans-serif, generously (labels must never be cut).
fn text_width(text: &str) -> f64 {
    7.2 * text.chars().count() as f64
}

/// Horizontal interval plot: one row per item, a dot at the mean, whiskers over the interval, small
/// grey dots for the seeds; a dashed vertical line at `reference`. The left margin fits the longest
/// label; the axis has ticks at round values with light grid lines.
fn interval_svg(title: &str, rows: &[Row], reference: Option<f64>) -> String {
    let longest = rows
        .iter()
        .map(|r| text_width(&r.label))
        .fold(0.0, f64::max);
    let (left, right, top, row_h) = ((longest + 20.0).max(90.0), 30.0, 34.0, 26.0);
    let width = left + 470.0;
    let height = top + row_h * rows.len() as f64 + 34.0;
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for r in rows {
        for v in [Some(r.mean), r.ci.map(|c| c.0), r.ci.map(|c| c.1)]
            .into_iter()
            .flatten()
            .chain(r.points.iter().copied())
            .chain(reference)
        {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let (lo, hi) = (lo - pad, hi + pad);
    let x = |v: f64| left + (v - lo) / (hi - lo) * (width - left - right);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\
         <text x=\"{}\" y=\"18\" font-weight=\"bold\">{}</text>",
        left,
        escape(title)
    );
    let axis_y = top + row_h * rows.len() as f64 + 4.0;
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" stroke=\"#888\"/>",
        width - right
    );
    let step = crate::plots::nice_step(hi - lo, 5.0);
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-9 {
        // -0.0 and 1e-17 read as 0.
        let shown = if v.abs() < step * 1e-6 { 0.0 } else { v };
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{axis_y}\" stroke=\"#eee\"/>\
             <line x1=\"{0:.1}\" y1=\"{axis_y}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#888\"/>\
             <text x=\"{0:.1}\" y=\"{2}\" fill=\"#555\" text-anchor=\"middle\">{3}</text>",
            x(v),
            axis_y + 4.0,
            axis_y + 17.0,
            crate::plots::tick(shown)
        );
        v += step;
    }
    if let Some(r) = reference {
        let _ = write!(
            s,
            "<line x1=\"{0}\" y1=\"{top}\" x2=\"{0}\" y2=\"{axis_y}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>",
            x(r)
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + row_h * (i as f64 + 0.5);
        let c = palette(i);
        let color = format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2]);
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            left - 8.0,
            y + 4.0,
            escape(&r.label)
        );
        if let Some((a, b)) = r.ci {
            let _ = write!(
                s,
                "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{color}\" stroke-width=\"2\"/>",
                x(a),
                x(b)
            );
        }
        for p in &r.points {
            let _ = write!(
                s,
                "<circle cx=\"{}\" cy=\"{}\" r=\"2.5\" fill=\"#999\"/>",
                x(*p),
                y + 7.0
            );
        }
        let _ = write!(
            s,
            "<circle cx=\"{}\" cy=\"{y}\" r=\"5\" fill=\"{color}\"><title>{:.4}</title></circle>",
            x(r.mean),
            r.mean
        );
    }
    s.push_str("</svg>");
    s
}

/// The study page's HTML from the content of `study.json`. `has_report(arm, seed)` says whether that
/// run's `report.html` is there to link to (an archived study keeps no reports).
pub fn study_page(study: &Value, has_report: impl Fn(&str, u64) -> bool) -> String {
    let name = study["study"].as_str().unwrap_or("study");
    let mut body = format!(
        "<h1>Study {}</h1><p>Experiment <code>{}</code>, seeds {}, baseline arm <code>{}</code>. \
         Intervals are 95 % Student t intervals over seeds; dots under them are the single seeds.</p>",
        escape(name),
        escape(study["experiment"].as_str().unwrap_or("")),
        escape(&study["seeds"].to_string()),
        escape(study["baseline"].as_str().unwrap_or(""))
    );

    // Hypotheses: table and forest plot.
    body.push_str("<h2>Hypotheses</h2><table class=\"wrap\"><tr><th>verdict</th><th>claim</th><th>paired difference [95 % CI]</th><th>p (one-sided)</th><th>p adjusted</th><th>bootstrap over recordings</th><th>note</th></tr>");
    let mut power_rows = String::new();
    let mut forest = Vec::new();
    for h in study["hypotheses"].as_array().into_iter().flatten() {
        let claim = format!(
            "{} of {} {} {} {:+}",
            h["metric"].as_str().unwrap_or(""),
            h["arm"].as_str().unwrap_or(""),
            h["op"].as_str().unwrap_or(""),
            h["than"].as_str().unwrap_or(""),
            num(&h["margin"]).unwrap_or(0.0)
        );
        let ci = num(&h["ci95_low"]).zip(num(&h["ci95_high"]));
        let diff = match (num(&h["mean_diff"]), ci) {
            (Some(d), Some((a, b))) => format!("{d:+.4} [{a:+.4}, {b:+.4}]"),
            (Some(d), None) => format!("{d:+.4} (no interval)"),
            _ => "—".into(),
        };
        let boot = match (
            num(&h["bootstrap_ci95_low"]),
            num(&h["bootstrap_ci95_high"]),
        ) {
            (Some(a), Some(b)) => format!("[{a:+.4}, {b:+.4}]"),
            _ => escape(h["bootstrap_note"].as_str().unwrap_or("")),
        };
        let _ = write!(
            body,
            "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td></tr>",
            escape(h["verdict"].as_str().unwrap_or("")),
            escape(&claim),
            diff,
            num(&h["p_value"]).map_or("—".into(), |p| format!("{p:.3}")),
            num(&h["p_holm"]).map_or("—".into(), |p| format!("{p:.3}")),
            boot,
            escape(h["note"].as_str().unwrap_or(""))
        );
        let cell = |v: &serde_json::Value| num(v).map_or("—".into(), |x| format!("{x:.4}"));
        let _ = write!(
            power_rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"text\">{}</td></tr>",
            escape(&claim),
            h["n_pairs"],
            cell(&h["sd_diff"]),
            cell(&h["mde"]),
            h["seeds_needed"]
                .as_u64()
                .map_or("—".into(), |n| n.to_string()),
            cell(&h["effect"]),
            escape(h["effect_source"].as_str().unwrap_or(""))
        );
        if let Some(d) = num(&h["mean_diff"]) {
            forest.push(Row {
                label: format!(
                    "{} − {}: {}",
                    h["arm"].as_str().unwrap_or(""),
                    h["than"].as_str().unwrap_or(""),
                    h["metric"]
                        .as_str()
                        .unwrap_or("")
                        .trim_start_matches("test/")
                ),
                mean: d,
                ci,
                points: vec![],
            });
        }
    }
    body.push_str("</table>");
    let _ = write!(
        body,
        "<p class=\"note\">Verdicts at one-sided α = {} after {} adjustment over the family of hypotheses; \
         p is the p-value of the claim as stated (paired t over seeds).</p>",
        num(&study["alpha"]).unwrap_or(0.025),
        escape(study["correction"].as_str().unwrap_or("holm"))
    );
    if !power_rows.is_empty() {
        let _ = write!(
            body,
            "<h2>Power</h2><p class=\"note\">How far each hypothesis is from a decision: the spread of the \
             paired difference over seeds, the smallest difference from the margin the seeds run detect \
             with 80 % power (MDE, at each test's worst adjusted level), and the seeds that would detect \
             the planned difference (<code>effect</code> in the study file, <code>--effect</code>, the \
             margin, else the observed difference). <code>evdet study FILE --plan-power --effect δ</code> \
             prints the same from a pilot.</p><table class=\"wrap\"><tr><th>claim</th><th>seeds</th>\
             <th>paired sd</th><th>MDE (80 %)</th><th>seeds needed</th><th>for difference</th><th>from</th></tr>{power_rows}</table>"
        );
    }
    if let Some(seq) = study["sequential"].as_object() {
        let _ = write!(
            body,
            "<h2>Sequential looks</h2><p class=\"note\">{}</p><table class=\"wrap\"><tr><th>claim</th><th>look</th>\
             <th>seeds</th><th>pairs</th><th>p of the claim</th><th>p of the opposite</th><th>threshold</th><th>verdict</th></tr>",
            escape(seq.get("method").and_then(|m| m.as_str()).unwrap_or(""))
        );
        let p = |v: &serde_json::Value| num(v).map_or("—".into(), |x| format!("{x:.2e}"));
        for (h, looks) in study["hypotheses"].as_array().into_iter().flatten().zip(
            seq.get("looks")
                .and_then(|l| l.as_array())
                .into_iter()
                .flatten(),
        ) {
            let claim = format!(
                "{} of {} {} {}",
                h["metric"].as_str().unwrap_or(""),
                h["arm"].as_str().unwrap_or(""),
                h["op"].as_str().unwrap_or(""),
                h["than"].as_str().unwrap_or("")
            );
            for (k, l) in looks.as_array().into_iter().flatten().enumerate() {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&claim),
                    k + 1,
                    l["seeds"],
                    l["pairs"],
                    p(&l["p_claim"]),
                    p(&l["p_against"]),
                    p(&l["threshold"]),
                    escape(l["verdict"].as_str().unwrap_or(""))
                );
            }
        }
        body.push_str("</table>");
    }
    if !forest.is_empty() {
        body.push_str(&interval_svg(
            "Paired differences (arm − other), 95 % CI; dashed: 0",
            &forest,
            Some(0.0),
        ));
    }

    // Per metric: arms' means, intervals and seeds.
    let arms = study["arms"].as_object().cloned().unwrap_or_default();
    let runs = study["runs"].as_array().cloned().unwrap_or_default();
    let seed_values = |arm: &str, metric: &str| -> Vec<f64> {
        runs.iter()
            .filter(|r| r["arm"] == arm && r["status"] == "done")
            .filter_map(|r| num(&r["metrics"][metric]))
            .collect()
    };
    let mut metrics: Vec<String> = Vec::new();
    for p in ["prophesee", "unfiltered"] {
        for stat in ["AP", "AP50", "AP_S", "AP_M", "AP_L"] {
            metrics.push(format!("test/{p}/{stat}"));
        }
    }
    let mut bins: Vec<String> = arms
        .values()
        .flat_map(|m| m.as_object().into_iter().flat_map(|o| o.keys().cloned()))
        .filter(|k| k.starts_with("test/prophesee/AP_bin/"))
        .collect();
    bins.sort();
    bins.dedup();
    metrics.extend(bins);
    body.push_str("<h2>Arms by metric</h2><div class=\"figs\">");
    for m in &metrics {
        let rows: Vec<Row> = arms
            .iter()
            .filter_map(|(arm, per)| {
                let s = &per[m];
                Some(Row {
                    label: arm.clone(),
                    mean: num(&s["mean"])?,
                    ci: num(&s["ci95_low"]).zip(num(&s["ci95_high"])),
                    points: seed_values(arm, m),
                })
            })
            .collect();
        if !rows.is_empty() {
            body.push_str(&interval_svg(m.trim_start_matches("test/"), &rows, None));
        }
    }
    body.push_str("</div>");

    // Per-class AP: mean over seeds, arms × classes.
    let mut classes: Vec<String> = arms
        .values()
        .flat_map(|m| m.as_object().into_iter().flat_map(|o| o.keys().cloned()))
        .filter_map(|k| k.strip_prefix("test/prophesee/AP/").map(String::from))
        .collect();
    classes.sort();
    classes.dedup();
    if !classes.is_empty() {
        body.push_str("<h2>AP per class (prophesee, mean over seeds)</h2><table><tr><th>arm</th>");
        for c in &classes {
            let _ = write!(body, "<th>{}</th>", escape(c));
        }
        body.push_str("</tr>");
        for (arm, per) in &arms {
            let _ = write!(body, "<tr><td>{}</td>", escape(arm));
            for c in &classes {
                let v = num(&per[format!("test/prophesee/AP/{c}")]["mean"]);
                let _ = write!(
                    body,
                    "<td>{}</td>",
                    v.map_or("—".into(), |v| format!("{v:.4}"))
                );
            }
            body.push_str("</tr>");
        }
        body.push_str("</table>");
    }

    // Every run, with a link to its report.
    body.push_str("<h2>Runs</h2><ul>");
    for r in &runs {
        let (arm, seed) = (
            r["arm"].as_str().unwrap_or(""),
            r["seed"].as_u64().unwrap_or(0),
        );
        let status = escape(r["status"].as_str().unwrap_or(""));
        if has_report(arm, seed) {
            let _ = write!(
                body,
                "<li><a href=\"{0}/seed{1}/report.html\">{0} seed {1}</a> — {status}</li>",
                escape(arm),
                seed,
            );
        } else {
            let _ = write!(
                body,
                "<li>{0} seed {1} — {status} (no report.html in <code>{0}/seed{1}/</code>: <code>evdet report</code> on the run folder makes one)</li>",
                escape(arm),
                seed,
            );
        }
    }
    body.push_str("</ul>");
    crate::html::page(&format!("Study {name}"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn study() -> Value {
        serde_json::json!({
            "study": "s", "experiment": "e.yaml", "seeds": [0, 1], "baseline": "3scale",
            "hypotheses": [{
                "metric": "test/unfiltered/AP_S", "arm": "4scale_sizeaware_linear", "op": ">",
                "than": "3scale_baseline_arm", "margin": 0.0, "mean_diff": 0.021,
                "ci95_low": -0.26, "ci95_high": 0.31, "p_value": 0.4, "p_holm": 0.8, "verdict": "inconclusive",
                "n_pairs": 2, "sd_diff": 0.05, "mde": 0.3127, "seeds_needed": 37, "effect": 0.02,
                "effect_source": "--effect",
                "note": "a long note that explains what would decide the hypothesis, which has to wrap inside the table instead of running off the page"
            }],
            "arms": {"3scale": {"test/prophesee/AP": {"mean": 0.13, "ci95_low": 0.03, "ci95_high": 0.23}}},
            "runs": [{"arm": "3scale", "seed": 0, "status": "done", "metrics": {"test/prophesee/AP": 0.1}},
                     {"arm": "3scale", "seed": 1, "status": "done", "metrics": {"test/prophesee/AP": 0.16}}]
        })
    }

    #[test]
    fn labels_fit_axes_have_ticks_and_notes_wrap() {
        let html = study_page(&study(), |_, seed| seed == 0);
        // The forest plot's label starts right of the left edge: its end anchor is past its width.
        let label = "4scale_sizeaware_linear − 3scale_baseline_arm: unfiltered/AP_S";
        let at = html.find(&escape(label)).expect("label drawn");
        let head = &html[..at];
        let x: f64 = head[head.rfind("<text x=\"").unwrap() + 9..]
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(x >= text_width(label), "label anchored at {x}");
        // Round ticks, not just the two ends: -0.2, 0, 0.2 on the forest plot.
        for t in [">-0.2<", ">0<", ">0.2<"] {
            assert!(html.contains(t), "tick {t} missing");
        }
        assert!(html.contains("<td class=\"text\">a long note"));
        // The power table: spread, MDE, seeds needed for the planned difference; the adjusted p.
        assert!(html.contains("<h2>Power</h2>"));
        assert!(
            html.contains("<td>0.0500</td><td>0.3127</td><td>37</td><td>0.0200</td>"),
            "power row"
        );
        assert!(
            html.contains("<td>0.400</td><td>0.800</td>"),
            "p and adjusted p"
        );
        // Only the run with a report is linked.
        assert!(html.contains("href=\"3scale/seed0/report.html\""));
        assert!(!html.contains("href=\"3scale/seed1/report.html\""));
        assert!(html.contains("3scale seed 1 — done (no report.html"));
    }
}
