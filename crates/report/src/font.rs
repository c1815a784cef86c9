//! The bundled font (DejaVu Sans, `assets/`), so text renders on machines without system fonts:
//! an `ab_glyph` face for text drawn into pixel buffers, a `fontdb` whose sans-serif family is
//! this font for SVG rasterisation, and the registration plotters needs to measure text.

use std::sync::{Arc, OnceLock};

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};

/// DejaVu Sans, as shipped in `assets/DejaVuSans.ttf`.
pub static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Family name under which the font is known to SVG text and plotters.
pub const FONT_FAMILY: &str = "DejaVu Sans";

/// The bundled face. `None` only if the bundled file were corrupt, which a unit test rules out.
pub fn face() -> Option<&'static FontRef<'static>> {
    static FACE: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FACE.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).ok())
        .as_ref()
}

/// Font database for `usvg`/`resvg` holding only the bundled font, which also answers the
/// generic families `sans-serif`, `serif` and `monospace`.
pub fn fontdb() -> Arc<resvg::usvg::fontdb::Database> {
    static DB: OnceLock<Arc<resvg::usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = resvg::usvg::fontdb::Database::new();
        db.load_font_data(FONT_BYTES.to_vec());
        db.set_sans_serif_family(FONT_FAMILY);
        db.set_serif_family(FONT_FAMILY);
        db.set_monospace_family(FONT_FAMILY);
        Arc::new(db)
    })
    .clone()
}

/// Registers the bundled font with plotters (which measures text with it) under the family
/// names the charts use. Idempotent.
pub fn register_plotters_font() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        use plotters::style::{register_font, FontStyle};
        for family in ["sans-serif", FONT_FAMILY] {
            for style in [FontStyle::Normal, FontStyle::Bold] {
                // Cannot fail for a valid font, and a failure would only make charts measure
                // text with plotters' fallback, so it is not an error.
                let _ = register_font(family, style, FONT_BYTES);
            }
        }
    });
}

/// Width in pixels of `text` at `px` pixels height (advance widths with kerning).
pub fn text_width(text: &str, px: f32) -> f32 {
    let Some(face) = face() else {
        return 0.0;
    };
    let scaled = face.as_scaled(PxScale::from(px));
    let mut width = 0.0;
    let mut prev = None;
    for ch in text.chars() {
        let id = scaled.glyph_id(ch);
        if let Some(p) = prev {
            width += scaled.kern(p, id);
        }
        width += scaled.h_advance(id);
        prev = Some(id);
    }
    width
}

#[cfg(test)]
mod tests {
    #[test]
    fn bundled_font_parses_and_fontdb_knows_it() {
        assert!(super::face().is_some());
        let db = super::fontdb();
        assert!(!db.is_empty());
        assert!(super::text_width("car 0.87", 12.0) > 20.0);
    }
}
