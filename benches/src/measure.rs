//! What one run of one impl is given (its context) and what it hands back
//! (a measurement). Nothing here prints: reports are built from these.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::error::BenchError;
use crate::pin::Pins;

/// Latencies above this (ns) are clamped into the top bucket; a fixed range
/// keeps recording allocation-free on the hot path.
const HIGHEST_NS: u64 = 100_000_000_000;

/// How one impl of one case is run.
#[derive(Clone, Copy, Debug)]
pub struct RunCtx {
    /// Cores of the two sides.
    pub pins: Pins,
    /// Time run before measuring, excluded from every figure.
    pub warmup: Duration,
    /// Time measured after the warm-up.
    pub measure: Duration,
    /// Wait by yielding the core instead of spinning (smoke tests, one core).
    pub yielding: bool,
}

impl RunCtx {
    /// A run for unit tests: unpinned, yielding, a few milliseconds.
    #[cfg(test)]
    pub(crate) fn for_tests() -> RunCtx {
        RunCtx {
            pins: Pins::unpinned(),
            warmup: Duration::from_millis(1),
            measure: Duration::from_millis(4),
            yielding: true,
        }
    }

    /// The latest moment a side may still be waiting: beyond it the run is
    /// declared stalled (a lost message would otherwise spin forever).
    pub fn hard_deadline(&self, start: Instant) -> Instant {
        start + self.warmup + self.measure + Duration::from_secs(10) + self.measure * 4
    }
}

/// The figures of one measured (case, impl).
pub struct Measurement {
    /// Latency samples in ns: round trips (ping-pong) or one-way under load.
    pub hist: Histogram<u64>,
    /// Messages (or round trips) completed in the measured window.
    pub msgs: u64,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// Fan-out cases: messages of the window each subscriber received, on
    /// average (beside `msgs`, what the publisher sent); none elsewhere.
    pub delivered: Option<u64>,
}

impl Measurement {
    /// Messages (or round trips) per second over the measured window.
    pub fn msgs_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.msgs as f64 / secs
        } else {
            0.0
        }
    }

    /// [`delivered`](Self::delivered) per second of the measured window.
    pub fn delivered_per_sec(&self) -> Option<f64> {
        let secs = self.elapsed.as_secs_f64();
        self.delivered.map(|d| if secs > 0.0 { d as f64 / secs } else { 0.0 })
    }
}

/// A histogram of nanoseconds with 3 significant digits over a fixed range.
pub fn new_histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, HIGHEST_NS, 3).map_err(|e| BenchError::Histogram(e.to_string()))
}

/// Nanoseconds between two instants (0 if `later` is not later).
#[inline]
pub fn nanos_between(earlier: Instant, later: Instant) -> u64 {
    later.saturating_duration_since(earlier).as_nanos() as u64
}
