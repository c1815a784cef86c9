//! Studies: many arms × many seeds of one experiment, compared with honest statistics. This crate
//! holds the statistics and the verdict logic (tensor-free; the study runner drives `evdet train`).

pub mod aggregate;
pub mod bootstrap;
pub mod file;
pub mod stats;
pub mod verdict;
