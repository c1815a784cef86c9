//! Gradient all-reduce in buckets, as DDP's reducer does it: consecutive gradients are flattened into
//! buckets of at most `cap` bytes (a gradient larger than the cap gets a bucket of its own), each
//! bucket is summed over the ranks in one collective and copied back.

use crate::group::{DistError, ProcessGroup};
use std::ops::Range;
use tch::Tensor;

/// Consecutive index ranges of `sizes` (bytes) whose sums stay within `cap` where possible.
pub fn plan(sizes: &[usize], cap: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, &s) in sizes.iter().enumerate() {
        if i > start && bytes + s > cap {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += s;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// Sums every gradient over the ranks, bucket by bucket, in place. Returns the number of buckets.
pub fn all_reduce_gradients(
    pg: &ProcessGroup,
    grads: &[Tensor],
    cap_bytes: usize,
    step: u64,
) -> Result<usize, DistError> {
    let sizes: Vec<usize> = grads
        .iter()
        .map(|g| g.numel() * g.kind().elt_size_in_bytes())
        .collect();
    let buckets = plan(&sizes, cap_bytes.max(1));
    for (b, range) in buckets.iter().enumerate() {
        let parts = &grads[range.clone()];
        let flat = Tensor::cat(
            &parts.iter().map(|g| g.reshape([-1])).collect::<Vec<_>>(),
            0,
        );
        pg.all_reduce_sum(
            &flat,
            &format!(
                "all-reduce of gradient bucket {}/{} at step {step}",
                b + 1,
                buckets.len()
            ),
        )?;
        let mut offset = 0i64;
        for g in parts {
            let n = g.numel() as i64;
            let mut g = g.shallow_clone();
            g.copy_(&flat.narrow(0, offset, n).view_as(&g));
            offset += n;
        }
    }
    Ok(buckets.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_respect_the_cap_and_keep_order() {
        assert_eq!(plan(&[4, 4, 4, 4], 8), vec![0..2, 2..4]);
        assert_eq!(plan(&[4, 20, 4], 8), vec![0..1, 1..2, 2..3]);
        assert_eq!(plan(&[4, 4, 4], 1 << 20), vec![0..3]);
        assert_eq!(plan(&[], 8), Vec::<Range<usize>>::new());
    }
}
