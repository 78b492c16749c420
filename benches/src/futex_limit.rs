//! The physical limit of a *blocking* ping-pong: each side sleeps in the
//! kernel on a shared futex word until the other stores a new value there
//! and wakes it. A round trip is two stores, two `FUTEX_WAKE`s and two
//! wake-ups from `FUTEX_WAIT`, plus copying the 64-byte message through
//! shared memory.
//!
//! The futexes are shared (no `FUTEX_PRIVATE_FLAG`) and live in a
//! `MAP_SHARED` page, like ringflow's blocking flows in their segments, so
//! the kernel keys them the same way. Like [`crate::limit`], this must stay
//! minimal: no spinning phase before sleeping (it measures the wake-up, not
//! luck) and no skipped wakes (a sleeper is the normal case here).

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::BenchError;
use crate::measure::{Measurement, RunCtx};
use crate::os::{check_after_timeout, BLOCK_TIMEOUT};
use crate::pair::Waiter;
use crate::pingpong::{self, PingSide, PongSide};
use crate::wire::{self, MARK_AT, STOP};

/// Words of the 64-byte message.
const MSG_WORDS: usize = 8;

/// One direction: the futex word and the message, alone in a 128-byte block
/// (the adjacent-line prefetcher pairs 64-byte lines).
#[repr(C, align(128))]
struct Line {
    /// The stamp of the message in `words` (low 32 bits; never zero before
    /// wrapping, and zero is the initial value).
    futex: AtomicU32,
    words: [AtomicU64; MSG_WORDS],
}

/// Both directions; ping writes `a` and pong writes `b`.
#[repr(C)]
struct Lines {
    a: Line,
    b: Line,
}

/// Sleeps while `*word == seen`, at most [`BLOCK_TIMEOUT`]. `Ok(false)` on
/// timeout; `Ok(true)` when woken, interrupted or the word already differed
/// (the caller re-checks in every case).
fn futex_wait(word: &AtomicU32, seen: u32) -> io::Result<bool> {
    let ts = libc::timespec {
        tv_sec: BLOCK_TIMEOUT.as_secs() as libc::time_t,
        tv_nsec: BLOCK_TIMEOUT.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live aligned u32 the kernel only reads; `ts` is a
    // live timespec; FUTEX_WAIT ignores the last two arguments.
    let r =
        unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, seen, &raw const ts, 0usize, 0u32) };
    if r == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN | libc::EINTR) => Ok(true),
        Some(libc::ETIMEDOUT) => Ok(false),
        _ => Err(err),
    }
}

/// Wakes the (at most one) sleeper on `word`.
fn futex_wake(word: &AtomicU32) -> io::Result<()> {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE uses its address
    // only as a key and ignores the last three arguments.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1i32, 0usize, 0usize, 0u32) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Line {
    /// Copies `msg` (64 bytes) into the line, publishes `stamp` and wakes
    /// the other side.
    #[inline]
    fn publish(&self, msg: &[u8], stamp: u32) -> Result<(), BenchError> {
        for (i, w) in self.words.iter().enumerate() {
            // SYNC: Relaxed; published by the Release store of `futex`
            // below, read after the peer's Acquire load in `wait_for`.
            w.store(wire::word(msg, 8 * i), Ordering::Relaxed);
        }
        self.release(stamp)
    }

    /// Publishes `stamp` for words already in place, and wakes the other
    /// side.
    #[inline]
    fn release(&self, stamp: u32) -> Result<(), BenchError> {
        // SYNC: Release; pairs with the Acquire in `wait_for`: the words are
        // visible to a side that sees this stamp.
        self.futex.store(stamp, Ordering::Release);
        futex_wake(&self.futex).map_err(|source| BenchError::Os { call: "futex(FUTEX_WAKE)", source })
    }

    /// Sleeps until the futex word equals `stamp`; on each timeout, checks
    /// whether the other side failed or the run stalled.
    #[inline]
    fn wait_for(&self, stamp: u32, w: &mut Waiter<'_>) -> Result<(), BenchError> {
        loop {
            // SYNC: Acquire; pairs with the Release in `release`.
            let seen = self.futex.load(Ordering::Acquire);
            if seen == stamp {
                return Ok(());
            }
            let woken =
                futex_wait(&self.futex, seen).map_err(|source| BenchError::Os { call: "futex(FUTEX_WAIT)", source })?;
            if !woken {
                check_after_timeout(w)?;
            }
        }
    }
}

struct Ping<'a> {
    lines: &'a Lines,
    stamp: u64,
}

