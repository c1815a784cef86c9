//! RVT's preprocessed dataset layout (REFERENCE §5.4): per sequence a `labels_v2/` folder (labels.npz,
//! timestamps_us.npy) and `event_representations_v2/stacked_histogram_dt=<dt>_nbins=<n>/` with the
//! histograms in an HDF5 dataset `data` (uint8 [T, 2·nbins, H, W], one blosc-zstd chunk per time step)
//! plus the representation timestamps and the label-frame → representation index.
//!
//! Chunks are compressed by the caller (in parallel, see [`compress_chunk`]) and stored with HDF5's direct
//! chunk write, so the HDF5 library lock is held only for the copy into the file.

use crate::error::{EventsError, Result};
use crate::labels::{self, BBox};
use crate::npy;
use std::path::{Path, PathBuf};

/// Folder name of a stacked-histogram representation, e.g. `stacked_histogram_dt=50_nbins=10`.
pub fn repr_dir_name(dt_ms: u32, nbins: usize) -> String {
    format!("stacked_histogram_dt={dt_ms}_nbins={nbins}")
}

/// A representation folder name that is not `stacked_histogram_dt=<ms>_nbins=<n>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("representation name '{0}' is not stacked_histogram_dt=<ms>_nbins=<n>")]
pub struct BadReprName(pub String);

/// [`repr_dir_name`] read back: `stacked_histogram_dt=50_nbins=10` → (nbins 10, dt 50 ms).
pub fn parse_repr_dir_name(name: &str) -> std::result::Result<(usize, u32), BadReprName> {
    let parsed = (|| {
        let rest = name.strip_prefix("stacked_histogram_dt=")?;
        let (dt, nbins) = rest.split_once("_nbins=")?;
        Some((nbins.parse().ok()?, dt.parse().ok()?))
    })();
    parsed.ok_or_else(|| BadReprName(name.to_string()))
}

/// File name of the histogram h5: `event_representations_ds2_nearest.h5` or `event_representations.h5`.
pub fn repr_file_name(downsample_by_factor_2: bool) -> &'static str {
    if downsample_by_factor_2 {
        "event_representations_ds2_nearest.h5"
    } else {
        "event_representations.h5"
    }
}

/// The files of one preprocessed sequence.
#[derive(Debug, Clone)]
pub struct SequencePaths {
    pub root: PathBuf,
    pub repr_dir: PathBuf,
    pub repr_h5: PathBuf,
    pub labels_npz: PathBuf,
    pub label_timestamps: PathBuf,
    pub repr_timestamps: PathBuf,
    pub objframe_idx_2_repr_idx: PathBuf,
}

impl SequencePaths {
    pub fn new(root: &Path, dt_ms: u32, nbins: usize, downsample_by_factor_2: bool) -> Self {
        let repr_dir = root
            .join("event_representations_v2")
            .join(repr_dir_name(dt_ms, nbins));
        let labels_dir = root.join("labels_v2");
        Self {
            root: root.to_path_buf(),
            repr_h5: repr_dir.join(repr_file_name(downsample_by_factor_2)),
            repr_timestamps: repr_dir.join("timestamps_us.npy"),
            objframe_idx_2_repr_idx: repr_dir.join("objframe_idx_2_repr_idx.npy"),
            repr_dir,
            labels_npz: labels_dir.join("labels.npz"),
            label_timestamps: labels_dir.join("timestamps_us.npy"),
        }
    }

    pub fn create_dirs(&self) -> Result<()> {
        for d in [&self.repr_dir, &self.root.join("labels_v2")] {
            std::fs::create_dir_all(d).map_err(|e| EventsError::io(d, e))?;
        }
        Ok(())
    }
}

/// Everything of a preprocessed sequence except the histograms themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceIndex {
    pub repr_timestamps_us: Vec<i64>,
    pub objframe_idx_2_repr_idx: Vec<i64>,
    pub label_timestamps_us: Vec<i64>,
    pub objframe_idx_2_label_idx: Vec<i64>,
    pub labels: Vec<BBox>,
}

impl SequenceIndex {
    pub fn read(paths: &SequencePaths) -> Result<Self> {
        let (labels, oi2li) = labels::read_labels_npz(&paths.labels_npz)?;
        let idx = Self {
            repr_timestamps_us: npy::read_npy(&paths.repr_timestamps)?
                .to_i64(&paths.repr_timestamps)?,
            objframe_idx_2_repr_idx: npy::read_npy(&paths.objframe_idx_2_repr_idx)?
                .to_i64(&paths.objframe_idx_2_repr_idx)?,
            label_timestamps_us: npy::read_npy(&paths.label_timestamps)?
                .to_i64(&paths.label_timestamps)?,
            objframe_idx_2_label_idx: oi2li,
            labels,
        };
        let f = idx.label_timestamps_us.len();
        if idx.objframe_idx_2_repr_idx.len() != f || idx.objframe_idx_2_label_idx.len() != f {
            return Err(EventsError::format(
                &paths.root,
                "label frame arrays have different lengths",
            ));
        }
        Ok(idx)
    }

