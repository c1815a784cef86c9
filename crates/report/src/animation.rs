//! Animations of rendered frames: an MP4 through `ffmpeg` when it is on `PATH` (H.264, yuv420p,
//! even dimensions), otherwise an animated GIF written here with a fixed palette. Both are
//! written to a temporary name and renamed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{ReportError, Result};
use crate::io::{ensure_parent, rename_into_place, temp_sibling};
use crate::picture::{load_png, RgbImage};

/// Whether an `ffmpeg` that runs is on `PATH`.
pub fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Encodes the PNG `frames` (in order) at `fps` frames per second: `<out_stem>.mp4` when ffmpeg
/// is available and succeeds, else `<out_stem>.gif`. Returns the file written. Frames of other
/// sizes than the first are cropped or padded (black) to the first frame's size.
pub fn write_video(frames: &[PathBuf], out_stem: &Path, fps: f64) -> Result<PathBuf> {
    if frames.is_empty() {
        return Err(ReportError::InvalidInput(format!(
            "no frames to encode into {}",
            out_stem.display()
        )));
    }
    if !(fps.is_finite() && fps > 0.0) {
        return Err(ReportError::InvalidInput(format!(
            "frames per second must be positive, got {fps}"
        )));
    }
    if ffmpeg_available() {
        let mp4 = with_suffix(out_stem, "mp4");
        if write_mp4(frames, &mp4, fps).is_ok() {
            return Ok(mp4);
        }
        // An ffmpeg without libx264 (or otherwise failing) still leaves the GIF route.
    }
    let gif = with_suffix(out_stem, "gif");
    write_gif(frames, &gif, fps)?;
    Ok(gif)
}

/// `stem` with `.ext` appended to its file name (`out/pred` → `out/pred.mp4`).
fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// `img` cropped or padded with black to `width × height`.
fn fit(img: RgbImage, width: usize, height: usize) -> RgbImage {
    if img.width == width && img.height == height {
        return img;
    }
    let mut out = RgbImage::filled(width, height, [0, 0, 0]);
    out.paste(&img, 0, 0);
    out
}

