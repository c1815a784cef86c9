//! (being written) YOLOX losses.
