//! Which L-step samples make up each batch (REFERENCE §4.3): random, stream and mixed sampling for
//! training, and streaming over whole recordings for evaluation.
//!
//! A plan is a pure function of (seed, step): batches, their order and the recurrent streams do not
//! depend on how many loader threads prefetch them, and a resumed run continues exactly where it stopped.
//! A training stream belongs to a batch slot: slot b keeps continuing its own stream from batch to batch.

use crate::dataset::SplitData;
use evdet_events::rng::{derive_seed, Rng};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Augmentation randomness drawn for one sample (concrete offsets are computed once the canvas and the
/// labels are known).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugDraw {
    pub hflip: bool,
    pub zoom: Zoom,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zoom {
    None,
    /// factor, then uniforms for the box choice and the window position.
    In {
        factor: f64,
        u_box: f64,
        u_x: f64,
        u_y: f64,
    },
    /// factor, then uniforms for the paste position.
    Out {
        factor: f64,
        u_x: f64,
        u_y: f64,
    },
}

impl AugDraw {
    pub const NONE: AugDraw = AugDraw {
        hflip: false,
        zoom: Zoom::None,
    };

    /// Draws as RVT's `randomize_augmentation`: flip with `prob_hflip`; zoom with `zoom.prob`, in vs out
    /// by their weights; factors uniform in their ranges.
    pub fn draw(rng: &mut Rng, p: &evdet_config::AugmentParams) -> Self {
        let hflip = rng.f64() < p.prob_hflip;
        let do_zoom = rng.f64() < p.zoom.prob;
        let (wi, wo) = (
            p.zoom.zoom_in.weight.max(0.0),
            p.zoom.zoom_out.weight.max(0.0),
        );
        let zoom_in = wi + wo > 0.0 && rng.f64() * (wi + wo) < wi;
        let zoom = if !do_zoom || wi + wo <= 0.0 {
            Zoom::None
        } else if zoom_in {
            let r = p.zoom.zoom_in.factor;
            Zoom::In {
                factor: rng.uniform(r.min, r.max),
                u_box: rng.f64(),
                u_x: rng.f64(),
                u_y: rng.f64(),
            }
        } else {
            let r = p.zoom.zoom_out.factor;
            Zoom::Out {
                factor: rng.uniform(r.min, r.max),
                u_x: rng.f64(),
                u_y: rng.f64(),
            }
        };
        Self { hflip, zoom }
    }
}

/// One batch row: `len` consecutive representations of sequence `seq` from `start` (padded to L when
/// shorter), or a fully padded dummy when `seq` is `None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotSample {
    pub seq: Option<usize>,
    pub start: usize,
    pub len: usize,
    /// The recurrent state of this row starts from zero.
    pub is_first: bool,
    pub aug: AugDraw,
    /// Random-access samples keep labels of every labelled step; `only_load_end_labels` keeps the last.
    pub random_access: bool,
}

impl SlotSample {
    pub fn padding() -> Self {
        Self {
            seq: None,
            start: 0,
            len: 0,
            is_first: false,
            aug: AugDraw::NONE,
            random_access: false,
        }
    }
}

/// Random access: windows of L representations ending at a label frame, shuffled per epoch (drop_last).
#[derive(Debug)]
pub struct RandomPlan {
    items: Vec<(usize, usize)>,
    batch: usize,
    seed: u64,
    aug: evdet_config::AugmentParams,
}

