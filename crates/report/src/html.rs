//! HTML building blocks of the report: the page with its embedded stylesheet, tables, figures
//! with PNG data URIs, and status badges. Everything is inline: the page fetches nothing.

use base64::Engine as _;

pub use crate::plots::escape;

/// The stylesheet, embedded in the page.
const CSS: &str = r#"
body { font-family: "DejaVu Sans", system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 0; background: #f6f7f9; color: #1d2329; font-size: 14px; line-height: 1.45; }
main { max-width: 1360px; margin: 0 auto; padding: 18px 28px 60px; }
h1 { font-size: 26px; margin: 10px 0 4px; }
h2 { font-size: 20px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #d5dae0; }
h3 { font-size: 16px; margin: 22px 0 8px; }
p.sub { color: #5b6570; margin: 0 0 14px; }
.note { color: #5b6570; font-size: 13px; }
table { border-collapse: collapse; background: white; margin: 6px 0 14px;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); font-size: 13px; }
th, td { padding: 5px 10px; border: 1px solid #e1e5ea; text-align: right; white-space: nowrap; }
th { background: #eef1f5; font-weight: 600; }
td.l, th.l { text-align: left; }
table.wrap { max-width: 100%; }
table.wrap td.text { white-space: normal; text-align: left; min-width: 16em; }
tbody tr:nth-child(even) td { background: #fafbfc; }
.num { font-variant-numeric: tabular-nums; }
.up { color: #127a2c; font-weight: 600; }
.down { color: #b3261e; font-weight: 600; }
.same { color: #5b6570; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.met { background: #d8f3dc; color: #0f5c23; }
.notmet { background: #fbdcd9; color: #8c1d18; }
.unknown { background: #e6e8eb; color: #444c55; }
.figs { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 0; background: white; padding: 6px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { font-size: 12px; color: #5b6570; padding: 4px 2px 0; max-width: 640px; }
.samples figure img { image-rendering: pixelated; }
ul.missing { margin: 4px 0 10px; padding-left: 20px; color: #6b4a00; }
details { margin: 6px 0 12px; }
summary { cursor: pointer; color: #2a5db0; }
code { background: #eef1f5; padding: 0 4px; border-radius: 3px; }
"#;

/// A whole page around `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        escape(title)
    )
}

/// A table cell: raw HTML content and whether it is left-aligned text.
#[derive(Debug, Clone)]
pub struct Cell {
    pub html: String,
    pub left: bool,
    pub class: &'static str,
}

impl Cell {
    /// Left-aligned escaped text.
    pub fn text(s: &str) -> Cell {
        Cell {
            html: escape(s),
            left: true,
            class: "",
        }
    }

    /// Right-aligned number cell with raw HTML.
    pub fn num(html: String) -> Cell {
        Cell {
            html,
            left: false,
            class: "num",
        }
    }

    /// Left-aligned raw HTML.
    pub fn raw(html: String) -> Cell {
        Cell {
            html,
            left: true,
            class: "",
        }
    }
}

/// A table with one header row.
pub fn table(headers: &[Cell], rows: &[Vec<Cell>]) -> String {
    table_with_groups(&[], headers, rows)
}

/// A table with an optional header row of column groups `(label, span)` above `headers`.
pub fn table_with_groups(
    groups: &[(String, usize)],
    headers: &[Cell],
    rows: &[Vec<Cell>],
) -> String {
    let mut s = String::from("<table>\n<thead>\n");
    if !groups.is_empty() {
        s.push_str("<tr>");
        for (label, span) in groups {
            s.push_str(&format!(
                "<th colspan=\"{span}\" class=\"{}\">{}</th>",
                if label.is_empty() { "l" } else { "" },
                escape(label)
            ));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("<tr>");
    for h in headers {
        s.push_str(&format!(
            "<th class=\"{}\">{}</th>",
            if h.left { "l" } else { "" },
            h.html
        ));
    }
    s.push_str("</tr>\n</thead>\n<tbody>\n");
    for row in rows {
        s.push_str("<tr>");
        for c in row {
            let class = match (c.left, c.class.is_empty()) {
                (true, true) => "l".to_string(),
                (true, false) => format!("l {}", c.class),
                (false, _) => c.class.to_string(),
            };
            s.push_str(&format!("<td class=\"{class}\">{}</td>", c.html));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>\n");
    s
}

/// A PNG data URI.
pub fn png_data_uri(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// A figure showing PNG bytes at `width` CSS pixels, with a caption.
pub fn figure(png: &[u8], width: u32, alt: &str, caption: &str) -> String {
    let cap = if caption.is_empty() {
        String::new()
    } else {
        format!("<figcaption>{}</figcaption>", escape(caption))
    };
    format!(
        "<figure><img src=\"{}\" width=\"{width}\" alt=\"{}\">{cap}</figure>\n",
        png_data_uri(png),
        escape(alt)
    )
}

/// A status badge (`met`, `not met`, `unknown`).
pub fn badge(status: crate::criteria::Status) -> String {
    use crate::criteria::Status;
    let class = match status {
        Status::Met => "met",
        Status::NotMet => "notmet",
        Status::Unknown => "unknown",
    };
    format!("<span class=\"badge {class}\">{}</span>", status.as_str())
}
