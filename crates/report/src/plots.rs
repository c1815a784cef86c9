//! Charts as SVG strings and their PNG rasterisation: line charts (training curves, validation
//! AP over steps, precision–recall curves) with plotters' SVG backend, grouped bar charts and
//! the confusion-matrix heat map as hand-written SVG, and [`svg_to_png`] with resvg and the
//! bundled font (no system fonts needed).

use std::fmt::Write as _;

use plotters::coord::combinators::{IntoLogRange, LogCoord};
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{ReportError, Result};
use crate::font;

/// Categorical colours (matplotlib's tab10) for runs, series and classes in charts.
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Colour `i` of [`PALETTE`], cycling.
pub fn palette(i: usize) -> [u8; 3] {
    PALETTE[i % PALETTE.len()]
}

/// Font family written into SVG text; the rasteriser's font database maps it to the bundled
/// font, and browsers showing inline SVG use their own sans-serif.
const FAMILY: &str = "sans-serif";

/// One line of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: [u8; 3],
}

/// A line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Logarithmic y axis (non-positive values are dropped).
    pub log_y: bool,
    /// Fixed y range; otherwise fitted to the data.
    pub y_range: Option<(f64, f64)>,
    /// Fixed x range; otherwise fitted to the data.
    pub x_range: Option<(f64, f64)>,
    /// Draw a dot at every point (for sparse series such as validation results).
    pub markers: bool,
    /// Legend in the lower right corner (for rising curves) instead of the upper right.
    pub legend_lower: bool,
    pub width: u32,
    pub height: u32,
}

impl LineChart {
    /// A chart of the given title and axis labels, 640×340, y fitted, no markers.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        LineChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            log_y: false,
            y_range: None,
            x_range: None,
            markers: false,
            legend_lower: false,
            width: 640,
            height: 340,
        }
    }
}

fn draw_err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> ReportError + '_ {
    move |e| ReportError::Draw {
        what: what.to_string(),
        message: e.to_string(),
    }
}

fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// Range of `values` with a little room, never empty.
fn fit_range(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let d = if lo.abs() > 1e-12 {
            lo.abs() * 0.1
        } else {
            1.0
        };
        return (lo - d, hi + d);
    }
    let d = (hi - lo) * pad;
    (lo - d, hi + d)
}

/// Short tick label of a number.
pub(crate) fn tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.0e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Renders `chart` to an SVG document.
pub fn line_chart_svg(chart: &LineChart) -> Result<String> {
    font::register_plotters_font();
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (chart.width, chart.height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err(&chart.title))?;
        let series: Vec<Series> = chart
            .series
            .iter()
            .map(|s| Series {
                points: s
                    .points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite() && (!chart.log_y || *y > 0.0))
                    .collect(),
                ..s.clone()
            })
            .collect();
        let (x0, x1) = chart.x_range.unwrap_or_else(|| {
            fit_range(
                series.iter().flat_map(|s| s.points.iter().map(|p| p.0)),
                0.0,
            )
        });
        let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        if chart.log_y {
            let (lo, hi) = chart.y_range.unwrap_or_else(|| {
                let (lo, hi) = fit_range(ys(), 0.0);
                let lo = if lo > 0.0 { lo } else { 1e-6 };
                (lo / 1.3, hi.max(lo) * 1.3)
            });
            let y: LogCoord<f64> = (lo.max(1e-12)..hi.max(lo * 10.0)).log_scale().into();
            draw_lines(&root, chart, &series, (x0..x1).into(), y)?;
        } else {
            let (lo, hi) = chart.y_range.unwrap_or_else(|| fit_range(ys(), 0.06));
            let y: RangedCoordf64 = (lo..hi).into();
            draw_lines(&root, chart, &series, (x0..x1).into(), y)?;
        }
        root.present().map_err(draw_err(&chart.title))?;
    }
    Ok(svg)
}

