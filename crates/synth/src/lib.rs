//! `evdet synth`: a synthetic eTraM-like traffic event dataset (DESIGN.md "Synthetic data").
//!
//! A static camera watches a street (scene.rs): sidewalks, lanes, a signalled zebra crossing, street
//! furniture. Objects of the 8 eTraM classes (objects.rs) enter and leave, follow each other, stop at the
//! signal and pause (traffic.rs). Each simulation step (1 ms) the changed parts of the image are re-rendered
//! (render.rs) and every changed pixel goes through a contrast-threshold event pixel (sensor.rs); labels are
//! taken at 30 Hz (labels.rs). Files are written in the raw eTraM layout with the crate's own writers:
//! `OUT/{train,val,test}/<seq>_td.h5` (blosc-zstd, streamed in chunks) and `<seq>_bbox.npy`.
//!
//! The same seed gives byte-identical files; each sequence has its own seed derived from the dataset seed,
//! its split and its index, so adding sequences does not change the others.

pub mod bench;
pub mod describe;
pub mod labels;
pub mod objects;
pub mod paint;
pub mod render;
pub mod scene;
pub mod sensor;
pub mod sprite;
pub mod traffic;

mod sequence;
mod text;

pub use describe::{describe, ClassStats, Description, SequenceDescription, SplitDescription};
pub use objects::{Class, CLASS_NAMES, NUM_CLASSES};
pub use sensor::SensorParams;
pub use sequence::SequenceReport;

use evdet_events::error::{EventsError, Result};
use evdet_events::recording::WriteFormat;
use rayon::prelude::*;
use std::path::Path;
use std::time::Instant;

/// The splits a dataset is written in, in this order.
pub const SPLITS: [&str; 3] = ["train", "val", "test"];

/// A named set of defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The full 1280×720 Gen4 sensor (the network sees it downsampled by 2).
    Etram,
    /// A 320×192 sensor used without downsampling, at the network's resolution of eTraM (objects half
    /// their full-resolution size): a narrower field of view of the same street.
    Mini,
    /// `etram` at night: low contrast, more noise, lamps as light sources, lighter traffic.
    Night,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Etram, Preset::Mini, Preset::Night];
    pub fn name(self) -> &'static str {
        match self {
            Preset::Etram => "etram",
            Preset::Mini => "mini",
            Preset::Night => "night",
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "etram" => Ok(Preset::Etram),
            "mini" => Ok(Preset::Mini),
            "night" => Ok(Preset::Night),
            o => Err(format!("unknown preset '{o}': use etram (1280x720), mini (320x192) or night (1280x720 at night)")),
        }
    }
}

/// Sequences per split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct SplitCounts {
    pub train: usize,
    pub val: usize,
    pub test: usize,
}

impl SplitCounts {
    pub fn get(&self, split: &str) -> usize {
        match split {
            "train" => self.train,
            "val" => self.val,
            _ => self.test,
        }
    }
    pub fn total(&self) -> usize {
        self.train + self.val + self.test
    }
}

impl std::str::FromStr for SplitCounts {
    type Err = String;
    /// `train=N,val=N,test=N`; splits not named get 0 sequences.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let mut c = SplitCounts::default();
        let mut seen = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                format!("'{part}' is not SPLIT=N (expected e.g. train=4,val=1,test=1)")
            })?;
            let (k, v) = (k.trim(), v.trim());
            let n: usize = v
                .parse()
                .map_err(|_| format!("'{v}' in '{part}' is not a whole number of sequences"))?;
            if seen.contains(&k) {
                return Err(format!("split '{k}' is given twice"));
            }
            match k {
                "train" => c.train = n,
                "val" => c.val = n,
                "test" => c.test = n,
                o => return Err(format!("unknown split '{o}': use train, val and test")),
            }
            seen.push(k);
        }
        if c.total() == 0 {
            return Err(
                "no sequences requested: give at least one split a positive count, e.g. train=1"
                    .into(),
            );
        }
        Ok(c)
    }
}

impl std::fmt::Display for SplitCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "train={},val={},test={}",
            self.train, self.val, self.test
        )
    }
}