    pub fn write(&self, paths: &SequencePaths) -> Result<()> {
        labels::write_labels_npz(
            &paths.labels_npz,
            &self.labels,
            &self.objframe_idx_2_label_idx,
        )?;
        npy::write_atomic(
            &paths.label_timestamps,
            &npy::npy_bytes_i64(&self.label_timestamps_us),
        )?;
        npy::write_atomic(
            &paths.repr_timestamps,
            &npy::npy_bytes_i64(&self.repr_timestamps_us),
        )?;
        npy::write_atomic(
            &paths.objframe_idx_2_repr_idx,
            &npy::npy_bytes_i64(&self.objframe_idx_2_repr_idx),
        )
    }

    /// Representation index → label frame index (the inverse of `objframe_idx_2_repr_idx`).
    pub fn repr_to_frame(&self) -> std::collections::HashMap<usize, usize> {
        self.objframe_idx_2_repr_idx
            .iter()
            .enumerate()
            .map(|(f, &r)| (r as usize, f))
            .collect()
    }

    /// Boxes of label frame `k`.
    pub fn frame_labels(&self, k: usize) -> &[BBox] {
        let a = self.objframe_idx_2_label_idx[k] as usize;
        let b = self
            .objframe_idx_2_label_idx
            .get(k + 1)
            .map_or(self.labels.len(), |&v| v as usize);
        &self.labels[a.min(self.labels.len())..b.min(self.labels.len())]
    }
}

/// Compresses one histogram chunk the way RVT's writer does (blosc, zstd, clevel 1, byte shuffle);
/// thread-safe, so chunks can be compressed in parallel.
pub fn compress_chunk(data: &[u8]) -> Vec<u8> {
    let capacity = data.len() + blosc_src::BLOSC_MAX_OVERHEAD as usize;
    // Uninitialised room: zeroing megabytes that blosc overwrites cost a few per cent of preprocessing.
    let mut out: Vec<u8> = Vec::with_capacity(capacity);
    // SAFETY: the input is valid for its length and the output for `capacity` bytes, which blosc only
    // writes; the _ctx variant keeps no global state.
    let n = unsafe {
        blosc_src::blosc_compress_ctx(
            1,
            1,
            1,
            data.len(),
            data.as_ptr().cast(),
            out.as_mut_ptr().cast(),
            capacity,
            c"zstd".as_ptr(),
            0,
            1,
        )
    };
    // blosc falls back to a stored copy when data does not compress, so with this much room it cannot fail.
    assert!(n > 0, "blosc_compress_ctx failed with {n}");
    // SAFETY: blosc wrote the first `n` bytes (n ≤ capacity).
    unsafe { out.set_len(n as usize) };
    out
}

/// Writer of the histogram dataset `data` ([T, C, H, W] uint8, chunks (1, C, H, W), maxshape (None, …),
/// blosc filter opts (0,0,0,0,1,1,5) as hdf5plugin writes them).
pub struct ReprWriter {
    path: PathBuf,
    file: hdf5::File,
    data: hdf5::Dataset,
    frame_len: usize,
}

/// Creates an HDF5 file whose objects carry no creation/modification times, so that the same
/// content gives the same bytes (HDF5 2.x records times on the root group by default).
pub fn create_h5_untimed(path: &Path) -> hdf5::Result<hdf5::File> {
    hdf5::File::with_options()
        .with_fcpl(|p| p.obj_track_times(false))
        .create(path)
}

impl ReprWriter {
    pub fn create(path: &Path, len: usize, chw: (usize, usize, usize)) -> Result<Self> {
        let (c, h, w) = chw;
        let h5 = |e: hdf5::Error| EventsError::hdf5(path, e);
        let file = create_h5_untimed(path)
            .map_err(|e| EventsError::hdf5(path, format!("cannot create: {e}")))?;
        let data = file
            .new_dataset::<u8>()
            .chunk((1, c, h, w))
            .shape((len.., c, h, w))
            .blosc_zstd(1, hdf5::filters::BloscShuffle::Byte)
            .create("data")
            .map_err(h5)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            data,
            frame_len: c * h * w,
        })
    }

    /// Stores an already compressed chunk (from [`compress_chunk`]) as time step `index`.
    pub fn write_compressed(&self, index: usize, chunk: &[u8]) -> Result<()> {
        let offset: [u64; 4] = [index as u64, 0, 0, 0];
        let id = self.data.id();
        // SAFETY: offset has the dataset's rank; chunk is a valid buffer of the given size.
        let (status, os) = hdf5::sync::sync(|| unsafe {
            // errno cleared first, so that what it holds afterwards is this write's (HDF5's own
            // message does not say why the system refused: a full disk, a file-size limit).
            *libc::__errno_location() = 0;
            let st = hdf5_sys::h5d::H5Dwrite_chunk(
                id,
                hdf5_sys::h5p::H5P_DEFAULT,
                0,
                offset.as_ptr(),
                chunk.len(),
                chunk.as_ptr().cast(),
            );
            (st, std::io::Error::last_os_error())
        });
        if status < 0 {
            let why = match os.raw_os_error() {
                Some(n) if n != 0 => format!(": {os}"),
                _ => String::new(),
            };
            return Err(EventsError::hdf5(
                &self.path,
                format!("direct chunk write of time step {index} failed{why}"),
            ));
        }
        Ok(())
    }

    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    pub fn finish(self) -> Result<()> {
        let Self {
            path, file, data, ..
        } = self;
        drop(data);
        file.close().map_err(|e| EventsError::hdf5(&path, e))
    }
}

