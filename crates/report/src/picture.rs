//! Pictures of event frames: the event histogram as a grey/black/white image (as RVT shows it),
//! class-coloured boxes with label tags, prediction | ground-truth strips, upscaling and atomic
//! PNG writing. Plain RGB buffers, no tensors; fast enough to render every frame of a recording.

use std::io::BufReader;
use std::path::Path;

use ab_glyph::{point, Font, PxScale, ScaleFont};

use crate::error::{ReportError, Result};
use crate::font;
use crate::io::write_atomic;

/// An 8-bit RGB picture, rows top to bottom, `data.len() == width * height * 3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbImage {
    /// A picture filled with one colour.
    pub fn filled(width: usize, height: usize, rgb: [u8; 3]) -> Self {
        let mut data = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            data.extend_from_slice(&rgb);
        }
        RgbImage {
            width,
            height,
            data,
        }
    }

    /// Colour at `(x, y)`, `None` outside the picture.
    pub fn pixel(&self, x: usize, y: usize) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y * self.width + x) * 3;
        Some([self.data[i], self.data[i + 1], self.data[i + 2]])
    }

    /// Sets `(x, y)` to `rgb`; points outside the picture are ignored.
    pub fn put(&mut self, x: i64, y: i64, rgb: [u8; 3]) {
        if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height {
            return;
        }
        let i = (y as usize * self.width + x as usize) * 3;
        self.data[i..i + 3].copy_from_slice(&rgb);
    }

    /// Blends `rgb` over `(x, y)` with opacity `alpha` in [0, 1]; outside points are ignored.
    fn blend(&mut self, x: i64, y: i64, rgb: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height {
            return;
        }
        let a = alpha.clamp(0.0, 1.0);
        let i = (y as usize * self.width + x as usize) * 3;
        for (dst, &src) in self.data[i..i + 3].iter_mut().zip(&rgb) {
            let old = *dst as f32;
            *dst = (old + (src as f32 - old) * a).round() as u8;
        }
    }

    /// Fills the rectangle `[x0, x1) × [y0, y1)`, clipped to the picture.
    pub fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, rgb: [u8; 3]) {
        let (w, h) = (self.width as i64, self.height as i64);
        let (x0, x1) = (x0.clamp(0, w), x1.clamp(0, w));
        let (y0, y1) = (y0.clamp(0, h), y1.clamp(0, h));
        for y in y0..y1 {
            let row = (y * w) as usize * 3;
            for x in x0..x1 {
                let i = row + x as usize * 3;
                self.data[i..i + 3].copy_from_slice(&rgb);
            }
        }
    }

    /// Copies `src` with its top-left corner at `(x, y)`, clipped to this picture.
    pub fn paste(&mut self, src: &RgbImage, x: i64, y: i64) {
        for sy in 0..src.height as i64 {
            let ty = y + sy;
            if ty < 0 || ty >= self.height as i64 {
                continue;
            }
            let tx0 = x.max(0);
            let tx1 = (x + src.width as i64).min(self.width as i64);
            if tx0 >= tx1 {
                continue;
            }
            let s = ((sy as usize) * src.width + (tx0 - x) as usize) * 3;
            let t = ((ty as usize) * self.width + tx0 as usize) * 3;
            let n = (tx1 - tx0) as usize * 3;
            self.data[t..t + n].copy_from_slice(&src.data[s..s + n]);
        }
    }
}

/// Event-image colours as RVT's `callbacks/viz_base.py: ev_repr_to_img` paints them.
pub const EVENT_MORE_ON: [u8; 3] = [255, 255, 255];
pub const EVENT_MORE_OFF: [u8; 3] = [0, 0, 0];
pub const EVENT_NONE: [u8; 3] = [127, 127, 127];

