//! Structure-aware mutations of real files: what breaks readers in practice is rarely random noise
//! but a cut-off download, a flipped bit, a length field that claims too much, a dtype that changed,
//! two fields that traded places. Each [`Mutation`] is one of those; [`mutate`] applies one to three
//! of them, chosen by a seeded generator, so a failing case is reproduced by its seed.

use evdet_events::rng::Rng;

/// One kind of damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Cut the file at a random point (more often inside the first kilobytes, where headers are).
    Truncate,
    /// Flip one to four bits.
    BitFlip,
    /// Overwrite a few bytes with boundary values (0x00, 0xff, 0x7f, 0x80).
    Boundary,
    /// Write a huge or negative 32/64-bit integer (either byte order) where a length could be.
    HugeLength,
    /// Replace a number written as text (JSON, YAML, npy headers) by an extreme one.
    TextNumber,
    /// Swap a numpy / safetensors dtype code for another.
    Dtype,
    /// Swap two equal-length ranges (fields that traded places).
    SwapRanges,
    /// Repeat a range (a duplicated block).
    Duplicate,
    /// Remove a range.
    Delete,
    /// Replace the tail by the same position of another seed (a file of another kind spliced in).
    Splice,
}

pub const ALL: [Mutation; 10] = [
    Mutation::Truncate,
    Mutation::BitFlip,
    Mutation::Boundary,
    Mutation::HugeLength,
    Mutation::TextNumber,
    Mutation::Dtype,
    Mutation::SwapRanges,
    Mutation::Duplicate,
    Mutation::Delete,
    Mutation::Splice,
];

const DTYPES: [&[u8]; 14] = [
    b"<i8", b"<u8", b"<i4", b"<u4", b"<i2", b"<u2", b"|u1", b"|i1", b"<f4", b"<f8", b">i8", b"<f2",
    b"|b1", b"<c8",
];
const ST_DTYPES: [&[u8]; 8] = [
    b"\"F32\"",
    b"\"F16\"",
    b"\"BF16\"",
    b"\"I64\"",
    b"\"U8\"",
    b"\"BOOL\"",
    b"\"F64\"",
    b"\"I8\"",
];
const NUMBERS: [&[u8]; 9] = [
    b"99999999999999999999",
    b"18446744073709551615",
    b"-1",
    b"0",
    b"1e308",
    b"-9223372036854775808",
    b"nan",
    b"4294967296",
    b"1.5",
];

/// A position, more often near the start (headers) than uniform.
fn pos(rng: &mut Rng, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    if rng.below(2) == 0 {
        rng.below(len.min(4096) as u64) as usize
    } else {
        rng.below(len as u64) as usize
    }
}

fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return Vec::new();
    }
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// Applies one mutation of kind `m` to `data` (`other` is another seed, for [`Mutation::Splice`]).
pub fn apply(m: Mutation, data: &mut Vec<u8>, other: &[u8], rng: &mut Rng) {
    let len = data.len();
    match m {
        Mutation::Truncate => {
            let at = pos(rng, len);
            data.truncate(at);
        }
        Mutation::BitFlip => {
            for _ in 0..1 + rng.below(4) {
                if len > 0 {
                    let at = pos(rng, len);
                    data[at] ^= 1 << rng.below(8);
                }
            }
        }
        Mutation::Boundary => {
            let v = [0x00, 0xff, 0x7f, 0x80][rng.below(4) as usize];
            let at = pos(rng, len);
            let n = (1 + rng.below(8) as usize).min(len.saturating_sub(at));
            data[at..at + n].fill(v);
        }
        Mutation::HugeLength => {
            let values: [u64; 7] = [
                u64::MAX,
                u32::MAX as u64,
                i32::MAX as u64,
                1 << 40,
                1 << 62,
                (-1i64) as u64,
                0,
            ];
            let v = values[rng.below(values.len() as u64) as usize];
            let wide = rng.below(2) == 0;
            let bytes: Vec<u8> = match (wide, rng.below(2) == 0) {
                (true, true) => v.to_le_bytes().to_vec(),
                (true, false) => v.to_be_bytes().to_vec(),
                (false, true) => (v as u32).to_le_bytes().to_vec(),
                (false, false) => (v as u32).to_be_bytes().to_vec(),
            };
            if len >= bytes.len() {
                // Aligned, as length fields are.
                let at = (pos(rng, len - bytes.len() + 1) / bytes.len()) * bytes.len();
                data[at..at + bytes.len()].copy_from_slice(&bytes);
            }
        }
        Mutation::TextNumber => {
            let starts: Vec<usize> = (0..len)
                .filter(|&i| data[i].is_ascii_digit() && (i == 0 || !data[i - 1].is_ascii_digit()))
                .collect();
            if let Some(&s) = starts.get(rng.below(starts.len().max(1) as u64) as usize) {
                let e = (s..len).find(|&i| !data[i].is_ascii_digit()).unwrap_or(len);
                let n = NUMBERS[rng.below(NUMBERS.len() as u64) as usize];
                data.splice(s..e, n.iter().copied());
            } else {
                apply(Mutation::BitFlip, data, other, rng);
            }
        }
        Mutation::Dtype => {
            let table: &[&[u8]] = if rng.below(2) == 0 {
                &DTYPES
            } else {
                &ST_DTYPES
            };
            let hits: Vec<(usize, usize)> = table
                .iter()
                .flat_map(|d| {
                    find_all(&data[..len.min(1 << 16)], d)
                        .into_iter()
                        .map(|i| (i, d.len()))
                })
                .collect();
            if let Some(&(at, n)) = hits.get(rng.below(hits.len().max(1) as u64) as usize) {
                let d = table[rng.below(table.len() as u64) as usize];
                data.splice(at..at + n, d.iter().copied());
            } else {
                apply(Mutation::HugeLength, data, other, rng);
            }
        }
        Mutation::SwapRanges => {
            if len >= 4 {
                let n = 1 + rng.below((len / 4).clamp(1, 64) as u64) as usize;
                let a = pos(rng, len - n);
                let b = rng.below((len - n) as u64) as usize;
                if a + n <= b || b + n <= a {
                    let tmp: Vec<u8> = data[a..a + n].to_vec();
                    data.copy_within(b..b + n, a);
                    data[b..b + n].copy_from_slice(&tmp);
                }
            }
        }
        Mutation::Duplicate => {
            if len > 0 {
                let a = pos(rng, len);
                let n = (1 + rng.below(256) as usize).min(len - a);
                let block: Vec<u8> = data[a..a + n].to_vec();
                let at = pos(rng, len);
                data.splice(at..at, block);
            }
        }
        Mutation::Delete => {
            if len > 0 {
                let a = pos(rng, len);
                let n = (1 + rng.below(256) as usize).min(len - a);
                data.drain(a..a + n);
            }
        }
        Mutation::Splice => {
            let at = pos(rng, len);
            data.truncate(at);
            data.extend_from_slice(&other[at.min(other.len())..]);
        }
    }
}

/// One to three mutations of `seed`, chosen by `rng`; returns the mutated bytes and what was done.
pub fn mutate(seed: &[u8], other: &[u8], rng: &mut Rng) -> (Vec<u8>, Vec<Mutation>) {
    let mut data = seed.to_vec();
    let k = 1 + rng.below(3) as usize;
    let mut done = Vec::with_capacity(k);
    for _ in 0..k {
        let m = ALL[rng.below(ALL.len() as u64) as usize];
        apply(m, &mut data, other, rng);
        done.push(m);
    }
    (data, done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_reproducible_by_seed_and_change_the_input() {
        let seed: Vec<u8> =
            b"\x93NUMPY\x01\x00v\x00{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }"
                .iter()
                .copied()
                .chain([7u8; 24])
                .collect();
        let (a, ma) = mutate(&seed, b"other", &mut Rng::new(5));
        let (b, mb) = mutate(&seed, b"other", &mut Rng::new(5));
        assert_eq!((a.clone(), ma), (b, mb));
        let changed = (0..200)
            .filter(|&s| mutate(&seed, b"other", &mut Rng::new(s)).0 != seed)
            .count();
        assert!(
            changed > 180,
            "{changed} of 200 mutations changed the input"
        );
        let mut d = seed.clone();
        apply(Mutation::Dtype, &mut d, b"", &mut Rng::new(1));
        assert!(
            d != seed && d.len() == seed.len(),
            "a dtype code was swapped"
        );
    }
}
