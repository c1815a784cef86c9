//! `evdet check-reference`: compare every output of the detector with a reference fixture folder.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use evdet_model::backbone::AttentionImpl;
use evdet_model::reference_check::{check_reference, group_of, CheckOptions, CheckReport};

/// Compare the detector with a PyTorch reference fixture folder, output by output.
///
/// DIR has the `model_*` layout (`config.json`, `weights.safetensors`, `inputs.safetensors`,
/// `outputs.safetensors`, `train_outputs.safetensors`, `expected.json`). The eval-mode sequence
/// runs with the LSTM states carried over the T steps; the train-mode pass runs the backbone over
/// all steps and the head, SimOTA and the losses on the last step, then backward. Every reference
/// tensor and loss number is compared — one the implementation does not produce fails.
/// Rules: features, logits, decoded boxes, states, BN statistics: every element
/// |a−b| ≤ 1e-4 + 1e-3·|b|; losses and gradients: max|a−b| / max(max|b|, 1) ≤ 1e-3 (max_rel);
/// detections match as sets; assignments are identical. Exits with status 1 on any failure.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  evdet check-reference tests/fixtures/model_3scale
  evdet check-reference tests/fixtures/model_4scale_sizeaware --json report.json")]
pub struct Args {
    /// The fixture folder.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Also write `{"ok", "outputs": {name: {max_abs, max_rel, ok}}}` to this file.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
    #[command(flatten)]
    device: crate::device::DeviceArg,
    /// Attention kernel: `reference` (RVT's explicit ops, bit-identical to PyTorch on the same
    /// machine) or `fused` (scaled_dot_product_attention, the fast default of training and
    /// inference; same values up to float32 rounding).
    #[arg(long, default_value = "reference", value_parser = ["reference", "fused"])]
    attention: String,
}

pub fn run(args: Args) -> Result<()> {
    let device = args.device.resolve_or("cpu")?;
    let attention = if args.attention == "fused" {
        AttentionImpl::Fused
    } else {
        AttentionImpl::Reference
    };
    let report = check_reference(&args.dir, CheckOptions { device, attention })
        .with_context(|| format!("checking against {}", args.dir.display()))?;
    println!(
        "fixture {} on {device:?}, attention kernel: {}",
        args.dir.display(),
        args.attention
    );
    print_tables(&report);
    if let Some(out) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        evdet_atomic::write(out, (text + "\n").as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let failed = report.outputs.iter().filter(|(_, c)| !c.ok).count();
    if failed > 0 {
        bail!(
            "{failed} of {} outputs differ from the reference in {}",
            report.outputs.len(),
            args.dir.display()
        );
    }
    println!(
        "all {} outputs match {}",
        report.outputs.len(),
        args.dir.display()
    );
    Ok(())
}

fn print_tables(report: &CheckReport) {
    let mut groups: Vec<&str> = Vec::new();
    for (name, _) in &report.outputs {
        let g = group_of(name);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let width = report
        .outputs
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(10)
        .max(10);
    for g in groups {
        println!("\n== {g}");
        println!(
            "{:<width$}  {:<11}  {:>10}  {:>10}  {:>9}  result",
            "output", "rule", "max_abs", "max_rel", "tol_ratio"
        );
        for (name, c) in report.outputs.iter().filter(|(n, _)| group_of(n) == g) {
            let rule = serde_json::to_value(c.rule)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            let tol = c.tol_ratio.map_or("-".to_string(), |t| format!("{t:.3}"));
            println!(
                "{name:<width$}  {rule:<11}  {:>10.3e}  {:>10.3e}  {tol:>9}  {}{}",
                c.max_abs,
                c.max_rel,
                if c.ok { "pass" } else { "FAIL" },
                c.note
                    .as_ref()
                    .map(|n| format!("  ({n})"))
                    .unwrap_or_default()
            );
        }
    }
    println!("\nworst per group:");
    println!(
        "  {:<11} {:>10}  {:>10}  {:>9}  passed",
        "group", "max_abs", "max_rel", "tol_ratio"
    );
    for g in report.group_summary() {
        let tol = g.tol_ratio.map_or("-".to_string(), |t| format!("{t:.3}"));
        println!(
            "  {:<11} {:>10.3e}  {:>10.3e}  {:>9}  {}/{}",
            g.group, g.max_abs, g.max_rel, tol, g.passed, g.total
        );
    }
}
