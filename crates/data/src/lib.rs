//! The sequence data pipeline over RVT's preprocessed layout (REFERENCE §4.2–4.5): datasets, sampling
//! plans, label handling, augmentation and background loading.

pub mod batch;
pub mod dataset;
pub mod labels;
pub mod loader;
pub mod sampling;
pub mod synthetic;

pub use dataset::{DataError, LabelGeometry, SplitData};
