//! Background loading: `workers` threads build batches ahead of the training loop and hand them over in
//! step order. Threads only prefetch — which thread builds a batch never changes its content.

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Yields `make(step)` for `step` in `first..end` in order, computed by `workers` threads at most
/// `depth` steps ahead. Timing of the wait is reported so data time and compute time can be told apart.
pub struct Prefetcher<T: Send + 'static> {
    rx: Receiver<(u64, T)>,
    pending: BTreeMap<u64, T>,
    next: u64,
    end: u64,
    handles: Vec<JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl<T: Send + 'static> Prefetcher<T> {
    pub fn new<F>(first: u64, end: u64, workers: usize, depth: usize, make: F) -> Self
    where
        F: Fn(u64) -> T + Send + Sync + 'static,
    {
        let workers = workers.max(1);
        let (tx, rx) = sync_channel(depth.max(workers));
        let make = Arc::new(make);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Each worker owns the steps congruent to its index, so no step is built twice.
        let handles = (0..workers as u64)
            .map(|w| {
                let (tx, make, stop) = (tx.clone(), make.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut step = first + w;
                    while step < end && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        if tx.send((step, make(step))).is_err() {
                            break;
                        }
                        step += workers as u64;
                    }
                })
            })
            .collect();
        Self {
            rx,
            pending: BTreeMap::new(),
            next: first,
            end,
            handles,
            stop,
        }
    }

    /// The next batch in step order, with the seconds spent waiting for it.
    pub fn next_timed(&mut self) -> Option<(T, f64)> {
        if self.next >= self.end {
            return None;
        }
        let start = std::time::Instant::now();
        loop {
            if let Some(v) = self.pending.remove(&self.next) {
                self.next += 1;
                return Some((v, start.elapsed().as_secs_f64()));
            }
            match self.rx.recv() {
                Ok((s, v)) => {
                    self.pending.insert(s, v);
                }
                Err(_) => return None,
            }
        }
    }
}

impl<T: Send + 'static> Drop for Prefetcher<T> {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Unblock senders waiting on a full channel, then join.
        while self.rx.try_recv().is_ok() {}
        for h in self.handles.drain(..) {
            while !h.is_finished() {
                while self.rx.try_recv().is_ok() {}
                std::thread::yield_now();
            }
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yields_in_order_whatever_the_worker_count() {
        for workers in [1, 2, 5] {
            let mut p = Prefetcher::new(3, 40, workers, 4, |s| s * s);
            let got: Vec<u64> = std::iter::from_fn(|| p.next_timed().map(|(v, _)| v)).collect();
            assert_eq!(got, (3..40).map(|s| s * s).collect::<Vec<_>>());
        }
    }

    #[test]
    fn dropping_early_does_not_hang() {
        let mut p = Prefetcher::new(0, 1_000_000, 3, 2, |s| s);
        assert_eq!(p.next_timed().map(|v| v.0), Some(0));
        drop(p);
    }
}
