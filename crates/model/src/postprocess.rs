//! (being written) YOLOX postprocess.
