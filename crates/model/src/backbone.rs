//! (being written) RVT backbone.
