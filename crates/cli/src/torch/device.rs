//! `--device`: one definition for every command that runs the network.

use evdet_model::device::DeviceChoice;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct DeviceArg {
    /// Where the network runs: cpu, cuda, cuda:N or auto (CUDA when libtorch sees a GPU, else the
    /// CPU). Default: auto; for `train` the config's hardware.device; for `check-reference` cpu
    /// (the fixtures' device).
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<DeviceChoice>,
}

impl DeviceArg {
    /// The device asked for, `auto` when none was.
    pub fn resolve(&self) -> anyhow::Result<tch::Device> {
        Ok(self.device.unwrap_or_default().resolve()?)
    }

    /// The device asked for, else `default` (a config's `hardware.device`).
    pub fn resolve_or(&self, default: &str) -> anyhow::Result<tch::Device> {
        let choice = match self.device {
            Some(c) => c,
            None => default
                .parse()
                .map_err(|e| anyhow::anyhow!("hardware.device: {e}"))?,
        };
        Ok(choice.resolve()?)
    }
}
