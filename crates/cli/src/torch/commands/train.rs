//! `evdet train`: trains an experiment into `runs/<project>/<group>/<experiment_id>/`, resuming from its
//! `last` checkpoint when there is one, then evaluates on the test split and prints the metric table.
//! Data parallel over several processes when started by torchrun, SLURM or `--nproc N`.

use crate::evaluation::write_all;
use crate::progress::Progress;
use anyhow::Context;
use evdet_train::session::{SessionHooks, SessionOptions};
use evdet_train::trainer::{StepReport, Trainer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Train an experiment (default: the CPU-sized synthetic `mini` experiment).
///
/// The experiment YAML names a model and a dataset config and overrides keys; `dotted.key=value`
/// arguments override anything. A killed run resumes from `checkpoints/last`; `--fresh` starts over.
///
/// Examples:
///   evdet train                                                  # config/experiment/synthetic/mini.yaml
///   evdet train --config experiment/gen4/size_aware.yaml dataset.path=/data/etram_pre
///   evdet train training.max_steps=200 batch_size.train=2 hardware.num_workers.train=2
///   evdet train --config experiment/gen1/base.yaml dataset.path=/data/gen1 --print-config   # RVT's Gen1 recipe
///
/// Several processes (data parallel, c10d: Gloo on CPU, NCCL on GPUs; batch_size.train is per process):
///   evdet train --nproc 2                                        # 2 ranks on this machine
///   torchrun --nproc-per-node 8 --no-python evdet train --config …  # one node, 8 GPUs
///   srun --ntasks-per-node 8 evdet train …                       # SLURM (export MASTER_ADDR first)
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Experiment file, relative to the config folder or a path.
    #[arg(long, default_value = "experiment/synthetic/mini.yaml")]
    pub config: PathBuf,
    /// The config folder (default: ./config, else the one shipped next to the binary's repository).
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    #[command(flatten)]
    pub device: crate::device::DeviceArg,
    /// Start over even if the run folder holds a checkpoint.
    #[arg(long)]
    pub fresh: bool,
    /// Skip the final evaluation on the test split.
    #[arg(long)]
    pub no_test: bool,
    /// Start N data-parallel ranks on this machine (like `torchrun --standalone --nproc-per-node N`);
    /// on the CPU each rank gets the cores divided by N unless hardware.cpu_threads says otherwise.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub nproc: u16,
    /// Print the composed configuration (the experiment, its defaults and the overrides) as YAML and
    /// exit without training: what this command line would run.
    #[arg(long)]
    pub print_config: bool,
    /// `dotted.key=value` overrides.
    pub overrides: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg =
        crate::configs::load_config(&args.config, args.config_dir.as_deref(), &args.overrides)?;
    if args.print_config {
        print!("{}", cfg.to_yaml());
        return Ok(());
    }
    let env = evdet_dist::LaunchEnv::from_env()?;
    if args.nproc > 1 {
        let raw: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        let exe = std::env::current_exe()?;
        // Only the first-use lines of the sample are shown here; the ranks show the rest.
        let console = Console::new(false, &args.config, &cfg);
        let code = evdet_train::session::launch_local(
            &cfg,
            &env,
            &exe,
            &raw,
            args.nproc.into(),
            &console,
        )?;
        if code != 0 {
            std::process::exit(code);
        }
        return Ok(());
    }
    let (rank, world) = (env.rank, env.world_size);
    let distributed = env.is_distributed();
    let result = session(&args, cfg, env);
    if !distributed {
        return result;
    }
    // Collective errors name the rank themselves; others get it in front.
    result.map_err(|e| {
        if format!("{e:#}").starts_with(&format!("rank {rank} of {world}")) {
            e
        } else {
            e.context(format!("rank {rank} of {world}"))
        }
    })
}

/// One training session (alone, or as this process's rank of a data-parallel run), then the test
/// metrics, the report and the success criteria from the process that talks to the user.
fn session(
    args: &Args,
    cfg: evdet_config::ExperimentConfig,
    env: evdet_dist::LaunchEnv,
) -> anyhow::Result<()> {
    let dev = args.device.resolve_or(&cfg.hardware.device)?;
    let (device, par) = evdet_train::session::join(&env, &cfg, dev)?;
    let console = Console::new(par.is_none() || env.rank == 0, &args.config, &cfg);
    let out = evdet_train::session::run(
        cfg,
        par,
        SessionOptions {
            device,
            fresh: args.fresh,
            test: !args.no_test,
        },
        &console,
    )?;
    if let (true, Some(ev)) = (out.talks, &out.test) {
        write_test_and_report(
            ev,
            &out.trainer.cfg,
            &out.trainer.run,
            out.trainer.state.step,
        )?;
    }
    Ok(())
}

/// What `evdet train` shows: the set-up lines, a progress bar (plain lines outside a terminal) with the
/// losses, validation results, the end of training and the test evaluation's progress. Ranks other
/// than 0 show nothing.
struct Console {
    talks: bool,
    config: PathBuf,
    steps: Progress,
    test: OnceLock<Progress>,
}

impl Console {
    fn new(talks: bool, config: &std::path::Path, cfg: &evdet_config::ExperimentConfig) -> Self {
        Console {
            talks,
            config: config.to_path_buf(),
            steps: if talks {
                crate::progress::bar(cfg.training.max_steps, "steps")
            } else {
                crate::progress::hidden()
            },
            test: OnceLock::new(),
        }
    }
}

impl SessionHooks for Console {
    fn first_use(&self, step: &str) {
        eprintln!("first use: {step}");
    }

    fn started(&self, trainer: &Trainer, data: &std::path::Path) {
        for l in trainer.start_lines(&self.config, data) {
            eprintln!("{l}");
        }
        self.steps.set_position(trainer.state.step);
    }

    fn step(&self, r: &StepReport) {
        self.steps.set_position(r.step);
        self.steps.set_message(r.message());
    }

    fn validated(&self, m: &BTreeMap<String, f64>) {
        if self.talks {
            self.steps.println(evdet_train::text::validation_line(m));
        }
    }

    fn finished(&self, trainer: &Trainer) {
        self.steps.finish_and_clear();
        eprintln!(
            "training done: {} steps, run folder {}",
            trainer.state.step,
            trainer.run.root().display()
        );
    }

    fn test_progress(&self, done: usize, total: usize) {
        let pb = self.test.get_or_init(|| {
            let pb = crate::progress::bar(total as u64, "batches");
            pb.set_message("evaluating test");
            pb
        });
        pb.set_length(total as u64);
        pb.set_position(done as u64);
        if done >= total {
            pb.finish_and_clear();
        }
    }
}

/// Writes the test evaluation into the run folder, builds `report.html` and prints the success
/// criteria and where the report is.
fn write_test_and_report(
    ev: &evdet_train::evaluate::SplitEvaluation,
    cfg: &evdet_config::ExperimentConfig,
    run: &evdet_run::RunDir,
    step: u64,
) -> anyhow::Result<()> {
    // The test split is evaluated with the weights in memory (the moving average with training.ema),
    // which `fit` saved as `last` at its end.
    let weights = evdet_infer::checkpoint::Provenance::of_checkpoint(&run.last(), step)?;
    write_all(ev, cfg, &run.eval().metrics("test"), &weights)?;
    let report = run.report();
    let summary = evdet_report::build_report(&[run.root().to_path_buf()], &report)
        .with_context(|| format!("building {}", report.display()))?;
    for c in &summary.criteria {
        println!("{c}");
    }
    println!("report: {}", report.display());
    Ok(())
}
