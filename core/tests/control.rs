//! The control channel's message path allocates nothing: `send` and `recv`,
//! with descriptors and with a timeout, are counted by a per-thread counting
//! allocator (its own test binary, so no other test shares the allocator).

use ringflow_core::control::{ControlConn, Received, RecvError};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::Duration;

struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the allocator may run while thread locals are torn down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to the system allocator unchanged; counting
// touches only a const-initialised thread local, which never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [-1; 2];
    // SAFETY: `fds` is two writable ints, as pipe2 expects.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two new descriptors nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

#[test]
fn send_and_recv_allocate_nothing() {
    let (a, b) = ControlConn::pair().unwrap();
    let (r, w) = pipe();
    let mut buf = [0u8; 64];
    let mut slots: [Option<OwnedFd>; 2] = [None, None];
    let timeout = Some(Duration::from_secs(60));
    // Once outside the count, in case anything initialises lazily.
    a.send(b"warm", &[r.as_fd()]).unwrap();
    b.recv(&mut buf, &mut slots, timeout).unwrap();

    let n = allocations_during(|| {
        for _ in 0..100 {
            a.send(b"with two fds", &[r.as_fd(), w.as_fd()]).unwrap();
            assert_eq!(b.recv(&mut buf, &mut slots, timeout).unwrap(), Received { len: 12, nfds: 2 });
            a.send(b"plain", &[]).unwrap();
            assert_eq!(b.recv(&mut buf, &mut [], None).unwrap(), Received { len: 5, nfds: 0 });
            assert!(matches!(b.recv(&mut buf, &mut [], Some(Duration::ZERO)), Err(RecvError::WouldBlock)));
            assert!(!b.is_hung_up());
        }
    });
    assert_eq!(n, 0, "the message path allocated {n} times");
}
