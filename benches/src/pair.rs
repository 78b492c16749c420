//! Runs the two sides of a measurement on two threads, each pinned to its
//! own core, while the calling thread only waits (join).
//!
//! A side that fails or panics raises a shared abort flag; the other side
//! sees it in its [`Waiter`] and stops instead of spinning forever. Each side
//! also stops at a hard deadline, so a lost message ends the run with
//! [`BenchError::Stalled`] rather than a hang.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use crate::error::BenchError;
use crate::measure::RunCtx;

/// How a side waits while its ring is empty or full: spinning (one spinning
/// thread per core) or yielding (smoke tests, a single shared core).
pub struct Waiter<'a> {
    abort: &'a AtomicBool,
    deadline: Instant,
    spins: u32,
    yielding: bool,
}

impl Waiter<'_> {
    /// One round of waiting. Every few thousand rounds (every few when
    /// yielding) checks whether the other side failed or the run is stalled.
    #[inline]
    pub fn wait(&mut self) -> Result<(), BenchError> {
        self.spins = self.spins.wrapping_add(1);
        if self.yielding {
            thread::yield_now();
            if self.spins % 16 == 0 {
                return self.check();
            }
        } else {
            std::hint::spin_loop();
            if self.spins % 4096 == 0 {
                return self.check();
            }
        }
        Ok(())
    }

    #[cold]
    fn check(&self) -> Result<(), BenchError> {
        // SYNC: Relaxed; a plain flag with no data attached: pairs with the
        // Relaxed store in `AbortOnFailure::drop`, only its value matters.
        if self.abort.load(Ordering::Relaxed) {
            return Err(BenchError::Aborted);
        }
        if Instant::now() > self.deadline {
            return Err(BenchError::Stalled);
        }
        Ok(())
    }
}

/// Raises the abort flag when a side ends without success (error or panic).
struct AbortOnFailure<'a> {
    abort: &'a AtomicBool,
    ok: bool,
}

impl Drop for AbortOnFailure<'_> {
    fn drop(&mut self) {
        if !self.ok {
            // SYNC: Relaxed; pairs with the Relaxed load in `Waiter::check`.
            self.abort.store(true, Ordering::Relaxed);
        }
    }
}

fn side<T>(
    ctx: &RunCtx,
    index: usize,
    abort: &AtomicBool,
    deadline: Instant,
    body: impl FnOnce(&mut Waiter<'_>) -> Result<T, BenchError>,
) -> Result<T, BenchError> {
    let mut guard = AbortOnFailure { abort, ok: false };
    ctx.pins.pin_current(index)?;
    let mut waiter = Waiter { abort, deadline, spins: 0, yielding: ctx.yielding };
    let result = body(&mut waiter);
    guard.ok = result.is_ok();
    result
}

/// Runs `a` on core 0 and `b` on core 1 and returns both results. When one
/// side fails, its error is returned (not the other side's `Aborted`).
pub fn run_pair<A, B, FA, FB>(ctx: &RunCtx, a: FA, b: FB) -> Result<(A, B), BenchError>
where
    A: Send,
    B: Send,
    FA: FnOnce(&mut Waiter<'_>) -> Result<A, BenchError> + Send,
    FB: FnOnce(&mut Waiter<'_>) -> Result<B, BenchError> + Send,
{
    let abort = AtomicBool::new(false);
    let deadline = ctx.hard_deadline(Instant::now());
    let (ra, rb) = thread::scope(|s| {
        let abort = &abort;
        let ha = s.spawn(move || side(ctx, 0, abort, deadline, a));
        let hb = s.spawn(move || side(ctx, 1, abort, deadline, b));
        let ra = ha.join().unwrap_or(Err(BenchError::Panicked { side: "first" }));
        let rb = hb.join().unwrap_or(Err(BenchError::Panicked { side: "second" }));
        (ra, rb)
    });
    match (ra, rb) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(BenchError::Aborted), Err(e)) | (Err(e), _) | (_, Err(e)) => Err(e),
    }
}
