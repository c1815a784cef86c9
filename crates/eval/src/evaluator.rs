//! The incremental evaluator the training loop and `evdet eval` feed: add the ground truth and
//! detections of each labelled frame (or of a whole sequence) as they stream by, then summarise
//! both protocols, class-aware and class-agnostic, with the small-object analysis.
//!
//! Memory is the boxes themselves (32 bytes each); a frame without ground truth keeps nothing,
//! since it can never produce a COCO image. The COCO images are built at `summarize` time.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;

use crate::analysis::{
    analyse, size_bins_from_edges, AnalysisConfig, SmallObjectAnalysis, DEFAULT_SIZE_EDGES,
};
use crate::boxes::BBox;
use crate::coco::{CocoEval, CocoOptions, STAT_NAMES, UNDEFINED};
use crate::error::{EvalError, Result};
use crate::metrics::{metric_key, Protocol};
use crate::prophesee::{BoxFilter, Camera, CocoImages, TIME_TOL_US};

/// How to evaluate: the dataset's classes and the protocol's constants.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Class names by class id (COCO category `i + 1` is `class_names[i]`). Boxes of classes
    /// beyond this list are not evaluated (the reference's 3-class gen4 tuple does the same).
    pub class_names: Vec<String>,
    /// The "small classes" group (from the dataset config), a subset of `class_names`.
    pub small_classes: Vec<String>,
    /// Sets the filter thresholds of the `prophesee` protocol.
    pub camera: Camera,
    /// Boxes are in the downsampled-by-2 frame: filter thresholds halved (eTraM: always).
    pub filter_downsampled_by_2: bool,
    /// Detection window half-width around each ground-truth time stamp, µs.
    pub time_tol_us: i64,
    /// Interior side-length edges of the fine size bins.
    pub size_edges: Vec<f64>,
    /// Also compute the fine size bins and the confusion matrix (see [`AnalysisConfig::detailed`]).
    pub detailed: bool,
    /// Frame size written into the COCO images (metadata only).
    pub height: u32,
    pub width: u32,
}

impl EvalConfig {
    /// eTraM defaults: gen4 filters halved for the 640×360 input, ±50 ms, default size bins.
    pub fn new(class_names: Vec<String>) -> Self {
        EvalConfig {
            class_names,
            small_classes: Vec::new(),
            camera: Camera::Gen4,
            filter_downsampled_by_2: true,
            time_tol_us: TIME_TOL_US,
            size_edges: DEFAULT_SIZE_EDGES.to_vec(),
            detailed: true,
            height: 360,
            width: 640,
        }
    }

    /// The same configuration with a small-classes group.
    pub fn with_small_classes(mut self, small: Vec<String>) -> Self {
        self.small_classes = small;
        self
    }

    /// The box filter of `protocol` (`None`: every box is kept).
    pub fn filter(&self, protocol: Protocol) -> Option<BoxFilter> {
        match protocol {
            Protocol::Prophesee => Some(BoxFilter::for_camera(
                self.camera,
                self.filter_downsampled_by_2,
            )),
            Protocol::Unfiltered => None,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.class_names.is_empty() {
            return Err(EvalError::InvalidInput("no class names given".into()));
        }
        for (i, name) in self.class_names.iter().enumerate() {
            if name.is_empty() || self.class_names[..i].contains(name) {
                return Err(EvalError::InvalidInput(format!(
                    "class names must be non-empty and unique: {:?}",
                    self.class_names
                )));
            }
        }
        for name in &self.small_classes {
            if !self.class_names.contains(name) {
                return Err(EvalError::InvalidInput(format!(
                    "small class `{name}` is not one of the classes {:?}",
                    self.class_names
                )));
            }
        }
        size_bins_from_edges(&self.size_edges)?;
        Ok(())
    }
}

/// Collects ground truth and detections, then evaluates them (see the module doc).
#[derive(Debug, Clone)]
pub struct Evaluator {
    config: EvalConfig,
    gt: Vec<BBox>,
    dt: Vec<BBox>,
    /// One entry per array pair added: its ground truth and detections in `gt`/`dt`.
    pairs: Vec<(Range<usize>, Range<usize>)>,
}

impl Evaluator {
    pub fn new(config: EvalConfig) -> Result<Self> {
        config.validate()?;
        Ok(Evaluator {
            config,
            gt: Vec::new(),
            dt: Vec::new(),
            pairs: Vec::new(),
        })
    }

    pub fn config(&self) -> &EvalConfig {
        &self.config
    }

