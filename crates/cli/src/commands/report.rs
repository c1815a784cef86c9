//! `evdet report`: one self-contained HTML page (and PNG plots beside it) for one run or a comparison
//! of several, with the success criteria of their configs marked met or not met.

use anyhow::Context;
use std::path::PathBuf;

/// Build an HTML report of one or several runs (the first run is the comparison baseline).
///
/// Examples:
///   evdet report runs/synthetic/mini/4scale_sizeaware_tiny
///   evdet report runs/etram/baseline/3scale runs/etram/size_aware/4scale_sa --out compare.html
///
/// The page holds training curves (loss parts, lr, gradient norm), validation AP over steps, the final
/// metric table for both protocols, AP by size bin and by class, the small-class group, PR curves, a
/// confusion-matrix heat map and sample detections beside ground truth (all read from the run folders:
/// metrics.jsonl, eval/<split>_metrics.json, eval/<split>_analysis.json, eval/samples/). With several
/// runs it adds a comparison table with deltas against the first run and checks every run's
/// `success_criteria`. Everything is embedded (no network); the plots are also written as PNG files
/// into <report stem>_files/. Exit status 0 even when criteria are not met (they are printed).
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Run folders (runs/<project>/<group>/<experiment_id>); the first is the baseline.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output HTML file (default: <run>/report.html for one run, report.html for several).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    for r in &args.runs {
        if !r.is_dir() {
            anyhow::bail!("{}: not a run folder", r.display());
        }
    }
    let out = args.out.clone().unwrap_or_else(|| {
        if args.runs.len() == 1 {
            evdet_run::RunDir::at(&args.runs[0]).report()
        } else {
            PathBuf::from("report.html")
        }
    });
    let summary = evdet_report::build_report(&args.runs, &out)
        .with_context(|| format!("building {}", out.display()))?;
    for c in &summary.criteria {
        println!("{c}");
    }
    println!("report written to {}", out.display());
    Ok(())
}
