//! `evdet synth`: writes a synthetic eTraM-like raw dataset.

/// Generate a synthetic eTraM-like traffic event dataset.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("synth is not implemented yet")
}