impl RandomPlan {
    pub fn new(
        data: &SplitData,
        seq_len: usize,
        batch: usize,
        seed: u64,
        aug: evdet_config::AugmentParams,
    ) -> Self {
        let mut items = Vec::new();
        for (s, seq) in data.sequences.iter().enumerate() {
            for r in seq.labelled_reprs() {
                // REFERENCE §4.3: only frames with repr_idx >= L-1; the window is [r+1-L, r+1).
                if r + 1 >= seq_len {
                    items.push((s, r + 1 - seq_len));
                }
            }
        }
        Self {
            items,
            batch,
            seed,
            aug,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.items.len() / self.batch.max(1)
    }

    /// The `batch` samples of training step `step`; `None` when there are fewer items than one batch.
    pub fn rows(&self, step: u64, seq_len: usize) -> Option<Vec<SlotSample>> {
        let bpe = self.batches_per_epoch() as u64;
        if bpe == 0 {
            return None;
        }
        let (epoch, k) = (step / bpe, (step % bpe) as usize);
        let perm = Rng::new(derive_seed(self.seed, &[1, epoch])).permutation(self.items.len());
        Some(
            (0..self.batch)
                .map(|j| {
                    let pos = k * self.batch + j;
                    let (seq, start) = self.items[perm[pos]];
                    let mut rng = Rng::new(derive_seed(self.seed, &[2, epoch, pos as u64]));
                    SlotSample {
                        seq: Some(seq),
                        start,
                        len: seq_len,
                        is_first: true,
                        aug: AugDraw::draw(&mut rng, &self.aug),
                        random_access: true,
                    }
                })
                .collect(),
        )
    }
}

/// A labelled stretch of a recording for stream training: `[start, end)` in representation indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubSequence {
    pub seq: usize,
    pub start: usize,
    pub end: usize,
}

impl SubSequence {
    pub fn chunks(&self, l: usize) -> usize {
        (self.end - self.start).div_ceil(l)
    }
}

/// REFERENCE §4.3 (`_get_ev_repr_range_indices`): cut where consecutive labelled representations are
/// more than L apart; each piece spans `[max(first − L + 1, 0), last + 1)`.
pub fn labelled_subsequences(data: &SplitData, l: usize) -> Vec<SubSequence> {
    let mut out = Vec::new();
    for (s, seq) in data.sequences.iter().enumerate() {
        let idx = seq.labelled_reprs();
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && idx[j + 1] - idx[j] <= l {
                j += 1;
            }
            out.push(SubSequence {
                seq: s,
                start: (idx[i] + 1).saturating_sub(l),
                end: idx[j] + 1,
            });
            i = j + 1;
        }
    }
    out
}

/// A slot's permuted sub-sequence order for one round and its chunk prefix sums.
type SlotOrder = (Vec<usize>, Vec<u64>);

/// Stream training: every slot runs through all sub-sequences in its own shuffled order, round after
/// round, L representations per batch; the state of a slot carries over between its chunks.
#[derive(Debug)]
pub struct StreamPlan {
    subs: Vec<SubSequence>,
    total_chunks: u64,
    seq_len: usize,
    seed: u64,
    aug: evdet_config::AugmentParams,
    /// (slot, round) → permuted sub-sequence order and chunk prefix sums.
    cache: Mutex<HashMap<(usize, u64), Arc<SlotOrder>>>,
}

