//! (being written) RVT fpn.
