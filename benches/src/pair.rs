//! Runs the two sides of a measurement on two threads, each pinned to its
//! own core, while the calling thread only waits (join); or one side and
//! several on the other core ([`run_fan`]).
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

impl<'a> Waiter<'a> {
    /// A waiter of a side the harness does not run (a child process's):
    /// `abort` stops it, as does `deadline`.
    pub(crate) fn new(abort: &'a AtomicBool, deadline: Instant, yielding: bool) -> Self {
        Waiter { abort, deadline, spins: 0, yielding }
    }

    /// Moves the stall deadline later by `setup`: what a side spent
    /// building its transport (opening many flows, say) is no stall.
    pub(crate) fn allow_setup(&mut self, setup: std::time::Duration) {
        self.deadline += setup;
    }

    /// Whether the other side failed (for a side that waits in its own way).
    pub(crate) fn aborted(&self) -> bool {
        // SYNC: Relaxed; as in `check`.
        self.abort.load(Ordering::Relaxed)
    }

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
    yielding: bool,
    abort: &AtomicBool,
    deadline: Instant,
    body: impl FnOnce(&mut Waiter<'_>) -> Result<T, BenchError>,
) -> Result<T, BenchError> {
    let mut guard = AbortOnFailure { abort, ok: false };
    ctx.pins.pin_current(index)?;
    let mut waiter = Waiter { abort, deadline, spins: 0, yielding };
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
    let (a, mut bs) = run_sides(ctx, a, vec![b], ctx.yielding)?;
    let b = bs.pop().ok_or(BenchError::Aborted)?;
    Ok((a, b))
}

/// Runs `a` on core 0 and every one of `bs` on core 1, each on its own
/// thread, and returns all results (`bs`' in order). The threads sharing
/// core 1 always wait by yielding, whatever the context says: several
/// spinning threads on one core would measure the scheduler's time slices.
/// When one fails, its error is returned (not the others' `Aborted`).
pub fn run_fan<A, B, FA, FB>(ctx: &RunCtx, a: FA, bs: Vec<FB>) -> Result<(A, Vec<B>), BenchError>
where
    A: Send,
    B: Send,
    FA: FnOnce(&mut Waiter<'_>) -> Result<A, BenchError> + Send,
    FB: FnOnce(&mut Waiter<'_>) -> Result<B, BenchError> + Send,
{
    run_sides(ctx, a, bs, true)
}

/// [`run_fan`], the threads of core 1 yielding as `yielding` says.
fn run_sides<A, B, FA, FB>(ctx: &RunCtx, a: FA, bs: Vec<FB>, yielding: bool) -> Result<(A, Vec<B>), BenchError>
where
    A: Send,
    B: Send,
    FA: FnOnce(&mut Waiter<'_>) -> Result<A, BenchError> + Send,
    FB: FnOnce(&mut Waiter<'_>) -> Result<B, BenchError> + Send,
{
    let abort = AtomicBool::new(false);
    let deadline = ctx.hard_deadline(Instant::now());
    let (ra, rbs) = thread::scope(|s| {
        let abort = &abort;
        let ha = s.spawn(move || side(ctx, 0, ctx.yielding, abort, deadline, a));
        let hbs: Vec<_> = bs.into_iter().map(|b| s.spawn(move || side(ctx, 1, yielding, abort, deadline, b))).collect();
        let ra = ha.join().unwrap_or(Err(BenchError::Panicked { side: "first" }));
        let rbs: Vec<_> =
            hbs.into_iter().map(|h| h.join().unwrap_or(Err(BenchError::Panicked { side: "second" }))).collect();
        (ra, rbs)
    });
    // A real error wins over the `Aborted` it caused elsewhere.
    let mut failure = None;
    let a = ra.map_err(|e| keep_cause(&mut failure, e)).ok();
    let bs: Vec<B> = rbs.into_iter().filter_map(|r| r.map_err(|e| keep_cause(&mut failure, e)).ok()).collect();
    match (failure, a) {
        (Some(e), _) => Err(e),
        (None, Some(a)) => Ok((a, bs)),
        (None, None) => Err(BenchError::Aborted),
    }
}

/// Keeps the first error that is not `Aborted` (or `Aborted` if all are).
fn keep_cause(failure: &mut Option<BenchError>, e: BenchError) {
    if failure.as_ref().is_none_or(|f| matches!(f, BenchError::Aborted)) {
        *failure = Some(e);
    }
}
