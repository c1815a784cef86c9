//! evdet train.
