//! A global allocator for fuzzing drivers that refuses any single allocation above a cap: a reader
//! that believes a length field of a 100-byte file and asks for 10¹² bytes is caught on the request,
//! with the case named, instead of taking the machine's memory. The driver sets the cap per input
//! ([`set_cap`]) and reads the largest request it made ([`largest`]).
//!
//! Install it in a driver binary with
//! `#[global_allocator] static A: evdet_fuzz::alloc_cap::CappedAlloc = evdet_fuzz::alloc_cap::CappedAlloc;`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static CAP: AtomicUsize = AtomicUsize::new(usize::MAX);
static LARGEST: AtomicUsize = AtomicUsize::new(0);
/// What is running, for the message on a refused request (a fixed buffer: no allocation there).
static LABEL: [AtomicUsize; 16] = [const { AtomicUsize::new(0) }; 16];

pub struct CappedAlloc;

/// The largest single allocation allowed from now on.
pub fn set_cap(bytes: usize) {
    CAP.store(bytes, Ordering::SeqCst);
}

/// Forgets the largest request seen so far.
pub fn reset_largest() {
    LARGEST.store(0, Ordering::SeqCst);
}

/// The largest single request since [`reset_largest`].
pub fn largest() -> usize {
    LARGEST.load(Ordering::SeqCst)
}

/// The cap for an input of `len` bytes: what a reader may need whatever the file (buffers, one
/// decompressed chunk) plus a generous multiple of the file itself (compression, index arrays).
pub fn cap_for(len: usize) -> usize {
    (256 << 20) + len.saturating_mul(64)
}

/// Names the case that is running (up to 128 bytes are kept) for the message of a refused request.
pub fn set_label(label: &str) {
    let b = label.as_bytes();
    for (i, slot) in LABEL.iter().enumerate() {
        let mut w = [0u8; 8];
        for (j, x) in w.iter_mut().enumerate() {
            *x = b.get(i * 8 + j).copied().unwrap_or(0);
        }
        slot.store(usize::from_le_bytes(w), Ordering::SeqCst);
    }
}

fn report(size: usize) {
    let mut buf = [0u8; 256];
    let mut n = 0;
    let mut put = |s: &[u8]| {
        for &c in s {
            if n < buf.len() && c != 0 {
                buf[n] = c;
                n += 1;
            }
        }
    };
    put(b"alloc_cap: refused an allocation of ");
    let mut digits = [0u8; 20];
    let (mut v, mut k) = (size, 0);
    loop {
        digits[19 - k] = b'0' + (v % 10) as u8;
        k += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(&digits[20 - k..]);
    put(b" bytes while running ");
    for slot in &LABEL {
        put(&slot.load(Ordering::SeqCst).to_le_bytes());
    }
    put(b"\n");
    // SAFETY: writing a stack buffer to stderr.
    unsafe { libc::write(2, buf.as_ptr().cast(), n) };
}

fn note(size: usize) -> bool {
    LARGEST.fetch_max(size, Ordering::Relaxed);
    if size > CAP.load(Ordering::Relaxed) {
        report(size);
        return false;
    }
    true
}

// SAFETY: delegates to the system allocator; refusing means returning null, which the caller handles.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size) {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}
