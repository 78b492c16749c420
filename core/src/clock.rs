//! The clock of send timestamps: cheap, and comparable between processes of
//! one host, because a latency is one process's stamp subtracted from
//! another's reading.
//!
//! The cheapest reading wins (what each candidate costs: tuning.md,
//! "Latency histograms"). With an invariant TSC (`constant_tsc`
//! and `nonstop_tsc`: one rate on every core, never stopped, synchronised
//! by the kernel at boot) the clock is the TSC, in ticks; without one it is
//! `CLOCK_MONOTONIC_RAW` in nanoseconds. Either way a reading is a tick
//! count, and only differences of readings are converted to nanoseconds,
//! with this process's calibration (rates differ between hosts, not between
//! the processes of one).
//!
//! Stamps travel in 56 bits (a frame's metadata word keeps its top byte for
//! other things): differences are taken modulo 2^56, which at 3 GHz wraps
//! once in 278 days, far beyond any latency.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Readings and differences are kept in these bits.
pub const TICKS_MASK: u64 = (1 << 56) - 1;

/// A difference of at least this many ticks is a stamp from the future (a
/// clock that is not shared, or a corrupt stamp), not a latency.
const FUTURE: u64 = 1 << 55;

/// Which clock the readings come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockSource {
    /// The invariant time-stamp counter.
    Tsc,
    /// `CLOCK_MONOTONIC_RAW`, nanoseconds.
    MonotonicRaw,
}

impl ClockSource {
    /// The clock's name, as `ringflow stat` and the stats file show it.
    pub fn as_str(self) -> &'static str {
        match self {
            ClockSource::Tsc => "tsc",
            ClockSource::MonotonicRaw => "monotonic-raw",
        }
    }
}

struct Calibrated {
    source: ClockSource,
    /// Nanoseconds per tick, as a 32.32 fixed-point factor.
    ns_per_tick_fp: u64,
}

static CLOCK: OnceLock<Calibrated> = OnceLock::new();

/// The clock this process (and every ringflow process of the host) reads.
pub fn source() -> ClockSource {
    calibrated().source
}

/// Calibrates the clock now rather than on first conversion (it takes
/// about 200 µs with a TSC, nothing without one). Idempotent.
pub fn init() {
    let _ = calibrated();
}

/// A reading of the clock, in ticks (56 bits).
#[inline(always)]
pub fn now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if uses_tsc() {
            // SAFETY: rdtsc has no preconditions; `uses_tsc` checked the
            // CPU has an invariant TSC (so the reading means something).
            return unsafe { core::arch::x86_64::_rdtsc() } & TICKS_MASK;
        }
    }
    monotonic_raw_ns() & TICKS_MASK
}

/// Nanoseconds from the stamp `earlier` to the reading `later`, or `None`
/// if the stamp lies in the future (not a shared clock, or garbage).
#[inline]
pub fn elapsed_ns(earlier: u64, later: u64) -> Option<u64> {
    let ticks = later.wrapping_sub(earlier) & TICKS_MASK;
    if ticks >= FUTURE {
        return None;
    }
    Some(ticks_to_ns(ticks))
}

/// Converts a tick count (a difference) to nanoseconds.
#[inline]
pub fn ticks_to_ns(ticks: u64) -> u64 {
    let fp = calibrated().ns_per_tick_fp;
    ((u128::from(ticks) * u128::from(fp)) >> 32) as u64
}

/// Converts nanoseconds to a tick count (a difference), the inverse of
/// [`ticks_to_ns`].
pub fn ns_to_ticks(ns: u64) -> u64 {
    let fp = calibrated().ns_per_tick_fp.max(1);
    ((u128::from(ns) << 32) / u128::from(fp)) as u64
}

/// Whether readings come from the TSC: decided once per process from the
/// CPU's flags, as every process of the host decides it.
#[inline(always)]
fn uses_tsc() -> bool {
    // A relaxed static read; the decision is made before the first flow.
    static TSC: OnceLock<bool> = OnceLock::new();
    *TSC.get_or_init(invariant_tsc)
}

