//! Evaluation sharded over two processes (here: two threads, each with its own Gloo process group on
//! loopback) gives every rank exactly the frames, detections and metrics of a single-process
//! evaluation of the same weights — bit for bit, and in the same frame order, which breaks COCO's
//! score ties. Five recordings over batch 2: the single process runs them through 2 slots, each rank
//! through 2 of 4, so rows sit at other positions and next to other recordings than in the single run.

use evdet_dist::{Backend, LaunchEnv};
use evdet_events::preprocess::{self, PreprocessConfig};
use evdet_model::detector::Detector;
use evdet_synth::{self as synth, Preset, SynthConfig};
use evdet_train::config::{self, ExperimentConfig};
use evdet_train::evaluate::{EvalRun, FrameResult};
use evdet_train::parallel::Parallel;
use std::path::Path;
use std::sync::Arc;

fn dataset(dir: &Path) {
    let mut sc = SynthConfig::preset(Preset::Mini);
    sc.seed = 11;
    sc.duration_s = 1.5;
    sc.sequences.train = 1;
    sc.sequences.val = 5;
    sc.sequences.test = 1;
    synth::generate(&dir.join("raw"), &sc, &|_| {}).unwrap();
    let pc = PreprocessConfig {
        downsample_by_factor_2: Some(false),
        ..Default::default()
    };
    let splits: Vec<String> = ["train", "val", "test"].map(String::from).to_vec();
    preprocess::preprocess(&dir.join("raw"), &dir.join("pre"), &splits, &pc, 2, &|_| {}).unwrap();
}

fn cfg(dir: &Path) -> ExperimentConfig {
    let o: Vec<String> = vec![
        format!("dataset.path={}", dir.join("pre").display()),
        "model.backbone.embed_dim=8".into(),
        "model.backbone.stage.attention.dim_head=8".into(),
        "batch_size.eval=2".into(),
        "dataset.sequence_length=3".into(),
        "hardware.cpu_threads=1".into(),
        // No training here: the SyncBatchNorm hook is process-wide and two ranks share this process.
        "hardware.sync_batchnorm=false".into(),
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    config::load(&root, Path::new("experiment/synthetic/mini.yaml"), &o).unwrap()
}

fn detector(
    cfg: &ExperimentConfig,
    from: Option<&tch::nn::VarStore>,
) -> (tch::nn::VarStore, Detector) {
    let m = evdet_train::model_setup::model_config(cfg).unwrap();
    let (mut vs, det) = Detector::build(&m, tch::Device::Cpu).unwrap();
    if let Some(src) = from {
        vs.copy(src).unwrap();
    }
    (vs, det)
}

fn same_frames(a: &[FrameResult], b: &[FrameResult]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!((x.seq, x.repr, x.t), (y.seq, y.repr, y.t));
        assert_eq!(x.gt, y.gt);
        if x.dt != y.dt {
            let n = x.dt.len().min(y.dt.len());
            let maxd = (0..n)
                .map(|i| {
                    (x.dt[i].x - y.dt[i].x)
                        .abs()
                        .max((x.dt[i].class_confidence - y.dt[i].class_confidence).abs())
                })
                .fold(0f32, f32::max);
            let ndiff = (0..n).filter(|&i| x.dt[i] != y.dt[i]).count();
            panic!(
                "seq {} repr {}: {} vs {} detections, {ndiff} differ, max diff {maxd}",
                x.seq,
                x.repr,
                x.dt.len(),
                y.dt.len()
            );
        }
        assert_eq!(x.dt_score, y.dt_score);
    }
}

#[test]
fn sharded_evaluation_equals_single_process_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let cfg = cfg(dir.path());
    tch::manual_seed(0);
    let (vs, det) = detector(&cfg, None);
    // YOLOX's prior makes an untrained head score 1e-4; neutral biases give it boxes to evaluate.
    tch::no_grad(|| {
        for (name, t) in vs.variables() {
            if (name.contains("obj_preds") || name.contains("cls_preds")) && name.ends_with("bias")
            {
                let _ = t.shallow_clone().fill_(0.0);
            }
        }
    });
    let val =
        Arc::new(evdet_train::trainer::open_split(&cfg, &dir.path().join("pre"), "val").unwrap());
    let conf = 0.001;
    let mut single_batches = 0;
    let run = EvalRun::new(&det, &cfg, tch::Device::Cpu, conf);
    let single = run
        .collect_frames(val.clone(), |_, _| single_batches += 1)
        .unwrap();
    let single_metrics = run.evaluate(val.clone(), |_, _| {}).unwrap().metrics("val");
    assert!(
        single.iter().map(|f| f.dt.len()).sum::<usize>() > 100,
        "an untrained head still detects at 0.001"
    );
    assert!(
        single
            .iter()
            .map(|f| f.seq)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            == 5
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ranks: Vec<_> = (0..2)
        .map(|rank| {
            let (vs_r, det_r) = detector(&cfg, Some(&vs));
            let (cfg, val) = (cfg.clone(), val.clone());
            std::thread::spawn(move || {
                let env = LaunchEnv {
                    rank,
                    world_size: 2,
                    local_rank: rank,
                    local_world_size: 2,
                    master_port: port,
                    ..LaunchEnv::single()
                };
                let par = Parallel::join(&env, &cfg, tch::Device::Cpu)
                    .unwrap()
                    .unwrap();
                assert_eq!(par.pg.backend, Backend::Gloo);
                let mut local = 0;
                let run =
                    EvalRun::new(&det_r, &cfg, tch::Device::Cpu, conf).sharded(Some(&*par.pg));
                let frames = run.collect_frames(val.clone(), |_, _| local += 1).unwrap();
                let metrics = run.evaluate(val, |_, _| {}).unwrap().metrics("val");
                drop(vs_r);
                (frames, metrics, local)
            })
        })
        .collect();
    for h in ranks {
        let (frames, metrics, local) = h.join().unwrap();
        assert!(
            local > 0 && local < single_batches,
            "each rank ran a share: {local} of {single_batches} batches"
        );
        same_frames(&single, &frames);
        assert_eq!(metrics, single_metrics, "metric for metric");
    }
}

/// `hardware.dist_alone`: a process that runs alone joins a process group of one (how NCCL is checked
/// on a machine with one GPU); without it, no group.
#[test]
fn a_single_process_joins_a_group_of_one_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cfg(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = LaunchEnv {
        master_port: port,
        ..LaunchEnv::single()
    };
    let (_, alone) = evdet_train::session::join(&env, &cfg, tch::Device::Cpu).unwrap();
    assert!(alone.is_none());
    cfg.hardware.dist_alone = true;
    let (device, par) = evdet_train::session::join(&env, &cfg, tch::Device::Cpu).unwrap();
    let par = par.expect("a group of one");
    assert_eq!(device, tch::Device::Cpu);
    assert_eq!((par.rank(), par.world()), (0, 1));
    assert_eq!(par.pg.backend, Backend::Gloo);
    let parts = par
        .pg
        .all_gather_bytes(b"evdet", "a collective of one")
        .unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(&parts[0][..], b"evdet");
}
