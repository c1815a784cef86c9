#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| evdet_fuzz::fuzz_one("rvt_labels_npz", data));
