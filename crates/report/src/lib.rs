//! evdet-report: everything about *seeing* results that needs no tensors — pictures of event
//! frames with class-coloured boxes ([`picture`]), animations ([`animation`]), charts
//! ([`plots`]) and the self-contained HTML run report ([`build_report`]).
//!
//! Text is drawn with a bundled font ([`font`]), so nothing depends on system fonts.

pub mod animation;
pub mod criteria;
pub mod error;
pub mod font;
pub mod html;
pub mod io;
pub mod picture;
pub mod plots;
pub mod report;
pub mod run;
pub mod study_page;

pub use animation::{ffmpeg_available, write_gif, write_video};
pub use criteria::{CriterionResult, Status};
pub use error::{ReportError, Result};
pub use picture::{
    class_color, draw_boxes, draw_text, event_image, load_png, save_png, scale, side_by_side,
    BoxStyle, DrawBox, RgbImage,
};
pub use report::{build_report, ReportSummary};
pub use run::Run;