/// The picture of one stacked histogram `[channels][height][width]` (channel-major; the first
/// `channels / 2` channels count OFF events, the rest ON events), as RVT's `ev_repr_to_img`
/// draws it: per pixel the ON and OFF counts are summed over their channels; white where ON
/// outnumbers OFF, black where OFF outnumbers ON, grey (127) where they are equal.
/// Works for any count type (`u8` histograms, `f32` tensors, …).
pub fn event_image<T: Copy + Into<f32>>(
    hist: &[T],
    channels: usize,
    height: usize,
    width: usize,
) -> Result<RgbImage> {
    if channels < 2 || !channels.is_multiple_of(2) {
        return Err(ReportError::InvalidInput(format!(
            "an event histogram needs an even number of channels (OFF then ON), got {channels}"
        )));
    }
    let plane = height * width;
    if hist.len() != channels * plane {
        return Err(ReportError::InvalidInput(format!(
            "event histogram has {} values, expected channels × height × width = {channels} × {height} × {width} = {}",
            hist.len(),
            channels * plane
        )));
    }
    let half = channels / 2;
    // Signed difference ON − OFF per pixel, accumulated channel by channel (cache-friendly).
    let mut diff = vec![0f32; plane];
    for (c, chunk) in hist.chunks_exact(plane).enumerate() {
        let sign = if c < half { -1.0 } else { 1.0 };
        for (d, &v) in diff.iter_mut().zip(chunk) {
            *d += sign * v.into();
        }
    }
    let mut img = RgbImage {
        width,
        height,
        data: Vec::with_capacity(plane * 3),
    };
    for d in diff {
        let rgb = if d > 0.0 {
            EVENT_MORE_ON
        } else if d < 0.0 {
            EVENT_MORE_OFF
        } else {
            EVENT_NONE
        };
        img.data.extend_from_slice(&rgb);
    }
    Ok(img)
}

/// One box to draw, in the picture's pixel coordinates (corners, `x2`/`y2` exclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrawBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub class_id: usize,
    /// Detection confidence, shown in the label; `None` for ground truth.
    pub score: Option<f32>,
}

impl DrawBox {
    /// A box given as top-left corner and size (the Prophesee / COCO layout).
    pub fn from_xywh(x: f32, y: f32, w: f32, h: f32, class_id: usize, score: Option<f32>) -> Self {
        DrawBox {
            x1: x,
            y1: y,
            x2: x + w,
            y2: y + h,
            class_id,
            score,
        }
    }

    /// The box in a picture scaled by `factor` (see [`scale`]).
    pub fn scaled(self, factor: f32) -> DrawBox {
        DrawBox {
            x1: self.x1 * factor,
            y1: self.y1 * factor,
            x2: self.x2 * factor,
            y2: self.y2 * factor,
            ..self
        }
    }
}

/// How boxes are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxStyle {
    /// Line width in pixels, drawn inside the box outline.
    pub thickness: u32,
    /// Dashed outline (used for ground truth).
    pub dashed: bool,
    /// Draw the filled `"<class> 0.87"` tag above the box.
    pub label: bool,
    /// Label text height in pixels.
    pub font_px: f32,
}

impl BoxStyle {
    /// Detections: solid 2 px outline, class name and score.
    pub fn prediction() -> Self {
        BoxStyle {
            thickness: 2,
            dashed: false,
            label: true,
            font_px: 11.0,
        }
    }

    /// Ground truth: dashed 2 px outline, class name only.
    pub fn ground_truth() -> Self {
        BoxStyle {
            thickness: 2,
            dashed: true,
            label: true,
            font_px: 11.0,
        }
    }
}

/// Colour of class `class_id` as RVT's `draw_bboxes`
/// (`utils/evaluation/prophesee/visualize/vis_utils.py`) shows it: entry `class_id * 60 % 255`
/// of OpenCV's `COLORMAP_HSV` lookup table. OpenCV's table is BGR and RVT writes that triple
/// into an RGB picture unchanged, so the colour seen is the table's (B, G, R) read as (R, G, B):
/// class 0 blue, 1 spring green, 2 yellow, 3 red, 4 violet, 5 cyan, 6 green, 7 orange-red.
pub fn class_color(class_id: usize) -> [u8; 3] {
    let [r, g, b] = opencv_hsv_colormap(((class_id % 255) * 60 % 255) as u8);
    [b, g, r]
}

/// Entry `index` of OpenCV's `COLORMAP_HSV` as (R, G, B). OpenCV defines the map by 64 knots
/// at `x = i / 63` with the colour of hue `x` at full saturation and value (Octave's `hsv(64)`),
/// interpolated linearly at `x = k / 255` in single precision and rounded to 8 bits.
pub fn opencv_hsv_colormap(index: u8) -> [u8; 3] {
    // Full-saturation hue → RGB: piecewise-linear in the hue sector `s = 6 h`.
    let hue = |h: f32| -> [f32; 3] {
        let s = 6.0 * h;
        [
            ((s - 3.0).abs() - 1.0).clamp(0.0, 1.0),
            (2.0 - (s - 2.0).abs()).clamp(0.0, 1.0),
            (2.0 - (s - 4.0).abs()).clamp(0.0, 1.0),
        ]
    };
    let knot_step = 1.0f32 / 63.0;
    let x = index as f32 * (1.0f32 / 255.0);
    // Interval [lo, lo+1] of the knots holding x.
    let lo = ((x / knot_step).floor() as usize).min(62);
    let (x0, x1) = (lo as f32 * knot_step, (lo + 1) as f32 * knot_step);
    let (c0, c1) = (hue(lo as f32 / 63.0), hue((lo + 1) as f32 / 63.0));
    let mut out = [0u8; 3];
    for c in 0..3 {
        let v = c0[c] + (x - x0) * (c1[c] - c0[c]) / (x1 - x0);
        out[c] = (v * 255.0).round_ties_even().clamp(0.0, 255.0) as u8;
    }
    out
}

