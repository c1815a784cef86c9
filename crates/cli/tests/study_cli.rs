//! `evdet study` through the binary on a tiny study (two arms × two seeds × a few steps of the tiny
//! model on tiny data): runs, statistics and verdicts in study.json, skipping finished runs, resuming
//! after the study is killed, a failing arm, and the inputs it must refuse.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn data() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tiny_dataset(4, "train=1,val=1,test=2"))
        .path()
}

const STUDY: &str = r#"
study: tiny
experiment: experiment/synthetic/mini.yaml
seeds: [0, 1]
baseline: 3scale
arms:
  3scale: [model.fpn.in_stages=[2,3,4], model.head.size_aware_loss=false]
  4scale_sa: [model.fpn.in_stages=[1,2,3,4], model.head.size_aware_loss=true]   # the seed's arm
hypotheses:
  - {metric: test/prophesee/AP_S, arm: 4scale_sa, op: ">", than: 3scale}
  - {metric: test/prophesee/AP, arm: 4scale_sa, op: ">=", than: 3scale, margin: -0.005}
"#;

fn write_study(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("study.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `evdet study FILE` with the tiny-run overrides and `extra`.
fn study(file: &Path, runs: &Path, steps: u64, extra: &[&str]) -> Command {
    let mut c = evdet();
    c.arg("study")
        .arg(file)
        .arg("--config-dir")
        .arg(config_dir())
        .arg(format!("dataset.path={}", data().join("pre").display()))
        .arg(format!("logging.runs_dir={}", runs.display()))
        .arg(format!("training.max_steps={steps}"))
        .args([
            "model.backbone.embed_dim=8",
            "model.backbone.stage.attention.dim_head=8",
            "dataset.sequence_length=2",
            "batch_size.train=2",
            "batch_size.eval=2",
            "hardware.cpu_threads=1",
            "validation.val_check_interval=1000",
            "logging.ckpt_every_n_steps=2",
        ])
        .args(extra);
    c
}

fn study_json(runs: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(runs.join("tiny/study.json")).unwrap()).unwrap()
}

/// Each run's status in study.json, in its order.
fn statuses(j: &serde_json::Value) -> Vec<&str> {
    j["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect()
}

#[test]
fn a_tiny_study_runs_every_arm_and_seed_and_skips_them_when_rerun() {
    let d = tempfile::tempdir().unwrap();
    let (file, runs) = (write_study(d.path(), STUDY), d.path().join("runs"));
    let (out, err) = run(study(&file, &runs, 3, &[]));
    assert!(out.contains("2 arms × 2 seeds = 4 runs"), "{out}");
    assert_eq!(err.matches(": done").count(), 4, "{err}");
    // Each run is an ordinary run folder.
    for arm in ["3scale", "4scale_sa"] {
        for seed in [0, 1] {
            let dir = runs.join(format!("tiny/{arm}/seed{seed}"));
            assert!(dir.join("eval/test_metrics.json").is_file());
            assert!(dir.join("checkpoints/last/model.safetensors").is_file());
            let cfg = std::fs::read_to_string(dir.join("config.yaml")).unwrap();
            assert!(cfg.contains(&format!("seed: {seed}")), "{cfg}");
        }
    }
    let j = study_json(&runs);
    assert_eq!(j["runs"].as_array().unwrap().len(), 4);
    let ap = &j["arms"]["4scale_sa"]["test/prophesee/AP"];
    assert_eq!(ap["n"].as_u64(), Some(2));
    assert!(ap["mean"].is_number() && ap["ci95_low"].is_number() && ap["ci95_high"].is_number());
    let h = &j["hypotheses"][1];
    assert_eq!(h["op"].as_str(), Some(">="));
    assert_eq!(h["n_pairs"].as_u64(), Some(2));
    assert!(["supported", "refuted", "inconclusive"].contains(&h["verdict"].as_str().unwrap()));
    // Every run kept its test frames, so the bootstrap over test recordings was computed.
    assert!(runs
        .join("tiny/3scale/seed0/eval/test_frames.bin")
        .is_file());
    assert!(h["bootstrap_ci95_low"].is_number(), "{h}");
    assert!(
        h["bootstrap_note"]
            .as_str()
            .unwrap()
            .contains("200 resamples"),
        "{h}"
    );
    assert!(
        out.contains("4scale_sa") && out.contains("study.json"),
        "{out}"
    );

    // The study page: hypotheses with verdicts and a forest plot, arms by metric, links to the runs.
    let page = std::fs::read_to_string(runs.join("tiny/study.html")).unwrap();
    assert!(
        page.contains("Paired differences") && page.contains("prophesee/AP_S"),
        "{page}"
    );
    assert!(page.contains("href=\"4scale_sa/seed1/report.html\""));
    // One plot per headline metric and fine size bin that some arm has a value for: a metric
    // undefined in every run (no ground truth of that size) has no plot.
    let study_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs.join("tiny/study.json")).unwrap())
            .unwrap();
    let defined: std::collections::BTreeSet<String> = study_json["arms"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|m| m.as_object().unwrap().iter())
        .filter(|(_, s)| s["mean"].is_number())
        .map(|(k, _)| k.clone())
        .collect();
    let headline = ["prophesee", "unfiltered"]
        .iter()
        .flat_map(|p| ["AP", "AP50", "AP_S", "AP_M", "AP_L"].map(|s| format!("test/{p}/{s}")))
        .filter(|k| defined.contains(k))
        .count();
    let bins = defined
        .iter()
        .filter(|k| k.starts_with("test/prophesee/AP_bin/"))
        .count();
    assert!(headline >= 6 && bins >= 1, "{defined:?}");
    assert_eq!(
        page.matches("<svg").count(),
        1 + headline + bins,
        "forest + headline metrics + fine size bins with a value"
    );

    // study → report: a study's runs are ordinary runs, compared like any others.
    let html = d.path().join("compare.html");
    run(evdet()
        .arg("report")
        .arg(runs.join("tiny/3scale/seed0"))
        .arg(runs.join("tiny/4scale_sa/seed0"))
        .arg("--out")
        .arg(&html));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("seed0") && page.contains("Assignment: where the positives go"));

    // Rerun: nothing to train.
    let (out, err) = run(study(&file, &runs, 3, &[]));
    assert_eq!(err.matches("training (log").count(), 0, "{err}");
    assert_eq!(out.matches(" done ").count(), 4, "{out}");
}