fn draw_lines<Y>(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    chart: &LineChart,
    series: &[Series],
    x: RangedCoordf64,
    y: Y,
) -> Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let err = draw_err(&chart.title);
    let mut ctx = ChartBuilder::on(root)
        .caption(&chart.title, (FAMILY, 17))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(62)
        .build_cartesian_2d(x, y)
        .map_err(&err)?;
    ctx.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .max_light_lines(1)
        .light_line_style(RGBColor(242, 242, 242))
        .bold_line_style(RGBColor(218, 218, 218))
        .x_labels(8)
        .y_labels(7)
        .draw()
        .map_err(&err)?;
    let mut any = false;
    for s in series {
        if s.points.is_empty() {
            continue;
        }
        any = true;
        let color = rgb(s.color);
        let style = color.stroke_width(2);
        ctx.draw_series(LineSeries::new(s.points.iter().copied(), style))
            .map_err(&err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
        if chart.markers || s.points.len() == 1 {
            ctx.draw_series(s.points.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(&err)?;
        }
    }
    if any && series.iter().filter(|s| !s.points.is_empty()).count() > 1 {
        ctx.configure_series_labels()
            .label_font((FAMILY, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .position(if chart.legend_lower {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperRight
            })
            .draw()
            .map_err(&err)?;
    }
    if !any {
        root.draw(&Text::new(
            "no data",
            (chart.width as i32 / 2 - 25, chart.height as i32 / 2),
            (FAMILY, 16).into_font().color(&RGBColor(120, 120, 120)),
        ))
        .map_err(&err)?;
    }
    Ok(())
}

/// XML-escapes text for SVG and HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn hex(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// A grouped bar chart: one group per category, one bar per series in each group.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub categories: Vec<String>,
    /// Second line under each category label (e.g. the number of ground-truth boxes).
    pub category_notes: Vec<String>,
    /// `(name, colour, value per category)`; `None` values are drawn as a "–" mark.
    pub series: Vec<(String, [u8; 3], Vec<Option<f64>>)>,
    /// Fixed y maximum (bars are fractions: 1.0 is natural); otherwise fitted.
    pub y_max: Option<f64>,
    /// The last category is a group of the others (e.g. "small classes"): set apart by a
    /// dashed line.
    pub group_last: bool,
    pub width: u32,
    pub height: u32,
}

/// Nice tick step for a range of `span` with about `n` ticks.
pub(crate) fn nice_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(1e-12);
    let mag = 10f64.powf(raw.log10().floor());
    let r = raw / mag;
    let nice = if r <= 1.0 {
        1.0
    } else if r <= 2.0 {
        2.0
    } else if r <= 2.5 {
        2.5
    } else if r <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Renders a grouped bar chart to SVG. Values are written above the bars.
pub fn bar_chart_svg(chart: &BarChart) -> String {
    let (w, h) = (chart.width as f64, chart.height as f64);
    let (left, right, top) = (62.0, 16.0, 44.0);
    let legend_h = if chart.series.len() > 1 { 22.0 } else { 0.0 };
    let bottom = 58.0
        + legend_h
        + if chart.category_notes.is_empty() {
            0.0
        } else {
            14.0
        };
    let (pw, ph) = (w - left - right, h - top - bottom);
    let data_max = chart
        .series
        .iter()
        .flat_map(|s| s.2.iter().flatten())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    // Nothing above 0 (no detections, or every value undefined): the axis of a fraction, 0 to 1,
    // rather than ticks fitted to nothing (2e-10, 1e-10, …).
    let y_max = chart.y_max.unwrap_or_else(|| {
        if data_max <= 0.0 {
            return 1.0;
        }
        let step = nice_step(data_max, 5.0);
        (data_max / step).ceil().max(1.0) * step
    });
    let y_of = |v: f64| top + ph - (v.clamp(0.0, y_max) / y_max) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{FAMILY}">"#
    );
    let _ = write!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = write!(
        s,
        r#"<text x="{}" y="24" font-size="17" text-anchor="middle">{}</text>"#,
        w / 2.0,
        escape(&chart.title)
    );
    // Grid and y ticks.
    let step = nice_step(y_max, 5.0);
    let mut v = 0.0;
    while v <= y_max + step * 1e-6 {
        let y = y_of(v);
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{}" y="{:.1}" font-size="12" text-anchor="end">{}</text>"##,
            left + pw,
            left - 6.0,
            y + 4.0,
            tick(v)
        );
        v += step;
    }
    let _ = write!(
        s,
        r#"<text transform="translate(16,{:.1}) rotate(-90)" font-size="13" text-anchor="middle">{}</text>"#,
        top + ph / 2.0,
        escape(&chart.y_label)
    );
    let n_cat = chart.categories.len().max(1) as f64;
    let n_ser = chart.series.len().max(1) as f64;
    let group_w = pw / n_cat;
    let bar_w = (group_w * 0.8 / n_ser).min(60.0);
    let value_font = if bar_w < 22.0 { 9 } else { 11 };
    for (ci, cat) in chart.categories.iter().enumerate() {
        let gx = left + group_w * ci as f64;
        let start = gx + (group_w - bar_w * n_ser) / 2.0;
        for (si, (_, color, values)) in chart.series.iter().enumerate() {
            let x = start + bar_w * si as f64;
            match values.get(ci).copied().flatten().filter(|v| v.is_finite()) {
                Some(val) => {
                    let y = y_of(val);
                    let _ = write!(
                        s,
                        r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
                        (bar_w - 2.0).max(1.0),
                        (top + ph - y).max(0.0),
                        hex(*color)
                    );
                    let _ = write!(
                        s,
                        r#"<text x="{:.1}" y="{:.1}" font-size="{value_font}" text-anchor="middle">{}</text>"#,
                        x + bar_w / 2.0 - 1.0,
                        y - 3.0,
                        fmt_value(val)
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        r##"<text x="{:.1}" y="{:.1}" font-size="{value_font}" text-anchor="middle" fill="#888">–</text>"##,
                        x + bar_w / 2.0 - 1.0,
                        top + ph - 3.0
                    );
                }
            }
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
            gx + group_w / 2.0,
            top + ph + 16.0,
            escape(cat)
        );
        if let Some(note) = chart.category_notes.get(ci) {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#666">{}</text>"##,
                gx + group_w / 2.0,
                top + ph + 29.0,
                escape(note)
            );
        }
    }
    if chart.group_last && chart.categories.len() > 1 {
        let x = left + group_w * (n_cat - 1.0);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{:.1}" stroke="#888" stroke-dasharray="4 3"/>"##,
            top + ph + 20.0
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#444"/><line x1="{left}" x2="{left}" y1="{top}" y2="{:.1}" stroke="#444"/>"##,
        left + pw,
        top + ph,
        top + ph,
        top + ph
    );
    let notes_h = if chart.category_notes.is_empty() {
        0.0
    } else {
        14.0
    };
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="13" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        top + ph + 36.0 + notes_h,
        escape(&chart.x_label)
    );
    if chart.series.len() > 1 {
        let mut x = left;
        let y = h - 12.0;
        for (name, color, _) in &chart.series {
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{y:.1}" font-size="12">{}</text>"#,
                y - 10.0,
                hex(*color),
                x + 16.0,
                escape(name)
            );
            x += 16.0 + font::text_width(name, 12.0) as f64 + 18.0;
        }
    }
    s.push_str("</svg>");
    s
}

