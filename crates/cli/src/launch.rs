//! `evdet train --nproc N`: a local launcher like `torchrun --standalone --nproc-per-node N`. It
//! starts N ranks of the same command on this machine with torchrun's environment variables (`RANK`,
//! `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT` on a free port), and
//! when one rank fails it stops the others and exits with the first failure's status, naming the rank.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// `args` without `--nproc N` / `--nproc=N`.
pub fn without_nproc(args: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        match a.to_str() {
            Some("--nproc") => skip = true,
            Some(s) if s.starts_with("--nproc=") => {}
            _ => out.push(a.clone()),
        }
    }
    out
}

/// A free TCP port on the loopback interface for the rendezvous store.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// How a rank ended, in words, and the exit status the launcher passes on.
fn describe(status: std::process::ExitStatus) -> (String, i32) {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => (format!("exited with status {c}"), c),
        (None, Some(s)) => (format!("was killed by signal {s}"), 128 + s),
        _ => ("ended".into(), 1),
    }
}

/// Runs `exe args…` as `nproc` ranks and waits for them; returns the exit status for the launcher.
pub fn run_local(exe: &Path, args: &[OsString], nproc: usize) -> anyhow::Result<i32> {
    use std::os::unix::process::CommandExt;
    let port = free_port()?;
    let mut children: Vec<Option<Child>> = Vec::new();
    for rank in 0..nproc {
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", nproc.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("LOCAL_WORLD_SIZE", nproc.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env("EVDET_LAUNCHER", "local");
        // SAFETY: prctl is async-signal-safe; a rank must not outlive a launcher killed with -9.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting rank {rank} ({}): {e}", exe.display()))?;
        children.push(Some(child));
    }
    let mut failure: Option<(usize, i32)> = None;
    let mut stop_deadline: Option<Instant> = None;
    loop {
        let mut running = 0;
        for (rank, slot) in children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            match child.try_wait()? {
                None => running += 1,
                Some(status) => {
                    let pid = child.id();
                    *slot = None;
                    if status.success() || failure.is_some() {
                        continue;
                    }
                    let (words, code) = describe(status);
                    eprintln!(
                        "evdet train --nproc {nproc}: rank {rank} (pid {pid}) {words}; stopping the other ranks"
                    );
                    failure = Some((rank, code));
                }
            }
        }
        if running == 0 {
            break;
        }
        if failure.is_some() {
            let deadline = *stop_deadline.get_or_insert_with(|| {
                signal_all(&children, libc::SIGTERM);
                Instant::now() + Duration::from_secs(5)
            });
            if Instant::now() > deadline {
                signal_all(&children, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(failure.map_or(0, |(_, code)| code))
}

fn signal_all(children: &[Option<Child>], sig: i32) {
    for c in children.iter().flatten() {
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(c.id() as i32, sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nproc_is_removed_in_both_spellings() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            without_nproc(&a(&["train", "--nproc", "2", "x=1"])),
            a(&["train", "x=1"])
        );
        assert_eq!(
            without_nproc(&a(&["train", "--nproc=4", "--fresh"])),
            a(&["train", "--fresh"])
        );
    }

    #[test]
    fn the_first_failure_is_named_and_the_others_stopped() {
        // Rank 1 fails at once; rank 0 would sleep for a minute unless stopped.
        let script = "if [ \"$RANK\" = 1 ]; then exit 3; fi; sleep 60";
        let t0 = Instant::now();
        let code = run_local(
            Path::new("/bin/sh"),
            &[OsString::from("-c"), OsString::from(script)],
            2,
        )
        .unwrap();
        assert_eq!(code, 3);
        assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    }
}
