//! (being written) RVT reference_check.
