//! (being written) RVT config.
