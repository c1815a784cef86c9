//! Command-line options shared by the commands that read recordings (`preprocess`, `predict`,
//! `convert`, `synth --describe`): the sensor size for RAW files that do not say it, the clock of
//! RAW timestamps, and times written with units.

use evdet_events::evt::TimeOrigin;
use evdet_events::recording::OpenOptions;

/// How to read recordings.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RecordingArgs {
    /// Sensor size HxW (e.g. 720x1280) for recordings whose header does not give it: RAW files from
    /// cameras Metavision does not know; overrides the file's own size.
    #[arg(long, value_name = "HxW", value_parser = parse_hw)]
    pub sensor_size: Option<(usize, usize)>,
    /// Clock of Prophesee RAW timestamps: `metavision` (shifted to start near 0 as Metavision and
    /// eTraM's HDF5 files and labels are) or `sensor` (the camera's own clock).
    #[arg(long, value_name = "metavision|sensor", default_value = "metavision")]
    pub time_origin: TimeOrigin,
}

impl RecordingArgs {
    pub fn open_options(&self) -> OpenOptions {
        OpenOptions {
            sensor_hw: self.sensor_size,
            time_origin: self.time_origin,
        }
    }
}

pub use evdet_events::units::{parse_hw, parse_time_us};
