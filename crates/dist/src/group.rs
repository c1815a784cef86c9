//! A c10d process group (Gloo on CPU, NCCL on GPUs) and its key-value store, through the C ABI of
//! `csrc/c10d_shim.cpp`. Every collective names what it was for, so a failure says which collective
//! of which rank failed, and — from the per-rank step counters kept in the store — which rank fell
//! behind or disappeared.

use crate::launch::LaunchEnv;
use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tch::Tensor;
use torch_sys::C_tensor;

#[repr(C)]
struct RawGroup {
    _private: [u8; 0],
}

extern "C" {
    fn evdet_c10d_free_str(s: *mut c_char);
    fn evdet_c10d_free_bytes(p: *mut u8);
    fn evdet_c10d_new(
        backend: *const c_char,
        host: *const c_char,
        port: c_int,
        rank: c_int,
        world: c_int,
        agent_store: c_int,
        prefix: *const c_char,
        timeout_ms: i64,
        gloo_ifname: *const c_char,
        gloo_threads: c_int,
        out: *mut *mut RawGroup,
    ) -> *mut c_char;
    fn evdet_c10d_has_nccl() -> c_int;
    fn evdet_c10d_drop(g: *mut RawGroup);
    fn evdet_c10d_allreduce_sum(g: *mut RawGroup, t: *mut C_tensor) -> *mut c_char;
    fn evdet_c10d_allreduce_coalesced(
        g: *mut RawGroup,
        ts: *const *mut C_tensor,
        n: usize,
    ) -> *mut c_char;
    fn evdet_c10d_broadcast(g: *mut RawGroup, t: *mut C_tensor, root: c_int) -> *mut c_char;
    fn evdet_c10d_barrier(g: *mut RawGroup) -> *mut c_char;
    fn evdet_c10d_set_autograd_group(g: *mut RawGroup);
    fn evdet_c10d_allreduce_autograd(x: *mut C_tensor, out: *mut *mut C_tensor) -> *mut c_char;
    fn evdet_c10d_store_set(
        g: *mut RawGroup,
        key: *const c_char,
        data: *const u8,
        len: usize,
    ) -> *mut c_char;
    fn evdet_c10d_store_get(
        g: *mut RawGroup,
        key: *const c_char,
        data: *mut *mut u8,
        len: *mut usize,
    ) -> *mut c_char;
    fn evdet_c10d_store_add(
        g: *mut RawGroup,
        key: *const c_char,
        value: i64,
        out: *mut i64,
    ) -> *mut c_char;
}

/// Takes the shim's error message, if any.
fn take_error(p: *mut c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the shim returns NUL-terminated strings from malloc, freed here exactly once.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    unsafe { evdet_c10d_free_str(p) };
    Some(s)
}

/// Interval of the liveness counter each rank increments in the store.
const HEARTBEAT: Duration = Duration::from_millis(400);

/// The communication library under the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Gloo,
    Nccl,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }

    /// `hardware.dist_backend`: `auto` is NCCL on CUDA devices, Gloo on the CPU.
    pub fn choose(setting: &str, cuda: bool) -> Result<Self, String> {
        match setting {
            "auto" => Ok(if cuda { Backend::Nccl } else { Backend::Gloo }),
            "gloo" => Ok(Backend::Gloo),
            "nccl" if !cuda => Err(
                "hardware.dist_backend=nccl needs CUDA devices; use gloo (or auto) on the CPU"
                    .into(),
            ),
            "nccl" => Ok(Backend::Nccl),
            other => Err(format!(
                "hardware.dist_backend: unknown value {other:?} (auto, gloo or nccl)"
            )),
        }
    }
}

/// Whether this build carries the NCCL backend.
pub fn nccl_available() -> bool {
    // SAFETY: a constant query.
    unsafe { evdet_c10d_has_nccl() != 0 }
}

