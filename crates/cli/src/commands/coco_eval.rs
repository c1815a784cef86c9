//! `evdet coco-eval`: pycocotools-identical COCO evaluation of JSON files, and the Prophesee protocol.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use evdet_eval::coco_json::{load_dt, load_gt};
use evdet_eval::{BBox, Camera, CocoEval, CocoOptions, EvalConfig, Evaluator, Protocol};

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
    ev.lines().iter().for_each(|l| println!("{l}"));
    crate::write_json(args.json.as_deref(), &ev.results_json())
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
        unnamed += gt.iter().filter(|b| b.class_id >= n_classes).count();
        evaluator.add_sequence(&gt, &read_boxes(dt_path)?);
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
    report
        .lines(protocol, args.class_agnostic, args.gt.len())
        .iter()
        .for_each(|l| println!("{l}"));
    let json = report.results_json(&args.split, protocol, args.class_agnostic)?;
    crate::write_json(args.json.as_deref(), &json)
}
