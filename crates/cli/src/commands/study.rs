//! `evdet study`: the arms × seeds of a study file as ordinary training runs under
//! `<runs_dir>/<study>/<arm>/seed<k>/`, then the statistics and a verdict per hypothesis
//! (`<runs_dir>/<study>/study.json` and a table). Each run is `evdet train` in a child process, so a
//! study resumes like a run does: finished runs are skipped, interrupted ones continue from their
//! checkpoints, failed ones are retried.

use anyhow::Context;
use evdet_study::aggregate::{aggregate, RunRecord, StudyResult};
use evdet_study::file::StudyFile;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

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
}

/// One run of the plan.
struct Planned {
    arm: String,
    seed: u64,
    dir: PathBuf,
    args: Vec<String>,
}

fn state_of(dir: &Path) -> &'static str {
    let run = evdet_run::RunDir::at(dir);
    if run.eval().metrics("test").is_file() {
        "done"
    } else if run.has_last() {
        "interrupted"
    } else {
        "pending"
    }
}

fn read_metrics(dir: &Path) -> BTreeMap<String, f64> {
    // The numbers only: the file also names the checkpoint evaluated.
    evdet_report::run::read_flat_metrics(&evdet_run::RunDir::at(dir).eval().metrics("test"))
        .unwrap_or_default()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config_dir = crate::configs::config_dir(args.config_dir.as_deref())?;
    let path = if args.file.is_file() {
        args.file.clone()
    } else {
        config_dir.join(&args.file)
    };
    if !path.is_file() {
        let shipped: Vec<String> = std::fs::read_dir(config_dir.join("study"))
            .map(|d| {
                let mut v: Vec<String> = d
                    .flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.ends_with(".yaml").then(|| format!("study/{n}"))
                    })
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default();
        anyhow::bail!(
            "no study file {} (looked at {} and {}); the shipped studies: {}",
            args.file.display(),
            args.file.display(),
            path.display(),
            if shipped.is_empty() {
                "none".into()
            } else {
                shipped.join(", ")
            }
        );
    }
    let study = StudyFile::load(&path)?;
    // The command line's overrides first, on their own: a typo there is the command line's, not the
    // first arm's. Then every arm's config composes (before any training).
    if !args.overrides.is_empty() {
        evdet_config::load(&config_dir, Path::new(&study.experiment), &args.overrides)
            .with_context(|| {
                format!(
                    "the key=value overrides on the command line ({}), applied to {}",
                    args.overrides.join(" "),
                    study.experiment
                )
            })?;
    }
    let mut runs_dir = None;
    let mut max_steps: BTreeMap<String, u64> = BTreeMap::new();
    for (arm, overrides) in &study.arms {
        let all: Vec<String> = overrides.iter().chain(&args.overrides).cloned().collect();
        let cfg = evdet_config::load(&config_dir, Path::new(&study.experiment), &all)
            .with_context(|| format!("{}: arm '{arm}'", path.display()))?;
        max_steps.insert(arm.clone(), cfg.training.max_steps);
        runs_dir.get_or_insert(cfg.logging.runs_dir);
    }
    let root = PathBuf::from(runs_dir.unwrap_or_else(|| "runs".into())).join(&study.study);
    check_same_study(
        &root,
        &study,
        &args.overrides,
        !args.dry_run && !args.no_train,
    )?;

    let plan: Vec<Planned> = study
        .runs()
        .into_iter()
        .map(|(arm, seed)| {
            let mut a = vec![
                "--config".to_string(),
                study.experiment.clone(),
                "--config-dir".into(),
                config_dir.display().to_string(),
            ];
            if args.nproc_per_run > 1 {
                a.extend(["--nproc".into(), args.nproc_per_run.to_string()]);
            }
            a.extend(study.arms[&arm].iter().cloned());
            a.extend(args.overrides.iter().cloned());
            a.extend([
                format!("reproduce.seed={seed}"),
                format!(
                    "logging.runs_dir={}",
                    root.parent().unwrap_or(Path::new(".")).display()
                ),
                format!("logging.project={}", study.study),
                format!("logging.group={arm}"),
                format!("logging.experiment_id=seed{seed}"),
            ]);
            Planned {
                dir: root.join(&arm).join(format!("seed{seed}")),
                arm,
                seed,
                args: a,
            }
        })
        .collect();
    // Each run's state before anything trains (a run's state is read again after training).
    let states: Vec<&str> = plan.iter().map(|p| state_of(&p.dir)).collect();
    let parallel = args.parallel.max(1);
    let devices = if args.devices.is_empty() {
        vec![String::new()]
    } else {
        args.devices.clone()
    };
    let cpu_share = (std::thread::available_parallelism().map_or(1, |n| n.get()) / parallel).max(1);
    let sets_threads = args
        .overrides
        .iter()
        .any(|o| o.starts_with("hardware.cpu_threads="));
    println!(
        "study {}: {} arms × {} seeds = {} runs in {} ({} at a time)",
        study.study,
        study.arms.len(),
        study.seeds.len(),
        plan.len(),
        root.display(),
        parallel
    );
    for (i, p) in plan.iter().enumerate() {
        let dev = &devices[i % parallel % devices.len()];
        println!(
            "  {:<24} seed {:<4} {:<12} {}",
            p.arm,
            p.seed,
            states[i],
            if dev.is_empty() {
                "default device"
            } else {
                dev
            }
        );
    }
    if args.dry_run && !args.estimate {
        println!(
            "(add --estimate to time 3 training steps and estimate the study's training time)"
        );
        return Ok(());
    }
    if args.dry_run {
        // A few timed steps of the first run still to do, extrapolated to every run left.
        let todo: Vec<&Planned> = plan
            .iter()
            .zip(&states)
            .filter(|(_, &st)| st != "done")
            .map(|(p, _)| p)
            .collect();
        if let Some(first) = todo.first() {
            let rel = first
                .dir
                .strip_prefix(root.parent().unwrap_or(Path::new(".")))
                .unwrap_or(&first.dir);
            match time_steps(&first.args, rel) {
                Ok(step_s) => {
                    let steps: u64 = todo.iter().map(|p| max_steps[&p.arm]).sum();
                    let hours = step_s * steps as f64 / parallel as f64 / 3600.0;
                    println!(
                        "estimated: {step_s:.2} s per training step (3 timed steps of {} seed {}) × {steps} steps left / {parallel} at a time ≈ {hours:.1} h of training, evaluations not included",
                        first.arm, first.seed
                    );
                }
                Err(e) => println!("no time estimate: {e:#}"),
            }
        }
        return Ok(());
    }
    if args.no_train && !states.contains(&"done") {
        anyhow::bail!(
            "no run of study '{}' has finished yet in {}: nothing to summarize",
            study.study,
            root.display()
        );
    }
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let exe = std::env::current_exe()?;
    let queue = Arc::new(Mutex::new(
        (0..plan.len())
            .filter(|&i| !args.no_train && states[i] != "done")
            .collect::<std::collections::VecDeque<_>>(),
    ));
    let failed = Arc::new(Mutex::new(BTreeMap::<usize, String>::new()));
    let plan = Arc::new(plan);
    let total = plan.len();
    std::thread::scope(|s| {
        for slot in 0..parallel {
            let (queue, failed, plan, exe) = (queue.clone(), failed.clone(), plan.clone(), &exe);
            let dev = devices[slot % devices.len()].clone();
            let root = &root;
            s.spawn(move || loop {
                let Some(i) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else {
                    return;
                };
                let p = &plan[i];
                let mut cmd = Command::new(exe);
                cmd.arg("train").args(&p.args);
                // A study that is killed takes its training run along (the run resumes next time).
                // SAFETY: prctl is async-signal-safe.
                unsafe {
                    use std::os::unix::process::CommandExt;
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                        Ok(())
                    });
                }
                if !dev.is_empty() {
                    cmd.args(["--device", &dev]);
                }
                if parallel > 1 && !sets_threads && !dev.starts_with("cuda") {
                    cmd.arg(format!("hardware.cpu_threads={cpu_share}"));
                }
                let log = root.join(&p.arm).join(format!("seed{}.log", p.seed));
                let outcome = std::fs::create_dir_all(log.parent().unwrap_or(root))
                    .and_then(|_| std::fs::File::create(&log))
                    .and_then(|f| {
                        let f2 = f.try_clone()?;
                        eprintln!(
                            "[{}/{}] {} seed {}: training (log: {})",
                            i + 1,
                            total,
                            p.arm,
                            p.seed,
                            log.display()
                        );
                        cmd.stdout(f).stderr(f2).status()
                    });
                let msg = match outcome {
                    Ok(st) if st.success() => None,
                    Ok(st) => Some(format!(
                        "evdet train exited with {st} (see {})",
                        log.display()
                    )),
                    Err(e) => Some(format!("could not start evdet train: {e}")),
                };
                match msg {
                    None => eprintln!("[{}/{}] {} seed {}: done", i + 1, total, p.arm, p.seed),
                    Some(m) => {
                        eprintln!(
                            "[{}/{}] {} seed {}: FAILED: {m}",
                            i + 1,
                            total,
                            p.arm,
                            p.seed
                        );
                        failed
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(i, m);
                    }
                }
            });
        }
    });
    let failed = failed.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // study.json lists runs arm by arm (name order), seeds in file order, whatever order they ran in.
    let mut order: Vec<usize> = (0..plan.len()).collect();
    let seed_pos = |s: u64| study.seeds.iter().position(|&x| x == s);
    order.sort_by(|&a, &b| {
        (&plan[a].arm, seed_pos(plan[a].seed)).cmp(&(&plan[b].arm, seed_pos(plan[b].seed)))
    });
    let records: Vec<RunRecord> = order
        .into_iter()
        .map(|i| (i, &plan[i]))
        .map(|(i, p)| {
            let status = if failed.contains_key(&i) {
                "failed"
            } else if state_of(&p.dir) == "done" {
                "done"
            } else {
                "pending"
            };
            RunRecord {
                arm: p.arm.clone(),
                seed: p.seed,
                status: status.into(),
                metrics: if status == "done" {
                    read_metrics(&p.dir)
                } else {
                    BTreeMap::new()
                },
            }
        })
        .collect();
    let mut result = aggregate(&study, records);
    evdet_study::aggregate::add_bootstrap(&mut result, &root, args.bootstrap, 0);
    let out = root.join("study.json");
    let json = serde_json::to_string_pretty(&result)?;
    evdet_atomic::write(&out, json.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    let page = root.join("study.html");
    let html =
        evdet_report::study_page::study_page(&serde_json::to_value(&result)?, |arm, seed| {
            evdet_run::RunDir::at(root.join(arm).join(format!("seed{seed}")))
                .report()
                .is_file()
        });
    evdet_atomic::write(&page, html.as_bytes())
        .with_context(|| format!("writing {}", page.display()))?;
    print_table(&result);
    println!(
        "study.json: {}
study page: {}",
        out.display(),
        page.display()
    );
    if args.no_train {
        let done = result.runs.iter().filter(|r| r.status == "done").count();
        if done < total {
            println!(
                "{done} of {total} runs finished; the others count as pending (run without --no-train to continue the study)"
            );
        } else {
            println!("all {total} runs finished");
        }
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} runs failed (the verdicts say which seeds are missing); rerun the same command to retry them",
            failed.len(),
            total
        );
    }
    Ok(())
}

