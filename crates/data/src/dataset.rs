//! A split of a preprocessed dataset (RVT layout, written by evdet or by the reference): its sequences,
//! their label frames and the histograms of any range of time steps.

use crate::labels::FrameLabels;
use evdet_events::layout::{self, SequenceIndex, SequencePaths};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{0}")]
    Events(#[from] evdet_events::EventsError),
    #[error("{path}: {message}")]
    Layout { path: PathBuf, message: String },
}

/// One preprocessed sequence.
#[derive(Debug, Clone)]
pub struct Sequence {
    pub name: String,
    pub paths: SequencePaths,
    pub index: SequenceIndex,
    /// Representation index → label frame index.
    pub repr_to_frame: HashMap<usize, usize>,
}

impl Sequence {
    pub fn num_reprs(&self) -> usize {
        self.index.repr_timestamps_us.len()
    }

    /// Representation indices that carry labels, ascending.
    pub fn labelled_reprs(&self) -> Vec<usize> {
        self.index
            .objframe_idx_2_repr_idx
            .iter()
            .map(|&r| r as usize)
            .collect()
    }
}

/// Everything needed to turn stored labels into network-input labels.
#[derive(Debug, Clone, Copy)]
pub struct LabelGeometry {
    /// Label frame of the stored boxes (the dataset's `resolution_hw`).
    pub frame_hw: (usize, usize),
    pub downsample_by_factor_2: bool,
}

/// The sequences of one split.
#[derive(Debug, Clone)]
pub struct SplitData {
    pub root: PathBuf,
    pub sequences: Vec<Sequence>,
    pub geometry: LabelGeometry,
    /// `[C, H, W]` of every histogram.
    pub chw: (usize, usize, usize),
}

impl SplitData {
    /// Opens `<root>/<split>/*/` for the representation folder `ev_repr_name`.
    pub fn open(
        root: &Path,
        split: &str,
        ev_repr_name: &str,
        geometry: LabelGeometry,
    ) -> Result<Self, DataError> {
        let dir = root.join(split);
        let err = |m: String| DataError::Layout {
            path: dir.clone(),
            message: m,
        };
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| err(format!("cannot list the split folder: {e}")))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        if names.is_empty() {
            return Err(err(
                "no sequences (expected <split>/<sequence>/labels_v2 …)".into(),
            ));
        }
        let (nbins, dt) =
            layout::parse_repr_dir_name(ev_repr_name).map_err(|e| err(e.to_string()))?;
        let mut sequences = Vec::new();
        let mut chw = None;
        for name in names {
            let seq_root = dir.join(&name);
            let paths = [true, false]
                .into_iter()
                .map(|ds2| SequencePaths::new(&seq_root, dt, nbins, ds2))
                .find(|p| p.repr_h5.exists())
                .ok_or_else(|| DataError::Layout {
                    path: seq_root.clone(),
                    message: format!(
                        "no event_representations_v2/{ev_repr_name}/event_representations*.h5"
                    ),
                })?;
            let index = SequenceIndex::read(&paths)?;
            let shape = layout::repr_shape(&paths.repr_h5)?;
            if shape[0] != index.repr_timestamps_us.len() {
                return Err(DataError::Layout {
                    path: paths.repr_h5.clone(),
                    message: format!(
                        "{} histograms but {} timestamps",
                        shape[0],
                        index.repr_timestamps_us.len()
                    ),
                });
            }
            let this = (shape[1], shape[2], shape[3]);
            if *chw.get_or_insert(this) != this {
                return Err(DataError::Layout {
                    path: paths.repr_h5.clone(),
                    message: format!(
                        "histogram shape {this:?} differs from other sequences' {chw:?}"
                    ),
                });
            }
            let repr_to_frame = index.repr_to_frame();
            sequences.push(Sequence {
                name,
                paths,
                index,
                repr_to_frame,
            });
        }
        Ok(Self {
            root: dir,
            sequences,
            geometry,
            chw: chw.unwrap_or_default(),
        })
    }

    /// Labels of representation `repr` of sequence `seq`, if it is a label frame.
    pub fn labels(&self, seq: usize, repr: usize) -> Option<FrameLabels> {
        let s = &self.sequences[seq];
        let &f = s.repr_to_frame.get(&repr)?;
        Some(FrameLabels::load(
            s.index.frame_labels(f),
            self.geometry.frame_hw,
            self.geometry.downsample_by_factor_2,
        ))
    }

    /// Whether the histograms were downsampled by 2 (RVT's `_ds2_nearest` file name).
    pub fn downsample_by_factor_2(&self) -> bool {
        self.sequences.first().is_some_and(|s| {
            s.paths.repr_h5.file_name() == Some(std::ffi::OsStr::new(layout::repr_file_name(true)))
        })
    }

    /// Histograms `[start, end)` of a sequence, uint8 `[end − start, C, H, W]`.
    pub fn histograms(&self, seq: usize, start: usize, end: usize) -> Result<Vec<u8>, DataError> {
        Ok(layout::read_repr_range(&self.sequences[seq].paths.repr_h5, start, end)?.0)
    }
}