#[test]
fn a_killed_study_resumes_its_interrupted_run() {
    let d = tempfile::tempdir().unwrap();
    let (file, runs) = (write_study(d.path(), STUDY), d.path().join("runs"));
    let mut cmd = study(&file, &runs, 30, &[]);
    use std::os::unix::process::CommandExt;
    let child = cmd
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ckpt = runs.join("tiny/3scale/seed0/checkpoints/last/state.json");
    let t0 = Instant::now();
    while !ckpt.exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The study and its training child, together.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait_with_output();
    // Nothing finished yet: nothing to summarize.
    let o = study(&file, &runs, 30, &["--no-train"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("no run of study 'tiny' has finished yet"),
        "{err}"
    );
    // The plan alone is instant: nothing trains, nothing is estimated.
    let t0 = std::time::Instant::now();
    let (out, err) = run(study(&file, &runs, 30, &["--dry-run"]));
    assert!(out.contains("interrupted"), "{out}{err}");
    assert!(
        !out.contains("s per training step") && out.contains("--estimate"),
        "{out}"
    );
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    let (out, err) = run(study(&file, &runs, 30, &["--dry-run", "--estimate"]));
    assert!(out.contains("interrupted"), "{out}{err}");
    // The estimate: 3 timed steps, extrapolated to the 4 runs × 30 steps not done (an interrupted run
    // counts whole).
    assert!(
        out.contains("s per training step") && out.contains("× 120 steps left"),
        "{out}"
    );
    let (_, err) = run(study(&file, &runs, 30, &[]));
    assert_eq!(err.matches(": done").count(), 4, "{err}");
    let log = std::fs::read_to_string(runs.join("tiny/3scale/seed0.log")).unwrap();
    assert!(log.contains("resuming at step"), "{log}");
}

#[test]
fn a_failing_arm_is_marked_and_the_others_go_on() {
    let d = tempfile::tempdir().unwrap();
    // num_classes 3 against 8 dataset classes: the runs fail when they start.
    let text = STUDY.replace(
        "model.head.size_aware_loss=true]",
        "model.head.size_aware_loss=true, model.head.num_classes=3]",
    );
    let (file, runs) = (write_study(d.path(), &text), d.path().join("runs"));
    let o = study(&file, &runs, 2, &[]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("2 of 4 runs failed"), "{err}");
    assert!(
        err.contains("4scale_sa seed 0: FAILED") && err.contains("4scale_sa seed 1: FAILED"),
        "{err}"
    );
    let j = study_json(&runs);
    assert_eq!(statuses(&j), ["done", "done", "failed", "failed"]);
    let h = &j["hypotheses"][0];
    assert_eq!(h["verdict"].as_str(), Some("inconclusive"));
    assert_eq!(h["missing_seeds"], serde_json::json!([0, 1]));
    assert!(
        h["note"]
            .as_str()
            .unwrap()
            .contains("no seed has both runs"),
        "{h}"
    );

    // --no-train summarizes what has finished and trains nothing (the failed runs count as pending).
    let (out, err) = run(study(&file, &runs, 2, &["--no-train"]));
    assert_eq!(err.matches("training (log").count(), 0, "{err}");
    assert!(out.contains("2 of 4 runs finished"), "{out}");
    let j = study_json(&runs);
    assert_eq!(statuses(&j), ["done", "done", "pending", "pending"]);
    assert_eq!(
        j["arms"]["3scale"]["test/prophesee/AP"]["n"].as_u64(),
        Some(2)
    );
    assert_eq!(j["hypotheses"][0]["verdict"].as_str(), Some("inconclusive"));
}

#[test]
fn bad_study_inputs_are_refused_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let runs = d.path().join("runs");
    let fails = |text: &str, extra: &[&str]| {
        let file = write_study(d.path(), text);
        let o = study(&file, &runs, 2, extra).output().unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = fails(&STUDY.replace("than: 3scale}", "than: 3scal}"), &[]);
    assert!(
        e.contains("hypotheses[0].than: '3scal' is not an arm"),
        "{e}"
    );
    let e = fails(
        &STUDY.replace(
            "model.head.size_aware_loss=false]",
            "model.head.size_awre_loss=false]",
        ),
        &[],
    );
    assert!(
        e.contains("arm '3scale'") && e.contains("size_aware_loss"),
        "{e}"
    );
    // A runs folder belongs to one study definition.
    run(study(
        &write_study(d.path(), STUDY),
        &runs,
        2,
        &["--dry-run"],
    ));
    run(study(&write_study(d.path(), STUDY), &runs, 2, &[]));
    let e = fails(&STUDY.replace("seeds: [0, 1]", "seeds: [0, 1, 2]"), &[]);
    assert!(
        e.contains("different study definition") && e.contains("file.seeds"),
        "{e}"
    );
}

/// `--until-decided`: two identical arms (same seed → the same run) make a non-inferiority claim that
/// the first look decides; the other claim stays open, so the second round adds a seed to its two arms
/// only; with nothing left open a study stops after its first round.
#[test]
fn until_decided_stops_decided_hypotheses_and_feeds_only_the_arms_still_needed() {
    let d = tempfile::tempdir().unwrap();
    let runs = d.path().join("runs");
    let text = r#"
study: tiny
experiment: experiment/synthetic/mini.yaml
seeds: [0, 1]
baseline: a
arms:
  a: [model.fpn.in_stages=[2,3,4]]
  a_copy: [model.fpn.in_stages=[2,3,4]]
  b: [model.fpn.in_stages=[1,2,3,4]]
hypotheses:
  - {metric: test/unfiltered/AP, arm: a_copy, op: ">=", than: a, margin: -0.01}
  - {metric: test/unfiltered/AP, arm: b, op: ">", than: a}
"#;
    let file = write_study(d.path(), text);
    let args = [
        "--until-decided",
        "--max-seeds",
        "3",
        "--seeds-per-round",
        "1",
    ];
    let (out, err) = run(study(&file, &runs, 2, &args));
    assert!(
        out.contains("sequential: looks at [2, 3] seeds per arm"),
        "{out}"
    );
    assert!(err.contains("look 1 (2 seeds, 2 pairs)"), "{err}");
    let seed2 = |arm: &str| runs.join(format!("tiny/{arm}/seed2")).exists();
    let j = study_json(&runs);
    let h = &j["hypotheses"];
    assert_eq!(h[0]["verdict"], "supported", "{}", h[0]);
    let looks = &j["sequential"]["looks"];
    assert_eq!(
        looks[0].as_array().unwrap().len(),
        1,
        "decided at the first look"
    );
    assert_eq!(looks[0][0]["p_claim"], 0.0);
    let open = looks[1].as_array().unwrap();
    assert!(!open.is_empty() && open.len() <= 2);
    // The second claim (tiny runs: a coin toss) is normally still open after the first look.
    if open[0]["verdict"] == "inconclusive" {
        assert!(
            seed2("a") && seed2("b") && !seed2("a_copy"),
            "round 2 ran only a and b"
        );
        assert_eq!(open.len(), 2, "an undecided claim is looked at again");
        assert_eq!(open[1]["pairs"], 3);
        assert_eq!(j["runs"].as_array().unwrap().len(), 8, "{}", j["runs"]);
    } else {
        assert!(!seed2("a") && !seed2("b"), "both decided: no second round");
    }
    let page = std::fs::read_to_string(runs.join("tiny/study.html")).unwrap();
    assert!(page.contains("Sequential looks"));

    // With only the decided claim, the study ends after its first round.
    let d2 = tempfile::tempdir().unwrap();
    let runs2 = d2.path().join("runs");
    let one = text.replace(
        "  - {metric: test/unfiltered/AP, arm: b, op: \">\", than: a}\n",
        "",
    );
    let file2 = write_study(d2.path(), &one);
    run(study(
        &file2,
        &runs2,
        2,
        &["--until-decided", "--max-seeds", "4"],
    ));
    // The first round runs every arm on the file's seeds; nothing after it.
    assert!(runs2.join("tiny/a/seed1").exists() && runs2.join("tiny/b/seed1").exists());
    for arm in ["a", "a_copy", "b"] {
        assert!(
            !runs2.join(format!("tiny/{arm}/seed2")).exists(),
            "{arm}: a decided study runs no more seeds"
        );
    }
}

/// `--emit slurm`: the array's tasks, run here one by one as SLURM would (each `--only ARM/SEED`), train
/// every run; the aggregation script writes the statistics; `submit.sh` hands both to `sbatch` (a fake
/// one on PATH that checks the scripts), the aggregation depending on the array.
#[test]
fn emit_slurm_writes_an_array_whose_tasks_run_here_and_a_submit_script() {
    let d = tempfile::tempdir().unwrap();
    let (file, runs) = (write_study(d.path(), STUDY), d.path().join("runs"));
    let (out, _) = run(study(&file, &runs, 2, &["--emit", "slurm"]));
    assert!(out.contains("4 tasks"), "{out}");
    let slurm = runs.join("tiny/slurm");
    let array = std::fs::read_to_string(slurm.join("array.sh")).unwrap();
    for want in [
        "#SBATCH --array=0-3",
        "#SBATCH --ntasks=1",
        "RUNS=(3scale/0 4scale_sa/0 3scale/1 4scale_sa/1)",
        "--only \"$RUN\"",
        " model.backbone.stage.attention.dim_head=8 ",
    ] {
        assert!(array.contains(want), "{want} missing:\n{array}");
    }
    assert!(
        !runs.join("tiny/3scale/seed0").exists(),
        "emitting trains nothing"
    );
    for k in 0..4 {
        run(Command::new("bash")
            .arg(slurm.join("array.sh"))
            .env("SLURM_ARRAY_TASK_ID", k.to_string())
            .env("OMP_NUM_THREADS", "1"));
    }
    let (out, _) = run(Command::new("bash").arg(slurm.join("aggregate.sh")));
    assert!(out.contains("all 4 runs finished"), "{out}");
    assert!(statuses(&study_json(&runs)).iter().all(|s| *s == "done"));
    // A task outside the array is refused by bash, an unknown run by evdet.
    let o = Command::new("bash")
        .arg(slurm.join("array.sh"))
        .env("SLURM_ARRAY_TASK_ID", "9")
        .output()
        .unwrap();
    assert!(!o.status.success());

    let bin = d.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("sbatch");
    std::fs::write(
        &fake,
        "#!/bin/bash\necho \"$@\" >> \"$SBATCH_LOG\"\nscript=\"${@: -1}\"\ngrep -q '^#SBATCH --job-name=evdet-tiny' \"$script\" || exit 3\necho 4242\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = d.path().join("sbatch.log");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (out, _) = run(Command::new("bash")
        .arg(slurm.join("submit.sh"))
        .env("PATH", path)
        .env("SBATCH_LOG", &log));
    assert!(out.contains("submitted array 4242"), "{out}");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [
            "--parsable array.sh",
            "--dependency=afterany:4242 aggregate.sh"
        ]
    );
}