/// Encodes `frames` into the MP4 file `out` with ffmpeg (raw RGB frames piped to its stdin).
pub fn write_mp4(frames: &[PathBuf], out: &Path, fps: f64) -> Result<()> {
    let first = load_png(&frames[0])?;
    let (w, h) = (first.width, first.height);
    ensure_parent(out)?;
    let tmp = temp_sibling(out);
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24"])
        .args([
            "-s",
            &format!("{w}x{h}"),
            "-r",
            &format!("{fps}"),
            "-i",
            "-",
        ])
        .args(["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"])
        .args([
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
        ])
        .args(["-f", "mp4"])
        .arg(&tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ReportError::io("starting ffmpeg for", out, e))?;
    let feed = (|| {
        let Some(mut stdin) = child.stdin.take() else {
            return Err(ReportError::format(
                out,
                "ffmpeg's input could not be opened",
            ));
        };
        stdin
            .write_all(&first.data)
            .map_err(|e| ReportError::io("piping frames to ffmpeg for", out, e))?;
        for path in &frames[1..] {
            let img = fit(load_png(path)?, w, h);
            stdin
                .write_all(&img.data)
                .map_err(|e| ReportError::io("piping frames to ffmpeg for", out, e))?;
        }
        Ok(())
    })();
    let output = child
        .wait_with_output()
        .map_err(|e| ReportError::io("running ffmpeg for", out, e))?;
    let result = feed.and_then(|()| {
        if output.status.success() {
            rename_into_place(&tmp, out)
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(ReportError::format(
                out,
                format!("ffmpeg failed: {}", stderr.trim()),
            ))
        }
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Number of grey levels in the GIF palette besides the colour cube's own six.
const GREYS: usize = 40;

/// The fixed GIF palette: a 6×6×6 colour cube (216 entries, steps of 51) and 40 extra greys
/// (including 127, the no-event grey), 256 entries in all.
fn palette() -> Vec<u8> {
    let mut pal = Vec::with_capacity(256 * 3);
    for r in 0..6u32 {
        for g in 0..6u32 {
            for b in 0..6u32 {
                pal.extend_from_slice(&[(r * 51) as u8, (g * 51) as u8, (b * 51) as u8]);
            }
        }
    }
    // Greys strictly between the cube's, 127 among them.
    let extra: Vec<u8> = (0..=255u32)
        .filter(|v| v % 51 != 0)
        .map(|v| v as u8)
        .collect();
    let step = extra.len() as f32 / GREYS as f32;
    let mut chosen: Vec<u8> = (0..GREYS)
        .map(|i| extra[(i as f32 * step) as usize])
        .collect();
    if !chosen.contains(&127) {
        chosen[GREYS / 2] = 127;
    }
    chosen.sort_unstable();
    for v in chosen {
        pal.extend_from_slice(&[v, v, v]);
    }
    pal
}

/// Maps RGB pixels to indices of [`palette`]: greys to the nearest grey, colours to the cube.
struct Quantiser {
    grey_index: [u8; 256],
}

impl Quantiser {
    fn new(pal: &[u8]) -> Self {
        let greys: Vec<(u8, u8)> = pal
            .chunks_exact(3)
            .enumerate()
            .filter(|(_, c)| c[0] == c[1] && c[1] == c[2])
            .map(|(i, c)| (c[0], i as u8))
            .collect();
        let mut grey_index = [0u8; 256];
        for (v, slot) in grey_index.iter_mut().enumerate() {
            if let Some(&(_, i)) = greys
                .iter()
                .min_by_key(|(g, _)| (*g as i32 - v as i32).abs())
            {
                *slot = i;
            }
        }
        Quantiser { grey_index }
    }

    fn index(&self, px: &[u8]) -> u8 {
        if px[0] == px[1] && px[1] == px[2] {
            return self.grey_index[px[0] as usize];
        }
        let q = |v: u8| (v as u32 + 25) / 51;
        (q(px[0]) * 36 + q(px[1]) * 6 + q(px[2])) as u8
    }
}

/// Writes the PNG `frames` as a looping animated GIF at `fps` (GIF delays are whole
/// hundredths of a second, at least 2). Frames are fitted to the first frame's size.
pub fn write_gif(frames: &[PathBuf], out: &Path, fps: f64) -> Result<()> {
    let first = frames
        .first()
        .ok_or_else(|| ReportError::InvalidInput(format!("no frames for {}", out.display())))?;
    let first = load_png(first)?;
    let (w, h) = (first.width, first.height);
    let (w16, h16) = match (u16::try_from(w), u16::try_from(h)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            return Err(ReportError::InvalidInput(format!(
                "frames of {w}×{h} are too large for a GIF"
            )))
        }
    };
    let delay = ((100.0 / fps).round() as u16).max(2);
    let pal = palette();
    let quant = Quantiser::new(&pal);
    ensure_parent(out)?;
    let tmp = temp_sibling(out);
    let gif_err = |e: gif::EncodingError| ReportError::format(out, format!("GIF encoding: {e}"));
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(|e| ReportError::io("creating", &tmp, e))?;
        let mut enc =
            gif::Encoder::new(std::io::BufWriter::new(file), w16, h16, &pal).map_err(gif_err)?;
        enc.set_repeat(gif::Repeat::Infinite).map_err(gif_err)?;
        let mut img = Some(first);
        for path in frames {
            let frame_img = match img.take() {
                Some(f) => f,
                None => fit(load_png(path)?, w, h),
            };
            let indices: Vec<u8> = frame_img
                .data
                .chunks_exact(3)
                .map(|px| quant.index(px))
                .collect();
            let mut frame = gif::Frame::from_indexed_pixels(w16, h16, indices, None);
            frame.delay = delay;
            enc.write_frame(&frame).map_err(gif_err)?;
        }
        let mut writer = enc
            .into_inner()
            .map_err(|e| ReportError::io("writing", &tmp, e))?;
        writer
            .flush()
            .map_err(|e| ReportError::io("writing", &tmp, e))?;
        drop(writer);
        rename_into_place(&tmp, out)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_has_256_entries_and_exact_event_colours() {
        let pal = palette();
        assert_eq!(pal.len(), 256 * 3);
        let q = Quantiser::new(&pal);
        for c in [[0u8, 0, 0], [127, 127, 127], [255, 255, 255], [0, 0, 255]] {
            let i = q.index(&c) as usize;
            assert_eq!(&pal[i * 3..i * 3 + 3], &c);
        }
    }
}
