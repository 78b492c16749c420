//! A global allocator that counts the allocations of each thread, for the
//! tests that prove a path allocates nothing ("the hot path allocates
//! nothing", STYLE.md habit 8). A test binary installs it with
//! `#[global_allocator] static A: ThreadCounting = ThreadCounting;` and reads
//! [`thread_allocs`] before and after the path.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Forwards to the system allocator, counting each allocation and
/// reallocation of the calling thread.
pub struct ThreadCounting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the counter
// is a const-initialised thread-local without a destructor, so touching it
// never allocates or re-enters the allocator.
unsafe impl GlobalAlloc for ThreadCounting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is passed through unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations (and reallocations) this thread has made so far, counted
/// only where [`ThreadCounting`] is the global allocator (0 elsewhere).
pub fn thread_allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

/// Forwards to the system allocator, recording the largest single
/// allocation (or reallocation) any thread has asked for: for the tests
/// that prove hostile input never makes us allocate a forged size.
pub struct LargestAlloc;

static LARGEST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; recording
// a size is one atomic operation, which never allocates.
unsafe impl GlobalAlloc for LargestAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SYNC: Relaxed; a maximum read at the end of a test, nothing ordered by it.
        LARGEST.fetch_max(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's contract is passed through unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SYNC: Relaxed; as in `alloc`.
        LARGEST.fetch_max(new_size, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The largest allocation made so far in this process, where
/// [`LargestAlloc`] is the global allocator (0 elsewhere).
pub fn largest_alloc() -> usize {
    // SYNC: Relaxed; as in `LargestAlloc::alloc`.
    LARGEST.load(std::sync::atomic::Ordering::Relaxed)
}
