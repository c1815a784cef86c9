//! One recording from start to finish: build the street, warm the traffic up, render the first frame, then
//! step the simulation, turning changed pixels into events and taking labels at 30 Hz. Events are sorted
//! in blocks of 0.1 s (the illumination pass covers a block at once) and streamed to a writer
//! thread that appends them to the `_td.h5` file, so memory stays bounded however long the recording.

use super::labels::{visible_boxes, LABEL_PERIOD_US};
use super::objects::NUM_CLASSES;
use super::render::{self, Drawable, StepInput};
use super::scene::{Illumination, Layout, Photometry, Prop};
use super::sensor::{Ev, Sensor};
use super::sprite::{Facing, SpriteFrame, SpriteSet};
use super::traffic::{DrawKey, Traffic};
use super::SynthConfig;
use evdet_events::error::{EventsError, Result};
use evdet_events::event::EventBatch;
use evdet_events::h5_events::{Compression, RawEventWriter};
use evdet_events::labels::{write_bbox_npy, BBox};
use evdet_events::recording::{RecordingWriter, WriteFormat};
use evdet_events::rng::Rng;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Events handed to the writer at a time.
const WRITE_CHUNK: usize = 1 << 20;
/// Events are sorted and the illumination pass runs once per this much recording time. The light changes
/// over tens of seconds, so a pixel crosses a threshold through it at most every few seconds: a 0.1 s
/// pass with interpolated timestamps loses nothing, and costs a fifth of a 20 ms one.
const BLOCK_US: i64 = 100_000;

/// One sequence to generate.
pub(super) struct Job {
    pub split: String,
    pub name: String,
    pub seed: u64,
    pub dir: PathBuf,
}

/// What one sequence produced.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SequenceReport {
    pub split: String,
    pub name: String,
    pub duration_s: f64,
    pub events: u64,
    /// Events per second of recording: mean, and the busiest whole second.
    pub event_rate: f64,
    pub peak_event_rate_1s: f64,
    pub boxes: u64,
    pub boxes_per_class: [u64; NUM_CLASSES],
    pub tracks_per_class: [u64; NUM_CLASSES],
    /// Labelled instants (of the 30 Hz clock) with at least one box.
    pub labelled_instants: u64,
    pub wall_s: f64,
}

/// How long the traffic runs before recording starts: long enough for the slowest walkers to cross.
fn warm_up_s(layout: &Layout) -> f64 {
    ((layout.width as f64 / layout.scale + 400.0) / 30.0).clamp(10.0, 60.0)
}

fn prop_drawable(p: Prop, ph: Photometry, index: usize) -> Drawable {
    let frame = SpriteFrame::from_canvas(&p.canvas, ph);
    let place = frame.placement(p.foot);
    let rect = frame.rect(&place);
    Drawable {
        set: Arc::new(SpriteSet {
            right: vec![frame],
            ..Default::default()
        }),
        facing: Facing::Right,
        frame: 0,
        place,
        rect,
        // Street furniture sorts after objects standing on the same row.
        depth: (p.foot.1, (1 << 40) + index as u64),
        track_id: 0,
        class_id: 0,
    }
}

/// Every object is re-rendered in full once per this many steps (staggered by track id), so changes in
/// its flat regions (skipped in between, see `SpriteFrame::active`) are caught up within a few ms.
const REFRESH_STEPS: u64 = 16;

/// The scene at the end of a step: what to draw (far first), each object's motion during the step, and
/// which pixels may have changed.
#[derive(Default)]
struct Frame {
    items: Vec<Drawable>,
    motion: Vec<(f64, f64)>,
    dirty_rows: Vec<Vec<(i32, i32)>>,
}

