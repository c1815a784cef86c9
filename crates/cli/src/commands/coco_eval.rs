//! `evdet coco-eval`: pycocotools-identical COCO evaluation of JSON files, and the Prophesee protocol.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use evdet_eval::coco_json::{load_dt, load_gt};
use evdet_eval::{BBox, Camera, CocoEval, CocoOptions, EvalConfig, Evaluator, Protocol};
use serde_json::{json, Value};

/// Evaluate detections against ground truth with COCO metrics.
///
/// Without --prophesee, GT.json is a COCO dataset (`images`, `annotations`, `categories`) and
/// DT.json a COCO results list (`image_id`, `category_id`, `bbox`, `score`); the numbers are
/// those of pycocotools' COCOeval (iouType bbox, default parameters), bit for bit.
///
/// With --prophesee, the inputs are Prophesee `_bbox.npy` box files, sequence by sequence (the
/// i-th --gt file with the i-th --dt file), evaluated as RVT does: boxes filtered (first 0.5 s,
/// minimum diagonal and side), one COCO image per ground-truth time stamp, detections within
/// ±50 ms, score = class confidence.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  evdet coco-eval --gt instances_val.json --dt detections.json
  evdet coco-eval --gt gt.json --dt dt.json --json metrics.json
  evdet coco-eval --prophesee --filter-downsampled-by-2 \\
      --classes pedestrian,car,bicycle,bus,motorbike,truck,tram,wheelchair \\
      --small-classes pedestrian,bicycle,motorbike,wheelchair \\
      --gt seq_a_bbox.npy seq_b_bbox.npy --dt seq_a_dt.npy seq_b_dt.npy
  evdet coco-eval --prophesee --class-agnostic --classes pedestrian,car --gt a_bbox.npy --dt a_dt.npy")]
pub struct Args {
    /// Ground truth: a COCO dataset JSON file, or with --prophesee one or more `_bbox.npy` files.
    #[arg(long, required = true, num_args = 1.., value_name = "GT")]
    gt: Vec<PathBuf>,
    /// Detections: a COCO results JSON file, or with --prophesee one `_bbox.npy` per --gt file, in the same order.
    #[arg(long, required = true, num_args = 1.., value_name = "DT")]
    dt: Vec<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
    /// Match all classes together (COCOeval useCats=0): what the eTraM repository reports as overall AP.
    #[arg(long)]
    class_agnostic: bool,
    /// Inputs are Prophesee `_bbox.npy` box files, evaluated with the reference protocol.
    #[arg(long)]
    prophesee: bool,
    /// Class names by class id, comma separated (--prophesee). Boxes of later ids are not evaluated.
    #[arg(
        long,
        value_delimiter = ',',
        requires = "prophesee",
        value_name = "NAMES"
    )]
    classes: Vec<String>,
    /// Classes that form the "small classes" group (AP_small_classes), comma separated (--prophesee).
    #[arg(
        long,
        value_delimiter = ',',
        requires = "prophesee",
        value_name = "NAMES"
    )]
    small_classes: Vec<String>,
    /// Boxes are in the downsampled-by-2 frame (eTraM's 640x360 input): filter thresholds halved.
    #[arg(long, requires = "prophesee")]
    filter_downsampled_by_2: bool,
    /// Report the `unfiltered` protocol (every box) instead of `prophesee` (the reference's filters).
    #[arg(long, requires = "prophesee")]
    no_filter: bool,
    /// Sensor family whose filter thresholds apply: gen4 (min diagonal 60, side 20) or gen1 (30, 10).
    #[arg(
        long,
        default_value = "gen4",
        requires = "prophesee",
        value_name = "gen1|gen4"
    )]
    camera: Camera,
    /// Split name used in the metric keys of the JSON output (`<split>/<protocol>/<stat>`).
    #[arg(long, default_value = "test", requires = "prophesee")]
    split: String,
}

pub fn run(args: Args) -> Result<()> {
    if args.prophesee {
        run_prophesee(&args)
    } else {
        run_json(&args)
    }
}

fn single<'a>(paths: &'a [PathBuf], flag: &str) -> Result<&'a Path> {
    match paths {
        [one] => Ok(one),
        _ => bail!(
            "--{flag} takes one COCO JSON file ({} given); several files are for --prophesee",
            paths.len()
        ),
    }
}