impl StreamPlan {
    pub fn new(
        data: &SplitData,
        seq_len: usize,
        seed: u64,
        aug: evdet_config::AugmentParams,
    ) -> Self {
        let subs = labelled_subsequences(data, seq_len);
        let total_chunks = subs.iter().map(|s| s.chunks(seq_len) as u64).sum();
        Self {
            subs,
            total_chunks,
            seq_len,
            seed,
            aug,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn total_chunks(&self) -> u64 {
        self.total_chunks
    }

    fn order(&self, slot: usize, round: u64) -> Arc<SlotOrder> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 4096 {
            cache.clear();
        }
        cache
            .entry((slot, round))
            .or_insert_with(|| {
                let perm = Rng::new(derive_seed(self.seed, &[3, slot as u64, round]))
                    .permutation(self.subs.len());
                let mut prefix = Vec::with_capacity(perm.len() + 1);
                prefix.push(0u64);
                for &p in &perm {
                    prefix.push(
                        prefix.last().copied().unwrap_or(0)
                            + self.subs[p].chunks(self.seq_len) as u64,
                    );
                }
                Arc::new((perm, prefix))
            })
            .clone()
    }

    /// The sample of `slot` at training step `step`.
    pub fn sample(&self, slot: usize, step: u64) -> SlotSample {
        if self.total_chunks == 0 {
            return SlotSample::padding();
        }
        let (round, i) = (step / self.total_chunks, step % self.total_chunks);
        let order = self.order(slot, round);
        let (perm, prefix) = (&order.0, &order.1);
        let k = prefix.partition_point(|&p| p <= i) - 1;
        let sub = self.subs[perm[k]];
        let chunk = (i - prefix[k]) as usize;
        let start = sub.start + chunk * self.seq_len;
        // Augmentation is drawn once per pass over a sub-sequence and applied to all its chunks.
        let mut rng = Rng::new(derive_seed(self.seed, &[4, slot as u64, round, k as u64]));
        SlotSample {
            seq: Some(sub.seq),
            start,
            len: (sub.end - start).min(self.seq_len),
            is_first: chunk == 0,
            aug: AugDraw::draw(&mut rng, &self.aug),
            random_access: false,
        }
    }
}

/// Batch composition for training: stream rows first, random rows after (REFERENCE §4.2).
///
/// Data parallel: `batch_size.train` is per process, as in RVT and Lightning, and the plan is the
/// single-process plan of the global batch (`world × batch_size.train` rows, split into stream and
/// random rows as one process would), a pure function of (seed, step). Process `r` takes rows
/// `r·b .. (r+1)·b` of it, so every stream slot belongs to one process for the whole run, and a run
/// moves to another world size that divides its global batch unchanged.
#[derive(Debug)]
pub struct TrainPlan {
    pub stream: Option<StreamPlan>,
    pub random: Option<RandomPlan>,
    /// Stream slots of the global batch.
    pub bs_stream: usize,
    /// Random rows of the global batch.
    pub bs_random: usize,
    pub seq_len: usize,
    /// Processes sharing the global batch.
    pub world: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the training split has no label frame reachable with sequence_length {0} (random sampling needs a label at representation index >= L-1)")]
    NoRandomItems(usize),
    #[error("random sampling needs at least {need} windows for one batch, the training split has {have}")]
    TooFewItems { need: usize, have: usize },
    #[error("the training split has no labelled sub-sequence for stream sampling")]
    NoStreams,
    #[error("batch_size.train: mixed sampling needs a global batch (processes × batch_size.train) of at least 2, one stream and one random row; it is {0}")]
    MixedNeedsTwo(usize),
}

impl TrainPlan {
    pub fn new(data: &SplitData, cfg: &evdet_config::ExperimentConfig) -> Result<Self, PlanError> {
        Self::for_world(data, cfg, 1)
    }

    /// The plan of `world` processes with `batch_size.train` rows each.
    pub fn for_world(
        data: &SplitData,
        cfg: &evdet_config::ExperimentConfig,
        world: usize,
    ) -> Result<Self, PlanError> {
        use evdet_config::Sampling;
        let world = world.max(1);
        let (b, l, seed) = (
            cfg.batch_size.train * world,
            cfg.dataset.sequence_length,
            cfg.reproduce.seed,
        );
        let (bs_stream, bs_random) = match cfg.dataset.train.sampling {
            Sampling::Stream => (b, 0),
            Sampling::Random => (0, b),
            Sampling::Mixed if b < 2 => return Err(PlanError::MixedNeedsTwo(b)),
            Sampling::Mixed => {
                let m = &cfg.dataset.train.mixed;
                // Python's round(): half to even.
                let r = ((b as f64 * m.w_random / (m.w_stream + m.w_random)).round_ties_even()
                    as usize)
                    .min(b - 1);
                (b - r, r)
            }
        };
        let aug = &cfg.dataset.data_augmentation;
        let stream = (bs_stream > 0).then(|| StreamPlan::new(data, l, seed, aug.stream.clone()));
        let random =
            (bs_random > 0).then(|| RandomPlan::new(data, l, bs_random, seed, aug.random.clone()));
        if let Some(r) = &random {
            if r.is_empty() {
                return Err(PlanError::NoRandomItems(l));
            }
            if r.batches_per_epoch() == 0 {
                return Err(PlanError::TooFewItems {
                    need: bs_random,
                    have: r.len(),
                });
            }
        }
        if stream.as_ref().is_some_and(|s| s.total_chunks() == 0) {
            return Err(PlanError::NoStreams);
        }
        Ok(Self {
            stream,
            random,
            bs_stream,
            bs_random,
            seq_len: l,
            world,
        })
    }

