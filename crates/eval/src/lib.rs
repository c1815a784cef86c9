//! evdet-eval: COCO bbox evaluation identical to pycocotools, the Prophesee protocol around it
//! (REFERENCE §6), and the small-object analysis the size-aware experiments are judged by.
//! No tensor dependency: everything here works on plain boxes and COCO files.
//!
//! - [`coco`]: `COCOeval` results (12 stats, precision/recall arrays, per-class numbers).
//! - [`coco_json`]: COCO ground-truth / results files with field-naming errors.
//! - [`prophesee`]: filters, ±50 ms time matching, conversion to COCO images.
//! - [`evaluator`]: the incremental evaluator (add frames or sequences, then summarise both
//!   protocols), with DESIGN.md's metric keys.
//! - [`analysis`]: AP/AR by size range and class, small-classes group, fine size bins,
//!   confusion matrix, PR curves.
//! - [`synthetic`]: the deterministic COCO-val-sized benchmark case.

pub mod analysis;
pub mod bench;
pub mod boxes;
pub mod coco;
pub mod coco_json;
pub mod error;
pub mod evaluator;
pub mod frames;
pub mod metrics;
pub mod prophesee;
pub mod resample;
pub mod synthetic;

/// The COCO engine, re-exported so callers name the same version's `COCO` datasets.
pub use hotcoco;

pub use analysis::{AnalysisConfig, SmallObjectAnalysis};
pub use boxes::BBox;
pub use coco::{ClassSummary, CocoEval, CocoOptions, STAT_NAMES};
pub use error::{EvalError, Result};
pub use evaluator::{EvalConfig, EvalReport, Evaluator, ProtocolReport};
pub use metrics::{metric_key, Protocol};
pub use prophesee::{BoxFilter, Camera};
