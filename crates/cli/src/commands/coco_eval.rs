//! `evdet coco-eval`: pycocotools-identical COCO evaluation of JSON files, and the Prophesee protocol.

/// Evaluate detections against ground truth with COCO metrics.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("coco-eval is not implemented yet")
}
