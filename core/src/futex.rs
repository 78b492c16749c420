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

/// Most words one [`wait_any`] can sleep on (the kernel's FUTEX_WAITV_MAX).
pub const WAITV_MAX: usize = 128;

/// The kernel's `struct futex_waitv`.
#[repr(C)]
#[derive(Clone, Copy)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// A 32-bit shared futex (FUTEX2_SIZE_U32, not FUTEX2_PRIVATE).
const FUTEX2_SIZE_U32: u32 = 0x02;

/// Sleeps until any of `words` is woken or differs from its expected value,
/// at most `timeout` (`futex_waitv`, Linux 5.16+). Returns `Ok(true)` when
/// woken (or a value already differed), `Ok(false)` on timeout. Spurious
/// wake-ups are possible: re-check. At most [`WAITV_MAX`] words.
///
/// # Safety
/// Every pointer must point to a live, 4-byte aligned u32 for the whole
/// call; the words may be modified concurrently by other processes.
pub unsafe fn wait_any(words: &[(*const u32, u32)], timeout: Option<Duration>) -> io::Result<bool> {
    if words.is_empty() || words.len() > WAITV_MAX {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "futex_waitv takes 1 to 128 words"));
    }
    let mut v = [FutexWaitv { val: 0, uaddr: 0, flags: 0, reserved: 0 }; WAITV_MAX];
    for (slot, &(word, expected)) in v.iter_mut().zip(words) {
        *slot = FutexWaitv { val: expected as u64, uaddr: word as u64, flags: FUTEX2_SIZE_U32, reserved: 0 };
    }
    // futex_waitv takes an absolute CLOCK_MONOTONIC time.
    let abs = match timeout {
        None => None,
        Some(d) => {
            let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: writes the current time into `now`.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
            let nanos = now.tv_nsec as u64 + d.subsec_nanos() as u64;
            let secs = (now.tv_sec as u64).saturating_add(d.as_secs()).saturating_add(nanos / 1_000_000_000);
            Some(libc::timespec {
                tv_sec: secs.min(i64::MAX as u64 / 2) as libc::time_t,
                tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
            })
        }
    };
    let ts_ptr = abs.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `v` holds `words.len()` initialised entries whose addresses the
    // caller guarantees; `ts_ptr` is null or points to `abs`, alive here.
    let r = unsafe {
        libc::syscall(libc::SYS_futex_waitv, v.as_ptr(), words.len() as u32, 0u32, ts_ptr, libc::CLOCK_MONOTONIC)
    };
    if r >= 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(true),
        Some(libc::ETIMEDOUT) => Ok(false),
        _ => Err(io::Error::new(err.kind(), format!("futex_waitv: {err}"))),
    }
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
