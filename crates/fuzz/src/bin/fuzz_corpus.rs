//! Writes every fuzz target's seed files into `<out>/<target>/`, the starting corpus of
//! `cargo fuzz run <target> <out>/<target>` (see scripts/fuzz.sh).

fn main() {
    let out = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    for t in evdet_fuzz::targets::all() {
        let dir = out.join(t.name);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("{}: {e}", dir.display());
            std::process::exit(1);
        }
        let seeds = (t.seeds)();
        for (name, bytes) in &seeds {
            let file = dir.join(name.replace('/', "_"));
            if let Err(e) = std::fs::write(&file, bytes) {
                eprintln!("{}: {e}", file.display());
                std::process::exit(1);
            }
        }
        println!(
            "{}: {} seed files in {}",
            t.name,
            seeds.len(),
            dir.display()
        );
    }
}