fn calibrated() -> &'static Calibrated {
    CLOCK.get_or_init(|| {
        if uses_tsc() {
            Calibrated { source: ClockSource::Tsc, ns_per_tick_fp: calibrate_tsc() }
        } else {
            Calibrated { source: ClockSource::MonotonicRaw, ns_per_tick_fp: 1 << 32 }
        }
    })
}

/// The TSC's rate against `CLOCK_MONOTONIC_RAW` over ~200 µs: each end is a
/// TSC reading taken between two clock readings, so the error is the
/// jitter of one reading (tens of ns) over the span, ~1e-4.
fn calibrate_tsc() -> u64 {
    let pair = || {
        let a = monotonic_raw_ns();
        let t = raw_tsc();
        let b = monotonic_raw_ns();
        (t, a / 2 + b / 2)
    };
    let (t0, n0) = pair();
    let start = Instant::now();
    while start.elapsed() < Duration::from_micros(200) {
        std::hint::spin_loop();
    }
    let (t1, n1) = pair();
    let (dt, dn) = (t1.wrapping_sub(t0), n1.saturating_sub(n0));
    if dt == 0 {
        return 1 << 32;
    }
    ((u128::from(dn) << 32) / u128::from(dt)) as u64
}

fn raw_tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        monotonic_raw_ns()
    }
}

fn invariant_tsc() -> bool {
    if !cfg!(target_arch = "x86_64") || std::env::var_os("RINGFLOW_CLOCK").is_some_and(|v| v == "monotonic-raw") {
        return false;
    }
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else { return false };
    let Some(flags) = info.lines().find(|l| l.starts_with("flags")) else { return false };
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    has("constant_tsc") && has("nonstop_tsc")
}

fn monotonic_raw_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant
    // every Linux has.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_RAW, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_wrap_and_future_stamps_are_refused() {
        assert_eq!(elapsed_ns(5, 5), Some(0));
        // Across the 56-bit wrap.
        let early = TICKS_MASK - 9;
        assert!(elapsed_ns(early, 10).is_some());
        // A stamp later than the reading is not a latency.
        assert_eq!(elapsed_ns(100, 50), None);
    }

    #[test]
    fn readings_never_go_back_and_conversions_are_consistent() {
        let mut last = now();
        for _ in 0..10_000 {
            let next = now();
            assert!(elapsed_ns(last, next).is_some(), "reading {next} came before {last}");
            last = next;
        }
        for ticks in [0u64, 1, 1_000, 1 << 20, 1 << 40] {
            let ns = ticks_to_ns(ticks);
            // Linear: twice the ticks are twice the nanoseconds (up to the
            // rounding of the 32.32 factor).
            assert!(ticks_to_ns(2 * ticks).abs_diff(2 * ns) <= 1, "{ticks} ticks");
            // ns_to_ticks inverts ticks_to_ns up to that rounding.
            let back = ticks_to_ns(ns_to_ticks(ns));
            assert!(back.abs_diff(ns) <= 1 + ns / 1_000_000, "{ns} ns came back as {back}");
        }
    }

    /// Not a timing assert: the clock and `Instant` measure one span, each
    /// bracketing the other, and must agree within a factor of two, which
    /// only a broken calibration (the wrong rate, or a clock that stops)
    /// misses; the scheduler cannot make it fail.
    #[test]
    fn the_clock_agrees_with_instant_up_to_a_broken_calibration() {
        let outer_start = Instant::now();
        let a = now();
        let inner_start = Instant::now();
        std::thread::sleep(Duration::from_millis(50));
        let inner = inner_start.elapsed().as_nanos() as u64;
        let b = now();
        let outer = outer_start.elapsed().as_nanos() as u64;
        let measured = elapsed_ns(a, b).expect("the clock advanced");
        assert!(measured >= inner / 2 && measured <= outer * 2, "clock {measured} ns, Instant {inner}..{outer} ns");
    }
}
