//! Atomic file writing: the project's rule is that nothing half-written is ever left under a
//! final name. The mechanism is `evdet-atomic`'s; this module gives it the report's error type.

use std::path::{Path, PathBuf};

use crate::error::{ReportError, Result};

/// Where a streamed output (a video) is built before [`rename_into_place`].
pub(crate) fn temp_sibling(path: &Path) -> PathBuf {
    evdet_atomic::tmp_path(path)
}

/// Creates the parent folder of `path` if needed.
pub(crate) fn ensure_parent(path: &Path) -> Result<()> {
    evdet_atomic::create_parent(path).map_err(|e| ReportError::io("creating folder", path, e))
}

/// Writes `bytes` to `path` through a temporary sibling and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    evdet_atomic::write(path, bytes).map_err(|e| ReportError::io("writing", path, e))
}

/// Renames a finished temporary file onto its final name.
pub(crate) fn rename_into_place(tmp: &Path, path: &Path) -> Result<()> {
    evdet_atomic::commit(tmp, path).map_err(|e| ReportError::io("renaming into place", path, e))
}
