//! Allocator settings for both executables.

/// glibc hands every large block back to the kernel when it is freed (blocks over the mmap threshold are
/// unmapped, the worker threads' heaps are trimmed), so the next window's buffers of the same size come
/// back as fresh pages that fault in one by one: preprocessing spent about 30 % of its CPU time in page
/// faults. Keeping freed memory in the process turns those into reuse.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; called before any thread exists.
    unsafe {
        // 32 MB is glibc's largest mmap threshold on 64-bit; 18 MB histogram windows stay below it.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
