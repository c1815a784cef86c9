//! (being written) YOLOX assign.
