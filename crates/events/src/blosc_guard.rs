//! Blosc chunks checked before anything decompresses them. c-blosc 1.x's decompressor takes no source
//! length: it trusts the compressed size written in the chunk's own header and reads wherever the
//! block offsets behind it point. A chunk whose header claims more bytes than are stored (a corrupt
//! or truncated file) therefore makes it read past the buffer — a segfault found by fuzzing
//! (notes/reliability.md) — and its uncompressed size makes the HDF5 filter allocate whatever it says.
//! With the header's sizes checked against the chunk's real stored and expected sizes, c-blosc's own
//! bounds checks (made against the header's size) hold.

/// Blosc's fixed header: version, codec version, flags, type size, then nbytes, blocksize, cbytes.
const HEADER: usize = 16;

/// Checks a stored blosc chunk: at least a header, the header's compressed size equal to the stored
/// size and its uncompressed size equal to what the chunk must hold.
pub fn check(src: &[u8], expect_nbytes: usize) -> Result<(), String> {
    if src.len() < HEADER {
        return Err(format!(
            "a blosc chunk of {} bytes (shorter than its header)",
            src.len()
        ));
    }
    let word = |i: usize| u32::from_le_bytes([src[i], src[i + 1], src[i + 2], src[i + 3]]) as usize;
    let (nbytes, cbytes) = (word(4), word(12));
    if cbytes != src.len() {
        return Err(format!(
            "a blosc chunk whose header says {cbytes} compressed bytes, stored in {} (corrupt file)",
            src.len()
        ));
    }
    if nbytes != expect_nbytes {
        return Err(format!(
            "a blosc chunk whose header says {nbytes} bytes, the chunk holds {expect_nbytes} (corrupt file)"
        ));
    }
    Ok(())
}

/// Decompresses a checked blosc chunk of `nbytes` bytes (one thread: callers parallelise over chunks).
pub fn decompress(src: &[u8], nbytes: usize) -> Result<Vec<u8>, String> {
    check(src, nbytes)?;
    let mut out = vec![0u8; nbytes];
    // SAFETY: the header's sizes were checked against `src` and `out`, so blosc's internal bounds
    // (relative to the header's compressed size) lie within `src`.
    let n = unsafe {
        blosc_src::blosc_decompress_ctx(src.as_ptr().cast(), out.as_mut_ptr().cast(), out.len(), 1)
    };
    if n < 0 || n as usize != nbytes {
        return Err(format!("a corrupt blosc chunk (blosc returned {n})"));
    }
    Ok(out)
}

/// Whether the dataset is blosc-compressed (then read it with [`read_hyperslab`], never through
/// HDF5's filter pipeline: hdf5-metno's blosc filter trusts the chunk header and the filter's
/// parameters in the file, and a corrupt one crashes it).
pub fn is_blosc(ds: &hdf5::Dataset) -> bool {
    filter_ids(ds).contains(&BLOSC_ID)
}

