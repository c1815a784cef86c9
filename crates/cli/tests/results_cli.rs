//! Seeing results through the binary, from a tiny real run: `evdet train` writes the evaluation's plot
//! data and sample pictures, `evdet predict` runs over a raw recording and a preprocessed sequence
//! (Prophesee `_bbox.npy` in sensor coordinates, PNG frames, a GIF), and `evdet report` builds one
//! self-contained HTML page for one run and a comparison of two.

mod common;
use common::*;

use evdet_events::labels::read_bbox_npy;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Raw and preprocessed data of 1 train, 1 val and 1 test `mini` sequence of 1.5 s, and two tiny runs
/// on it ("base": 6 steps, "other": 3 steps), made once for every test here.
fn workspace() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tiny_dataset(5, "train=1,val=1,test=1");
        let d = dir.path();
        for (id, steps) in [("base", 6), ("other", 3)] {
            run(
                train_cmd(&d.join("pre"), &d.join("runs"), id, steps, false).args([
                    "model.backbone.embed_dim=8",
                    "dataset.sequence_length=3",
                    "validation.val_check_interval=3",
                    "logging.log_every_n_steps=1",
                ]),
            );
        }
        dir
    })
    .path()
}

fn run_dir(id: &str) -> PathBuf {
    workspace().join("runs/synthetic/mini").join(id)
}

/// The first entry of `dir` that `keep` accepts.
fn first_entry(dir: &Path, keep: impl Fn(&Path) -> bool) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| keep(p))
        .unwrap_or_else(|| panic!("nothing fitting in {}", dir.display()))
}

fn is_png(p: &Path) -> bool {
    std::fs::read(p).is_ok_and(|b| b.starts_with(b"\x89PNG\r\n\x1a\n"))
}

#[test]
fn training_writes_plot_data_and_sample_pictures() {
    let eval = run_dir("base").join("eval");
    let a: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(eval.join("test_analysis.json")).unwrap())
            .unwrap();
    assert_eq!(a["split"], "test");
    assert_eq!(a["frame_hw"], serde_json::json!([192, 320]));
    for p in ["prophesee", "unfiltered"] {
        let an = &a[p];
        assert!(
            an["per_class"].as_array().is_some_and(|v| !v.is_empty()),
            "{p}"
        );
        assert!(
            an["size_bins"].as_array().is_some_and(|v| v.len() == 5),
            "{p}"
        );
        let conf = &an["confusion"]["matrix"];
        // 8 classes + background, square
        assert_eq!(conf.as_array().map(Vec::len), Some(9), "{p}");
        for c in an["pr_curves"].as_array().unwrap() {
            assert_eq!(c["recall"].as_array().map(Vec::len), Some(101));
        }
    }
    let samples: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(eval.join("samples/test_samples.json")).unwrap(),
    )
    .unwrap();
    assert!(!samples.is_empty() && samples.len() <= 6);
    for s in &samples {
        assert!(s["num_gt"].as_u64().unwrap() > 0);
        let png = eval.join("samples").join(s["file"].as_str().unwrap());
        assert!(is_png(&png), "{}", png.display());
    }
}

