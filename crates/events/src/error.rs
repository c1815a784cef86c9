//! Errors of the events crate: every variant names the file (and where useful the field) at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing a file into place failed (the message names the path).
    #[error("{0}")]
    Write(std::io::Error),
    #[error("{path}: HDF5: {message}")]
    Hdf5 { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: field '{field}': {message}")]
    Field {
        path: PathBuf,
        field: String,
        message: String,
    },
}

impl EventsError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
    pub fn hdf5(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Self::Hdf5 {
            path: path.into(),
            message: e.to_string(),
        }
    }
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            message: message.into(),
        }
    }
    pub fn field(path: impl Into<PathBuf>, field: &str, message: impl Into<String>) -> Self {
        Self::Field {
            path: path.into(),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl From<std::io::Error> for EventsError {
    /// `evdet-atomic`'s errors, whose messages name the path.
    fn from(e: std::io::Error) -> Self {
        EventsError::Write(e)
    }
}

pub type Result<T, E = EventsError> = std::result::Result<T, E>;