/// The ids of the dataset's filters, straight from its creation property list: hdf5-metno's
/// `filters()` gives nothing at all when one filter's parameters do not parse, which a corrupt
/// blosc entry does not, yet HDF5 would still run the blosc filter on it.
fn filter_ids(ds: &hdf5::Dataset) -> Vec<hdf5_sys::h5z::H5Z_filter_t> {
    use hdf5_sys::h5p::{H5Pclose, H5Pget_filter2, H5Pget_nfilters};
    let id = ds.id();
    // SAFETY: plain HDF5 calls on a valid dataset id; no filter parameters or names are copied out.
    hdf5::sync::sync(|| unsafe {
        let dcpl = hdf5_sys::h5d::H5Dget_create_plist(id);
        if dcpl < 0 {
            return Vec::new();
        }
        let n = H5Pget_nfilters(dcpl).max(0) as u32;
        let ids = (0..n)
            .map(|i| {
                let (mut flags, mut nelmts) = (0u32, 0usize);
                H5Pget_filter2(
                    dcpl,
                    i,
                    &mut flags,
                    &mut nelmts,
                    std::ptr::null_mut(),
                    0,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            })
            .collect();
        H5Pclose(dcpl);
        ids
    })
}

/// HDF5's registered id of the blosc filter.
const BLOSC_ID: hdf5_sys::h5z::H5Z_filter_t = 32001;

/// Reads the hyperslab `[lo, hi)` of a blosc-compressed chunked dataset as row-major bytes, chunk by
/// chunk: each stored chunk is read raw, checked ([`check`]) and decompressed here; a chunk never
/// written is the fill value 0. Blosc must be the only filter (as in eTraM's and RVT's files).
pub fn read_hyperslab(ds: &hdf5::Dataset, lo: &[usize], hi: &[usize]) -> Result<Vec<u8>, String> {
    use rayon::prelude::*;
    let ids = filter_ids(ds);
    if ids != [BLOSC_ID] {
        return Err(format!(
            "filters {ids:?}: blosc together with other filters is not a layout evdet reads"
        ));
    }
    let chunk = ds.chunk().ok_or("blosc without chunks")?;
    let rank = chunk.len();
    if lo.len() != rank || hi.len() != rank || chunk.contains(&0) {
        return Err(format!(
            "a hyperslab of rank {} for chunks {chunk:?}",
            lo.len()
        ));
    }
    let elem = ds.dtype().map_err(|e| e.to_string())?.size();
    let chunk_bytes = chunk
        .iter()
        .try_fold(elem, |a, &c| a.checked_mul(c))
        .filter(|&b| b as u64 <= MAX_CHUNK_BYTES)
        .ok_or_else(|| {
            format!("chunks of {chunk:?} elements of {elem} bytes: too large for blosc")
        })?;
    let ext: Vec<usize> = lo
        .iter()
        .zip(hi)
        .map(|(l, h)| h.saturating_sub(*l))
        .collect();
    let total = ext
        .iter()
        .try_fold(elem, |a, &e| a.checked_mul(e))
        .ok_or("a hyperslab too large to address")?;
    if total == 0 {
        return Ok(Vec::new());
    }
    // The chunk grid cells the hyperslab touches.
    let first: Vec<usize> = lo.iter().zip(&chunk).map(|(l, c)| l / c).collect();
    let last: Vec<usize> = hi.iter().zip(&chunk).map(|(h, c)| (h - 1) / c).collect();
    let mut cells = Vec::new();
    let mut cell = first.clone();
    'grid: loop {
        cells.push(cell.clone());
        let mut d = rank;
        loop {
            if d == 0 {
                break 'grid;
            }
            d -= 1;
            if cell[d] < last[d] {
                cell[d] += 1;
                break;
            }
            cell[d] = first[d];
        }
    }
    // Raw chunks under HDF5's lock, decompressed on all threads.
    let mut raw = Vec::with_capacity(cells.len());
    for c in &cells {
        let offset: Vec<u64> = c.iter().zip(&chunk).map(|(i, s)| (i * s) as u64).collect();
        raw.push(read_raw_chunk(ds, &offset)?);
    }
    let plain: Vec<Option<Vec<u8>>> = raw
        .par_iter()
        .zip(&cells)
        .map(|(r, c)| match r {
            None => Ok(None),
            Some((mask, bytes)) if mask & 1 != 0 => {
                // Stored without blosc (the filter was skipped): as is, if it has the chunk's size.
                if bytes.len() == chunk_bytes {
                    Ok(Some(bytes.clone()))
                } else {
                    Err(format!(
                        "chunk {c:?}: {} bytes stored uncompressed, the chunk holds {chunk_bytes}",
                        bytes.len()
                    ))
                }
            }
            Some((_, bytes)) => decompress(bytes, chunk_bytes)
                .map(Some)
                .map_err(|e| format!("chunk {c:?}: {e}")),
        })
        .collect::<Result<_, String>>()?;
    // Copy each chunk's part of the hyperslab into place, one innermost row at a time.
    let mut out = vec![0u8; total];
    for (c, p) in cells.iter().zip(&plain) {
        let Some(p) = p else { continue };
        let c0: Vec<usize> = c.iter().zip(&chunk).map(|(i, s)| i * s).collect();
        let a: Vec<usize> = (0..rank).map(|d| lo[d].max(c0[d])).collect();
        let b: Vec<usize> = (0..rank).map(|d| hi[d].min(c0[d] + chunk[d])).collect();
        let row = (b[rank - 1] - a[rank - 1]) * elem;
        let mut idx = a.clone();
        'rows: loop {
            let (mut src, mut dst) = (0usize, 0usize);
            for d in 0..rank {
                src = src * chunk[d] + (idx[d] - c0[d]);
                dst = dst * ext[d] + (idx[d] - lo[d]);
            }
            let (src, dst) = (src * elem, dst * elem);
            out[dst..dst + row].copy_from_slice(&p[src..src + row]);
            // The next row: count up the outer axes, the innermost one is the row itself.
            let mut d = rank - 1;
            loop {
                if d == 0 {
                    break 'rows;
                }
                d -= 1;
                idx[d] += 1;
                if idx[d] < b[d] {
                    break;
                }
                idx[d] = a[d];
            }
        }
    }
    Ok(out)
}

/// Blosc's largest buffer (2³¹ − 255 bytes): no valid chunk holds more.
pub const MAX_CHUNK_BYTES: u64 = (1 << 31) - 255;

