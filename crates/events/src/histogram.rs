//! RVT's stacked histogram, bit-exact (REFERENCE §5.3): `2·nbins` channels (`channel = polarity·nbins + bin`),
//! time bins relative to the first and last event of the window computed in float32 as torch does, uint8
//! counts that wrap at 256 before being clipped to `count_cutoff`, and the ds2 "nearest-exact" variant that
//! keeps odd rows and columns.
//!
//! Speed comes from memory traffic, not arithmetic: a full-resolution buffer is 18 MB, more than this
//! kind of machine keeps in cache, and nearly every event lands on a different cache line. So:
//! * the events of a window are sorted by time and the float32 bin formula is monotonic in time, so each
//!   bin is a contiguous run of events whose bounds a binary search finds: no division per event;
//! * a window is processed bin by bin, and before a bin is counted, the cells the *previous* window
//!   counted in that bin are zeroed. Both touch the same two planes, and traffic moves slowly, so most of
//!   the lines the zeroing brings in are the ones the counting needs next: each line crosses the memory
//!   bus once instead of twice. The bin order alternates from window to window, so the bins at the
//!   turn find their lines still in cache;
//! * cell indices are computed first (a branch-free, vectorisable pass when every event is inside the
//!   sensor) and the scattered zeroing and increments prefetch their lines far ahead, so misses overlap;
//! * only cells that reach `count_cutoff + 1` can need clipping, so they are recorded as they cross it.

use crate::event::EventSlice;

/// Shape and parameters of a stacked histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramSpec {
    pub nbins: usize,
    pub count_cutoff: u8,
    /// Sensor size the events live in.
    pub height: usize,
    pub width: usize,
    /// Keep odd rows and columns only (RVT's ds2 "nearest-exact" downsampling).
    pub downsample_by_factor_2: bool,
}

