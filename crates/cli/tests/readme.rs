//! Every `evdet` command line of README.md runs through the binaries, in README order, on tiny data:
//! a 1.5 s synthetic `mini` recording per split stands for every dataset the README names, the
//! model_3scale fixture's Lightning checkpoint for the published checkpoint, and `key=value`
//! overrides appended to each `evdet train` line shrink it to a CPU-second (fewer steps, a smaller
//! model, the tiny data's input size). A README line that stops working fails here.

mod common;
use common::{evdet, python};

use std::path::Path;

const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"));

/// The `evdet` lines of the README's `sh` blocks (continuations joined, comments dropped), with its
/// shell variables (`R=...`) substituted.
fn readme_commands() -> Vec<String> {
    let mut out = Vec::new();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in README.lines() {
        if line.trim_start().starts_with("```") {
            in_sh = line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = line.split(" #").next().unwrap_or("").trim();
        if let Some(head) = code.strip_suffix('\\') {
            pending.push_str(head.trim());
            pending.push(' ');
            continue;
        }
        let mut full = std::mem::take(&mut pending) + code;
        for (k, v) in &vars {
            full = full.replace(&format!("${k}"), v);
        }
        if let Some((k, v)) = full
            .split_once('=')
            .filter(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        {
            vars.push((k.to_string(), v.to_string()));
        } else if full.starts_with("evdet ") {
            out.push(full);
        }
    }
    out
}

/// The README's ```python block (the deployment example).
fn python_example() -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in README.lines() {
        if line.trim_start().starts_with("```") {
            if inside {
                break;
            }
            inside = line.trim() == "```python";
            continue;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn run_in(dir: &Path, args: &[String]) -> String {
    let o = evdet().current_dir(dir).args(args).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "evdet {args:?} failed\n{out}\n{err}");
    out + &err
}

/// What a README line becomes on the tiny data: its paths mapped, and for training the overrides
/// that make it small.
fn tiny(line: &str, fixture_ckpt: &Path) -> Vec<String> {
    let line = line
        .replace(
            "/data/etram_pre/test/seq_000",
            "data/mini/test/mini_test_000",
        )
        .replace("/data/etram_pre", "data/mini")
        .replace("rvt-etram.ckpt", &fixture_ckpt.display().to_string());
    let mut args: Vec<String> = line.split_whitespace().skip(1).map(String::from).collect();
    if args[0] == "train" {
        args.extend(
            [
                "training.max_steps=2",
                "batch_size.train=2",
                "batch_size.eval=2",
                "dataset.sequence_length=2",
                "validation.val_check_interval=100",
                "logging.log_every_n_steps=1",
                "hardware.cpu_threads=1",
                "hardware.num_workers.train=1",
                "hardware.num_workers.eval=1",
                "model.backbone.stage.attention.dim_head=8",
                "model.fpn.depth=0.33",
            ]
            .map(String::from),
        );
        // The imported weights' architecture (embed dim 16), else the smallest model.
        let embed = if line.contains("model.init_from") {
            16
        } else {
            8
        };
        args.push(format!("model.backbone.embed_dim={embed}"));
        if line.contains("experiment/gen4/") {
            // eTraM's 1280×720 sensor downsampled by 2 → the tiny data's 320×192 sensor as it is.
            args.push("dataset.resolution_hw=[192,320]".into());
            args.push("dataset.downsample_by_factor_2=false".into());
        }
    }
    args
}

#[test]
fn every_readme_command_runs_on_tiny_data() {
    let commands = readme_commands();
    assert!(commands.len() >= 12, "README commands found: {commands:#?}");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    run_in(
        d,
        &owned(&[
            "synth",
            "--preset",
            "mini",
            "--seed",
            "3",
            "--duration-s",
            "1.5",
            "--sequences",
            "train=1,val=1,test=1",
            "--out",
            "data/mini_raw",
        ]),
    );
    run_in(
        d,
        &owned(&[
            "preprocess",
            "--downsample-by-factor-2",
            "false",
            "--raw",
            "data/mini_raw",
            "--out",
            "data/mini",
        ]),
    );
    std::os::unix::fs::symlink(d.join("data/mini_raw"), d.join("eTraM")).unwrap();
    let ckpt = evdet_fixtures::file("model_3scale/lightning.ckpt");
    for line in &commands {
        run_in(d, &tiny(line, &ckpt));
    }
    // What the README says the lines produce is there.
    let r = d.join("runs/synthetic/mini/4scale_sizeaware_tiny");
    for p in [
        r.join("report.html"),
        r.join("eval/val_metrics.json"),
        r.join("eval/test_metrics.json"),
        d.join("predictions/mini_test_000/mini_test_000_bbox.npy"),
        d.join("compare.html"),
        d.join("eTraM_pre/train"),
        d.join("eTraM_3cls/train"),
        d.join("checkpoints/rvt-etram/config.yaml"),
        d.join("checkpoints/rvt-etram/eval/test_metrics.json"),
        d.join("runs/etram/size_aware/3scale_baseline/checkpoints/last/model.safetensors"),
        d.join("runs/etram/size_aware/4scale_sizeaware_100k/checkpoints/last/model.safetensors"),
    ] {
        assert!(
            p.exists(),
            "{} missing after the README commands",
            p.display()
        );
    }
    // The Python deployment example runs as written on the exported mini.pt and the tiny data.
    let example = python_example();
    assert!(example.contains("torch.jit.load(\"mini.pt\")"), "{example}");
    let o = std::process::Command::new(python())
        .current_dir(d)
        .args(["-c", &example])
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(
        o.status.success(),
        "the README's Python example failed\n{out}\n{err}"
    );
    assert!(out.contains("tensor("), "it printed no boxes: {out}");
    // The fine-tuning line started from the imported weights, every tensor of them.
    let init: serde_json::Value = serde_json::from_slice(
        &std::fs::read(d.join("runs/etram/size_aware/rvt_etram_finetune/init_from.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(init["report"]["missing"].as_array().map(Vec::len), Some(0));
    assert!(init["report"].get("shape_mismatched").is_none(), "{init}");
}
