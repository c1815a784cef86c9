//! `evdet bench synth`: generator throughput (seconds of recording per second of wall time).

/// Time the synthetic data generator.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("bench synth is not implemented yet")
}