    /// Adds one labelled frame: its ground truth (all at the frame's `t`) and the detections
    /// predicted for it (`t` = the frame's label time, score = class confidence). Each frame is
    /// its own array pair, as the reference's evaluator is fed one array per labelled frame
    /// (REFERENCE §6), so detections are only matched to their own frame.
    pub fn add_frame(&mut self, gt: &[BBox], dt: &[BBox]) {
        self.add_pair(gt, dt);
    }

    /// Adds a whole sequence (e.g. a `_bbox.npy` label file and its detections): one COCO image
    /// per unique ground-truth time stamp, with the detections within ±`time_tol_us`.
    pub fn add_sequence(&mut self, gt: &[BBox], dt: &[BBox]) {
        self.add_pair(gt, dt);
    }

    fn add_pair(&mut self, gt: &[BBox], dt: &[BBox]) {
        // Without ground truth a pair makes no COCO image, so its detections never count.
        if gt.is_empty() {
            return;
        }
        let g0 = self.gt.len();
        self.gt.extend_from_slice(gt);
        let d0 = self.dt.len();
        self.dt.extend_from_slice(dt);
        self.pairs.push((g0..self.gt.len(), d0..self.dt.len()));
    }

    /// Ground-truth and detection boxes held.
    pub fn len(&self) -> (usize, usize) {
        (self.gt.len(), self.dt.len())
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Forgets everything added (e.g. at the start of the next validation pass).
    pub fn clear(&mut self) {
        self.gt.clear();
        self.dt.clear();
        self.pairs.clear();
    }

    /// The COCO images of `protocol`: filtered (or not), time-matched, boxes of unnamed classes
    /// dropped (COCOeval only ever visits the named categories, in both matching modes).
    /// Also returns the number of windowed detections before that drop.
    pub fn coco_images(&self, protocol: Protocol) -> (CocoImages, usize) {
        let filter = self.config.filter(protocol);
        let mut images = CocoImages::default();
        for (g, d) in &self.pairs {
            images.push_pair(
                &self.gt[g.clone()],
                &self.dt[d.clone()],
                filter.as_ref(),
                self.config.time_tol_us,
            );
        }
        let windowed_dt = images.num_dt();
        let n = self.config.class_names.len() as u32;
        for boxes in images.gt.iter_mut().chain(images.dt.iter_mut()) {
            boxes.retain(|b| b.class_id < n);
        }
        (images, windowed_dt)
    }

    /// Evaluates one protocol.
    pub fn summarize_protocol(&self, protocol: Protocol) -> Result<ProtocolReport> {
        let (images, _) = self.coco_images(protocol);
        let cfg = &self.config;
        let (gt, dt) = images.to_coco(&cfg.class_names, cfg.height, cfg.width);
        let (gt, dt) = (Arc::new(gt), Arc::new(dt));
        let analysis_cfg = AnalysisConfig {
            small_classes: cfg.small_classes.clone(),
            size_edges: cfg.size_edges.clone(),
            detailed: cfg.detailed,
        };
        // REFERENCE §6 reports every metric as 0 when there are no detections at all: pycocotools'
        // `loadRes` cannot take an empty result list. COCOeval itself handles one: a class or size
        // range with ground truth scores 0, one without stays undefined (−1) — never a made-up 0.
        let class_aware = CocoEval::run(&gt, &dt, &CocoOptions::default())?;
        let agnostic = CocoEval::run(
            &gt,
            &dt,
            &CocoOptions {
                use_cats: false,
                ..Default::default()
            },
        )?;
        let analysis = analyse(&gt, &dt, &class_aware, &analysis_cfg)?;
        Ok(ProtocolReport {
            protocol,
            num_images: images.num_images(),
            num_gt: images.num_gt(),
            num_dt: images.num_dt(),
            stats: class_aware.stats(),
            agnostic_stats: agnostic.stats(),
            class_aware,
            agnostic,
            analysis,
        })
    }

    /// Evaluates both protocols.
    pub fn summarize(&self) -> Result<EvalReport> {
        Ok(EvalReport {
            prophesee: self.summarize_protocol(Protocol::Prophesee)?,
            unfiltered: self.summarize_protocol(Protocol::Unfiltered)?,
        })
    }
}

/// The results of one protocol.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolReport {
    pub protocol: Protocol,
    /// COCO images (unique ground-truth time stamps with ground truth after filtering).
    pub num_images: usize,
    pub num_gt: usize,
    /// Detections inside the windows (a detection in two windows counts twice).
    pub num_dt: usize,
    /// Class-aware (`useCats=1`) stats, [`STAT_NAMES`] order.
    pub stats: [f64; 12],
    /// Class-agnostic (`useCats=0`) stats: the eTraM repository's "overall" numbers.
    pub agnostic_stats: [f64; 12],
    #[serde(skip)]
    pub class_aware: CocoEval,
    #[serde(skip)]
    pub agnostic: CocoEval,
    pub analysis: SmallObjectAnalysis,
}

impl ProtocolReport {
    /// This protocol's metrics under DESIGN.md's keys. Undefined values (a class, size range or
    /// bin without ground truth: pycocotools' −1) are left out, so every value is a fraction.
    pub fn metrics(&self, split: &str) -> BTreeMap<String, f64> {
        let p = self.protocol;
        let mut out = BTreeMap::new();
        let mut put = |stat: &str, v: f64| {
            if v != UNDEFINED {
                out.insert(metric_key(split, p, stat), v);
            }
        };
        for (name, v) in STAT_NAMES.iter().zip(self.stats) {
            put(name, v);
        }
        if let Some(g) = &self.analysis.small_classes {
            put("AP_small_classes", g.ap);
        }
        for c in &self.analysis.per_class {
            put(&format!("AP/{}", c.name), c.ap);
        }
        for b in &self.analysis.size_bins {
            put(&format!("AP_bin/{}", b.label), b.ap);
            put(&format!("AR_bin/{}", b.label), b.ar);
        }
        put("agnostic/AP", self.agnostic_stats[0]);
        out
    }
}

/// Both protocols, side by side.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub prophesee: ProtocolReport,
    pub unfiltered: ProtocolReport,
}