impl PingSide<64> for Ping<'_> {
    #[inline]
    fn send(&mut self, msg: &[u8; 64], _w: &mut Waiter<'_>) -> Result<(), BenchError> {
        // Stamps start at 1: zero is the initial value.
        self.stamp = wire::word(msg, 0) + 1;
        self.lines.a.publish(msg, self.stamp as u32)
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        self.lines.b.wait_for(self.stamp as u32, w)?;
        Ok(self.stamp - 1)
    }
}

struct Pong<'a> {
    lines: &'a Lines,
    stamp: u64,
}

impl PongSide<64> for Pong<'_> {
    #[inline]
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        self.stamp += 1;
        let (a, b) = (&self.lines.a, &self.lines.b);
        a.wait_for(self.stamp as u32, w)?;
        // SYNC: Relaxed; ordered after the Acquire in `wait_for`.
        if a.words[MARK_AT / 8].load(Ordering::Relaxed) == STOP {
            return Ok(false);
        }
        for (src, dst) in a.words.iter().zip(&b.words) {
            // SYNC: Relaxed both; the load is ordered after the Acquire in
            // `wait_for`, the store is published by the Release in `release`.
            dst.store(src.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        b.release(self.stamp as u32)?;
        Ok(true)
    }
}

/// One `MAP_SHARED` anonymous page holding the [`Lines`], unmapped on drop.
struct SharedPage {
    ptr: NonNull<Lines>,
}

/// The mapping's length: one page.
const PAGE: usize = 4096;
const _: () = assert!(size_of::<Lines>() <= PAGE);

impl SharedPage {
    fn new() -> Result<Self, BenchError> {
        // SAFETY: a fresh anonymous mapping chosen by the kernel: it touches
        // none of our memory. Its zeroed bytes are valid `Lines` (all
        // atomics at zero), and page alignment satisfies their alignment.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(BenchError::Os { call: "mmap(MAP_SHARED)", source: io::Error::last_os_error() });
        }
        let ptr = NonNull::new(p.cast::<Lines>()).ok_or_else(|| BenchError::Os {
            call: "mmap(MAP_SHARED)",
            source: io::ErrorKind::AddrNotAvailable.into(),
        })?;
        Ok(SharedPage { ptr })
    }

    fn lines(&self) -> &Lines {
        // SAFETY: the mapping is live until drop, zero-initialised (a valid
        // `Lines`), aligned, and only ever accessed through shared
        // references to atomics.
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; every borrow of
        // it (`lines`) ended with the run that held `&self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), PAGE) };
    }
}

/// Futex ping-pong of a 64-byte message: each side sleeps in `FUTEX_WAIT`
/// until the other publishes and calls `FUTEX_WAKE`.
pub fn pingpong(ctx: &RunCtx) -> Result<Measurement, BenchError> {
    let page = SharedPage::new()?;
    let lines = page.lines();
    pingpong::run::<64>(ctx, Ping { lines, stamp: 0 }, Pong { lines, stamp: 0 })
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::pair::run_pair;

    #[test]
    fn round_trips_complete() {
        let m = pingpong(&RunCtx::for_tests()).expect("futex ping-pong");
        assert!(m.msgs > 0);
    }

    #[test]
    fn a_message_crosses_whole() {
        let page = SharedPage::new().expect("page");
        let lines = page.lines();
        let msg: [u8; 64] = std::array::from_fn(|i| i as u8 + 3);
        let mut pong = Pong { lines, stamp: 0 };
        let ((), echoed) =
            run_pair(&RunCtx::for_tests(), |_| lines.a.publish(&msg, 1), |w| pong.echo(w)).expect("echo");
        assert!(echoed);
        for (i, w) in lines.b.words.iter().enumerate() {
            assert_eq!(w.load(Ordering::Relaxed), wire::word(&msg, 8 * i));
        }
        assert_eq!(lines.b.futex.load(Ordering::Relaxed), 1);
    }

    /// A sleeping side whose peer never publishes notices, through its
    /// futex timeout, that the other side failed (else this test hangs).
    #[test]
    fn a_sleeping_side_stops_when_the_other_side_fails() {
        let page = SharedPage::new().expect("page");
        let lines = page.lines();
        let r = run_pair(
            &RunCtx::for_tests(),
            |_| -> Result<(), BenchError> { Err(BenchError::Stalled) },
            |w| lines.a.wait_for(1, w),
        );
        assert!(matches!(r, Err(BenchError::Stalled)), "{r:?}");
    }
}
