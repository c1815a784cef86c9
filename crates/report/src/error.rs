//! The crate's error type: every variant names the file (or the input) at fault.

use std::path::{Path, PathBuf};

/// Errors of picture, animation and report writing. Each names the path involved and what was
/// being done, so a message reads on its own.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}, line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("drawing {what}: {message}")]
    Draw { what: String, message: String },
}

/// Result with [`ReportError`].
pub type Result<T, E = ReportError> = std::result::Result<T, E>;

impl ReportError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        ReportError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn format(path: &Path, message: impl Into<String>) -> Self {
        ReportError::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