/// Seconds per training step of a run with these `evdet train` arguments: three steps in a temporary
/// runs folder, the median of the last two (the first pays for warm-up).
fn time_steps(train_args: &[String], run_in_runs_dir: &Path) -> anyhow::Result<f64> {
    let tmp = tempfile::tempdir()?;
    let out = Command::new(std::env::current_exe()?)
        .arg("train")
        .arg("--no-test")
        .args(train_args)
        .args([
            "training.max_steps=3",
            "logging.log_every_n_steps=1",
            "validation.val_check_interval=100000",
            "validation.limit_val_batches=1",
        ])
        .arg(format!("logging.runs_dir={}", tmp.path().display()))
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "the timing run failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let log = evdet_run::RunDir::at(tmp.path().join(run_in_runs_dir)).metrics_log();
    anyhow::ensure!(log.is_file(), "the timing run wrote no {}", log.display());
    let mut times: Vec<f64> = std::fs::read_to_string(log)?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["step"].as_u64().is_some_and(|s| s > 1))
        .filter_map(|v| {
            Some(v["train/compute_time_s"].as_f64()? + v["train/data_time_s"].as_f64()?)
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
        .get(times.len() / 2)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("the timing run logged no step times"))
}

/// The runs folder remembers the study it belongs to; another study file (or other run-wide
/// overrides) must not mix its runs in.
fn check_same_study(
    root: &Path,
    study: &StudyFile,
    overrides: &[String],
    stamp_it: bool,
) -> anyhow::Result<()> {
    let stamp = root.join("study.yaml");
    let mine = serde_yaml::to_value(serde_json::json!({"file": study, "overrides": overrides}))?;
    if let Ok(text) = std::fs::read_to_string(&stamp) {
        let theirs: serde_yaml::Value =
            serde_yaml::from_str(&text).with_context(|| format!("reading {}", stamp.display()))?;
        if theirs != mine {
            let keys: Vec<String> = evdet_config::differing_keys(&theirs, &mine)
                .into_iter()
                .map(|d| d.key)
                .collect();
            anyhow::bail!(
                "{} holds the runs of a different study definition (differs in: {}); use another study name or runs folder",
                root.display(),
                keys.join(", ")
            );
        }
        return Ok(());
    }
    if !stamp_it {
        return Ok(());
    }
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    evdet_atomic::write(&stamp, serde_yaml::to_string(&mine)?.as_bytes())
        .with_context(|| format!("writing {}", stamp.display()))?;
    Ok(())
}

