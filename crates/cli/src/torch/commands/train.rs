//! `evdet train`: trains an experiment into `runs/<project>/<group>/<experiment_id>/`, resuming from its
//! `last` checkpoint when there is one, then evaluates on the test split and prints the metric table.
//! Data parallel over several processes when started by torchrun, SLURM or `--nproc N`.

use crate::evaluation::{evaluate_split, write_all};
use anyhow::Context;
use evdet_train::trainer::Trainer;
use std::path::PathBuf;
use std::sync::Arc;

/// Train an experiment (default: the CPU-sized synthetic `mini` experiment).
///
/// The experiment YAML names a model and a dataset config and overrides keys; `dotted.key=value`
/// arguments override anything. A killed run resumes from `checkpoints/last`; `--fresh` starts over.
///
/// Examples:
///   evdet train                                                  # config/experiment/synthetic/mini.yaml
///   evdet train --config experiment/gen4/size_aware.yaml dataset.path=/data/etram_pre
///   evdet train training.max_steps=200 batch_size.train=2 hardware.num_workers.train=2
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
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub nproc: usize,
    /// `dotted.key=value` overrides.
    pub overrides: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg =
        crate::configs::load_config(&args.config, args.config_dir.as_deref(), &args.overrides)?;
    let env = evdet_dist::LaunchEnv::from_env()?;
    if args.nproc == 0 {
        anyhow::bail!("--nproc must be at least 1");
    }
    if args.nproc > 1 {
        if env.is_distributed() {
            anyhow::bail!(
                "--nproc {} starts ranks itself, but this process is already rank {} of {} ({}): leave --nproc out under a launcher",
                args.nproc, env.rank, env.world_size, env.launcher
            );
        }
        // The sample is generated once, before the ranks start.
        evdet_train::data::synthetic::ensure(&cfg, |step| eprintln!("first use: {step}"))?;
        let raw: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        let exe = std::env::current_exe()?;
        let code = evdet_cli::launch::run_local(
            &exe,
            &evdet_cli::launch::without_nproc(&raw),
            args.nproc,
        )?;
        if code != 0 {
            std::process::exit(code);
        }
        return Ok(());
    }
    if env.is_distributed() {
        let (rank, world) = (env.rank, env.world_size);
        // Collective errors name the rank themselves; others get it in front.
        return run_rank(args, cfg, env).map_err(|e| {
            if format!("{e:#}").starts_with(&format!("rank {rank} of {world}")) {
                e
            } else {
                e.context(format!("rank {rank} of {world}"))
            }
        });
    }
    let data = evdet_train::data::synthetic::ensure(&cfg, |step| eprintln!("first use: {step}"))?;
    let dev = args.device.resolve_or(&cfg.hardware.device)?;
    let run_dir = evdet_train::trainer::run_dir(&cfg);
    if args.fresh && run_dir.exists() {
        // Never delete a folder another evdet train is writing.
        drop(evdet_train::run_lock::RunLock::acquire(&run_dir)?);
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("removing {}", run_dir.display()))?;
    }
    let mut trainer = Trainer::new(cfg.clone(), &data, dev, true)?;
    let start_step = trainer.state.step;
    for n in &trainer.notices {
        eprintln!("{n}");
    }
    if let Some(r) = &trainer.init_report {
        eprintln!(
            "model.init_from {}: {} (every name in {})",
            cfg.model["init_from"].as_str().unwrap_or_default(),
            r.summary(),
            run_dir.join("init_from.json").display()
        );
    }
    eprintln!(
        "training {} on {} ({} train sequences) on {:?} -> {}{}",
        args.config.display(),
        data.display(),
        trainer.train_data().sequences.len(),
        dev,
        run_dir.display(),
        if start_step > 0 {
            format!(" (resuming at step {start_step})")
        } else {
            String::new()
        }
    );
    let pb = crate::progress::bar(cfg.training.max_steps, "steps");
    pb.set_position(start_step);
    trainer.fit(
        None,
        |r| {
            pb.set_position(r.step);
            let g = |k: &str| r.metrics.get(k).copied().unwrap_or(f64::NAN);
            pb.set_message(format!(
                "loss {:.3} (iou {:.3} obj {:.3} cls {:.3}) lr {:.2e} data {:.0}% ",
                g("train/loss"),
                g("train/iou_loss"),
                g("train/conf_loss"),
                g("train/cls_loss"),
                g("train/lr"),
                100.0 * r.data_s / (r.data_s + r.compute_s).max(1e-9)
            ));
        },
        |m| {
            pb.println(format!(
                "validation: AP {:.4} AP50 {:.4} (prophesee)  AP {:.4} AP50 {:.4} (unfiltered)",
                m.get("val/prophesee/AP").unwrap_or(&f64::NAN),
                m.get("val/prophesee/AP50").unwrap_or(&f64::NAN),
                m.get("val/unfiltered/AP").unwrap_or(&f64::NAN),
                m.get("val/unfiltered/AP50").unwrap_or(&f64::NAN)
            ));
        },
    )?;
    pb.finish_and_clear();
    eprintln!(
        "training done: {} steps, run folder {}",
        trainer.state.step,
        run_dir.display()
    );
    if !args.no_test {
        let test = Arc::new(evdet_train::trainer::open_split(
            &trainer.cfg,
            &data,
            "test",
        )?);
        let ev = evaluate_split(&trainer.det, &trainer.cfg, test, "test", dev, 0.001)?;
        write_test_and_report(&ev, &trainer.cfg, &run_dir, trainer.state.step)?;
    }
    Ok(())
}

