//! Studies: many arms × many seeds of one experiment, compared with honest statistics. This crate
//! holds the study file, the statistics, the verdict logic and the runner that drives `evdet train`
//! (tensor-free: each run is a child process).

pub mod aggregate;
pub mod bootstrap;
pub mod file;
pub mod multiplicity;
pub mod power;
pub mod runner;
mod runner_text;
pub mod sequential;
pub mod slurm;
pub mod stats;
mod table;
pub mod until_decided;
pub mod verdict;
