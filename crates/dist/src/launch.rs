//! Where this process sits in a distributed job, both sides of it: read from the environment the
//! ecosystem's launchers set — torchrun (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`,
//! `MASTER_ADDR`, `MASTER_PORT`, `TORCHELASTIC_USE_AGENT_STORE`), else SLURM (`SLURM_PROCID`,
//! `SLURM_NTASKS`, `SLURM_LOCALID`, `SLURM_NTASKS_PER_NODE`, with `MASTER_ADDR` from the environment),
//! else a single process — and written by `evdet train --nproc N` ([`run_local`]), a local launcher
//! like `torchrun --standalone --nproc-per-node N` that sets the same variables ([`LaunchEnv::to_vars`]).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const RANK: &str = "RANK";
const WORLD_SIZE: &str = "WORLD_SIZE";
const LOCAL_RANK: &str = "LOCAL_RANK";
const LOCAL_WORLD_SIZE: &str = "LOCAL_WORLD_SIZE";
const MASTER_ADDR: &str = "MASTER_ADDR";
const MASTER_PORT: &str = "MASTER_PORT";
/// Set by [`run_local`] so that messages can say who started the ranks.
const EVDET_LAUNCHER: &str = "EVDET_LAUNCHER";
const LOCAL_LAUNCHER: &str = "evdet train --nproc";

/// Who this process is in the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEnv {
    pub rank: usize,
    pub world_size: usize,
    pub local_rank: usize,
    pub local_world_size: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// torchrun's agent hosts the store: every rank, rank 0 included, is a client.
    pub agent_store: bool,
    /// Restart attempt under torchrun (keys of different attempts must not mix).
    pub restart_count: u64,
    /// Which launcher set the variables, for messages.
    pub launcher: &'static str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LaunchError {
    #[error("environment variable {name}={value:?} is not a valid {what}")]
    Invalid {
        name: &'static str,
        value: String,
        what: &'static str,
    },
    #[error("{launcher} launch: {name} is not set (the launcher sets RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/MASTER_PORT; set them all or none)")]
    Missing {
        launcher: &'static str,
        name: &'static str,
    },
    #[error("rank {rank} is not below the world size {world_size}")]
    RankOutOfRange { rank: usize, world_size: usize },
}

const DEFAULT_PORT: u16 = 29500;

