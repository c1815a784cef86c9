//! (being written) RVT import.
