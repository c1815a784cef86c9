//! `evdet check-reference`: compare every output of the detector with a reference fixture folder.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use evdet_model::backbone::AttentionImpl;
use evdet_model::reference_check::{check_reference, CheckOptions};

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
    #[arg(long, default_value = "reference", value_name = "reference|fused")]
    attention: AttentionImpl,
}

pub fn run(args: Args) -> Result<()> {
    let device = args.device.resolve_or("cpu")?;
    let attention = args.attention;
    let report = check_reference(&args.dir, CheckOptions { device, attention })
        .with_context(|| format!("checking against {}", args.dir.display()))?;
    println!(
        "fixture {} on {device:?}, attention kernel: {}",
        args.dir.display(),
        args.attention
    );
    report.table_lines().iter().for_each(|l| println!("{l}"));
    evdet_cli::write_json(args.json.as_deref(), &report.to_json())?;
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