#[test]
fn predict_on_a_raw_recording_writes_boxes_frames_and_a_gif() {
    let raw = workspace().join("raw/test");
    let rec = first_entry(&raw, |p| p.to_string_lossy().ends_with("_td.h5"));
    let out = workspace().join("pred_raw");
    let (_, err) = run(evdet()
        .arg("predict")
        .arg("--checkpoint")
        .arg(run_dir("base"))
        .arg("--input")
        .arg(&rec)
        .arg("--out")
        .arg(&out)
        .args([
            "--video",
            "--limit",
            "8",
            "--confidence-threshold",
            "0.0001",
        ]));
    let name = rec
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace("_td.h5", "");
    let boxes = read_bbox_npy(&out.join(format!("{name}_bbox.npy"))).unwrap();
    // An untrained tiny model at a 1e-4 threshold still proposes boxes; they are in sensor pixels, at
    // window ends (multiples of 50 ms), for the 8 windows asked for.
    assert!(!boxes.is_empty(), "{err}");
    let mut ts: Vec<i64> = boxes.iter().map(|b| b.t).collect();
    ts.dedup();
    assert!(
        ts.iter().all(|t| t % 50_000 == 0) && ts.len() <= 8,
        "{ts:?}"
    );
    assert!(boxes.iter().all(|b| b.track_id == 0
        && b.class_id < 8
        && b.class_confidence > 0.0
        && b.x > -320.0
        && b.x < 2.0 * 320.0));
    let frames: Vec<PathBuf> = std::fs::read_dir(out.join("frames"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(frames.len(), 8);
    assert!(frames.iter().all(|p| is_png(p)));
    let video: Vec<PathBuf> = ["mp4", "gif"]
        .iter()
        .map(|e| out.join(format!("{name}.{e}")))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(video.len(), 1, "{err}");
    assert!(err.contains("video ->"), "{err}");
}

#[test]
fn predict_on_a_preprocessed_sequence_matches_its_timestamps() {
    let seq_root = workspace().join("pre/test");
    let seq = first_entry(&seq_root, |p| p.is_dir());
    let out = workspace().join("pred_seq");
    run(evdet()
        .arg("predict")
        .arg("--checkpoint")
        .arg(run_dir("base").join("checkpoints/last/model.safetensors"))
        .arg("--input")
        .arg(&seq)
        .arg("--out")
        .arg(&out)
        .args(["--no-frames", "--confidence-threshold", "0.0001"]));
    let name = seq.file_name().unwrap().to_string_lossy().into_owned();
    let boxes = read_bbox_npy(&out.join(format!("{name}_bbox.npy"))).unwrap();
    let ts = evdet_events::npy::read_npy(
        &seq.join("event_representations_v2/stacked_histogram_dt=50_nbins=10/timestamps_us.npy"),
    )
    .unwrap()
    .to_i64(&seq)
    .unwrap();
    assert!(!boxes.is_empty());
    assert!(boxes.iter().all(|b| ts.binary_search(&b.t).is_ok()));
    assert!(!out.join("frames").exists());
}

#[test]
fn predict_reports_bad_inputs_clearly() {
    let o = evdet()
        .arg("predict")
        .arg("--checkpoint")
        .arg(run_dir("base"))
        .args(["--input", "/nonexistent/rec_td.h5"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such file or folder"));
    let o = evdet()
        .arg("predict")
        .args(["--checkpoint", "/nonexistent/run", "--input"])
        .arg(workspace().join("raw"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/run"));
}

#[test]
fn report_of_one_run_and_of_a_comparison() {
    let one = workspace().join("one.html");
    run(evdet()
        .arg("report")
        .arg(run_dir("base"))
        .arg("--out")
        .arg(&one));
    let html = std::fs::read_to_string(&one).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(html.contains("data:image/png;base64,"));
    let files = workspace().join("one_files");
    let pngs = std::fs::read_dir(&files)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_png(p))
        .count();
    assert!(pngs >= 5, "{pngs} PNG plots in {}", files.display());

    let cmp = workspace().join("cmp.html");
    let (out, _) = run(evdet()
        .arg("report")
        .arg(run_dir("base"))
        .arg(run_dir("other"))
        .arg("--out")
        .arg(&cmp));
    // mini.yaml declares test/unfiltered/AP50 >= 0.25: a few tiny steps do not meet it.
    assert!(out.contains("test/unfiltered/AP50"), "{out}");
    assert!(out.to_lowercase().contains("not met"), "{out}");
    let html = std::fs::read_to_string(&cmp).unwrap();
    assert!(html.contains("base") && html.contains("other"));
}

#[test]
fn raw_predictions_aligned_to_labels_equal_those_on_the_preprocessed_sequence() {
    // The on-the-fly histograms of a raw recording, windowed where preprocessing windows it, are
    // the stored ones: the two runs of the recurrent detector write byte-identical files.
    let seq = first_entry(&workspace().join("pre/test"), |p| p.is_dir());
    let name = seq.file_name().unwrap().to_string_lossy().into_owned();
    let raw = workspace().join("raw/test").join(format!("{name}_td.h5"));
    let mut outs = Vec::new();
    for (input, extra) in [(&raw, Some("--align-to-labels")), (&seq, None)] {
        let out = workspace().join(format!("pred_cmp_{}", outs.len()));
        run(evdet()
            .arg("predict")
            .arg("--checkpoint")
            .arg(run_dir("base"))
            .arg("--input")
            .arg(input)
            .arg("--out")
            .arg(&out)
            .args([
                "--no-frames",
                "--limit",
                "12",
                "--confidence-threshold",
                "0.0001",
            ])
            .args(extra));
        outs.push(std::fs::read(out.join(format!("{name}_bbox.npy"))).unwrap());
    }
    assert!(outs[0].len() > 128, "no detections written");
    assert!(
        outs[0] == outs[1],
        "raw and preprocessed predictions differ"
    );
}

#[test]
fn predict_on_a_camera_raw_file_equals_predict_on_its_h5_and_keeps_to_start_end() {
    // The test recording as a Prophesee EVT 3.0 file, labels beside it: the same windows, the same
    // histograms, byte-identical predictions.
    let h5 = first_entry(&workspace().join("raw/test"), |p| {
        p.to_string_lossy().ends_with("_td.h5")
    });
    let name = h5
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches("_td.h5")
        .to_string();
    let dir = workspace().join("camera");
    std::fs::create_dir_all(&dir).unwrap();
    let raw = dir.join(format!("{name}.raw"));
    run(evdet().arg("convert").arg(&h5).arg(&raw).arg("--overwrite"));
    std::fs::copy(
        h5.with_file_name(format!("{name}_bbox.npy")),
        dir.join(format!("{name}_bbox.npy")),
    )
    .unwrap();
    let predict = |input: &Path, out: &str, extra: &[&str]| {
        let out = workspace().join(out);
        let (_, err) = run(evdet()
            .arg("predict")
            .arg("--checkpoint")
            .arg(run_dir("base"))
            .arg("--input")
            .arg(input)
            .arg("--out")
            .arg(&out)
            .args(["--no-frames", "--confidence-threshold", "0.0001"])
            .args(extra));
        (
            std::fs::read(out.join(format!("{name}_bbox.npy"))).unwrap(),
            err,
        )
    };
    let (from_h5, _) = predict(
        &h5,
        "camera_pred_h5",
        &["--align-to-labels", "--limit", "8"],
    );
    let (from_raw, _) = predict(
        &raw,
        "camera_pred_raw",
        &["--align-to-labels", "--limit", "8"],
    );
    assert!(from_h5.len() > 128, "no detections written");
    assert!(
        from_h5 == from_raw,
        "predictions from .raw and _td.h5 differ"
    );

    // 0.4 s to 0.7 s: windows end every 50 ms, so 7 windows (both ends included).
    let (_, err) = predict(&raw, "pred_span", &["--start", "0.4s", "--end", "700ms"]);
    assert!(err.contains("7 windows"), "{err}");
    let boxes = read_bbox_npy(
        &workspace()
            .join("pred_span")
            .join(format!("{name}_bbox.npy")),
    )
    .unwrap();
    assert!(!boxes.is_empty());
    assert!(
        boxes.iter().all(|b| (400_000..=700_000).contains(&b.t)),
        "boxes outside --start/--end"
    );
}

#[test]
fn exported_torchscript_and_onnx_reproduce_streaming_inference() {
    // The "base" run exported both ways, then 24 consecutive windows of the test sequence with the
    // states fed back: evdet's own streaming detector, the TorchScript file in libtorch (tch) and
    // in Python (torch.jit.load), the ONNX file in ONNX Runtime.
    let dir = workspace().join("export");
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["base.pt", "base.onnx"] {
        let (out, _) = run(evdet()
            .args(["export", "--device", "cpu", "--overwrite", "--checkpoint"])
            .arg(run_dir("base"))
            .arg("--out")
            .arg(dir.join(file)));
        assert!(out.contains("sidecar"), "{out}");
    }
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("base.pt.json")).unwrap()).unwrap();
    assert_eq!(side["input_shape"], serde_json::json!([1, 20, 192, 320]));
    assert_eq!(side["state_shapes"].as_array().unwrap().len(), 8);
    assert_eq!(side["output_names"][0], "detections");
    assert_eq!(side["output_names"][8], "c4_out");
    let onnx_side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("base.onnx.json")).unwrap()).unwrap();
    assert_eq!(onnx_side["onnx_opset"], 17);
    assert_eq!(onnx_side["checkpoint_sha256"], side["checkpoint_sha256"]);

    let opened = evdet_infer::checkpoint::open(&run_dir("base"), tch::Device::Cpu, |_| {
        Ok::<_, evdet_infer::checkpoint::CheckpointError>(())
    })
    .unwrap();
    let seq = first_entry(&workspace().join("pre/test"), |p| p.is_dir());
    let rp = evdet_infer::infer::window_params(&opened.config).unwrap();
    let mut source = evdet_events::windows::WindowSource::open(
        &seq,
        &rp,
        (192, 320),
        false,
        Default::default(),
        Default::default(),
    )
    .unwrap();
    let mut sd = evdet_infer::infer::StreamingDetector::new(
        &opened.detector,
        &opened.config,
        tch::Device::Cpu,
        0.0001,
    );
    let ts = tch::CModule::load(dir.join("base.pt")).unwrap();
    let mut states: Vec<tch::Tensor> = side["state_shapes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let dims: Vec<i64> = s
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_i64().unwrap())
                .collect();
            tch::Tensor::zeros(dims, (tch::Kind::Float, tch::Device::Cpu))
        })
        .collect();
    let (conf, nms) = sd.thresholds();
    let (mut hists, mut eager) = (Vec::new(), Vec::new());
    let close = |a: &tch::Tensor, b: &tch::Tensor, what: &str| {
        // 1e-5 relative, absolute below magnitude 1.
        let excess = ((a - b).abs() - b.abs().clamp_min(1.0) * 1e-5).max();
        if f64::try_from(&excess).unwrap() > 0.0 {
            let d = (a - b).abs();
            let i = d.flatten(0, -1).argmax(0, false);
            panic!(
                "{what}: beyond 1e-5 relative: max |diff| {} at {} ({} vs {})",
                f64::try_from(d.max()).unwrap(),
                i64::try_from(&i).unwrap(),
                f64::try_from(a.flatten(0, -1).get(i64::try_from(&i).unwrap())).unwrap(),
                f64::try_from(b.flatten(0, -1).get(i64::try_from(&i).unwrap())).unwrap()
            );
        }
    };
    for k in 0..24 {
        let win = source.next_window().unwrap().expect("24 windows");
        let e = sd.step_decoded(&win.hist, (20, 192, 320)).unwrap();
        let x = tch::Tensor::from_slice(&win.hist)
            .view([1, 20, 192, 320])
            .to_kind(tch::Kind::Float);
        let mut args = vec![tch::IValue::Tensor(x.shallow_clone())];
        args.extend(
            states
                .iter()
                .map(|s| tch::IValue::Tensor(s.shallow_clone())),
        );
        let tch::IValue::Tuple(out) = ts.forward_is(&args).unwrap() else {
            panic!("the TorchScript file returns a tuple")
        };
        let mut out: Vec<tch::Tensor> = out
            .into_iter()
            .map(|v| match v {
                tch::IValue::Tensor(t) => t,
                other => panic!("{other:?}"),
            })
            .collect();
        let d = out.remove(0);
        states = out;
        close(&d, &e, &format!("window {k}: TorchScript in tch vs eager"));
        // After postprocessing: the same boxes.
        let boxes = |t: &tch::Tensor| {
            evdet_model::postprocess::postprocess(t, conf, nms).unwrap()[0].copy()
        };
        let (bd, be) = (boxes(&d), boxes(&e));
        assert_eq!(bd.size(), be.size(), "window {k}: box count");
        assert!(bd.size()[0] > 0, "window {k}: no boxes to compare");
        // The same boxes, as a set: near-equal scores of a barely trained model may swap places
        // in the score order. Every box has a partner of the same class within 1e-3 px.
        let pair = (bd.unsqueeze(1) - be.unsqueeze(0)).abs(); // [n, n, 7]
        let same_class = pair.select(2, 6).eq(0.0);
        let near = pair.narrow(2, 0, 4).amax([2], false).le(1e-3);
        let matched = (same_class * near).any_dim(1, false);
        assert!(
            bool::try_from(matched.all()).unwrap(),
            "window {k}: a box of the export has no eager partner"
        );
        hists.push(x);
        eager.push(e.squeeze_dim(0));
    }
    let inputs = dir.join("hists.safetensors");
    tch::Tensor::write_safetensors(
        &[(
            "histograms",
            tch::Tensor::cat(&hists, 0).to_kind(tch::Kind::Uint8),
        )],
        &inputs,
    )
    .unwrap();
    let eager = tch::Tensor::stack(&eager, 0);
    for model in ["base.pt", "base.onnx"] {
        let out = dir.join(format!("{model}.decoded.safetensors"));
        let o = std::process::Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/run_export.py"))
            .arg("--model")
            .arg(dir.join(model))
            .arg("--inputs")
            .arg(&inputs)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{model}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = tch::Tensor::read_safetensors(&out).unwrap();
        let decoded = &got.iter().find(|(n, _)| n == "decoded").unwrap().1;
        assert_eq!(decoded.size(), eager.size(), "{model}");
        close(decoded, &eager, &format!("{model} in Python vs eager"));
    }
}