#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error("rank {rank} of {world}: setting up the {backend} process group with the store at {addr} failed: {message}")]
    Init {
        rank: usize,
        world: usize,
        backend: &'static str,
        addr: String,
        message: String,
    },
    #[error("rank {rank} of {world}: {what} failed: {message}{diagnosis}")]
    Collective {
        rank: usize,
        world: usize,
        what: String,
        message: String,
        diagnosis: String,
    },
}

/// Options of `ProcessGroup::init`.
#[derive(Debug, Clone)]
pub struct GroupOptions {
    pub backend: Backend,
    /// Every collective and store wait fails after this long instead of hanging.
    pub timeout: Duration,
    /// `GLOO_SOCKET_IFNAME`: the network interface Gloo binds to (default: this host's address).
    pub gloo_ifname: Option<String>,
}

/// One process group per process (as torch.distributed's default group).
pub struct ProcessGroup {
    raw: *mut RawGroup,
    pub rank: usize,
    pub world_size: usize,
    pub local_rank: usize,
    pub local_world_size: usize,
    pub backend: Backend,
    /// This rank's step counter in the store (for naming the rank that fell behind).
    progress: AtomicU64,
    /// Sequence number of byte gathers (every rank calls them in the same order).
    gathers: AtomicU64,
    /// Serialises calls into the shim: c10d groups are not meant for concurrent callers.
    lock: Mutex<()>,
}

// SAFETY: the shim's group is only used under `lock`; c10d objects may move between threads.
unsafe impl Send for ProcessGroup {}
unsafe impl Sync for ProcessGroup {}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `raw` came from evdet_c10d_new and is dropped once.
        unsafe { evdet_c10d_drop(self.raw) };
    }
}