/// Everything that defines a synthetic dataset. Start from [`SynthConfig::preset`] and change fields.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SynthConfig {
    pub preset: Preset,
    pub seed: u64,
    pub sequences: SplitCounts,
    /// Length of each sequence, seconds.
    pub duration_s: f64,
    /// Sensor (height, width).
    pub sensor_hw: (usize, usize),
    /// Sensor px per full-resolution eTraM px (object sizes and speeds scale with it).
    pub pixel_scale: f64,
    /// Simulation step, µs.
    pub step_us: i64,
    pub sensor: SensorParams,
    pub night: bool,
    /// Largest amplitude (log intensity) of the slow global illumination change; 0 = constant light.
    pub illumination: f64,
    /// Traffic density: multiplies every lane's arrival rate.
    pub density: f64,
    /// Threads (sequences run in parallel, and rows within a sequence).
    pub jobs: usize,
    /// blosc-zstd level of the event files.
    pub compression_level: u8,
    /// File format of the recordings (`_td.h5`, `.raw`, `_td.dat`).
    pub format: WriteFormat,
    /// Replace sequence files that already exist.
    pub overwrite: bool,
}

impl SynthConfig {
    /// The defaults of a preset (documented in `evdet synth --help`).
    pub fn preset(preset: Preset) -> Self {
        let day = SensorParams {
            contrast: 0.25,
            threshold_sigma: 0.1,
            refractory_us: 100,
            background_rate_hz: 0.08,
            hot_pixels_per_mpix: 20.0,
            hot_rate_hz: (50.0, 300.0),
            jitter_us: 30,
        };
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
        let base = SynthConfig {
            preset,
            seed: 0,
            sequences: SplitCounts {
                train: 2,
                val: 1,
                test: 1,
            },
            duration_s: 10.0,
            sensor_hw: (720, 1280),
            pixel_scale: 1.0,
            step_us: 1000,
            sensor: day,
            night: false,
            illumination: 0.08,
            density: 1.0,
            jobs,
            compression_level: 1,
            format: WriteFormat::H5,
            overwrite: false,
        };
        match preset {
            Preset::Etram => base,
            Preset::Mini => SynthConfig {
                sequences: SplitCounts {
                    train: 4,
                    val: 1,
                    test: 1,
                },
                duration_s: 20.0,
                sensor_hw: (192, 320),
                pixel_scale: 0.5,
                // A narrower view sees each object for less time; denser traffic keeps most frames busy.
                density: 1.6,
                ..base
            },
            Preset::Night => SynthConfig {
                sensor: SensorParams {
                    contrast: 0.28,
                    threshold_sigma: 0.15,
                    background_rate_hz: 0.5,
                    hot_pixels_per_mpix: 40.0,
                    jitter_us: 80,
                    ..day
                },
                night: true,
                illumination: 0.0,
                density: 0.6,
                ..base
            },
        }
    }

    /// Checks the settings; errors name the setting and the accepted range.
    pub fn validate(&self, out: &Path) -> Result<()> {
        let bad = |m: String| Err(EventsError::format(out, m));
        if !(self.duration_s.is_finite() && self.duration_s >= 0.2) {
            return bad(format!("duration {} s: must be at least 0.2 s (labels start at 100 ms and need two instants)", self.duration_s));
        }
        if self.duration_s > 86_400.0 {
            return bad(format!(
                "duration {} s: at most one day per sequence",
                self.duration_s
            ));
        }
        if self.sequences.total() == 0 {
            return bad("no sequences requested (train, val and test are all 0)".into());
        }
        let (h, w) = self.sensor_hw;
        if !(16..=4096).contains(&h) || !(16..=4096).contains(&w) {
            return bad(format!(
                "sensor {w}x{h}: width and height must be between 16 and 4096"
            ));
        }
        if !(self.pixel_scale > 0.05 && self.pixel_scale <= 4.0) {
            return bad(format!(
                "pixel scale {}: must be in (0.05, 4]",
                self.pixel_scale
            ));
        }
        if !(100..=10_000).contains(&self.step_us) {
            return bad(format!(
                "simulation step {} µs: must be 100–10000 µs",
                self.step_us
            ));
        }
        let s = &self.sensor;
        if !(s.contrast > 0.01 && s.contrast < 5.0 && (0.0..1.0).contains(&s.threshold_sigma)) {
            return bad(format!(
                "contrast threshold {} (sigma {}): threshold must be in (0.01, 5), sigma in [0, 1)",
                s.contrast, s.threshold_sigma
            ));
        }
        if s.refractory_us < 0
            || s.jitter_us < 0
            || !(s.background_rate_hz >= 0.0 && s.background_rate_hz < 1e4)
            || s.hot_pixels_per_mpix.is_nan()
            || s.hot_pixels_per_mpix < 0.0
        {
            return bad("sensor noise settings must be non-negative".into());
        }
        if !(self.density.is_finite() && self.density > 0.0 && self.density <= 20.0) {
            return bad(format!("density {}: must be in (0, 20]", self.density));
        }
        if !(self.illumination.is_finite() && (0.0..=2.0).contains(&self.illumination)) {
            return bad(format!(
                "illumination amplitude {}: must be in [0, 2]",
                self.illumination
            ));
        }
        if self.jobs == 0 {
            return bad("jobs must be at least 1".into());
        }
        Ok(())
    }