/// `evdet train` of the mini experiment on the preprocessed `data` into `runs`/…/`id`: `steps` steps
/// of batch 2, one thread; callers add the model size and sequence settings.
fn train_cmd(data: &Path, runs: &Path, id: &str, steps: u64, no_test: bool) -> Command {
    let mut c = evdet();
    c.arg("train");
    if no_test {
        c.arg("--no-test");
    }
    c.arg("--config-dir")
        .arg(config_dir())
        .arg(format!("dataset.path={}", data.display()))
        .arg(format!("logging.runs_dir={}", runs.display()))
        .arg(format!("logging.experiment_id={id}"))
        .arg(format!("training.max_steps={steps}"))
        .args([
            "model.backbone.stage.attention.dim_head=8",
            "batch_size.train=2",
            "batch_size.eval=2",
            "hardware.cpu_threads=1",
        ]);
    c
}

/// [`train_cmd`] without the test evaluation on the workspace's data, sequence length 2.
fn tiny_train(runs: &Path, id: &str, steps: u64) -> Command {
    let mut c = train_cmd(&workspace().join("pre"), runs, id, steps, true);
    c.args([
        "dataset.sequence_length=2",
        "validation.val_check_interval=10000",
    ]);
    c
}

/// The user flow of a researcher with a published checkpoint: `import-rvt` a Lightning `.ckpt`, then
/// `eval` and `predict` with the imported folder on data of another sensor, then fine-tune from it.
#[test]
fn an_imported_rvt_checkpoint_evaluates_predicts_and_fine_tunes() {
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("rvt3");
    let fixture = evdet_fixtures::dir("model_3scale");
    let (out, _) = run(evdet()
        .arg("import-rvt")
        .arg(fixture.join("lightning.ckpt"))
        .arg("--out")
        .arg(&ckpt)
        .arg("--config")
        .arg(fixture.join("config.json"))
        .arg("--config-dir")
        .arg(config_dir()));
    assert!(out.contains("loaded"), "{out}");

    // eval: the checkpoint's config is eTraM's; the data is the mini sample's (192×320, no ds2).
    let json = d.path().join("test_metrics.json");
    let (_, err) = run(evdet()
        .args(["eval", "--device", "cpu", "--split", "test", "--checkpoint"])
        .arg(&ckpt)
        .arg("--data")
        .arg(workspace().join("pre"))
        .arg("--json")
        .arg(&json));
    assert!(err.contains("the data's histograms are 192×320"), "{err}");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for k in [
        "test/prophesee/AP",
        "test/unfiltered/AP",
        "test/unfiltered/AP_S",
    ] {
        let v = m[k].as_f64().unwrap_or(f64::NAN);
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    assert!(d.path().join("test_analysis.json").exists());

    // predict on the preprocessed test sequence and on the raw recording.
    let seq = workspace().join("pre/test/mini_test_000");
    let pred = d.path().join("pred_seq");
    run(evdet()
        .args(["predict", "--device", "cpu", "--no-frames", "--checkpoint"])
        .arg(&ckpt)
        .arg("--input")
        .arg(&seq)
        .arg("--out")
        .arg(&pred));
    let boxes = read_bbox_npy(&pred.join("mini_test_000_bbox.npy")).unwrap();
    assert!(boxes.iter().all(|b| b.class_id < 8 && b.w >= 0.0));
    let pred_raw = d.path().join("pred_raw");
    run(evdet()
        .args(["predict", "--device", "cpu", "--limit", "3", "--checkpoint"])
        .arg(&ckpt)
        .arg("--input")
        .arg(workspace().join("raw/test/mini_test_000_td.h5"))
        .arg("--out")
        .arg(&pred_raw));
    assert_eq!(
        std::fs::read_dir(pred_raw.join("frames")).unwrap().count(),
        3
    );

    // export the import (eTraM's 360×640 input rounds up to 384×640) and run one step of it.
    let exported = d.path().join("rvt3.pt");
    run(evdet()
        .args(["export", "--device", "cpu", "--checkpoint"])
        .arg(&ckpt)
        .arg("--out")
        .arg(&exported));
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("rvt3.pt.json")).unwrap()).unwrap();
    assert_eq!(side["input_shape"], serde_json::json!([1, 20, 384, 640]));
    let m = tch::CModule::load(&exported).unwrap();
    let mut args = vec![tch::IValue::Tensor(tch::Tensor::ones(
        [1, 20, 384, 640],
        (tch::Kind::Float, tch::Device::Cpu),
    ))];
    for s in side["state_shapes"].as_array().unwrap() {
        let dims: Vec<i64> = s
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        args.push(tch::IValue::Tensor(tch::Tensor::zeros(
            dims,
            (tch::Kind::Float, tch::Device::Cpu),
        )));
    }
    let tch::IValue::Tuple(out) = m.forward_is(&args).unwrap() else {
        panic!("a tuple")
    };
    assert_eq!(out.len(), 9);
    // Bad requests: an input size off the grid names the nearest valid ones; an output in a
    // folder that cannot exist fails before anything is written.
    let o = evdet()
        .args([
            "export",
            "--device",
            "cpu",
            "--input-size",
            "360",
            "640",
            "--checkpoint",
        ])
        .arg(&ckpt)
        .arg("--out")
        .arg(d.path().join("bad.pt"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("nearest: height"),
        "{err}"
    );
    let blocker = d.path().join("a_file");
    std::fs::write(&blocker, b"x").unwrap();
    let o = evdet()
        .args(["export", "--device", "cpu", "--checkpoint"])
        .arg(&ckpt)
        .arg("--out")
        .arg(blocker.join("m.onnx"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("a_file"));
    assert!(!d.path().join("bad.pt").exists() && !d.path().join("bad.pt.json").exists());

    // fine-tune from the import: same architecture on the mini sample, every tensor loaded.
    let (_, err) = run(tiny_train(&d.path().join("runs"), "finetune", 2)
        .arg(format!("model.init_from={}", ckpt.display()))
        .args([
            "model.backbone.embed_dim=16",
            "model.backbone.partition_split_32=1",
            "model.fpn.in_stages=[2,3,4]",
            "model.head.size_aware_loss=false",
        ]));
    assert!(err.contains("model.init_from"), "{err}");
    let run_dir = d.path().join("runs/synthetic/mini/finetune");
    let init: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("init_from.json")).unwrap()).unwrap();
    assert_eq!(init["report"]["missing"].as_array().map(Vec::len), Some(0));
    assert!(init["report"]["loaded"].as_u64().unwrap() > 100);
    assert!(run_dir.join("checkpoints/last/model.safetensors").exists());
}

/// Two `evdet train` on one run folder: the second refuses at once, naming the first one's PID; once
/// the first is killed (kill -9: the kernel drops its lock), the folder is free again.
#[test]
fn a_second_train_on_the_same_run_folder_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let train = |steps: u64| {
        let mut c = tiny_train(d.path(), "locked", steps);
        c.arg("model.backbone.embed_dim=8");
        c
    };
    let mut first = train(100_000)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = d.path().join("synthetic/mini/locked/.lock");
    let pid = first.id().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::fs::read_to_string(&lock).map_or(true, |s| s.trim() != pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never locked its folder"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let o = train(2).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains(&format!("PID {pid}")), "{err}");
    first.kill().unwrap();
    first.wait().unwrap();
    run(&mut train(2));
}