impl ProcessGroup {
    /// Joins the job described by `env`: rank 0 hosts the TCP store (unless torchrun's agent does),
    /// every rank connects, then the backend forms its communicators.
    pub fn init(env: &LaunchEnv, opts: &GroupOptions) -> Result<Self, DistError> {
        let err = |message: String| DistError::Init {
            rank: env.rank,
            world: env.world_size,
            backend: opts.backend.name(),
            addr: format!("{}:{}", env.master_addr, env.master_port),
            message,
        };
        let cstr = |s: &str| CString::new(s).map_err(|_| err(format!("{s:?} contains a NUL")));
        let backend = cstr(opts.backend.name())?;
        let host = cstr(&env.master_addr)?;
        let prefix = cstr(&format!("/worker/attempt_{}/evdet", env.restart_count))?;
        let ifname = cstr(opts.gloo_ifname.as_deref().unwrap_or(""))?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
        let e = unsafe {
            evdet_c10d_new(
                backend.as_ptr(),
                host.as_ptr(),
                env.master_port as c_int,
                env.rank as c_int,
                env.world_size as c_int,
                env.agent_store as c_int,
                prefix.as_ptr(),
                opts.timeout.as_millis() as i64,
                ifname.as_ptr(),
                2,
                &mut raw,
            )
        };
        if let Some(m) = take_error(e) {
            return Err(err(m));
        }
        Ok(Self {
            raw,
            rank: env.rank,
            world_size: env.world_size,
            local_rank: env.local_rank,
            local_world_size: env.local_world_size,
            backend: opts.backend,
            progress: AtomicU64::new(0),
            gathers: AtomicU64::new(0),
            lock: Mutex::new(()),
        })
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A failed collective, with what the store says about the other ranks.
    pub fn failed(&self, what: &str, message: String) -> DistError {
        DistError::Collective {
            rank: self.rank,
            world: self.world_size,
            what: what.to_string(),
            message: first_line(&message),
            diagnosis: self.diagnose(),
        }
    }

    /// Which ranks stopped responding (their heartbeat did not advance over a few beats) or fell
    /// behind this one, from the counters in the store.
    fn diagnose(&self) -> String {
        let others: Vec<usize> = (0..self.world_size).filter(|&r| r != self.rank).collect();
        let read = |key: &str, r: usize| self.store_add_raw(&format!("{key}/{r}"), 0);
        let unreachable = |r: usize| {
            if r == 0 {
                " (rank 0, which hosts the store, is unreachable: it died or hangs)".to_string()
            } else {
                " (the store is unreachable: its host died or hangs)".to_string()
            }
        };
        let mut before = Vec::new();
        for &r in &others {
            match read("alive", r) {
                Ok(v) => before.push(v),
                Err(_) => return unreachable(r),
            }
        }
        std::thread::sleep(HEARTBEAT * 4);
        let mut silent = Vec::new();
        let mut behind = Vec::new();
        let mine = self.progress.load(Ordering::Relaxed);
        for (i, &r) in others.iter().enumerate() {
            match (read("alive", r), read("progress", r)) {
                (Ok(v), Ok(step)) => {
                    if v == before[i] {
                        silent.push(format!("rank {r}"));
                    } else if (step as u64) < mine {
                        behind.push(format!("rank {r} is at step {step}"));
                    }
                }
                _ => return unreachable(r),
            }
        }
        if !silent.is_empty() {
            format!(
                " ({} stopped responding: no heartbeat for {:.1} s; it died, was stopped or hangs)",
                silent.join(", "),
                (HEARTBEAT * 4).as_secs_f64()
            )
        } else if !behind.is_empty() {
            format!(" (this rank is at step {mine}; {})", behind.join(", "))
        } else {
            format!(" (every rank is alive and reached step {mine})")
        }
    }

    /// Beats every `HEARTBEAT` in the store until the group is dropped, so that a failed collective
    /// can tell which rank stopped responding.
    pub fn spawn_heartbeat(self: &std::sync::Arc<Self>) {
        let weak = std::sync::Arc::downgrade(self);
        std::thread::spawn(move || loop {
            let Some(pg) = weak.upgrade() else { return };
            if pg.store_add_raw(&format!("alive/{}", pg.rank), 1).is_err() {
                return;
            }
            drop(pg);
            std::thread::sleep(HEARTBEAT);
        });
    }

    /// Records that this rank started step `step` (read by other ranks' failure messages).
    pub fn note_step(&self, step: u64) -> Result<(), DistError> {
        let before = self.progress.swap(step, Ordering::Relaxed);
        let key = format!("progress/{}", self.rank);
        self.store_add_raw(&key, step as i64 - before as i64)
            .map(|_| ())
            .map_err(|m| self.failed("recording the step in the store", m))
    }

    /// Sums `t` over all ranks, in place (contiguous; CPU for Gloo, CUDA for NCCL).
    pub fn all_reduce_sum(&self, t: &Tensor, what: &str) -> Result<(), DistError> {
        let _g = self.guard();
        // SAFETY: `t` is a live tensor; the shim writes into its storage, not the handle.
        let e = unsafe { evdet_c10d_allreduce_sum(self.raw, t.as_ptr() as *mut C_tensor) };
        take_error(e).map_or(Ok(()), |m| Err(self.failed(what, m)))
    }

    /// Sums several tensors over all ranks in one collective.
    pub fn all_reduce_coalesced(&self, ts: &[Tensor], what: &str) -> Result<(), DistError> {
        if ts.is_empty() {
            return Ok(());
        }
        let _g = self.guard();
        let ptrs: Vec<*mut C_tensor> = ts.iter().map(|t| t.as_ptr() as *mut C_tensor).collect();
        // SAFETY: live tensors for the duration of the call.
        let e = unsafe { evdet_c10d_allreduce_coalesced(self.raw, ptrs.as_ptr(), ptrs.len()) };
        take_error(e).map_or(Ok(()), |m| Err(self.failed(what, m)))
    }

    /// Copies `t` from `root` to every rank, in place.
    pub fn broadcast(&self, t: &Tensor, root: usize, what: &str) -> Result<(), DistError> {
        let _g = self.guard();
        // SAFETY: as all_reduce_sum.
        let e =
            unsafe { evdet_c10d_broadcast(self.raw, t.as_ptr() as *mut C_tensor, root as c_int) };
        take_error(e).map_or(Ok(()), |m| Err(self.failed(what, m)))
    }

    pub fn barrier(&self, what: &str) -> Result<(), DistError> {
        let _g = self.guard();
        // SAFETY: a live group.
        let e = unsafe { evdet_c10d_barrier(self.raw) };
        take_error(e).map_or(Ok(()), |m| Err(self.failed(what, m)))
    }

    /// Makes this group the one `all_reduce_differentiable` uses (SyncBatchNorm).
    pub fn install_for_autograd(&self) {
        // SAFETY: the group outlives its use: the trainer holds it for the whole run.
        unsafe { evdet_c10d_set_autograd_group(self.raw) };
    }

    fn store_add_raw(&self, key: &str, delta: i64) -> Result<i64, String> {
        let k = CString::new(key).map_err(|e| e.to_string())?;
        let mut out = 0i64;
        // SAFETY: valid key; out is written on success.
        let e = unsafe { evdet_c10d_store_add(self.raw, k.as_ptr(), delta, &mut out) };
        take_error(e).map_or(Ok(out), Err)
    }

    fn store_set(&self, key: &str, data: &[u8]) -> Result<(), String> {
        let k = CString::new(key).map_err(|e| e.to_string())?;
        // SAFETY: valid key and buffer.
        let e = unsafe { evdet_c10d_store_set(self.raw, k.as_ptr(), data.as_ptr(), data.len()) };
        take_error(e).map_or(Ok(()), Err)
    }

    fn store_get(&self, key: &str) -> Result<Vec<u8>, String> {
        let k = CString::new(key).map_err(|e| e.to_string())?;
        let (mut p, mut n) = (std::ptr::null_mut(), 0usize);
        // SAFETY: on success the shim hands over a malloc'ed buffer of n bytes, freed here.
        let e = unsafe { evdet_c10d_store_get(self.raw, k.as_ptr(), &mut p, &mut n) };
        if let Some(m) = take_error(e) {
            return Err(m);
        }
        let v = unsafe { std::slice::from_raw_parts(p, n) }.to_vec();
        unsafe { evdet_c10d_free_bytes(p) };
        Ok(v)
    }

    /// Every rank's `bytes`, in rank order, on `root` (`None` elsewhere): for variable-sized results
    /// such as one rank's detections, through the store.
    pub fn gather_bytes(
        &self,
        bytes: &[u8],
        root: usize,
        what: &str,
    ) -> Result<Option<Vec<Vec<u8>>>, DistError> {
        let seq = self.gathers.fetch_add(1, Ordering::Relaxed);
        let key = |r: usize| format!("gather/{seq}/{r}");
        self.store_set(&key(self.rank), bytes)
            .map_err(|m| self.failed(what, m))?;
        if self.rank != root {
            return Ok(None);
        }
        (0..self.world_size)
            .map(|r| self.store_get(&key(r)).map_err(|m| self.failed(what, m)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Every rank's `bytes` on every rank.
    pub fn all_gather_bytes(&self, bytes: &[u8], what: &str) -> Result<Vec<Vec<u8>>, DistError> {
        let seq = self.gathers.fetch_add(1, Ordering::Relaxed);
        let key = |r: usize| format!("gather/{seq}/{r}");
        self.store_set(&key(self.rank), bytes)
            .map_err(|m| self.failed(what, m))?;
        (0..self.world_size)
            .map(|r| self.store_get(&key(r)).map_err(|m| self.failed(what, m)))
            .collect()
    }
}

/// Sum over all ranks whose backward pass sums the gradient over all ranks too (the group installed
/// with `install_for_autograd`).
pub fn all_reduce_differentiable(x: &Tensor) -> Result<Tensor, String> {
    let mut out = std::ptr::null_mut();
    // SAFETY: a live tensor in; on success a new tensor handle out, owned by the returned Tensor.
    let e = unsafe { evdet_c10d_allreduce_autograd(x.as_ptr() as *mut C_tensor, &mut out) };
    if let Some(m) = take_error(e) {
        return Err(first_line(&m));
    }
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// c10d messages carry a C++ backtrace after the first lines; the user needs the first.
fn first_line(m: &str) -> String {
    m.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(m)
        .to_string()
}
