//! (being written) RVT detector.
