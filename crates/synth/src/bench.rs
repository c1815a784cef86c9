//! The generator's throughput per preset (seconds of recording per second of wall time, event rates),
//! behind `evdet bench synth`.

use crate::{generate, Preset, SplitCounts, SynthConfig};
use evdet_events::{EventsError, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// What `generator_speed` measures.
#[derive(Debug, Clone)]
pub struct SynthBenchOptions {
    pub presets: Vec<Preset>,
    /// Seconds of recording per sequence.
    pub duration_s: f64,
    /// Sequences per preset (all in the train split).
    pub sequences: usize,
    pub jobs: usize,
    pub seed: u64,
}

/// One preset's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PresetSpeed {
    pub sensor_hw: [usize; 2],
    pub sequences: usize,
    pub duration_s: f64,
    pub jobs: usize,
    pub step_us: i64,
    pub wall_s: f64,
    pub recording_s_per_wall_s: f64,
    pub events: u64,
    pub events_per_recording_s: f64,
    /// The busiest second of any sequence.
    pub peak_events_per_s: f64,
    pub events_per_wall_s: f64,
    pub boxes_per_recording_s: f64,
    pub bytes_written: u64,
}

/// Generates each preset into a folder of its own under `scratch` (removed afterwards) and times it;
/// the result is keyed by preset name. `note` gets a line per preset.
pub fn generator_speed(
    opts: &SynthBenchOptions,
    scratch: &Path,
    note: &dyn Fn(&str),
) -> Result<BTreeMap<String, PresetSpeed>> {
    let mut results = BTreeMap::new();
    for &preset in &opts.presets {
        let name = preset.name().to_string();
        let mut cfg = SynthConfig::preset(preset);
        cfg.seed = opts.seed;
        cfg.duration_s = opts.duration_s;
        cfg.jobs = opts.jobs;
        cfg.sequences = SplitCounts {
            train: opts.sequences,
            val: 0,
            test: 0,
        };
        let dir = scratch.join(&name);
        note(&format!(
            "{name}: {} x {:.1} s at {}x{} with {} threads ...",
            opts.sequences, opts.duration_s, cfg.sensor_hw.1, cfg.sensor_hw.0, opts.jobs
        ));
        let start = Instant::now();
        let s = generate(&dir, &cfg, &|_| {})?;
        let wall = start.elapsed().as_secs_f64();
        let recorded: f64 = s.sequences.iter().map(|q| q.duration_s).sum();
        let train = dir.join("train");
        let bytes: u64 = std::fs::read_dir(&train)
            .map_err(|e| EventsError::io(&train, e))?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        std::fs::remove_dir_all(&dir).map_err(|e| EventsError::io(&dir, e))?;
        let peak = s
            .sequences
            .iter()
            .map(|q| q.peak_event_rate_1s)
            .fold(0.0, f64::max);
        let boxes: u64 = s.sequences.iter().map(|q| q.boxes).sum();
        note(&format!(
            "{name}: {recorded:.1} s of recording in {wall:.1} s = {:.2} s/s; {:.2} M events/s of recording (busiest second {:.2} M)",
            recorded / wall,
            s.events as f64 / recorded / 1e6,
            peak / 1e6
        ));
        results.insert(
            name,
            PresetSpeed {
                sensor_hw: [cfg.sensor_hw.0, cfg.sensor_hw.1],
                sequences: opts.sequences,
                duration_s: opts.duration_s,
                jobs: opts.jobs,
                step_us: cfg.step_us,
                wall_s: wall,
                recording_s_per_wall_s: recorded / wall,
                events: s.events,
                events_per_recording_s: s.events as f64 / recorded,
                peak_events_per_s: peak,
                events_per_wall_s: s.events as f64 / wall,
                boxes_per_recording_s: boxes as f64 / recorded,
                bytes_written: bytes,
            },
        );
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_mini_recording_is_timed_and_its_folder_removed() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SynthBenchOptions {
            presets: vec![Preset::Mini],
            duration_s: 0.5,
            sequences: 1,
            jobs: 1,
            seed: 3,
        };
        let r = generator_speed(&opts, dir.path(), &|_| {}).unwrap();
        let m = &r["mini"];
        assert!(m.events > 0 && m.bytes_written > 0);
        assert!((m.events_per_recording_s - m.events as f64 / 0.5).abs() < 1e-6 * m.events as f64);
        assert!(!dir.path().join("mini").exists());
    }
}