/// The README's finding on `size_aware_mini`, rebuilt the way the README says a newcomer rebuilds
/// it: restore the archived runs, `evdet study … --no-train`, and compare study.json with the
/// README's tables (arms: mean ± half-width; hypotheses: difference, interval, verdict).
#[test]
fn the_archived_mini_study_gives_the_readme_numbers() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let d = tempfile::tempdir().unwrap();
    let runs = d.path().join("runs/size_aware_mini");
    let st = Command::new("python3")
        .arg(repo.join("scripts/study_archive.py"))
        .arg("restore")
        .arg(repo.join("notes/study_runs/size_aware_mini"))
        .arg(&runs)
        .status()
        .unwrap();
    assert!(st.success());
    let (out, _) = run(evdet()
        .current_dir(d.path())
        .args([
            "study",
            "study/size_aware_mini.yaml",
            "--no-train",
            "--config-dir",
        ])
        .arg(config_dir()));
    assert!(out.contains("all 27 runs finished"), "{out}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs.join("study.json")).unwrap()).unwrap();

    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let finding = &readme[readme.find("The finding on `size_aware_mini`").unwrap()..];
    let finding = &finding[..finding.find("###").unwrap()];
    let num = |s: &str| s.trim().replace('−', "-").parse::<f64>().unwrap();
    let fmt = |v: f64| format!("{v:.3}");
    let arm_metric = |arm: &str, m: &str| {
        let a = &j["arms"][arm][m];
        let (mean, lo, hi) = (
            a["mean"].as_f64().unwrap(),
            a["ci95_low"].as_f64().unwrap(),
            a["ci95_high"].as_f64().unwrap(),
        );
        (fmt(mean), fmt((hi - lo) / 2.0))
    };
    let mut arms_seen = 0;
    let mut hyps_seen = 0;
    for row in finding
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("| "))
    {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        let arm = cells[0].split(' ').next().unwrap();
        if j["arms"].get(arm).is_some() && cells.len() == 4 {
            let metrics = [
                "test/prophesee/AP",
                "test/prophesee/AP_S",
                "test/unfiltered/AP_bin/8-16",
            ];
            for (cell, m) in cells[1..].iter().zip(metrics) {
                let (mean, half) = cell.split_once(" ± ").unwrap();
                assert_eq!(
                    (mean.to_string(), half.to_string()),
                    arm_metric(arm, m),
                    "README row {row}, {m}"
                );
            }
            arms_seen += 1;
        } else if cells[0].contains(" > ") || cells[0].contains(" ≥ ") {
            // `| AP_S: 4scale_sa > 3scale | −0.058 [−0.237, +0.120] | inconclusive |`
            let (metric, claim) = cells[0].split_once(": ").unwrap();
            let arms: Vec<&str> = claim
                .split([' ', '/'])
                .filter(|w| j["arms"].get(*w).is_some())
                .collect();
            let than = *arms.last().unwrap();
            let diffs: Vec<&str> = cells[1].split(" / ").collect();
            for (k, arm) in arms[..arms.len() - 1].iter().enumerate() {
                let h = j["hypotheses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|h| {
                        h["arm"] == *arm
                            && h["than"] == than
                            && h["metric"] == format!("test/prophesee/{metric}")
                    })
                    .unwrap_or_else(|| panic!("no hypothesis for README row {row}"));
                let d = diffs[k]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches(',');
                assert_eq!(fmt(num(d)), fmt(h["mean_diff"].as_f64().unwrap()), "{row}");
                if let Some(ci) = diffs[k].split_once('[') {
                    let (lo, hi) = ci.1.split_once(']').unwrap().0.split_once(", ").unwrap();
                    assert_eq!(fmt(num(lo)), fmt(h["ci95_low"].as_f64().unwrap()), "{row}");
                    assert_eq!(fmt(num(hi)), fmt(h["ci95_high"].as_f64().unwrap()), "{row}");
                }
                assert_eq!(
                    cells[2].trim_matches('*'),
                    h["verdict"].as_str().unwrap(),
                    "{row}"
                );
                // `claim p; opposite p (opposite after Holm)`, then the MDE.
                let (claim_p, rest) = cells[3].split_once("; ").unwrap();
                let (against, holm) = rest.trim_end_matches(')').split_once(" (").unwrap();
                let pick = |cell: &str| num(cell.split(" / ").nth(k).unwrap());
                let got = |key: &str| fmt(h[key].as_f64().unwrap());
                assert_eq!(fmt(pick(claim_p)), got("p_value"), "{row}");
                assert_eq!(fmt(pick(against)), got("p_against"), "{row}");
                assert_eq!(fmt(pick(holm)), got("p_against_holm"), "{row}");
                assert_eq!(fmt(pick(cells[4])), got("mde"), "{row}");
                hyps_seen += 1;
            }
        }
    }
    assert_eq!((arms_seen, hyps_seen), (5, 7), "{finding}");
}