impl Frame {
    /// Gathers the drawables at the end of step number `step` and marks what changed since the last one:
    /// objects that appeared, vanished, turned or changed animation frame in full, moved ones only where
    /// their picture is not flat (plus a periodic full refresh).
    fn collect(
        &mut self,
        traffic: &mut Traffic,
        props: &[Drawable],
        (w, h): (usize, usize),
        night: bool,
        ph: Photometry,
        step: u64,
    ) {
        let mut items: Vec<(Drawable, (f64, f64))> =
            Vec::with_capacity(traffic.agents.len() + props.len());
        self.dirty_rows.resize_with(h, Vec::new);
        self.dirty_rows.iter_mut().for_each(Vec::clear);
        let rows = &mut self.dirty_rows;
        for a in &mut traffic.agents {
            let (foot, facing) = a.path.at(a.s);
            // Cheap test with the nominal size before painting anything.
            let near = foot.0 + a.w > -2.0
                && foot.0 - a.w < w as f64 + 2.0
                && foot.1 > -2.0
                && foot.1 - 1.2 * a.h < h as f64 + 2.0;
            if !near {
                if let Some((r, _)) = a.drawn.take() {
                    render::add_rect(rows, &r, w);
                }
                continue;
            }
            let set = a
                .sprites
                .get_or_insert_with(|| {
                    Arc::new(SpriteSet::build(
                        a.class,
                        a.w,
                        a.h,
                        &a.style,
                        &a.path.facings(),
                        night,
                        ph,
                    ))
                })
                .clone();
            let (frame, k) = set.frame(facing, a.phase());
            let place = frame.placement(foot);
            let rect = frame.rect(&place);
            let key = DrawKey {
                ix: place.ix,
                iy: place.iy,
                fx: (place.fx * 4096.0) as u16,
                fy: (place.fy * 4096.0) as u16,
                facing,
                frame: k as u16,
            };
            let refresh = (step + a.track_id as u64).is_multiple_of(REFRESH_STEPS);
            match a.drawn {
                Some((_, k0)) if k0 == key => {}
                Some((r, k0)) if refresh || k0.facing != key.facing || k0.frame != key.frame => {
                    render::add_rect(rows, &r.union(&rect), w)
                }
                Some((_, k0)) => {
                    frame.add_active_spans((k0.ix, k0.iy), (key.ix, key.iy), rows, w);
                }
                None => render::add_rect(rows, &rect, w),
            }
            if rect.clip(w, h).is_empty() {
                a.drawn = None;
                continue;
            }
            a.drawn = Some((rect, key));
            let motion = (foot.0 - a.prev_foot.0, foot.1 - a.prev_foot.1);
            items.push((
                Drawable {
                    set,
                    facing,
                    frame: k,
                    place,
                    rect,
                    depth: (foot.1, a.track_id as u64),
                    track_id: a.track_id,
                    class_id: a.class.id(),
                },
                motion,
            ));
        }
        items.extend(props.iter().map(|p| (p.clone(), (0.0, 0.0))));
        items.sort_by(|a, b| {
            a.0.depth
                .0
                .total_cmp(&b.0.depth.0)
                .then(a.0.depth.1.cmp(&b.0.depth.1))
        });
        self.items.clear();
        self.motion.clear();
        for (d, m) in items {
            self.items.push(d);
            self.motion.push(m);
        }
    }
}

