//! Files and folders that appear whole or not at all. Every writer of evdet output (event files,
//! label files, checkpoints, metrics, reports) goes through here: the content is written under a
//! hidden temporary name in the destination folder (same file system, so the final `rename` is
//! atomic), and only a complete file or folder ever carries its final name.
//!
//! Durable, not only atomic: the content is flushed to the disk (`fsync`) before the rename and the
//! folder after it, so a power loss leaves the old file or the new one, never an empty file under the
//! final name (a rename can reach the disk before the data it names). File writers get a temporary name
//! of their own (`.<name>.<pid>-<n>.tmp`), so two writers of one path never write into one temporary
//! file; a crash leaves at most such a file behind. Folders are built under `.<name>.tmp`, which the
//! next build replaces (one writer per folder: the run lock).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A temporary name of its own beside `path` (`dir/.name.<pid>-<n>.tmp`): where `path` is built
/// before it is renamed into place. Every call gives another name.
pub fn tmp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

/// `dir/.name.tmp`: where the folder `dir` is built ([`replace_dir`]).
fn tmp_dir_path(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.with_file_name(format!(".{name}.tmp"))
}

/// Writes `bytes` to `path` through a temporary file of its own, flushed to the disk, then renames it
/// into place and flushes the folder; the folder is created when missing. On failure the temporary
/// file is removed and `path` is untouched; the error names the path it concerns.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    create_parent(path)?;
    let tmp = tmp_path(path);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| at(&tmp, e))?;
        f.write_all(bytes).map_err(|e| at(&tmp, e))?;
        f.sync_all().map_err(|e| at(&tmp, e))?;
        drop(f);
        rename_durably(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// For writers that stream into a [`tmp_path`] themselves (HDF5 files, videos): flushes the finished
/// temporary file to the disk and gives it its final name.
pub fn commit(tmp: &Path, path: &Path) -> std::io::Result<()> {
    sync_file(tmp)?;
    rename_durably(tmp, path)
}

/// `rename`, then `fsync` of the folder, so the new name survives a power loss.
fn rename_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to).map_err(|e| at(to, e))?;
    sync_parent(to)
}

fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| at(path, e))
}

/// Flushes the folder holding `path` (its entries: names created, renamed or removed).
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    // On Linux a folder opened read-only can be fsync'ed; elsewhere this may be refused, which
    // costs durability, not correctness.
    match std::fs::File::open(dir).and_then(|f| f.sync_all()) {
        Ok(()) => Ok(()),
        Err(e) if cfg!(target_os = "linux") => Err(at(dir, e)),
        Err(_) => Ok(()),
    }
}

/// Flushes every file under `dir` and every folder, deepest first (a folder built by `fill`).
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| at(dir, e))? {
        let entry = entry.map_err(|e| at(dir, e))?;
        let p = entry.path();
        let kind = entry.file_type().map_err(|e| at(&p, e))?;
        if kind.is_dir() {
            sync_tree(&p)?;
        } else if kind.is_file() {
            sync_file(&p)?;
        }
    }
    sync_dir(dir)
}

/// Creates the folder `path` will be written in, when it is missing.
pub fn create_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => std::fs::create_dir_all(p).map_err(|e| at(p, e)),
        _ => Ok(()),
    }
}