/// Writes the test evaluation into the run folder, builds `report.html` and prints the success
/// criteria and where the report is.
fn write_test_and_report(
    ev: &evdet_train::evaluate::SplitEvaluation,
    cfg: &evdet_train::config::ExperimentConfig,
    run_dir: &std::path::Path,
    step: u64,
) -> anyhow::Result<()> {
    // The test split is evaluated with the weights in memory, which `fit` saved as `last` at its end.
    let weights =
        evdet_train::checkpoint::Provenance::of(&run_dir.join("checkpoints").join("last"), step)?;
    write_all(
        ev,
        cfg,
        &run_dir.join("eval").join("test_metrics.json"),
        &weights,
    )?;
    let report = run_dir.join("report.html");
    let summary = evdet_report::build_report(&[run_dir.to_path_buf()], &report)
        .with_context(|| format!("building {}", report.display()))?;
    for c in &summary.criteria {
        println!("{c}");
    }
    println!("report: {}", report.display());
    Ok(())
}

/// One rank of a data-parallel run: joins the process group, trains its share, evaluates its shard
/// of the test split; rank 0 alone talks to the user and writes files.
fn run_rank(
    args: Args,
    cfg: evdet_train::config::ExperimentConfig,
    env: evdet_dist::LaunchEnv,
) -> anyhow::Result<()> {
    let root = env.rank == 0;
    let dev = match args.device.resolve_or(&cfg.hardware.device)? {
        // Rank r of a node drives that node's GPU r.
        tch::Device::Cuda(_) => tch::Device::Cuda(env.local_rank),
        d => d,
    };
    if dev == tch::Device::Cpu && cfg.hardware.cpu_threads == 0 {
        let threads = evdet_train::parallel::cpu_threads_per_rank(0, env.local_world_size);
        tch::set_num_threads(threads as i32);
    }
    let par = evdet_train::parallel::Parallel::join(&env, &cfg, dev)?
        .ok_or_else(|| anyhow::anyhow!("WORLD_SIZE is 1: nothing to join"))?;
    // Rank 0 generates a missing synthetic sample; the others wait for it at the barrier.
    let data = if root {
        let d = evdet_train::data::synthetic::ensure(&cfg, |step| eprintln!("first use: {step}"))?;
        par.pg
            .barrier("waiting for rank 0 to prepare the dataset")?;
        d
    } else {
        par.pg
            .barrier("waiting for rank 0 to prepare the dataset")?;
        evdet_train::data::synthetic::ensure(&cfg, |_| {})?
    };
    let run_dir = evdet_train::trainer::run_dir(&cfg);
    if args.fresh && root && run_dir.exists() {
        drop(evdet_train::run_lock::RunLock::acquire(&run_dir)?);
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("removing {}", run_dir.display()))?;
    }
    par.pg
        .barrier("waiting for rank 0 to prepare the run folder")?;
    let mut trainer = Trainer::new_parallel(cfg.clone(), &data, dev, true, Some(par.clone()))?;
    let start_step = trainer.state.step;
    if root {
        for n in &trainer.notices {
            eprintln!("{n}");
        }
        eprintln!(
            "training {} on {} with {} processes ({}, global batch {}) on {:?} per rank -> {}{}",
            args.config.display(),
            data.display(),
            env.world_size,
            par.pg.backend.name(),
            trainer.cfg.batch_size.train * env.world_size,
            dev,
            run_dir.display(),
            if start_step > 0 {
                format!(" (resuming at step {start_step})")
            } else {
                String::new()
            }
        );
    }
    let pb = if root {
        crate::progress::bar(cfg.training.max_steps, "steps")
    } else {
        crate::progress::hidden()
    };
    pb.set_position(start_step);
    trainer.fit(
        None,
        |r| {
            pb.set_position(r.step);
            let g = |k: &str| r.metrics.get(k).copied().unwrap_or(f64::NAN);
            pb.set_message(format!(
                "loss {:.3} lr {:.2e} ",
                g("train/loss"),
                g("train/lr")
            ));
        },
        |m| {
            pb.println(format!(
                "validation: AP {:.4} AP50 {:.4} (prophesee)",
                m.get("val/prophesee/AP").unwrap_or(&f64::NAN),
                m.get("val/prophesee/AP50").unwrap_or(&f64::NAN),
            ));
        },
    )?;
    pb.finish_and_clear();
    if !args.no_test {
        let test = Arc::new(evdet_train::trainer::open_split(
            &trainer.cfg,
            &data,
            "test",
        )?);
        let ev = evdet_train::evaluate::evaluate_split_parallel(
            &trainer.det,
            &trainer.cfg,
            test,
            "test",
            dev,
            0.001,
            Some(&par),
            |_, _| {},
        )?;
        if root {
            write_test_and_report(&ev, &trainer.cfg, &run_dir, trainer.state.step)?;
        }
    }
    if root {
        eprintln!(
            "training done: {} steps, run folder {}",
            trainer.state.step,
            run_dir.display()
        );
    }
    Ok(())
}