/// A stored chunk's filter mask and bytes; `None` when the chunk was never written.
pub(crate) fn read_raw_chunk(
    ds: &hdf5::Dataset,
    offset: &[u64],
) -> Result<Option<(u32, Vec<u8>)>, String> {
    let id = ds.id();
    let (mut mask, mut addr, mut nbytes) = (0u32, 0u64, 0u64);
    // SAFETY: offset has the dataset's rank; the out-pointers are valid locals.
    let ok = hdf5::sync::sync(|| unsafe {
        hdf5_sys::h5d::H5Dget_chunk_info_by_coord(
            id,
            offset.as_ptr(),
            &mut mask,
            &mut addr,
            &mut nbytes,
        )
    });
    if ok < 0 {
        return Err(format!("cannot locate the chunk at {offset:?}"));
    }
    if nbytes == 0 {
        return Ok(None);
    }
    check_stored_size(ds, addr, nbytes)?;
    let mut buf = vec![0u8; nbytes as usize];
    let mut size = buf.len();
    // SAFETY: buf holds the chunk's stored size, which `size` tells HDF5.
    let ok = hdf5::sync::sync(|| unsafe {
        hdf5_sys::h5d::H5Dread_chunk2(
            id,
            hdf5_sys::h5p::H5P_DEFAULT,
            offset.as_ptr(),
            &mut mask,
            buf.as_mut_ptr().cast(),
            &mut size,
        )
    });
    if ok < 0 {
        return Err(format!("cannot read the chunk at {offset:?}"));
    }
    Ok(Some((mask, buf)))
}

/// A chunk's stored bytes must lie inside the file: a corrupt chunk index is not a reason to
/// allocate what it claims.
fn check_stored_size(ds: &hdf5::Dataset, addr: u64, nbytes: u64) -> Result<(), String> {
    let file_len = ds.file().map(|f| f.size()).unwrap_or(0);
    if nbytes > MAX_CHUNK_BYTES || addr.checked_add(nbytes).is_none_or(|end| end > file_len) {
        return Err(format!(
            "a chunk that claims {nbytes} stored bytes at byte {addr} of a {file_len}-byte file (corrupt file)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against HDF5's own read of a valid file: hyperslabs across chunk borders, partial edge chunks
    /// and chunks never written (the fill value 0), in 2-D and 1-D.
    #[test]
    fn hyperslabs_equal_hdf5_s_own_read() {
        let d = tempfile::tempdir().unwrap();
        let f = hdf5::File::create(d.path().join("x.h5")).unwrap();
        let ds = f
            .new_dataset::<u16>()
            .chunk((2, 3))
            .shape((5, 7))
            .blosc_zstd(1, hdf5::filters::BloscShuffle::Byte)
            .create("m")
            .unwrap();
        // Rows 0..4 written, row 4 (its chunks) never.
        let data = ndarray::Array2::from_shape_fn((4, 7), |(i, j)| (i * 100 + j) as u16);
        ds.write_slice(&data, ndarray::s![0..4, ..]).unwrap();
        assert!(is_blosc(&ds));
        for (lo, hi) in [
            ([0, 0], [5, 7]),
            ([1, 2], [4, 6]),
            ([3, 5], [5, 7]),
            ([2, 0], [3, 1]),
            ([4, 0], [5, 7]),
        ] {
            let ours = read_hyperslab(&ds, &lo, &hi).unwrap();
            let theirs: Vec<u16> = ds
                .read_slice_2d::<u16, _>(ndarray::s![lo[0]..hi[0], lo[1]..hi[1]])
                .unwrap()
                .iter()
                .copied()
                .collect();
            let ours: Vec<u16> = ours
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect();
            assert_eq!(ours, theirs, "{lo:?}..{hi:?}");
        }
        let one = f
            .new_dataset::<i64>()
            .chunk(4)
            .shape(10)
            .blosc_zstd(1, hdf5::filters::BloscShuffle::Byte)
            .create("v")
            .unwrap();
        one.write_slice(&[5i64, -6, 7, 8, 9], ndarray::s![0..5])
            .unwrap();
        let ours = read_hyperslab(&one, &[3], &[10]).unwrap();
        let ours: Vec<i64> = ours
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(ours, [8, 9, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn a_header_that_lies_about_its_sizes_is_refused() {
        let mut h = vec![2u8, 1, 0x11, 1];
        h.extend(100u32.to_le_bytes()); // nbytes
        h.extend(100u32.to_le_bytes()); // blocksize
        h.extend(4000u32.to_le_bytes()); // cbytes: more than stored
        h.extend([0u8; 24]);
        let e = check(&h, 100).unwrap_err();
        assert!(
            e.contains("says 4000 compressed bytes, stored in 40"),
            "{e}"
        );
        h[12..16].copy_from_slice(&40u32.to_le_bytes());
        assert!(check(&h, 100).is_ok());
        assert!(check(&h, 64).unwrap_err().contains("the chunk holds 64"));
        assert!(check(&h[..10], 100)
            .unwrap_err()
            .contains("shorter than its header"));
    }
}