/// Builds the folder `dir` by calling `fill` on an empty temporary folder beside it, then swaps it in:
/// an existing `dir` is moved aside first and deleted only once the new one has its name, so at every
/// moment either the old or the new folder is complete. If `fill` fails, the temporary folder is
/// removed and `dir` is left as it was.
pub fn replace_dir<E: From<std::io::Error>>(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let tmp = filled_tmp(dir, fill)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let old = dir.with_file_name(format!(".{name}.old"));
    swap_in(dir, &tmp, &old)?;
    if old.exists() {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

/// As [`replace_dir`], but the folder being replaced is kept as `keep` (an older `keep` is deleted)
/// instead of being deleted: after the swap `dir` is the new folder and `keep` the one before it. At
/// every moment either `dir` or `keep` is a complete folder (a crash between the two renames leaves
/// `keep` complete and `dir` missing), which is what a reader falling back from a damaged `dir` needs.
pub fn replace_dir_keeping<E: From<std::io::Error>>(
    dir: &Path,
    keep: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let tmp = filled_tmp(dir, fill)?;
    swap_in(dir, &tmp, keep)?;
    Ok(())
}

/// `dir`'s temporary folder, emptied, created and filled by `fill` (removed again if `fill` fails).
fn filled_tmp<E: From<std::io::Error>>(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<PathBuf, E> {
    create_parent(dir)?;
    let tmp = tmp_dir_path(dir);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| at(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| at(&tmp, e))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if let Err(e) = sync_tree(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.into());
    }
    Ok(tmp)
}

/// Moves an existing `dir` to `aside` (replacing an older `aside`), then `tmp` to `dir`.
fn swap_in(dir: &Path, tmp: &Path, aside: &Path) -> std::io::Result<()> {
    if dir.exists() {
        if aside.exists() {
            std::fs::remove_dir_all(aside).map_err(|e| at(aside, e))?;
        }
        std::fs::rename(dir, aside).map_err(|e| at(dir, e))?;
    }
    rename_durably(tmp, dir)
}

/// An I/O error that names the path it happened on.
fn at(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_no_temporary_is_left() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.json");
        write(&p, b"old").unwrap();
        write(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_names_the_path_and_leaves_the_old_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("new_folder").join("x");
        write(&p, b"x").unwrap();
        // A folder where the file should be: the rename fails, naming the path, and nothing is left.
        let blocked = d.path().join("new_folder").join("sub");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        let err = write(&blocked, b"y").unwrap_err().to_string();
        assert!(err.contains("sub"), "{err}");
        let left: Vec<_> = std::fs::read_dir(blocked.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 2, "a temporary file was left: {left:?}");
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
    }

    #[test]
    fn the_replaced_folder_is_kept_as_the_previous_one() {
        let d = tempfile::tempdir().unwrap();
        let (dir, keep) = (d.path().join("last"), d.path().join("previous"));
        for v in [b"1", b"2", b"3"] {
            replace_dir_keeping(&dir, &keep, |t| std::fs::write(t.join("a"), v)).unwrap();
        }
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"3");
        assert_eq!(std::fs::read(keep.join("a")).unwrap(), b"2");
        let failed: std::io::Result<()> =
            replace_dir_keeping(&dir, &keep, |_| Err(std::io::Error::other("disk full")));
        assert!(failed.is_err());
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"3");
        assert_eq!(std::fs::read(keep.join("a")).unwrap(), b"2");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_folder_is_swapped_in_only_when_complete() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("last");
        replace_dir(&dir, |t| std::fs::write(t.join("a"), b"1")).unwrap();
        let failed: std::io::Result<()> = replace_dir(&dir, |t| {
            std::fs::write(t.join("a"), b"2")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"1");
        replace_dir(&dir, |t| std::fs::write(t.join("b"), b"3")).unwrap();
        assert!(!dir.join("a").exists() && dir.join("b").exists());
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("last")]);
    }

    #[test]
    fn every_writer_gets_its_own_temporary_name() {
        let p = Path::new("/x/m.json");
        let (a, b) = (tmp_path(p), tmp_path(p));
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(".m.json.") && name.ends_with(".tmp"),
            "{name}"
        );
    }

    #[test]
    fn writers_of_one_path_side_by_side_leave_one_whole_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.json");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..20 {
                        write(p, &vec![b'a' + i; 4096]).unwrap();
                    }
                });
            }
        });
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|&b| b == bytes[0]), "two writers mixed");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_committed_stream_has_its_name_and_no_temporary_is_left() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("v.gif");
        let tmp = tmp_path(&p);
        std::fs::write(&tmp, b"GIF89a").unwrap();
        commit(&tmp, &p).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"GIF89a");
        assert!(!tmp.exists());
    }
}
