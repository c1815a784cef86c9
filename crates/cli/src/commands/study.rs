//! `evdet study`: the arms × seeds of a study file as ordinary training runs under
//! `<runs_dir>/<study>/<arm>/seed<k>/`, then the statistics and a verdict per hypothesis
//! (`<runs_dir>/<study>/study.json` and a table). Each run is `evdet train` in a child process, so a
//! study resumes like a run does: finished runs are skipped, interrupted ones continue from their
//! checkpoints, failed ones are retried.

use evdet_study::runner::{find_study_file, Runner, RunnerOptions};
use evdet_study::until_decided::SequentialOptions;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Run a study: every arm × seed of a study file, then statistics and verdicts.
///
/// Each (arm, seed) is an ordinary `evdet train` run in <runs_dir>/<study>/<arm>/seed<k>/ (so eval,
/// predict and report work on it), with the arm's overrides, then `key=value` arguments given here,
/// then reproduce.seed=<k>. Rerunning skips finished runs and resumes interrupted ones.
///
/// Examples:
///   evdet study study/size_aware_mini.yaml
///   evdet study study/size_aware_mini.yaml --dry-run              # the plan, at once
///   evdet study study/size_aware_mini.yaml --dry-run --estimate   # and the training time, from 3 timed steps
///   evdet study study/size_aware_mini.yaml --no-train     # study.json from the runs finished so far
///   evdet study study/size_aware_mini.yaml --plan-power --effect 0.01   # seeds needed, from a pilot
///   evdet study study/size_aware_decide.yaml --until-decided --max-seeds 12   # rounds until decided
///   evdet study study/size_aware_mini.yaml training.max_steps=200 --parallel 2
///   evdet study study/size_aware_etram.yaml dataset.path=/data/etram_pre --devices cuda:0,cuda:1 --parallel 2
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The study file, relative to the config folder or a path.
    pub file: PathBuf,
    /// `dotted.key=value` overrides for every run (after the arm's own).
    pub overrides: Vec<String>,
    /// The config folder (default: ./config, else the one shipped next to the binary's repository).
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// Runs at a time.
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// Devices dealt to the parallel runs in turn (`cuda:0,cuda:1`, `cpu`); on the CPU each run gets
    /// the cores divided by --parallel unless hardware.cpu_threads is given.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Train every run on N data-parallel processes (`evdet train --nproc N`).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub nproc_per_run: usize,
    /// Print the plan (runs, their state and devices) and exit, at once: nothing is trained.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: also time 3 training steps of the first run still to do and extrapolate
    /// to every run left (takes as long as those steps and the model's start-up).
    #[arg(long, requires = "dry_run")]
    pub estimate: bool,
    /// Train nothing: write study.json, the study page and the table from the runs finished so far
    /// (a look at a study still under way; unfinished runs count as pending).
    #[arg(long, conflicts_with = "dry_run")]
    pub no_train: bool,
    /// Resamples of the test recordings for each hypothesis's bootstrap interval (0 = off).
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub bootstrap: usize,
    /// Train nothing: from the runs finished so far (a pilot), say per hypothesis how noisy the
    /// paired difference is, the smallest difference the seeds run can detect, and how many seeds
    /// would detect --effect (or the hypothesis's own effect / margin) with 80 % power.
    #[arg(long, conflicts_with_all = ["dry_run", "no_train"])]
    pub plan_power: bool,
    /// The difference from the margin (in the metric's units, e.g. 0.01 AP) that seed counts are
    /// planned for, for hypotheses that name no `effect` of their own.
    #[arg(long, value_name = "DELTA")]
    pub effect: Option<f64>,
    /// Run the seeds in rounds and stop each hypothesis once decided (group-sequential: O'Brien–
    /// Fleming spending, the family's error kept at alpha); later rounds add seeds only to the arms an
    /// undecided hypothesis compares. Needs --max-seeds.
    #[arg(long, requires = "max_seeds", conflicts_with_all = ["dry_run", "no_train", "plan_power"])]
    pub until_decided: bool,
    /// With --until-decided: seeds per arm at most (the study file's seeds first).
    #[arg(long, value_name = "N")]
    pub max_seeds: Option<usize>,
    /// With --until-decided: seeds added per round.
    #[arg(long, default_value_t = 2, value_name = "K")]
    pub seeds_per_round: usize,
    /// Write a SLURM job array (one task per arm/seed, each `--only ARM/SEED`) and a dependent
    /// aggregation job into <study folder>/slurm/, instead of running anything.
    #[arg(long, value_name = "slurm", value_parser = ["slurm"], conflicts_with_all = ["dry_run", "until_decided"])]
    pub emit: Option<String>,
    /// Train only this run of the study (ARM/SEED, e.g. 3scale/0), without the statistics: what each
    /// task of an --emit slurm array runs.
    #[arg(long, value_name = "ARM/SEED", conflicts_with_all = ["dry_run", "no_train", "until_decided"])]
    pub only: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config_dir = crate::configs::config_dir(args.config_dir.as_deref())?;
    let path = find_study_file(&args.file, &config_dir)?;
    let runner = Runner::prepare(
        &path,
        RunnerOptions {
            config_dir,
            overrides: args.overrides.clone(),
            parallel: args.parallel,
            devices: args.devices.clone(),
            nproc_per_run: args.nproc_per_run,
            bootstrap: args.bootstrap,
            effect: args.effect,
        },
    )?;
    let no_train = args.no_train || args.plan_power;
    runner.check_stamp(!args.dry_run && !no_train)?;
    let exe = std::env::current_exe()?;
    if let Some(which) = &args.only {
        let one = runner.only(which)?;
        let failed = one.train(&exe, &one.states(), &|e| eprintln!("{}", e.line()))?;
        if let Some(why) = failed.into_values().next() {
            anyhow::bail!("{which}: {why}");
        }
        return Ok(());
    }
    if args.emit.is_some() {
        let files = runner.emit_slurm(&exe)?;
        files.lines().iter().for_each(|l| println!("{l}"));
        return Ok(());
    }
    // Each run's state before anything trains (a run's state is read again after training).
    let states = runner.states();
    runner
        .plan_lines(&states)
        .iter()
        .for_each(|l| println!("{l}"));
    if args.dry_run {
        if !args.estimate {
            println!(
                "(add --estimate to time 3 training steps and estimate the study's training time)"
            );
        } else {
            match runner.estimate(&exe, &states) {
                Some(Ok(e)) => println!("{}", e.line(runner.parallel())),
                Some(Err(e)) => println!("no time estimate: {e}"),
                None => {}
            }
        }
        return Ok(());
    }
    let (summary, failed) = match (args.until_decided, args.max_seeds) {
        (true, Some(max_seeds)) => {
            let seq = SequentialOptions {
                max_seeds,
                per_round: args.seeds_per_round,
            };
            println!("{}", runner.schedule(&seq)?.line());
            runner.until_decided(
                &exe,
                &seq,
                &|event| eprintln!("{}", event.line()),
                &|look| eprintln!("{}", look.line()),
            )?
        }
        _ => {
            let failed = if no_train {
                BTreeMap::new()
            } else {
                runner.train(&exe, &states, &|event| eprintln!("{}", event.line()))?
            };
            (runner.summarize(&failed, no_train)?, failed.len())
        }
    };
    let total = summary.result.runs.len();
    let lines = if args.plan_power {
        summary.result.power_lines()
    } else {
        summary.lines(args.no_train, total)
    };
    lines.iter().for_each(|l| println!("{l}"));
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {total} runs failed (the verdicts say which seeds are missing); rerun the same command to retry them"
        );
    }
    Ok(())
}