impl LaunchEnv {
    /// One process, no launcher.
    pub fn single() -> Self {
        Self {
            rank: 0,
            world_size: 1,
            local_rank: 0,
            local_world_size: 1,
            master_addr: "127.0.0.1".into(),
            master_port: DEFAULT_PORT,
            agent_store: false,
            restart_count: 0,
            launcher: "none",
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, LaunchError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// The launch as given by these variables (the environment, in tests a map).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, LaunchError> {
        let get = |k: &str| vars.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let num = |name: &'static str, what: &'static str| -> Result<Option<usize>, LaunchError> {
            get(name)
                .map(|v| {
                    v.parse::<usize>().map_err(|_| LaunchError::Invalid {
                        name,
                        value: v.to_string(),
                        what,
                    })
                })
                .transpose()
        };
        let port = || -> Result<u16, LaunchError> {
            get(MASTER_PORT)
                .map(|v| {
                    v.parse::<u16>().map_err(|_| LaunchError::Invalid {
                        name: MASTER_PORT,
                        value: v.to_string(),
                        what: "port",
                    })
                })
                .transpose()
                .map(|p| p.unwrap_or(DEFAULT_PORT))
        };
        let env = if get(RANK).is_some() || get(WORLD_SIZE).is_some() {
            let launcher = if get("TORCHELASTIC_RUN_ID").is_some() {
                "torchrun"
            } else if get(EVDET_LAUNCHER) == Some("local") {
                LOCAL_LAUNCHER
            } else {
                "RANK/WORLD_SIZE"
            };
            let need = |name: &'static str| -> Result<usize, LaunchError> {
                num(name, "number")?.ok_or(LaunchError::Missing { launcher, name })
            };
            let rank = need(RANK)?;
            let world_size = need(WORLD_SIZE)?;
            let local_rank = num(LOCAL_RANK, "number")?.unwrap_or(rank);
            let local_world_size = num(LOCAL_WORLD_SIZE, "number")?.unwrap_or(world_size);
            Self {
                rank,
                world_size,
                local_rank,
                local_world_size,
                master_addr: get(MASTER_ADDR).unwrap_or("127.0.0.1").to_string(),
                master_port: port()?,
                agent_store: get("TORCHELASTIC_USE_AGENT_STORE") == Some("True"),
                restart_count: num("TORCHELASTIC_RESTART_COUNT", "number")?.unwrap_or(0) as u64,
                launcher,
            }
        } else if get("SLURM_PROCID").is_some() && get("SLURM_NTASKS").is_some() {
            let launcher = "SLURM";
            let rank = num("SLURM_PROCID", "number")?.unwrap_or(0);
            let world_size = num("SLURM_NTASKS", "number")?.unwrap_or(1);
            let local_rank = num("SLURM_LOCALID", "number")?.unwrap_or(0);
            let local_world_size = get("SLURM_NTASKS_PER_NODE")
                .map(|v| {
                    slurm_tasks_per_node(v).ok_or_else(|| LaunchError::Invalid {
                        name: "SLURM_NTASKS_PER_NODE",
                        value: v.to_string(),
                        what: "task count",
                    })
                })
                .transpose()?
                .unwrap_or(world_size);
            let master_addr = get(MASTER_ADDR)
                .ok_or(LaunchError::Missing {
                    launcher,
                    name: MASTER_ADDR,
                })?
                .to_string();
            Self {
                rank,
                world_size,
                local_rank,
                local_world_size,
                master_addr,
                master_port: port()?,
                agent_store: false,
                restart_count: 0,
                launcher,
            }
        } else {
            Self::single()
        };
        if env.world_size == 0 || env.rank >= env.world_size {
            return Err(LaunchError::RankOutOfRange {
                rank: env.rank,
                world_size: env.world_size,
            });
        }
        Ok(env)
    }

    pub fn is_distributed(&self) -> bool {
        self.world_size > 1
    }

    /// The variables that make [`LaunchEnv::from_vars`] read this launch back (torchrun's names).
    pub fn to_vars(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            (RANK, self.rank.to_string()),
            (WORLD_SIZE, self.world_size.to_string()),
            (LOCAL_RANK, self.local_rank.to_string()),
            (LOCAL_WORLD_SIZE, self.local_world_size.to_string()),
            (MASTER_ADDR, self.master_addr.clone()),
            (MASTER_PORT, self.master_port.to_string()),
        ];
        if self.launcher == LOCAL_LAUNCHER {
            v.push((EVDET_LAUNCHER, "local".into()));
        }
        v
    }
}

