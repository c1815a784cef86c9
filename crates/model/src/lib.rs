//! The RVT detector on tch (libtorch): MaxViT-RNN backbone, YOLOX PAFPN (3 or 4 scales), YOLOX head,
//! SimOTA assignment, losses (IoU / size-aware IoU, BCE / focal / size-aware focal) and postprocessing.
//! This crate and `train` are the only ones that link the tensor engine.

pub mod amp;
pub mod assign;
pub mod assign_stats;
pub mod backbone;
pub mod boxes;
pub mod config;
pub mod detector;
pub mod device;
pub mod fpn;
pub mod head;
pub mod import;
pub mod layers;
pub mod losses;
pub mod postprocess;
pub mod process_memory;
pub mod reference_check;