/// Stable counting sort of a block's events by timestamp (a block spans a few thousand µs at most, so
/// one bucket per µs): equal timestamps keep their deterministic generation order.
fn sort_by_time(block: &[Ev], out: &mut Vec<Ev>, counts: &mut Vec<u32>) {
    out.clear();
    let Some(t_min) = block.iter().map(|e| e.t).min() else {
        return;
    };
    let t_max = block.iter().map(|e| e.t).max().unwrap_or(t_min);
    counts.clear();
    counts.resize((t_max - t_min + 2) as usize, 0);
    for e in block {
        counts[(e.t - t_min) as usize + 1] += 1;
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    out.resize(
        block.len(),
        Ev {
            t: 0,
            x: 0,
            y: 0,
            p: 0,
        },
    );
    for e in block {
        let slot = &mut counts[(e.t - t_min) as usize];
        out[*slot as usize] = *e;
        *slot += 1;
    }
}

pub(super) fn run(
    cfg: &SynthConfig,
    job: &Job,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<SequenceReport> {
    let start = Instant::now();
    let (h, w) = cfg.sensor_hw;
    let mut rng = Rng::new(job.seed);
    let layout = Layout::generate(w, h, cfg.pixel_scale, cfg.density, &mut rng);
    let ph = if cfg.night {
        Photometry::NIGHT
    } else {
        Photometry::DAY
    };
    let background: Vec<f32> = layout
        .paint_background(&mut rng)
        .iter()
        .map(|&l| ph.log(l))
        .collect();
    let props: Vec<Drawable> = layout
        .props(&mut rng)
        .into_iter()
        .enumerate()
        .map(|(i, p)| prop_drawable(p, ph, i))
        .collect();
    let illum = if cfg.illumination > 0.0 {
        Illumination::random(cfg.illumination, &mut rng)
    } else {
        Illumination::NONE
    };
    let warm = warm_up_s(&layout);
    let mut traffic = Traffic::new(&layout, Rng::new(rng.next_u64()), -warm);
    traffic.warm_up(-warm, 0.0);
    let mut sensor = Sensor::new(w, h, cfg.sensor, &mut rng);
    let mut noise_rng = Rng::new(rng.next_u64());

    // The first frame sets every pixel's scene intensity and reference: recording starts quiet.
    let mut frame = Frame::default();
    let mut outs: Vec<Vec<Ev>> = Vec::new();
    frame.collect(&mut traffic, &props, (w, h), cfg.night, ph, 0);
    let full: Vec<Vec<(i32, i32)>> = vec![vec![(0, w as i32)]; h];
    let g_start = illum.at(0);
    let input = StepInput {
        width: w,
        background: &background,
        items: &frame.items,
        dirty_rows: &full,
        t0: 0,
        dt: cfg.step_us,
        g0: g_start,
        g1: g_start,
        params: &cfg.sensor,
        jitter_seed: sensor.jitter_seed,
        fire: false,
    };
    render::step(&mut sensor.pixels, &mut sensor.last_t, &input, &mut outs);
    sensor.settle(g_start, &mut rng);

    let duration_us = (cfg.duration_s * 1e6).round() as i64;
    let events_path = job.dir.join(cfg.format.file_name(&job.name));
    let writer = match cfg.format {
        WriteFormat::H5 => RecordingWriter::H5(RawEventWriter::create(
            &events_path,
            (h, w),
            Compression::BloscZstd(cfg.compression_level),
        )?),
        other => RecordingWriter::create(&events_path, other, (h, w))?,
    };
    let mut report = SequenceReport {
        split: job.split.clone(),
        name: job.name.clone(),
        duration_s: duration_us as f64 * 1e-6,
        ..Default::default()
    };
    let mut labels: Vec<BBox> = Vec::new();
    let mut per_second: Vec<u64> = vec![0; (duration_us / 1_000_000 + 1) as usize];

    let writer = std::thread::scope(|scope| -> Result<RecordingWriter> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<EventBatch>(2);
        let handle = scope.spawn(move || -> Result<RecordingWriter> {
            let mut writer = writer;
            for batch in rx {
                writer.append(&batch, &[])?;
            }
            Ok(writer)
        });
        let mut block: Vec<Ev> = Vec::new();
        let (mut sorted, mut counts): (Vec<Ev>, Vec<u32>) = (Vec::new(), Vec::new());
        let mut batch = EventBatch::default();
        let mut next_label = LABEL_PERIOD_US;
        let (mut pass_t, mut pass_g) = (0i64, g_start);
        let mut reported_ms = 0u64;
        let mut t0 = 0i64;
        let mut step = 0u64;
        let mut writer_gone = false;
        while t0 < duration_us && !writer_gone {
            let t1 = (t0 + cfg.step_us).min(duration_us);
            let dt = t1 - t0;
            traffic.step(t0 as f64 * 1e-6, dt as f64 * 1e-6);
            step += 1;
            frame.collect(&mut traffic, &props, (w, h), cfg.night, ph, step);
            let (g0, g1) = (illum.at(t0), illum.at(t1));
            let input = StepInput {
                width: w,
                background: &background,
                items: &frame.items,
                dirty_rows: &frame.dirty_rows,
                t0,
                dt,
                g0,
                g1,
                params: &cfg.sensor,
                jitter_seed: sensor.jitter_seed,
                fire: true,
            };
            render::step(&mut sensor.pixels, &mut sensor.last_t, &input, &mut outs);
            for o in &outs {
                block.extend_from_slice(o);
            }
            sensor.noise(&mut noise_rng, t0, dt, &mut block);
            while next_label <= t1 {
                labels.extend(visible_boxes(
                    next_label,
                    t0,
                    dt,
                    &frame.items,
                    &frame.motion,
                    w,
                    h,
                ));
                next_label += LABEL_PERIOD_US;
            }
            let block_end = t1 / BLOCK_US != t0 / BLOCK_US || t1 == duration_us;
            if block_end {
                if !illum.is_static() {
                    render::illumination(
                        &mut sensor.pixels,
                        &mut sensor.last_t,
                        w,
                        pass_t,
                        t1 - pass_t,
                        pass_g,
                        g1,
                        &cfg.sensor,
                        sensor.jitter_seed,
                        &mut outs,
                    );
                    for o in &outs {
                        block.extend_from_slice(o);
                    }
                    (pass_t, pass_g) = (t1, g1);
                }
                sort_by_time(&block, &mut sorted, &mut counts);
                for e in &sorted {
                    per_second[(e.t / 1_000_000) as usize] += 1;
                    batch.x.push(e.x);
                    batch.y.push(e.y);
                    batch.p.push(e.p);
                    batch.t.push(e.t);
                }
                block.clear();
                if batch.len() >= WRITE_CHUNK && tx.send(std::mem::take(&mut batch)).is_err() {
                    writer_gone = true;
                }
                let ms = (t1 / 1000) as u64;
                progress(ms - reported_ms);
                reported_ms = ms;
            }
            t0 = t1;
        }
        if !batch.is_empty() && !writer_gone {
            let _ = tx.send(std::mem::take(&mut batch));
        }
        drop(tx);
        handle
            .join()
            .map_err(|_| EventsError::format(&events_path, "the event writer thread panicked"))?
    })?;
    report.events = writer.len() as u64;
    writer.finish()?;
    write_bbox_npy(&job.dir.join(format!("{}_bbox.npy", job.name)), &labels)?;

    let mut tracks: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); NUM_CLASSES];
    let mut instants = BTreeSet::new();
    for b in &labels {
        let c = (b.class_id as usize).min(NUM_CLASSES - 1);
        report.boxes_per_class[c] += 1;
        tracks[c].insert(b.track_id);
        instants.insert(b.t);
    }
    report.boxes = labels.len() as u64;
    report.labelled_instants = instants.len() as u64;
    for (c, t) in tracks.iter().enumerate() {
        report.tracks_per_class[c] = t.len() as u64;
    }
    report.event_rate = report.events as f64 / report.duration_s.max(1e-9);
    // The busiest whole second (a shorter recording counts as one partial second).
    let whole = (duration_us / 1_000_000) as usize;
    report.peak_event_rate_1s = if whole == 0 {
        report.event_rate
    } else {
        per_second[..whole].iter().copied().max().unwrap_or(0) as f64
    };
    report.wall_s = start.elapsed().as_secs_f64();
    Ok(report)
}