fn run_json(args: &Args) -> Result<()> {
    let gt_path = single(&args.gt, "gt")?;
    let dt_path = single(&args.dt, "dt")?;
    let gt = load_gt(gt_path).context("reading ground truth")?;
    let dt = load_dt(&gt, dt_path).context("reading detections")?;
    for w in &dt.warnings {
        eprintln!("warning: {w}");
    }
    let opts = CocoOptions {
        use_cats: !args.class_agnostic,
        ..Default::default()
    };
    let ev = CocoEval::run(&Arc::new(gt), &Arc::new(dt.coco), &opts).with_context(|| {
        format!(
            "evaluating {} against {}",
            dt_path.display(),
            gt_path.display()
        )
    })?;
    print_eval(&ev);
    if let Some(out) = &args.json {
        write_json(out, &ev.results_json())?;
    }
    Ok(())
}

fn print_eval(ev: &CocoEval) {
    for line in ev.summary_lines() {
        println!("{line}");
    }
    if ev.use_cats {
        println!();
        for line in ev.per_class_table() {
            println!("{line}");
        }
    }
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).context("serialising the results")?;
    evdet_atomic::write(path, (text + "\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

fn read_boxes(path: &Path) -> Result<Vec<BBox>> {
    let boxes = evdet_events::labels::read_bbox_npy(path).context("reading boxes")?;
    Ok(boxes.iter().map(BBox::from).collect())
}

fn run_prophesee(args: &Args) -> Result<()> {
    if args.classes.is_empty() {
        bail!("--prophesee needs --classes: the class names by class id, e.g. --classes pedestrian,car,bicycle");
    }
    if args.gt.len() != args.dt.len() {
        bail!(
            "--gt has {} files and --dt has {}: sequence i pairs the i-th ground-truth file with the i-th detection file",
            args.gt.len(),
            args.dt.len()
        );
    }
    let config = EvalConfig {
        camera: args.camera,
        filter_downsampled_by_2: args.filter_downsampled_by_2,
        ..EvalConfig::new(args.classes.clone())
    }
    .with_small_classes(args.small_classes.clone());
    let mut evaluator = Evaluator::new(config).context("checking --classes / --small-classes")?;
    let n_classes = args.classes.len() as u32;
    let mut unnamed = 0usize;
    for (gt_path, dt_path) in args.gt.iter().zip(&args.dt) {
        let gt = read_boxes(gt_path)?;
        let dt = read_boxes(dt_path)?;
        unnamed += gt.iter().filter(|b| b.class_id >= n_classes).count();
        evaluator.add_sequence(&gt, &dt);
    }
    if unnamed > 0 {
        eprintln!(
            "note: {unnamed} ground-truth boxes have a class id >= {n_classes} (the number of --classes) and are not evaluated"
        );
    }
    let report = evaluator.summarize().context("evaluating")?;
    let protocol = if args.no_filter {
        Protocol::Unfiltered
    } else {
        Protocol::Prophesee
    };
    let chosen = report.protocol(protocol);
    let ev = if args.class_agnostic {
        &chosen.agnostic
    } else {
        &chosen.class_aware
    };

    println!(
        "protocol {protocol} ({}), {} sequences: {} COCO images, {} ground-truth boxes, {} detections in windows",
        if args.class_agnostic { "class-agnostic" } else { "class-aware" },
        args.gt.len(),
        chosen.num_images,
        chosen.num_gt,
        chosen.num_dt
    );
    print_eval(ev);
    let a = &chosen.analysis;
    if let Some(g) = &a.small_classes {
        println!(
            "\nsmall classes ({}): AP {:.3}  AP50 {:.3}  AR100 {:.3}",
            g.classes.join(", "),
            g.ap,
            g.ap50,
            g.ar100
        );
    }
    println!();
    a.size_bin_lines().iter().for_each(|l| println!("{l}"));
    println!(
        "\nAP side by side: prophesee {:.3}, unfiltered {:.3} (class-agnostic: {:.3}, {:.3})",
        report.prophesee.stats[0],
        report.unfiltered.stats[0],
        report.prophesee.agnostic_stats[0],
        report.unfiltered.agnostic_stats[0]
    );

    if let Some(out) = &args.json {
        let mut value = ev.results_json();
        let metrics: BTreeMap<String, f64> = report.metrics(&args.split);
        let obj = value.as_object_mut().context("result is a JSON object")?;
        obj.insert("protocol".into(), json!(protocol.name()));
        obj.insert("class_agnostic".into(), json!(args.class_agnostic));
        obj.insert("metrics".into(), json!(metrics));
        let analysis = |p: Protocol| {
            serde_json::to_value(&report.protocol(p).analysis).context("serialising the analysis")
        };
        obj.insert(
            "analysis".into(),
            json!({"prophesee": analysis(Protocol::Prophesee)?, "unfiltered": analysis(Protocol::Unfiltered)?}),
        );
        write_json(out, &value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn fixture(name: &str) -> String {
        evdet_fixtures::file(&format!("coco_eval/{name}"))
            .display()
            .to_string()
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Args {
        Cli::try_parse_from(std::iter::once("coco-eval").chain(argv.iter().copied()))
            .expect("arguments parse")
            .args
    }

    fn read(path: &Path) -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).expect("output written"))
            .expect("valid JSON")
    }

    #[test]
    fn json_files_give_pycocotools_stats_and_per_class_json() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.json");
        let (gt, dt) = (fixture("case2_gt.json"), fixture("case2_dt.json"));
        run(parse(&[
            "--gt",
            &gt,
            "--dt",
            &dt,
            "--json",
            out.to_str().unwrap(),
        ]))
        .unwrap();
        let got = read(&out);
        let want = read(Path::new(&fixture("case2_expected.json")));
        assert_eq!(got["stats"], want["stats"]);
        assert_eq!(got["stat_names"][3], "AP_S");
        // Category 1 is `pedestrian`; 6 and 7 (truck, tram) have no ground truth: -1.
        assert_eq!(
            got["per_class"]["pedestrian"]["AP"],
            want["per_category"]["1"]["AP_all"]
        );
        assert_eq!(
            got["per_class"]["pedestrian"]["AP_S"],
            want["per_category"]["1"]["AP_small"]
        );
        assert_eq!(got["per_class"]["tram"]["AP50"], -1.0);
        assert_eq!(got["per_class"].as_object().unwrap().len(), 8);
    }

    #[test]
    fn prophesee_files_reproduce_the_reference() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.json");
        let p = |f: &str| fixture(&format!("prophesee/{f}"));
        let (g0, g1, d0, d1) = (
            p("seq0_gt_bbox.npy"),
            p("seq1_gt_bbox.npy"),
            p("seq0_dt_bbox.npy"),
            p("seq1_dt_bbox.npy"),
        );
        let classes = "pedestrian,car,bicycle,bus,motorbike,truck,tram,wheelchair";
        let base = [
            "--prophesee",
            "--filter-downsampled-by-2",
            "--classes",
            classes,
            "--gt",
            &g0,
            &g1,
            "--dt",
            &d0,
            &d1,
        ];
        let mut argv = base.to_vec();
        argv.extend(["--json", out.to_str().unwrap()]);
        run(parse(&argv)).unwrap();
        let want = read(Path::new(&p("expected.json")));
        let got = read(&out);
        assert_eq!(got["stats"], want["etram_8class_full"]["stats"]);
        assert_eq!(got["protocol"], "prophesee");
        assert_eq!(
            got["metrics"]["test/prophesee/agnostic/AP"],
            want["etram_8class_agnostic"]["stats"][0]
        );

        let mut argv = base.to_vec();
        argv.extend(["--class-agnostic", "--json", out.to_str().unwrap()]);
        run(parse(&argv)).unwrap();
        assert_eq!(read(&out)["stats"], want["etram_8class_agnostic"]["stats"]);
    }

    #[test]
    fn bad_inputs_are_errors_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let dt = dir.path().join("dt.json");
        std::fs::write(
            &dt,
            r#"[{"image_id": 4242, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]"#,
        )
        .unwrap();
        let gt = fixture("case1_gt.json");
        let err = format!(
            "{:#}",
            run(parse(&["--gt", &gt, "--dt", dt.to_str().unwrap()])).unwrap_err()
        );
        assert!(
            err.contains("dt.json") && err.contains("[0].image_id") && err.contains("4242"),
            "{err}"
        );

        let npy = fixture("prophesee/seq0_gt_bbox.npy");
        let err = format!(
            "{:#}",
            run(parse(&["--prophesee", "--gt", &npy, "--dt", &npy])).unwrap_err()
        );
        assert!(err.contains("--classes"), "{err}");
        let err = format!(
            "{:#}",
            run(parse(&[
                "--prophesee",
                "--classes",
                "a",
                "--gt",
                &npy,
                &npy,
                "--dt",
                &npy
            ]))
            .unwrap_err()
        );
        assert!(err.contains("2 files") && err.contains("1"), "{err}");
        let err = format!(
            "{:#}",
            run(parse(&["--gt", &gt, &gt, "--dt", &gt])).unwrap_err()
        );
        assert!(err.contains("--prophesee"), "{err}");
    }
}
