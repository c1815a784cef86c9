//! `evdet bench eval`: COCO evaluation speed on a COCO-val-sized synthetic case.

/// Time the COCO evaluator on a synthetic COCO-val-sized case.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("bench eval is not implemented yet")
}