/// A fraction with three decimals; undefined (−1) as "–".
pub fn fmt_value(v: f64) -> String {
    if !v.is_finite() || v < 0.0 {
        "–".into()
    } else {
        format!("{v:.3}")
    }
}

/// Heat map of a confusion matrix: cell colour is the row-normalised share, the text the count.
/// Rows are ground truth, columns predictions (labels as given, `background` last).
pub fn confusion_svg(title: &str, labels: &[String], matrix: &[Vec<u64>]) -> String {
    let n = labels.len();
    let label_w = labels
        .iter()
        .map(|l| font::text_width(l, 12.0) as f64)
        .fold(40.0, f64::max)
        + 14.0;
    let cell = if n <= 6 { 56.0 } else { 46.0 };
    let (left, top) = (label_w + 24.0, 52.0 + label_w);
    let w = left + cell * n as f64 + 20.0;
    let h = top + cell * n as f64 + 34.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="{FAMILY}">"#
    );
    let _ = write!(s, r#"<rect width="{w:.0}" height="{h:.0}" fill="white"/>"#);
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="22" font-size="16" text-anchor="middle">{}</text>"#,
        w / 2.0,
        escape(title)
    );
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="40" font-size="12" text-anchor="middle" fill="#555">predicted class →</text>"##,
        left + cell * n as f64 / 2.0
    );
    let _ = write!(
        s,
        r##"<text transform="translate(14,{:.1}) rotate(-90)" font-size="12" text-anchor="middle" fill="#555">ground-truth class →</text>"##,
        top + cell * n as f64 / 2.0
    );
    for (j, l) in labels.iter().enumerate() {
        let x = left + cell * (j as f64 + 0.5);
        let _ = write!(
            s,
            r#"<text transform="translate({:.1},{:.1}) rotate(-60)" font-size="12">{}</text>"#,
            x + 4.0,
            top - 6.0,
            escape(l)
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end">{}</text>"#,
            left - 6.0,
            top + cell * (j as f64 + 0.5) + 4.0,
            escape(l)
        );
    }
    for (i, row) in matrix.iter().enumerate().take(n) {
        let total: u64 = row.iter().sum();
        for (j, &count) in row.iter().enumerate().take(n) {
            let share = if total > 0 {
                count as f64 / total as f64
            } else {
                0.0
            };
            // White → dark blue.
            let c = |lo: f64, hi: f64| (lo + (hi - lo) * share).round() as u8;
            let fill = [c(255.0, 8.0), c(255.0, 48.0), c(255.0, 107.0)];
            let x = left + cell * j as f64;
            let y = top + cell * i as f64;
            let _ = write!(
                s,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{cell}" height="{cell}" fill="{}" stroke="#ddd"/>"##,
                hex(fill)
            );
            let text_color = if share > 0.5 { "white" } else { "black" };
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" font-size="13" text-anchor="middle" fill="{text_color}">{count}</text>"#,
                x + cell / 2.0,
                y + cell / 2.0 + 5.0
            );
        }
    }
    let _ = write!(
        s,
        r##"<text x="{left:.1}" y="{:.1}" font-size="11" fill="#666">counts; colour = share of the row (ground-truth class)</text>"##,
        top + cell * n as f64 + 22.0
    );
    s.push_str("</svg>");
    s
}

