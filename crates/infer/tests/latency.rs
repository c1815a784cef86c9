//! `evdet bench latency`'s library side on a tiny case: the histograms of the configured window, the
//! eager and TorchScript engines timed window by window, and an input smaller than the histogram refused.

use evdet_events::windows::WindowParams;
use evdet_infer::latency::{streaming_latency, LatencyOptions};
use serde_json::json;

#[test]
fn streaming_latency_times_eager_and_torchscript_with_the_configured_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LatencyOptions {
        presets: vec!["tiny".into()],
        input_hw: [64, 128],
        sensor_hw: (64, 128),
        window: WindowParams {
            dt_ms: 50,
            nbins: 10,
            downsample_by_factor_2: false,
        },
        windows: 3,
        warmup: 1,
        threads: 1,
        event_rate: 200_000,
        onnx_python: None,
        half: false,
        device: tch::Device::Cpu,
    };
    let mut seen = Vec::new();
    let r = streaming_latency(&opts, dir.path(), &mut |p| seen.push(p.to_string())).unwrap();
    assert_eq!(seen, ["tiny"]);
    let tiny = &r["presets"]["tiny"];
    assert_eq!(tiny["eager_ms"]["windows"], 3);
    assert_eq!(tiny["torchscript_ms"]["windows"], 3);
    assert!(tiny["torchscript_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(tiny.get("onnxruntime_ms").is_none());
    assert_eq!(r["events_per_window"], 10_000);
    assert_eq!(r["input_hw"], json!([64, 128]));
    assert_eq!(r["histogram_ms"]["windows"], 3);

    let small = LatencyOptions {
        input_hw: [32, 64],
        ..opts
    };
    let e = streaming_latency(&small, dir.path(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("smaller than"), "{e}");
}