/// Black or white, whichever reads better on `bg`.
fn text_color_on(bg: [u8; 3]) -> [u8; 3] {
    let luma = 0.299 * bg[0] as f32 + 0.587 * bg[1] as f32 + 0.114 * bg[2] as f32;
    if luma > 140.0 {
        [0, 0, 0]
    } else {
        [255, 255, 255]
    }
}

/// Draws `text` with its top-left corner at `(x, y)`, `px` pixels high, anti-aliased.
pub fn draw_text(img: &mut RgbImage, x: f32, y: f32, text: &str, px: f32, rgb: [u8; 3]) {
    let Some(face) = font::face() else {
        return;
    };
    let scaled = face.as_scaled(PxScale::from(px));
    let baseline = y + scaled.ascent();
    let mut caret = x;
    let mut prev = None;
    for ch in text.chars() {
        let id = scaled.glyph_id(ch);
        if let Some(p) = prev {
            caret += scaled.kern(p, id);
        }
        let glyph = id.with_scale_and_position(PxScale::from(px), point(caret, baseline));
        caret += scaled.h_advance(id);
        prev = Some(id);
        if let Some(outline) = face.outline_glyph(glyph) {
            let bounds = outline.px_bounds();
            let (bx, by) = (bounds.min.x as i64, bounds.min.y as i64);
            outline.draw(|gx, gy, coverage| {
                if coverage > 0.0 {
                    img.blend(bx + gx as i64, by + gy as i64, rgb, coverage);
                }
            });
        }
    }
}

/// Height of a label tag for text of `px` pixels.
fn tag_height(px: f32) -> i64 {
    (px * 1.3).ceil() as i64
}

/// Draws a filled tag with `text` whose preferred top-left corner is `(x, y + height)` above
/// `(x, y)`; the tag is moved inside the picture (below the point when there is no room above).
fn draw_tag(img: &mut RgbImage, x: i64, y: i64, text: &str, px: f32, bg: [u8; 3]) {
    let h = tag_height(px);
    let w = font::text_width(text, px).ceil() as i64 + 4;
    let mut ty = y - h;
    if ty < 0 {
        ty = y.max(0);
    }
    ty = ty.min(img.height as i64 - h).max(0);
    let tx = x.min(img.width as i64 - w).max(0);
    img.fill_rect(tx, ty, tx + w, ty + h, bg);
    draw_text(
        img,
        tx as f32 + 2.0,
        ty as f32 + (h as f32 - px) / 2.0 - px * 0.05,
        text,
        px,
        text_color_on(bg),
    );
}

/// Label text of a box: the class name (or `class <id>` when the name is unknown) and the score
/// with two decimals.
pub fn box_label(b: &DrawBox, class_names: &[String]) -> String {
    let name = class_names
        .get(b.class_id)
        .cloned()
        .unwrap_or_else(|| format!("class {}", b.class_id));
    match b.score {
        Some(s) if s.is_finite() => format!("{name} {s:.2}"),
        _ => name,
    }
}

