//! Atomic file writing: the project's rule is that nothing half-written is ever left under a
//! final name, so every file is written to a temporary name in the same folder and renamed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{ReportError, Result};

/// A temporary sibling of `path`: `.<name>.tmp-<pid>-<n>`, unique within this process.
pub(crate) fn temp_sibling(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Creates the parent folder of `path` if needed.
pub(crate) fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ReportError::io("creating folder", parent, e))?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary sibling and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    ensure_parent(path)?;
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| ReportError::io("creating", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| ReportError::io("writing", &tmp, e))?;
        f.flush().map_err(|e| ReportError::io("writing", &tmp, e))?;
        drop(f);
        rename_into_place(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Renames a finished temporary file onto its final name.
pub(crate) fn rename_into_place(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).map_err(|e| ReportError::io("renaming into place", path, e))
}
