//! Typed errors of the evaluation crate: each says what was read or computed, and where.

use std::path::PathBuf;

/// Everything that can go wrong while loading inputs or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read.
    // The underlying error is part of the message rather than a `source`, so a caller printing
    // the whole chain (`{:#}`) does not repeat it.
    #[error("cannot read {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A file is not the JSON it should be (serde names the field, line and column).
    #[error("{path}: {error}")]
    Json {
        path: PathBuf,
        error: serde_json::Error,
    },
    /// A record is missing a field or holds a value that cannot be evaluated.
    #[error("{path}: {field}: {message}")]
    Field {
        path: PathBuf,
        /// Where in the file, e.g. `annotations[3].bbox`.
        field: String,
        message: String,
    },
    /// Arguments that do not fit together (class lists, bins, sequence pairs).
    #[error("{0}")]
    InvalidInput(String),
    /// The COCO engine refused the data.
    #[error("COCO evaluation failed: {0}")]
    Coco(#[from] hotcoco::Error),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, EvalError>;

impl EvalError {
    pub(crate) fn field(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        EvalError::Field {
            path: path.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}
