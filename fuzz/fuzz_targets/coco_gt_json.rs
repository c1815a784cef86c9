#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| evdet_fuzz::fuzz_one("coco_gt_json", data));