/// Draws class-coloured boxes ([`class_color`]) with their label tags. Boxes partly or wholly
/// outside the picture are clipped, inverted corners are swapped, boxes with non-finite
/// coordinates are skipped; nothing here panics on odd boxes.
pub fn draw_boxes(img: &mut RgbImage, boxes: &[DrawBox], class_names: &[String], style: &BoxStyle) {
    // Outlines first, then all tags, so a tag is never crossed by another box's line.
    let mut tags = Vec::new();
    for b in boxes {
        if ![b.x1, b.y1, b.x2, b.y2].iter().all(|v| v.is_finite()) {
            continue;
        }
        // Far-away coordinates are clamped so the integer arithmetic below cannot overflow.
        let lim = 1.0e7f32;
        let (mut x1, mut x2) = (b.x1.clamp(-lim, lim), b.x2.clamp(-lim, lim));
        let (mut y1, mut y2) = (b.y1.clamp(-lim, lim), b.y2.clamp(-lim, lim));
        if x2 < x1 {
            std::mem::swap(&mut x1, &mut x2);
        }
        if y2 < y1 {
            std::mem::swap(&mut y1, &mut y2);
        }
        // Pixels covered: [x1, x2) rounded; at least one pixel wide.
        let (px1, py1) = (x1.round() as i64, y1.round() as i64);
        let px2 = (x2.round() as i64 - 1).max(px1);
        let py2 = (y2.round() as i64 - 1).max(py1);
        if px2 < 0 || py2 < 0 || px1 >= img.width as i64 || py1 >= img.height as i64 {
            continue;
        }
        let color = class_color(b.class_id);
        draw_outline(img, px1, py1, px2, py2, style, color);
        if style.label {
            tags.push((px1, py1, box_label(b, class_names), color));
        }
    }
    for (x, y, text, color) in tags {
        draw_tag(img, x, y, &text, style.font_px, color);
    }
}

/// Outline of the pixel rectangle `[x1, x2] × [y1, y2]` (inclusive), `thickness` inward.
fn draw_outline(
    img: &mut RgbImage,
    x1: i64,
    y1: i64,
    x2: i64,
    y2: i64,
    style: &BoxStyle,
    rgb: [u8; 3],
) {
    let t = (style.thickness.max(1) as i64)
        .min(x2 - x1 + 1)
        .min(y2 - y1 + 1);
    let on = |i: i64| !style.dashed || i.rem_euclid(7) < 4;
    // Only the visible part of each edge is walked, so huge boxes cost what they show.
    let (w, h) = (img.width as i64, img.height as i64);
    let (cx1, cx2) = (x1.max(0), x2.min(w - 1));
    let (cy1, cy2) = (y1.max(0), y2.min(h - 1));
    for k in 0..t {
        for x in cx1..=cx2 {
            if on(x - x1) {
                img.put(x, y1 + k, rgb);
                img.put(x, y2 - k, rgb);
            }
        }
        for y in cy1..=cy2 {
            if on(y - y1) {
                img.put(x1 + k, y, rgb);
                img.put(x2 - k, y, rgb);
            }
        }
    }
}

/// Caption bar colour and height used by [`side_by_side`].
const CAPTION_BG: [u8; 3] = [32, 32, 32];
const CAPTION_FG: [u8; 3] = [240, 240, 240];
const GAP: usize = 4;

/// Two pictures next to each other (typically prediction | ground truth), each with a caption
/// bar above it, separated by a thin dark gap; the shorter one is padded at the bottom.
pub fn side_by_side(
    left: &RgbImage,
    right: &RgbImage,
    left_caption: &str,
    right_caption: &str,
) -> RgbImage {
    let px = 12.0;
    let bar = tag_height(px) as usize + 4;
    let width = left.width + GAP + right.width;
    let height = bar + left.height.max(right.height);
    let mut out = RgbImage::filled(width, height, CAPTION_BG);
    out.paste(left, 0, bar as i64);
    out.paste(right, (left.width + GAP) as i64, bar as i64);
    let cy = (bar as f32 - px) / 2.0 - 1.0;
    draw_text(&mut out, 4.0, cy, left_caption, px, CAPTION_FG);
    draw_text(
        &mut out,
        (left.width + GAP) as f32 + 4.0,
        cy,
        right_caption,
        px,
        CAPTION_FG,
    );
    out
}

/// The picture of one network window as `evdet predict` and `evdet eval` draw it: the event image of
/// histogram `hist` (`chw` = channels, height, width) with the predicted boxes and, when `gt` is given,
/// a second panel with the ground truth. Sensors narrower than 480 pixels (the synthetic `mini`
/// sample is 320 wide) are enlarged ×2 so labels stay readable; boxes are in histogram pixels.
pub fn frame_picture(
    hist: &[u8],
    chw: (usize, usize, usize),
    dets: &[DrawBox],
    gt: Option<&[DrawBox]>,
    classes: &[String],
) -> Result<RgbImage> {
    let (c, h, w) = chw;
    let zoom = if w < 480 { 2 } else { 1 };
    let scaled =
        |b: &[DrawBox]| -> Vec<DrawBox> { b.iter().map(|d| d.scaled(zoom as f32)).collect() };
    let base = scale(&event_image(hist, c, h, w)?, zoom);
    let mut pred = base.clone();
    draw_boxes(&mut pred, &scaled(dets), classes, &BoxStyle::prediction());
    Ok(match gt {
        Some(g) => {
            let mut truth = base;
            draw_boxes(&mut truth, &scaled(g), classes, &BoxStyle::ground_truth());
            side_by_side(&pred, &truth, "prediction", "ground truth")
        }
        None => pred,
    })
}