impl HistogramSpec {
    /// RVT's preprocessing defaults: 10 bins, cutoff 10.
    pub fn rvt(height: usize, width: usize, downsample_by_factor_2: bool) -> Self {
        Self {
            nbins: 10,
            count_cutoff: 10,
            height,
            width,
            downsample_by_factor_2,
        }
    }
    pub fn channels(&self) -> usize {
        2 * self.nbins
    }
    /// Output height and width (halved, rounding down, for ds2).
    pub fn out_hw(&self) -> (usize, usize) {
        if self.downsample_by_factor_2 {
            (self.height / 2, self.width / 2)
        } else {
            (self.height, self.width)
        }
    }
    pub fn len(&self) -> usize {
        let (h, w) = self.out_hw();
        self.channels() * h * w
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The time bin of an event `dt = t − t0` µs after the first event, for a window spanning `denom` µs.
/// REFERENCE §5.3: `floor(float32(dt) / float32(max(t1 − t0, 1)) · nbins)` in float32, clamped to nbins−1.
#[inline]
pub fn time_bin(dt: i64, denom: f32, nbins: usize) -> usize {
    let t_norm = dt as f32 / denom;
    let scaled = t_norm * nbins as f32;
    (scaled.floor().max(0.0) as usize).min(nbins - 1)
}

/// A reusable histogram buffer: computing a window costs time proportional to its events, not to the
/// sensor size, when the window is sparse.
pub struct StackedHistogram {
    spec: HistogramSpec,
    buf: Vec<u8>,
    /// Per time bin, the cell index of every event the last window counted in that bin: the cells to
    /// zero before this bin is counted again.
    cells: Vec<Vec<u32>>,
    /// Cells that crossed the cutoff while counting the current bin.
    overflow: Vec<u32>,
    /// Whether the whole buffer must be cleared before the next window (dense windows).
    dense_dirty: bool,
    /// Events outside the sensor that the last `compute` skipped.
    skipped: usize,
    /// Whether the last sorted window was processed from the last bin to the first.
    reverse: bool,
}

impl StackedHistogram {
    pub fn new(spec: HistogramSpec) -> Self {
        assert!(spec.nbins >= 1, "nbins must be at least 1");
        assert!(spec.len() <= u32::MAX as usize, "histogram too large");
        let buf = vec![0; spec.len()];
        advise_huge_pages(&buf);
        Self {
            buf,
            cells: vec![Vec::new(); spec.nbins],
            spec,
            overflow: Vec::new(),
            dense_dirty: false,
            skipped: 0,
            reverse: false,
        }
    }

    pub fn spec(&self) -> &HistogramSpec {
        &self.spec
    }

    /// Events of the last window that fell outside the sensor and were skipped.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The histogram of one window of events (sorted by time for speed; unsorted input is handled
    /// event by event). Returns `[2·nbins, H, W]` (or the ds2 size) in C order.
    pub fn compute(&mut self, ev: EventSlice<'_>) -> &[u8] {
        if ev.t.windows(2).all(|w| w[0] <= w[1]) {
            self.compute_sorted(ev)
        } else {
            self.begin_window();
            let (t0, denom) = window_span(ev);
            for b in 0..self.spec.nbins {
                self.zero_cells(b);
            }
            // Each cell goes to the list of its own bin, so that the next window, whatever its bin
            // order, zeroes it before counting anything in that bin's planes.
            self.cell_indices(ev, Bin::PerEvent { t0, denom });
            for b in 0..self.spec.nbins {
                self.count(b);
            }
            self.end_window()
        }
    }

    /// [`compute`](Self::compute) for events whose timestamps are known to be non-decreasing, as
    /// [`EventStream`](crate::h5_events::EventStream) yields them (it repairs decreasing timestamps).
    /// Skipping the check saves reading every timestamp, about a fifth of the time of a cache-cold
    /// window. Unsorted input here gives wrong time bins (checked in debug builds) but never panics.
    pub fn compute_sorted(&mut self, ev: EventSlice<'_>) -> &[u8] {
        debug_assert!(ev.t.windows(2).all(|w| w[0] <= w[1]), "events not sorted");
        self.begin_window();
        let (t0, denom) = window_span(ev);
        let (n, nbins) = (ev.len(), self.spec.nbins);
        // Bin b holds events [ends[b-1], ends[b]).
        let mut ends = Vec::with_capacity(nbins);
        let mut start = 0;
        for b in 0..nbins {
            start = if b + 1 == nbins {
                n
            } else {
                start + ev.t[start..].partition_point(|&t| time_bin(t - t0, denom, nbins) <= b)
            };
            ends.push(start);
        }
        // Alternate the direction from window to window: the bin counted last is then zeroed and
        // counted first in the next window, while its lines are still in cache.
        self.reverse = !self.reverse;
        for k in 0..nbins {
            let b = if self.reverse { nbins - 1 - k } else { k };
            let start = if b == 0 { 0 } else { ends[b - 1] };
            self.zero_cells(b);
            self.cell_indices(ev.slice(start..ends[b]), Bin::Fixed(b));
            self.count(b);
        }
        self.end_window()
    }

    fn begin_window(&mut self) {
        if self.dense_dirty {
            self.buf.fill(0);
            self.cells.iter_mut().for_each(Vec::clear);
            self.dense_dirty = false;
        }
        self.skipped = 0;
    }

    fn end_window(&mut self) -> &[u8] {
        // Zeroing cell by cell only pays while far fewer cells were touched than exist.
        let touched: usize = self.cells.iter().map(Vec::len).sum();
        self.dense_dirty = touched >= self.buf.len() / 16;
        &self.buf
    }

    /// Zeroes the cells the previous window counted in bin `b` and empties the list for reuse.
    fn zero_cells(&mut self, b: usize) {
        let (buf, cells) = (&mut self.buf[..], &mut self.cells[b]);
        // Scattered stores miss like the increments do: prefetch them too.
        prefetched(cells, buf.as_ptr(), |i| buf[i] = 0);
        cells.clear();
    }

    /// Pass 1: appends the cell of every event inside the sensor to its bin's list.
    fn cell_indices(&mut self, ev: EventSlice<'_>, bin: Bin) {
        match (self.spec.downsample_by_factor_2, bin) {
            (false, Bin::Fixed(b)) => {
                let plane = self.spec.len() / self.spec.channels();
                let layout = InsideLayout {
                    base: (b * plane) as u32,
                    pol_stride: (self.spec.nbins * plane) as u32,
                    width: self.spec.width,
                    height: self.spec.height,
                };
                if !layout.cells(ev, &mut self.cells[b]) {
                    self.cell_indices_impl::<false>(ev, bin)
                }
            }
            (true, _) => self.cell_indices_impl::<true>(ev, bin),
            (false, _) => self.cell_indices_impl::<false>(ev, bin),
        }
    }

    /// Pass 1, general path: events outside the sensor are skipped, ds2 keeps odd pixels, and unsorted
    /// windows take each event's bin from its timestamp.
    #[inline(always)]
    fn cell_indices_impl<const DS2: bool>(&mut self, ev: EventSlice<'_>, bin: Bin) {
        let HistogramSpec {
            nbins,
            height,
            width,
            ..
        } = self.spec;
        let (_, ow) = self.spec.out_hw();
        let plane = self.spec.len() / self.spec.channels();
        let pol_stride = nbins * plane;
        let mut skipped = 0;
        for i in 0..ev.len() {
            let (x, y) = (ev.x[i] as usize, ev.y[i] as usize);
            if x >= width || y >= height {
                skipped += 1;
                continue;
            }
            let (x, y) = if DS2 {
                // nearest-exact at scale 1/2 reads source pixel 2i+1: odd rows and columns only.
                if x & y & 1 == 0 {
                    continue;
                }
                (x >> 1, y >> 1)
            } else {
                (x, y)
            };
            let b = match bin {
                Bin::Fixed(b) => b,
                Bin::PerEvent { t0, denom } => time_bin(ev.t[i] - t0, denom, nbins),
            };
            let cell = b * plane + (ev.p[i].min(1) as usize) * pol_stride + y * ow + x;
            self.cells[b].push(cell as u32);
        }
        self.skipped += skipped;
    }

    /// Pass 2: count the cells of bin `b` (uint8, wrapping), then clip those that passed the cutoff.
    fn count(&mut self, b: usize) {
        let cutoff = self.spec.count_cutoff;
        // A cell reaching cutoff+1 may need clipping; with cutoff 255 nothing ever does.
        let trigger = cutoff as u16 + 1;
        let buf = &mut self.buf[..];
        let overflow = &mut self.overflow;
        prefetched(&self.cells[b], buf.as_ptr(), |i| {
            let v = buf[i].wrapping_add(1);
            buf[i] = v;
            if v as u16 == trigger {
                overflow.push(i as u32);
            }
        });
        for &i in &self.overflow {
            let v = &mut buf[i as usize];
            *v = (*v).min(cutoff);
        }
        self.overflow.clear();
    }
}

/// The first timestamp of a window and the float32 denominator of its time bins.
fn window_span(ev: EventSlice<'_>) -> (i64, f32) {
    match (ev.t.first(), ev.t.last()) {
        (Some(&t0), Some(&t1)) => (t0, (t1 - t0).max(1) as f32),
        _ => (0, 1.0),
    }
}

/// Asks the kernel for transparent huge pages under a large buffer (where THP is in `madvise` mode, as
/// on Debian): scattered increments over 18 MB otherwise miss the TLB on nearly every event.
fn advise_huge_pages(buf: &[u8]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = buf.as_ptr() as usize;
        let aligned = start.next_multiple_of(HUGE);
        let end = (start + buf.len()) / HUGE * HUGE;
        if end > aligned {
            // SAFETY: advice on pages of a live allocation we own; it changes no contents and a
            // failure (e.g. THP disabled) is harmless.
            unsafe {
                libc::madvise(
                    aligned as *mut libc::c_void,
                    end - aligned,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buf;
}

const PREFETCH_AHEAD: usize = 128;

/// Calls `f` on every cell of `cells` while prefetching the cell `PREFETCH_AHEAD` places further on,
/// so that the misses of scattered accesses overlap instead of stalling one after another.
#[inline(always)]
fn prefetched(cells: &[u32], buf: *const u8, mut f: impl FnMut(usize)) {
    let split = cells.len().saturating_sub(PREFETCH_AHEAD);
    let (head, tail) = cells.split_at(split);
    for (&i, &ahead) in head.iter().zip(&cells[cells.len().min(PREFETCH_AHEAD)..]) {
        prefetch(buf.wrapping_add(ahead as usize));
        f(i as usize);
    }
    for &i in tail {
        f(i as usize);
    }
}

/// Prefetch into L2 (`T1`): L1 can track only ~10 outstanding misses, the L2 queue several times more,
/// and the scattered accesses here are latency-bound, so more misses in flight is what speeds them up.
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Pass 1, fast path: a full-resolution run of events in one time bin. When every event is inside the
/// sensor, the cell index is pure arithmetic, which the compiler vectorises (with AVX2 where the CPU
/// has it: the baseline x86-64 instruction set lacks the 16-bit max and 32-bit multiply it needs).
struct InsideLayout {
    base: u32,
    pol_stride: u32,
    width: usize,
    height: usize,
}

impl InsideLayout {
    /// Appends the cell of every event to `out` and returns true, or returns false and appends nothing
    /// when some event lies outside the sensor.
    fn cells(&self, ev: EventSlice<'_>, out: &mut Vec<u32>) -> bool {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { self.cells_avx2(ev, out) };
        }
        self.cells_portable(ev, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn cells_avx2(&self, ev: EventSlice<'_>, out: &mut Vec<u32>) -> bool {
        self.cells_portable(ev, out)
    }

    #[inline(always)]
    fn cells_portable(&self, ev: EventSlice<'_>, out: &mut Vec<u32>) -> bool {
        let max = |v: &[u16]| v.iter().fold(0, |m, &c| m.max(c)) as usize;
        if max(ev.x) >= self.width || max(ev.y) >= self.height {
            return false;
        }
        let Self {
            base, pol_stride, ..
        } = *self;
        let w = self.width as u32;
        out.extend(
            ev.x.iter().zip(ev.y).zip(ev.p).map(|((&x, &y), &p)| {
                base + p.min(1) as u32 * pol_stride + y as u32 * w + x as u32
            }),
        );
        true
    }
}

#[derive(Clone, Copy)]
enum Bin {
    /// Every event of the run falls in this bin.
    Fixed(usize),
    PerEvent {
        t0: i64,
        denom: f32,
    },
}

/// One-shot helper: the histogram of a window as a fresh vector.
pub fn stacked_histogram(ev: EventSlice<'_>, spec: HistogramSpec) -> Vec<u8> {
    StackedHistogram::new(spec).compute(ev).to_vec()
}

/// ds2 "nearest-exact" of a full-resolution `[C, H, W]` histogram: `out[c, i, j] = in[c, 2i+1, 2j+1]`.
pub fn downsample_nearest_2(full: &[u8], channels: usize, height: usize, width: usize) -> Vec<u8> {
    let (oh, ow) = (height / 2, width / 2);
    let mut out = Vec::with_capacity(channels * oh * ow);
    for c in 0..channels {
        for i in 0..oh {
            let row = &full[(c * height + 2 * i + 1) * width..][..width];
            out.extend((0..ow).map(|j| row[2 * j + 1]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventBatch;

    fn batch(ev: &[(u16, u16, u8, i64)]) -> EventBatch {
        EventBatch {
            x: ev.iter().map(|e| e.0).collect(),
            y: ev.iter().map(|e| e.1).collect(),
            p: ev.iter().map(|e| e.2).collect(),
            t: ev.iter().map(|e| e.3).collect(),
        }
    }

    #[test]
    fn wraps_before_clipping() {
        let spec = HistogramSpec {
            nbins: 2,
            count_cutoff: 10,
            height: 2,
            width: 2,
            downsample_by_factor_2: false,
        };
        let mut ev = vec![(1u16, 1u16, 1u8, 0i64); 300];
        ev.extend(vec![(0, 0, 0, 0); 257]);
        ev.push((0, 1, 0, 100));
        let h = stacked_histogram(batch(&ev).as_slice(), spec);
        // channel = p*nbins + bin; 300 % 256 = 44 -> 10, 257 % 256 = 1 -> 1
        assert_eq!(h[(2) * 4 + 3], 10);
        assert_eq!(h[0], 1);
        assert_eq!(h[4 + 2], 1, "the last event falls in bin 1");
    }

    #[test]
    fn sorted_and_unsorted_paths_agree_and_buffer_is_reused() {
        let spec = HistogramSpec {
            nbins: 10,
            count_cutoff: 10,
            height: 8,
            width: 10,
            downsample_by_factor_2: false,
        };
        let mut rng = crate::rng::Rng::new(12345);
        let mut rnd = |m: u64| rng.below(m);
        let mut ev: Vec<_> = (0..500)
            .map(|_| {
                (
                    rnd(10) as u16,
                    rnd(8) as u16,
                    rnd(2) as u8,
                    1000 + rnd(50_000) as i64,
                )
            })
            .collect();
        ev.sort_by_key(|e| e.3);
        let sorted = batch(&ev);
        let mut h = StackedHistogram::new(spec);
        let a = h.compute(sorted.as_slice()).to_vec();
        // per-event reference
        let mut naive = vec![0u8; spec.len()];
        let (t0, t1) = (ev[0].3, ev[ev.len() - 1].3);
        for e in &ev {
            let b = time_bin(e.3 - t0, (t1 - t0) as f32, 10);
            let i = (e.2 as usize * 10 + b) * 80 + e.1 as usize * 10 + e.0 as usize;
            naive[i] = naive[i].wrapping_add(1);
        }
        naive.iter_mut().for_each(|v| *v = (*v).min(10));
        assert_eq!(a, naive);
        // a window that is not sorted takes the per-event path and must agree with itself
        let mut shuffled = ev.clone();
        shuffled.swap(10, 400);
        let b = h.compute(batch(&shuffled).as_slice()).to_vec();
        assert_eq!(
            b.iter().map(|&v| v as u64).sum::<u64>(),
            a.iter().map(|&v| v as u64).sum::<u64>()
        );
        // an empty window after a full one is all zeros
        assert!(h
            .compute(EventBatch::default().as_slice())
            .iter()
            .all(|&v| v == 0));
    }

    #[test]
    fn ds2_equals_downsampled_full_resolution() {
        let full = HistogramSpec {
            nbins: 3,
            count_cutoff: 5,
            height: 6,
            width: 8,
            downsample_by_factor_2: false,
        };
        let ev: Vec<_> = (0..48u16)
            .map(|i| (i % 8, i / 8, (i % 2) as u8, i as i64 * 10))
            .collect();
        let b = batch(&ev);
        let f = stacked_histogram(b.as_slice(), full);
        let d = stacked_histogram(
            b.as_slice(),
            HistogramSpec {
                downsample_by_factor_2: true,
                ..full
            },
        );
        assert_eq!(d, downsample_nearest_2(&f, 6, 6, 8));
        assert_eq!(
            d.iter().map(|&v| v as usize).sum::<usize>(),
            12,
            "one event in four lands on an odd pixel"
        );
    }

    #[test]
    fn events_outside_the_sensor_are_skipped_not_wrapped() {
        let spec = HistogramSpec {
            nbins: 1,
            count_cutoff: 10,
            height: 2,
            width: 2,
            downsample_by_factor_2: false,
        };
        let mut h = StackedHistogram::new(spec);
        let out = h
            .compute(batch(&[(2, 0, 0, 0), (0, 1, 0, 1), (0, 2, 1, 2)]).as_slice())
            .to_vec();
        assert_eq!(out, vec![0, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(h.skipped(), 2);
    }

    /// One buffer reused across windows of every kind (sorted, unsorted, with events outside the sensor,
    /// empty, dense) must give what a fresh, naive count gives for each: stale cells of the previous
    /// window are zeroed per bin, whatever kind that window was.
    #[test]
    fn a_reused_buffer_equals_a_fresh_count_window_after_window() {
        let mut rng = crate::rng::Rng::new(99);
        let mut rnd = |m: u64| rng.below(m);
        for ds2 in [false, true] {
            let spec = HistogramSpec {
                nbins: 4,
                count_cutoff: 3,
                height: 6,
                width: 9,
                downsample_by_factor_2: ds2,
            };
            let mut h = StackedHistogram::new(spec);
            // Sparse windows (under 1/16 of the 432 cells) keep the cell lists; the mix of sorted and
            // unsorted ones meets both bin orders.
            for window in 0..400 {
                let n = [0, 1, 5, 40, 300, 20, 25, 12][window % 8];
                let outside = window % 3 == 0;
                let mut ev: Vec<_> = (0..n)
                    .map(|_| {
                        let (mx, my) = if outside { (11, 8) } else { (9, 6) };
                        (
                            rnd(mx) as u16,
                            rnd(my) as u16,
                            rnd(2) as u8,
                            rnd(1000) as i64,
                        )
                    })
                    .collect();
                ev.sort_by_key(|e| e.3);
                // Out of order inside, first and last in place: the time bins still spread over all
                // planes.
                if rnd(3) == 0 && n > 3 {
                    ev.swap(1, n - 2);
                }
                let got = h.compute(batch(&ev).as_slice()).to_vec();
                let mut full = vec![0u8; 8 * 6 * 9];
                let (t0, t1) = (ev.first().map_or(0, |e| e.3), ev.last().map_or(0, |e| e.3));
                let mut skipped = 0;
                for e in &ev {
                    if e.0 >= 9 || e.1 >= 6 {
                        skipped += 1;
                        continue;
                    }
                    let b = time_bin(e.3 - t0, (t1 - t0).max(1) as f32, 4);
                    let i = (e.2 as usize * 4 + b) * 54 + e.1 as usize * 9 + e.0 as usize;
                    full[i] = full[i].wrapping_add(1);
                }
                full.iter_mut().for_each(|v| *v = (*v).min(3));
                let want = if ds2 {
                    downsample_nearest_2(&full, 8, 6, 9)
                } else {
                    full
                };
                assert_eq!(got, want, "window {window}, ds2 {ds2}");
                assert_eq!(h.skipped(), skipped, "window {window}, ds2 {ds2}");
            }
        }
    }

    #[test]
    fn the_vectorised_cell_pass_equals_the_portable_one_and_refuses_outside_events() {
        let layout = InsideLayout {
            base: 7 * 20,
            pol_stride: 10 * 20,
            width: 5,
            height: 4,
        };
        let ev = batch(&[(0, 0, 0, 0), (4, 3, 1, 1), (2, 1, 1, 2), (3, 2, 0, 3)]);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        assert!(layout.cells(ev.as_slice(), &mut a));
        assert!(layout.cells_portable(ev.as_slice(), &mut b));
        assert_eq!(a, b);
        assert_eq!(a, vec![140, 140 + 200 + 19, 140 + 200 + 7, 140 + 13]);
        let outside = batch(&[(0, 0, 0, 0), (5, 0, 0, 1)]);
        assert!(!layout.cells(outside.as_slice(), &mut a));
        assert_eq!(a.len(), 4, "nothing appended");
        let outside = batch(&[(0, 4, 0, 0)]);
        assert!(!layout.cells_portable(outside.as_slice(), &mut b));
    }
}