impl EvalReport {
    pub fn protocol(&self, p: Protocol) -> &ProtocolReport {
        match p {
            Protocol::Prophesee => &self.prophesee,
            Protocol::Unfiltered => &self.unfiltered,
        }
    }

    /// Every metric of both protocols under DESIGN.md's keys (`<split>/<protocol>/<stat>`).
    pub fn metrics(&self, split: &str) -> BTreeMap<String, f64> {
        let mut m = self.prophesee.metrics(split);
        m.extend(self.unfiltered.metrics(split));
        m
    }

    /// The class-aware or class-agnostic COCO evaluation of `protocol`.
    pub fn chosen(&self, protocol: Protocol, class_agnostic: bool) -> &CocoEval {
        let p = self.protocol(protocol);
        if class_agnostic {
            &p.agnostic
        } else {
            &p.class_aware
        }
    }

    /// What `evdet coco-eval --prophesee` prints for `protocol` over `sequences` box files: the
    /// counts, the COCO summary (and per-class table), the small-classes group, the size bins and
    /// AP of both protocols side by side.
    pub fn lines(&self, protocol: Protocol, class_agnostic: bool, sequences: usize) -> Vec<String> {
        let chosen = self.protocol(protocol);
        let mut out = vec![format!(
            "protocol {protocol} ({}), {sequences} sequences: {} COCO images, {} ground-truth boxes, {} detections in windows",
            if class_agnostic { "class-agnostic" } else { "class-aware" },
            chosen.num_images,
            chosen.num_gt,
            chosen.num_dt
        )];
        out.extend(self.chosen(protocol, class_agnostic).lines());
        let a = &chosen.analysis;
        if let Some(g) = &a.small_classes {
            out.push(String::new());
            out.push(format!(
                "small classes ({}): AP {:.3}  AP50 {:.3}  AR100 {:.3}",
                g.classes.join(", "),
                g.ap,
                g.ap50,
                g.ar100
            ));
        }
        out.push(String::new());
        out.extend(a.size_bin_lines());
        out.push(String::new());
        out.push(format!(
            "AP side by side: prophesee {:.3}, unfiltered {:.3} (class-agnostic: {:.3}, {:.3})",
            self.prophesee.stats[0],
            self.unfiltered.stats[0],
            self.prophesee.agnostic_stats[0],
            self.unfiltered.agnostic_stats[0]
        ));
        out
    }

    /// `evdet coco-eval --prophesee --json`: the chosen evaluation's [`CocoEval::results_json`] with
    /// `protocol`, `class_agnostic`, every metric of both protocols under `split`'s keys and the
    /// analysis of both protocols.
    pub fn results_json(
        &self,
        split: &str,
        protocol: Protocol,
        class_agnostic: bool,
    ) -> serde_json::Result<serde_json::Value> {
        let mut value = self.chosen(protocol, class_agnostic).results_json();
        if let Some(obj) = value.as_object_mut() {
            obj.insert("protocol".into(), protocol.name().into());
            obj.insert("class_agnostic".into(), class_agnostic.into());
            obj.insert("metrics".into(), serde_json::to_value(self.metrics(split))?);
            obj.insert(
                "analysis".into(),
                serde_json::json!({
                    "prophesee": serde_json::to_value(&self.prophesee.analysis)?,
                    "unfiltered": serde_json::to_value(&self.unfiltered.analysis)?,
                }),
            );
        }
        Ok(value)
    }
}
