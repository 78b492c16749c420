//! Futex wait and wake on a 32-bit word in shared memory.
//!
//! Shared (not `FUTEX_PRIVATE_FLAG`) futexes: the word lives in a memfd
//! mapping and the waker may be another process. The kernel keys shared
//! futexes by the backing page, so each process may map it anywhere.

use std::io;
use std::time::Duration;

/// Sleeps while `*word == expected`, at most `timeout` (forever if `None`).
/// Returns `Ok(true)` when woken or when the word already differed,
/// `Ok(false)` on timeout. Spurious wake-ups are possible: re-check.
///
/// # Safety
/// `word` must point to a live, 4-byte aligned u32 for the whole call (the
/// kernel reads it); it may be concurrently modified by other processes.
pub unsafe fn wait(word: *const u32, expected: u32, timeout: Option<Duration>) -> io::Result<bool> {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the caller guarantees `word` is a valid aligned u32 for the
    // call; `ts_ptr` is null or points to `ts`, alive until the call returns.
    let r = unsafe { libc::syscall(libc::SYS_futex, word, libc::FUTEX_WAIT, expected, ts_ptr, 0usize, 0u32) };
    if r == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(true),
        Some(libc::ETIMEDOUT) => Ok(false),
        _ => Err(io::Error::new(err.kind(), format!("futex(FUTEX_WAIT): {err}"))),
    }
}

/// Wakes up to `n` sleepers on `word`; returns how many were woken.
///
/// # Safety
/// `word` must point to a live, 4-byte aligned u32 (it may be in memory
/// shared with other processes).
pub unsafe fn wake(word: *const u32, n: u32) -> io::Result<usize> {
    let n = n.min(i32::MAX as u32);
    // SAFETY: the caller guarantees `word` is a valid aligned u32; FUTEX_WAKE
    // only uses the address as a key and never writes through it.
    let r = unsafe { libc::syscall(libc::SYS_futex, word, libc::FUTEX_WAKE, n, 0usize, 0usize, 0u32) };
    if r < 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("futex(FUTEX_WAKE): {err}")));
    }
    Ok(r as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[test]
    fn wait_returns_at_once_when_the_word_differs() {
        let w = AtomicU32::new(5);
        // SAFETY: `w` is a live aligned u32.
        assert!(unsafe { wait(w.as_ptr(), 4, None) }.unwrap());
    }

    #[test]
    fn wait_times_out_when_nobody_wakes() {
        let w = AtomicU32::new(5);
        // SAFETY: `w` is a live aligned u32.
        assert!(!unsafe { wait(w.as_ptr(), 5, Some(Duration::from_millis(1))) }.unwrap());
    }

    #[test]
    fn wake_releases_a_sleeper() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = w.clone();
        let sleeper = std::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 0 {
                // SAFETY: `w2` keeps the word alive.
                unsafe { wait(w2.as_ptr(), 0, None) }.unwrap();
            }
        });
        w.store(1, Ordering::Release);
        // SAFETY: `w` is a live aligned u32.
        unsafe { wake(w.as_ptr(), 1) }.unwrap();
        sleeper.join().unwrap();
    }
}