/// Rasterises an SVG document to PNG bytes at `zoom` (white background), rendering text with
/// the bundled font.
pub fn svg_to_png(svg: &str, zoom: f32) -> Result<Vec<u8>> {
    let err = |m: String| ReportError::Draw {
        what: "an SVG chart".into(),
        message: m,
    };
    let options = resvg::usvg::Options {
        fontdb: font::fontdb(),
        font_family: font::FONT_FAMILY.to_string(),
        ..Default::default()
    };
    let tree = resvg::usvg::Tree::from_str(svg, &options).map_err(|e| err(e.to_string()))?;
    let size = tree.size();
    let (w, h) = (
        (size.width() * zoom).ceil().max(1.0) as u32,
        (size.height() * zoom).ceil().max(1.0) as u32,
    );
    let mut pixmap =
        resvg::tiny_skia::Pixmap::new(w, h).ok_or_else(|| err(format!("bad size {w}×{h}")))?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(zoom, zoom),
        &mut pixmap.as_mut(),
    );
    // Opaque background: premultiplied RGBA equals straight RGBA; drop alpha.
    let rgb: Vec<u8> = pixmap
        .data()
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    crate::picture::encode_png_raw(
        w as usize,
        h as usize,
        png::ColorType::Rgb,
        png::Compression::Default,
        &rgb,
    )
}

#[cfg(test)]
mod bar_axis_tests {
    use super::*;

    fn chart(values: Vec<Option<f64>>) -> BarChart {
        BarChart {
            title: "AP by size bin".into(),
            x_label: "bin".into(),
            y_label: "AP".into(),
            categories: (0..values.len()).map(|i| format!("b{i}")).collect(),
            category_notes: Vec::new(),
            series: vec![("run".into(), [0, 0, 0], values)],
            y_max: None,
            group_last: false,
            width: 640,
            height: 360,
        }
    }

    /// Undefined and zero values leave the axis of a fraction (0 … 1), not ticks fitted to nothing.
    #[test]
    fn an_axis_over_nothing_runs_from_0_to_1() {
        for values in [vec![Some(0.0), None], vec![None, None], vec![Some(0.0)]] {
            let svg = bar_chart_svg(&chart(values));
            assert!(!svg.contains("e-1"), "{svg}");
            assert!(svg.contains(">1<") || svg.contains(">1.0<"), "{svg}");
        }
        let svg = bar_chart_svg(&chart(vec![Some(0.03)]));
        assert!(svg.contains(">0.03<") || svg.contains(">0.030<"), "{svg}");
    }
}