    /// Rows per process.
    pub fn local_batch(&self) -> usize {
        self.batch_size() / self.world
    }

    /// The first global row of process `rank`.
    pub fn first_row(&self, rank: usize) -> usize {
        rank * self.local_batch()
    }

    /// Stream slots of process `rank` (its first rows; the stream rows of the global batch come first).
    pub fn local_stream(&self, rank: usize) -> usize {
        self.bs_stream
            .saturating_sub(self.first_row(rank))
            .min(self.local_batch())
    }

    /// The rows process `rank` trains on at `step`: rows `r·b .. (r+1)·b` of the global batch.
    pub fn rows_for(&self, step: u64, rank: usize) -> Vec<SlotSample> {
        let rows = self.rows(step);
        if self.world == 1 {
            return rows;
        }
        rows.into_iter()
            .skip(self.first_row(rank))
            .take(self.local_batch())
            .collect()
    }

    pub fn batch_size(&self) -> usize {
        self.bs_stream + self.bs_random
    }

    /// The rows of training step `step`.
    pub fn rows(&self, step: u64) -> Vec<SlotSample> {
        let mut rows: Vec<SlotSample> = match &self.stream {
            Some(s) => (0..self.bs_stream).map(|b| s.sample(b, step)).collect(),
            None => Vec::new(),
        };
        if let Some(r) = &self.random {
            rows.extend(r.rows(step, self.seq_len).unwrap_or_default());
        }
        rows
    }
}

/// Streaming evaluation: every recording from `max(first label − L + 1, 0)` to its end, cut in chunks
/// of L; recordings sorted by length and dealt to slots zig-zag; exhausted slots get padding.
#[derive(Debug, Clone)]
pub struct EvalPlan {
    /// Per slot, its chunks in order.
    pub slots: Vec<Vec<SlotSample>>,
}

impl EvalPlan {
    pub fn new(data: &SplitData, seq_len: usize, batch: usize) -> Self {
        let mut seqs: Vec<(usize, usize, usize)> = data
            .sequences
            .iter()
            .enumerate()
            .filter_map(|(s, q)| {
                let first = *q.labelled_reprs().first()?;
                Some((s, (first + 1).saturating_sub(seq_len), q.num_reprs()))
            })
            .collect();
        // longest first; ties keep name order
        seqs.sort_by_key(|&(s, a, e)| (std::cmp::Reverse(e - a), s));
        // Slots beyond the number of recordings would only ever hold padding.
        let mut slots = vec![Vec::new(); batch.clamp(1, seqs.len().max(1))];
        let n = slots.len();
        for (i, &(s, a, e)) in seqs.iter().enumerate() {
            let round = i / n;
            let pos = i % n;
            let slot = if round % 2 == 0 { pos } else { n - 1 - pos };
            let mut start = a;
            let mut first = true;
            while start < e {
                let len = (e - start).min(seq_len);
                slots[slot].push(SlotSample {
                    seq: Some(s),
                    start,
                    len,
                    is_first: first,
                    aug: AugDraw::NONE,
                    random_access: false,
                });
                first = false;
                start += seq_len;
            }
        }
        Self { slots }
    }

    pub fn num_steps(&self) -> usize {
        self.slots.iter().map(Vec::len).max().unwrap_or(0)
    }

    pub fn rows(&self, step: usize) -> Vec<SlotSample> {
        self.slots
            .iter()
            .map(|s| s.get(step).copied().unwrap_or_else(SlotSample::padding))
            .collect()
    }
}
