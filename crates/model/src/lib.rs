//! The RVT detector on tch (libtorch): backbone, neck, head, assignment and losses.
//! This crate and `train` are the only ones that link the tensor engine.

pub mod device;