    /// Sequence name, e.g. `mini_train_003`.
    pub fn sequence_name(&self, split: &str, index: usize) -> String {
        format!("{}_{split}_{index:03}", self.preset.name())
    }

    /// The seed of one sequence: a hash of the dataset seed, the split and the index.
    pub fn sequence_seed(&self, split: &str, index: usize) -> u64 {
        let split_id = SPLITS.iter().position(|s| *s == split).unwrap_or(3) as u64;
        paint::mix64(
            self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ paint::mix64(split_id << 32 | index as u64),
        )
    }
}

/// What `generate` did: per-sequence reports, totals and the dataset description read back from disk.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SynthSummary {
    pub config: SynthConfig,
    pub sequences: Vec<SequenceReport>,
    pub wall_s: f64,
    /// Seconds of recording produced per second of wall time.
    pub recording_s_per_wall_s: f64,
    pub events: u64,
    pub description: Description,
}

/// Writes the dataset into `out` (`out/{train,val,test}/`); `progress` receives milliseconds of recording
/// as they are simulated (summed over sequences; the total is `duration · sequences`).
pub fn generate(
    out: &Path,
    cfg: &SynthConfig,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<SynthSummary> {
    cfg.validate(out)?;
    if out.exists() && !out.is_dir() {
        return Err(EventsError::format(out, "exists and is not a folder"));
    }
    let mut jobs = Vec::new();
    for split in SPLITS {
        let dir = out.join(split);
        std::fs::create_dir_all(&dir).map_err(|e| EventsError::io(&dir, e))?;
        for i in 0..cfg.sequences.get(split) {
            let name = cfg.sequence_name(split, i);
            for file in [cfg.format.file_name(&name), format!("{name}_bbox.npy")] {
                let p = dir.join(&file);
                if p.exists() && !cfg.overwrite {
                    return Err(EventsError::format(
                        &p,
                        "already exists (use --overwrite to replace it, or another --out folder)",
                    ));
                }
            }
            jobs.push(sequence::Job {
                split: split.to_string(),
                name,
                seed: cfg.sequence_seed(split, i),
                dir: dir.clone(),
            });
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.jobs)
        .build()
        .map_err(|e| EventsError::format(out, format!("cannot start {} threads: {e}", cfg.jobs)))?;
    let start = Instant::now();
    let results: Vec<Result<SequenceReport>> = pool.install(|| {
        jobs.par_iter()
            .map(|j| sequence::run(cfg, j, progress))
            .collect()
    });
    let sequences = results.into_iter().collect::<Result<Vec<_>>>()?;
    let wall_s = start.elapsed().as_secs_f64();
    let recorded: f64 = sequences.iter().map(|s| s.duration_s).sum();
    let events = sequences.iter().map(|s| s.events).sum();
    let description = describe(out, Default::default())?;
    Ok(SynthSummary {
        config: cfg.clone(),
        sequences,
        wall_s,
        recording_s_per_wall_s: recorded / wall_s.max(1e-9),
        events,
        description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_counts_parse() {
        assert_eq!(
            "train=4,val=1,test=1".parse::<SplitCounts>().unwrap(),
            SplitCounts {
                train: 4,
                val: 1,
                test: 1
            }
        );
        assert_eq!(
            "train=2".parse::<SplitCounts>().unwrap(),
            SplitCounts {
                train: 2,
                val: 0,
                test: 0
            }
        );
        for bad in [
            "train=x",
            "foo=1",
            "train",
            "train=0",
            "train=1,train=2",
            "",
        ] {
            assert!(bad.parse::<SplitCounts>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sequence_seeds_differ() {
        let c = SynthConfig::preset(Preset::Mini);
        let seeds: Vec<u64> = SPLITS
            .iter()
            .flat_map(|s| (0..4).map(|i| c.sequence_seed(s, i)))
            .collect();
        let mut u = seeds.clone();
        u.sort();
        u.dedup();
        assert_eq!(u.len(), seeds.len());
    }
}
