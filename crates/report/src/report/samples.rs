//! The sample-detections section: each run's saved sample pictures (predictions beside ground
//! truth) per split, embedded in the page.

use super::Report;
use crate::html::{escape, figure};

impl Report<'_> {
    pub(super) fn samples(&mut self) {
        self.push("<h2>Sample detections</h2>\n");
        let mut any = false;
        for run in self.runs {
            for (split, e) in &run.eval {
                if e.samples.is_empty() {
                    continue;
                }
                let mut figs = String::new();
                let mut missing = Vec::new();
                for s in e.samples.iter().take(12) {
                    let path = e.samples_dir.join(&s.file);
                    match std::fs::read(&path) {
                        Ok(bytes) => {
                            let width = png_width(&bytes).unwrap_or(640);
                            let caption = format!(
                                "{} · t = {:.3} s · {} ground truth, {} detections",
                                if s.sequence.is_empty() {
                                    &s.file
                                } else {
                                    &s.sequence
                                },
                                s.t_us as f64 / 1e6,
                                s.num_gt,
                                s.num_dt
                            );
                            figs.push_str(&figure(&bytes, width.min(1300), &s.file, &caption));
                        }
                        Err(_) => missing.push(s.file.clone()),
                    }
                }
                any = true;
                self.push(&format!(
                    "<h3>{} — {}</h3>\n<p class=\"note\">Left: predictions with scores; right: ground truth.</p>\n<div class=\"figs samples\">{figs}</div>\n",
                    escape(&run.name),
                    escape(split)
                ));
                if !missing.is_empty() {
                    self.push(&format!(
                        "<p class=\"note\">Sample pictures missing: {}</p>\n",
                        escape(&missing.join(", "))
                    ));
                }
            }
        }
        if !any {
            self.push("<p class=\"note\">No sample pictures (<code>eval/samples/&lt;split&gt;_samples.json</code>).</p>\n");
        }
    }
}

/// Width of a PNG from its header.
fn png_width(bytes: &[u8]) -> Option<u32> {
    if bytes.len() < 24 || &bytes[1..4] != b"PNG" {
        return None;
    }
    Some(u32::from_be_bytes([
        bytes[16], bytes[17], bytes[18], bytes[19],
    ]))
}