/// Shape `[T, C, H, W]` of a histogram file's `data`.
pub fn repr_shape(path: &Path) -> Result<[usize; 4]> {
    let file =
        hdf5::File::open(path).map_err(|e| EventsError::hdf5(path, format!("cannot open: {e}")))?;
    let data = file
        .dataset("data")
        .map_err(|_| EventsError::field(path, "data", "missing"))?;
    match data.shape().as_slice() {
        &[t, c, h, w] => Ok([t, c, h, w]),
        s => Err(EventsError::field(
            path,
            "data",
            format!("has shape {s:?}, expected [T, C, H, W]"),
        )),
    }
}

/// The largest histogram frame read (256 MiB: 20 bins of a 3840×2160 sensor are 166 MB).
pub const MAX_FRAME_BYTES: usize = 1 << 28;

/// Reads time steps `[start, end)` of a histogram file as one flat uint8 vector, with the shape.
pub fn read_repr_range(path: &Path, start: usize, end: usize) -> Result<(Vec<u8>, [usize; 4])> {
    let h5 = |e: hdf5::Error| EventsError::hdf5(path, e);
    let file =
        hdf5::File::open(path).map_err(|e| EventsError::hdf5(path, format!("cannot open: {e}")))?;
    let data = file
        .dataset("data")
        .map_err(|_| EventsError::field(path, "data", "missing"))?;
    let shape = data.shape();
    if shape.len() != 4 {
        return Err(EventsError::field(
            path,
            "data",
            format!("has shape {shape:?}, expected [T, C, H, W]"),
        ));
    }
    if start > end || end > shape[0] {
        return Err(EventsError::field(
            path,
            "data",
            format!("time steps {start}..{end} out of range (T = {})", shape[0]),
        ));
    }
    let dims = [shape[0], shape[1], shape[2], shape[3]];
    // A frame bigger than a 4K sensor's 20 bins is a corrupt shape, not a reason to allocate it.
    let frame = dims[1..].iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if frame.is_none_or(|f| f > MAX_FRAME_BYTES) {
        return Err(EventsError::field(
            path,
            "data",
            format!(
                "frames of {:?} are larger than {MAX_FRAME_BYTES} bytes (corrupt shape?)",
                &dims[1..]
            ),
        ));
    }
    // Never through HDF5's blosc filter, which trusts what a corrupt file says.
    if crate::blosc_guard::is_blosc(&data) {
        if data.dtype().map(|t| t.size()).ok() != Some(1) {
            return Err(EventsError::field(
                path,
                "data",
                "expected uint8 histograms",
            ));
        }
        let bytes = crate::blosc_guard::read_hyperslab(
            &data,
            &[start, 0, 0, 0],
            &[end, dims[1], dims[2], dims[3]],
        )
        .map_err(|e| EventsError::field(path, "data", e))?;
        return Ok((bytes, [end - start, dims[1], dims[2], dims[3]]));
    }
    let arr = data
        .read_slice::<u8, _, ndarray::Ix4>(ndarray::s![start..end, .., .., ..])
        .map_err(h5)?;
    let dims = [end - start, shape[1], shape[2], shape[3]];
    Ok((arr.into_raw_vec_and_offset().0, dims))
}

#[cfg(test)]
mod repr_name_tests {
    use super::*;

    #[test]
    fn a_representation_name_reads_back() {
        assert_eq!(parse_repr_dir_name(&repr_dir_name(50, 10)), Ok((10, 50)));
        let e = parse_repr_dir_name("stacked_histogram_dt=5x_nbins=10").unwrap_err();
        assert_eq!(
            e.to_string(),
            "representation name 'stacked_histogram_dt=5x_nbins=10' is not stacked_histogram_dt=<ms>_nbins=<n>"
        );
        assert!(parse_repr_dir_name("voxel_grid").is_err());
    }
}