/// Per arm the headline metrics as mean ± CI half-width over seeds, then every hypothesis.
fn print_table(r: &StudyResult) {
    const METRICS: [&str; 5] = [
        "test/prophesee/AP",
        "test/prophesee/AP50",
        "test/prophesee/AP_S",
        "test/unfiltered/AP",
        "test/unfiltered/AP_S",
    ];
    println!();
    print!("{:<20}", "arm");
    for m in METRICS {
        print!(" {:>20}", m.trim_start_matches("test/"));
    }
    println!();
    for (arm, metrics) in &r.arms {
        print!("{:<20}", arm);
        for m in METRICS {
            let cell = match metrics.get(m) {
                Some(s) => match (s.ci95_low, s.ci95_high) {
                    (Some(lo), Some(hi)) => format!("{:.4} ± {:.4}", s.mean, (hi - lo) / 2.0),
                    _ => format!("{:.4} (n={})", s.mean, s.n),
                },
                None => "—".into(),
            };
            print!(" {cell:>20}");
        }
        println!();
    }
    println!("(mean ± half-width of the 95 % Student t interval over seeds)\n");
    for h in &r.hypotheses {
        let x = &h.hypothesis;
        let diff = match (h.mean_diff, h.ci95_low, h.ci95_high) {
            (Some(d), Some(lo), Some(hi)) => format!(
                "difference {d:+.4} [{lo:+.4}, {hi:+.4}], p = {}",
                h.p_value.map_or("—".into(), |p| format!("{p:.3}"))
            ),
            (Some(d), _, _) => format!("difference {d:+.4}, no interval"),
            _ => "no paired runs".into(),
        };
        let boot = match (h.bootstrap_ci95_low, h.bootstrap_ci95_high) {
            (Some(lo), Some(hi)) => format!("bootstrap over recordings [{lo:+.4}, {hi:+.4}]"),
            _ => format!("bootstrap: {}", h.bootstrap_note),
        };
        println!(
            "{}: {} of {} {} {} {:+}  — {}; {}; {}",
            h.verdict.word(),
            x.metric,
            x.arm,
            x.op.symbol(),
            x.than,
            x.margin,
            diff,
            boot,
            h.note
        );
    }
}