/// Nearest-neighbour upscaling by an integer `factor` (tiny sensors read better ×2 or ×3).
/// `factor` 0 or 1 returns a copy.
pub fn scale(img: &RgbImage, factor: usize) -> RgbImage {
    if factor <= 1 {
        return img.clone();
    }
    let (w, h) = (img.width * factor, img.height * factor);
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..img.height {
        let row_start = data.len();
        let src = &img.data[y * img.width * 3..(y + 1) * img.width * 3];
        for px in src.chunks_exact(3) {
            for _ in 0..factor {
                data.extend_from_slice(px);
            }
        }
        for _ in 1..factor {
            data.extend_from_within(row_start..row_start + w * 3);
        }
    }
    RgbImage {
        width: w,
        height: h,
        data,
    }
}

/// PNG bytes of `img` (fast compression: these pictures are mostly flat colour).
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>> {
    encode_png_raw(
        img.width,
        img.height,
        png::ColorType::Rgb,
        png::Compression::Fast,
        &img.data,
    )
}

pub(crate) fn encode_png_raw(
    width: usize,
    height: usize,
    color: png::ColorType,
    compression: png::Compression,
    data: &[u8],
) -> Result<Vec<u8>> {
    let err = |e: png::EncodingError| ReportError::Draw {
        what: "a PNG".into(),
        message: e.to_string(),
    };
    let (w, h) = (
        u32::try_from(width).map_err(|_| ReportError::InvalidInput("picture too wide".into()))?,
        u32::try_from(height).map_err(|_| ReportError::InvalidInput("picture too tall".into()))?,
    );
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(compression);
        let mut writer = enc.write_header().map_err(err)?;
        writer.write_image_data(data).map_err(err)?;
        writer.finish().map_err(err)?;
    }
    Ok(out)
}

/// Writes `img` as a PNG file; written to a temporary name in the same folder, then renamed.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let bytes = encode_png(img)?;
    write_atomic(path, &bytes)
}

/// Reads an 8-bit RGB or RGBA (alpha dropped), grey or grey-alpha PNG file.
pub fn load_png(path: &Path) -> Result<RgbImage> {
    let file = std::fs::File::open(path).map_err(|e| ReportError::io("opening", path, e))?;
    decode_png_from(BufReader::new(file)).map_err(|m| ReportError::format(path, m))
}

/// Decodes PNG bytes like [`load_png`].
pub fn decode_png(bytes: &[u8]) -> Result<RgbImage> {
    decode_png_from(bytes).map_err(|m| ReportError::Draw {
        what: "decoding a PNG".into(),
        message: m,
    })
}

fn decode_png_from<R: std::io::Read>(reader: R) -> std::result::Result<RgbImage, String> {
    let mut dec = png::Decoder::new(reader);
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec
        .read_info()
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let buf = &buf[..info.buffer_size()];
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Indexed => return Err("indexed PNG was not expanded".into()),
    };
    let mut data = Vec::with_capacity(w * h * 3);
    for px in buf.chunks_exact(channels) {
        match channels {
            1 | 2 => data.extend_from_slice(&[px[0], px[0], px[0]]),
            _ => data.extend_from_slice(&px[..3]),
        }
    }
    if data.len() != w * h * 3 {
        return Err(format!(
            "PNG holds {} pixels, expected {w}×{h}",
            data.len() / 3
        ));
    }
    Ok(RgbImage {
        width: w,
        height: h,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsv_colormap_matches_opencv_knots() {
        // Index 0 is red, the map's knots are hue i/63; OpenCV's table starts (B,G,R)=(0,0,255).
        assert_eq!(opencv_hsv_colormap(0), [255, 0, 0]);
        assert_eq!(opencv_hsv_colormap(255), [255, 0, 0]);
        // Class 0 is blue in RVT's pictures (pedestrian -> blue, as its other drawer says).
        assert_eq!(class_color(0), [0, 0, 255]);
        // Eight eTraM classes get eight distinct colours.
        let colors: Vec<_> = (0..8).map(class_color).collect();
        for i in 0..8 {
            for j in 0..i {
                assert_ne!(colors[i], colors[j], "classes {i} and {j}");
            }
        }
    }
}
