//! This process's memory as the kernel counts it (Linux `/proc/self/status`): the resident set and its
//! high-water mark, for the training log and the benchmarks. `None` where the file does not exist.

/// Resident memory now and its peak since the process started (or the last [`reset_peak`]), MiB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessMemory {
    pub rss_mib: f64,
    pub peak_mib: f64,
}

/// Reads `VmRSS` and `VmHWM`.
pub fn read() -> Option<ProcessMemory> {
    parse(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// Resets the peak to the current resident set (writing 5 to `clear_refs`, Linux ≥ 4.0).
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn parse(status: &str) -> Option<ProcessMemory> {
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some(ProcessMemory {
        rss_mib: field("VmRSS:")?,
        peak_mib: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_fields_are_read_in_mib() {
        let m = parse("Name:\tevdet\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n").unwrap();
        assert_eq!(
            m,
            ProcessMemory {
                rss_mib: 1.0,
                peak_mib: 2.0
            }
        );
        assert!(parse("Name:\tevdet\n").is_none());
        if cfg!(target_os = "linux") {
            let now = read().unwrap();
            assert!(now.rss_mib > 0.0 && now.peak_mib >= now.rss_mib);
        }
    }
}
