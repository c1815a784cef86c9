//! Event streams for evdet: readers and writers of eTraM / Prophesee recordings (`_td.h5`, `_bbox.npy`,
//! `.dat`) and of RVT's preprocessed layout, the bit-exact stacked histogram, and the preprocessing
//! pipeline. No tensor engine here: this crate builds fast and is usable alone.

pub mod bench;
pub mod blosc_guard;
pub mod convert;
pub mod dat;
pub mod error;
pub mod event;
pub mod evt;
pub mod h5_events;
pub mod histogram;
pub mod labels;
pub mod layout;
pub mod npy;
pub mod preprocess;
mod preprocess_text;
pub mod recording;
pub mod rng;
pub mod testdata;
pub mod units;
pub mod windows;

pub use error::{EventsError, Result};
pub use event::{EventBatch, EventSlice};
pub use labels::BBox;
