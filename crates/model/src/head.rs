//! (being written) RVT head.