/// A failure to start the ranks of a local launch.
#[derive(Debug, thiserror::Error)]
pub enum LocalLaunchError {
    #[error("starting rank {rank} ({exe}): {source}")]
    Start {
        rank: usize,
        exe: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
}

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

/// Runs `exe args…` as `nproc` ranks on this machine with torchrun's variables (a free port for the
/// rendezvous) and waits for them. When one rank fails the others are stopped (SIGTERM, SIGKILL after
/// 5 s) and the first failure's status is returned, its rank named on stderr; 0 when all succeed.
/// Ranks die with the launcher (`PR_SET_PDEATHSIG`), so a launcher killed with -9 leaves none behind.
pub fn run_local(exe: &Path, args: &[OsString], nproc: usize) -> Result<i32, LocalLaunchError> {
    use std::os::unix::process::CommandExt;
    let io = |what| move |source| LocalLaunchError::Io { what, source };
    let port = free_port().map_err(io("finding a free port for the rendezvous"))?;
    let mut children: Vec<Option<Child>> = Vec::new();
    for rank in 0..nproc {
        let env = LaunchEnv {
            rank,
            world_size: nproc,
            local_rank: rank,
            local_world_size: nproc,
            master_addr: "127.0.0.1".into(),
            master_port: port,
            agent_store: false,
            restart_count: 0,
            launcher: LOCAL_LAUNCHER,
        };
        let mut cmd = Command::new(exe);
        cmd.args(args).envs(env.to_vars());
        // SAFETY: prctl is async-signal-safe; a rank must not outlive a launcher killed with -9.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| LocalLaunchError::Start {
            rank,
            exe: exe.display().to_string(),
            source,
        })?;
        children.push(Some(child));
    }
    let mut failure: Option<(usize, i32)> = None;
    let mut stop_deadline: Option<Instant> = None;
    loop {
        let mut running = 0;
        for (rank, slot) in children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            match child.try_wait().map_err(io("waiting for a rank"))? {
                None => running += 1,
                Some(status) => {
                    let pid = child.id();
                    *slot = None;
                    if status.success() || failure.is_some() {
                        continue;
                    }
                    let (words, code) = describe(status);
                    eprintln!(
                        "{LOCAL_LAUNCHER} {nproc}: rank {rank} (pid {pid}) {words}; stopping the other ranks"
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

/// `SLURM_NTASKS_PER_NODE` is `8` or `8(x2)` (or a comma list of those on uneven allocations; the
/// first entry is this layout's tasks per node).
fn slurm_tasks_per_node(v: &str) -> Option<usize> {
    let first = v.split(',').next()?;
    first.split('(').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_launcher_is_one_process() {
        assert_eq!(LaunchEnv::from_vars(&vars(&[])), Ok(LaunchEnv::single()));
    }

    #[test]
    fn torchrun_variables() {
        let e = LaunchEnv::from_vars(&vars(&[
            ("RANK", "5"),
            ("WORLD_SIZE", "16"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "8"),
            ("MASTER_ADDR", "node01"),
            ("MASTER_PORT", "29400"),
            ("TORCHELASTIC_RUN_ID", "x"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ]))
        .unwrap();
        assert_eq!(
            (e.rank, e.world_size, e.local_rank, e.local_world_size),
            (5, 16, 1, 8)
        );
        assert_eq!((e.master_addr.as_str(), e.master_port), ("node01", 29400));
        assert!(e.agent_store);
        assert_eq!((e.restart_count, e.launcher), (2, "torchrun"));
    }

    #[test]
    fn slurm_variables() {
        let e = LaunchEnv::from_vars(&vars(&[
            ("SLURM_PROCID", "9"),
            ("SLURM_NTASKS", "16"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_NTASKS_PER_NODE", "8(x2)"),
            ("MASTER_ADDR", "node01"),
        ]))
        .unwrap();
        assert_eq!(
            (e.rank, e.world_size, e.local_rank, e.local_world_size),
            (9, 16, 1, 8)
        );
        assert_eq!(e.master_port, DEFAULT_PORT);
        assert!(!e.agent_store);
    }

    #[test]
    fn bad_variables_are_named() {
        let err = LaunchEnv::from_vars(&vars(&[("RANK", "one"), ("WORLD_SIZE", "2")])).unwrap_err();
        assert!(err.to_string().contains("RANK=\"one\""), "{err}");
        let err = LaunchEnv::from_vars(&vars(&[("RANK", "0")])).unwrap_err();
        assert!(err.to_string().contains("WORLD_SIZE is not set"), "{err}");
        let err = LaunchEnv::from_vars(&vars(&[("RANK", "2"), ("WORLD_SIZE", "2")])).unwrap_err();
        assert_eq!(
            err,
            LaunchError::RankOutOfRange {
                rank: 2,
                world_size: 2
            }
        );
        let err = LaunchEnv::from_vars(&vars(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "2")]))
            .unwrap_err();
        assert!(err.to_string().contains("MASTER_ADDR"), "{err}");
        let err = LaunchEnv::from_vars(&vars(&[
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("MASTER_PORT", "99999"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("MASTER_PORT"), "{err}");
    }
}

#[cfg(test)]
mod local_launch_tests {
    use super::*;

    #[test]
    fn what_the_local_launcher_writes_reads_back_as_the_same_launch() {
        let env = LaunchEnv {
            rank: 1,
            world_size: 3,
            local_rank: 1,
            local_world_size: 3,
            master_addr: "127.0.0.1".into(),
            master_port: 40123,
            agent_store: false,
            restart_count: 0,
            launcher: LOCAL_LAUNCHER,
        };
        let vars: HashMap<String, String> = env
            .to_vars()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(LaunchEnv::from_vars(&vars), Ok(env));
    }

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
