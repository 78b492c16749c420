//! A latency histogram recorded in place, in shared memory, with exactly
//! the bucket layout of an `hdrhistogram::Histogram<u64>` of 3 significant
//! digits over 1 ns ..= [`HIGHEST_NS`]: recording is one index computation
//! and one store by the single writer, readable at any moment from another
//! process; a snapshot is converted bucket for bucket into the crate's
//! histogram (percentiles, merging, the interval-log format).
//!
//! The crate's histogram keeps its counts in its own `Vec`, which cannot
//! live in a shared segment; that is the only reason for these few lines
//! of index arithmetic, and a test holds them to the crate's.

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

/// Larger latencies are recorded as this (68.7 s).
pub const HIGHEST_NS: u64 = (1 << 36) - 1;
/// Significant decimal digits of every recorded value.
pub const SIGFIG: u8 = 3;

/// 2 * 10^3 rounded up to a power of two: 2048 sub-buckets.
const SUB_BUCKET_COUNT_MAGNITUDE: u32 = 11;
const SUB_BUCKET_HALF_COUNT_MAGNITUDE: u32 = SUB_BUCKET_COUNT_MAGNITUDE - 1;
const SUB_BUCKET_HALF_COUNT: u64 = 1 << SUB_BUCKET_HALF_COUNT_MAGNITUDE;
const SUB_BUCKET_MASK: u64 = (1 << SUB_BUCKET_COUNT_MAGNITUDE) - 1;
/// The lowest discernible value is 1: unit magnitude 0.
const LEADING_ZERO_COUNT_BASE: u32 = 64 - SUB_BUCKET_COUNT_MAGNITUDE;
/// Buckets until 2048 << (n - 1) exceeds HIGHEST_NS.
const BUCKET_COUNT: u32 = 26;
/// Counters of the layout.
pub const COUNTS_LEN: usize = ((BUCKET_COUNT + 1) << SUB_BUCKET_HALF_COUNT_MAGNITUDE) as usize;

/// The counter index of `value` (clamped to the range).
#[inline(always)]
pub fn index_of(value: u64) -> usize {
    let value = value.min(HIGHEST_NS);
    let bucket = LEADING_ZERO_COUNT_BASE - (value | SUB_BUCKET_MASK).leading_zeros();
    let sub_bucket = value >> bucket;
    // (bucket + 1) * half + (sub_bucket - half), ordered to stay unsigned:
    // in bucket 0 the sub-bucket may be below half.
    ((((bucket + 1) as u64) << SUB_BUCKET_HALF_COUNT_MAGNITUDE) + sub_bucket - SUB_BUCKET_HALF_COUNT) as usize
}

/// The lowest value counted at `index`.
pub fn value_at(index: usize) -> u64 {
    let mut bucket = (index >> SUB_BUCKET_HALF_COUNT_MAGNITUDE) as i64 - 1;
    let mut sub_bucket = (index as u64 & (SUB_BUCKET_HALF_COUNT - 1)) + SUB_BUCKET_HALF_COUNT;
    if bucket < 0 {
        sub_bucket -= SUB_BUCKET_HALF_COUNT;
        bucket = 0;
    }
    sub_bucket << bucket
}

/// An empty histogram of the layout's bounds.
pub fn empty() -> Histogram<u64> {
    // The bounds are constants the crate accepts (a test builds it).
    Histogram::new_with_bounds(1, HIGHEST_NS, SIGFIG).unwrap_or_else(|_| Histogram::new(SIGFIG).expect("3 digits"))
}

/// Counters laid out as above; written by one thread, read by anyone.
#[derive(Clone, Copy)]
pub struct Counts<'a> {
    counts: &'a [AtomicU64],
}

impl<'a> Counts<'a> {
    /// `counts` must be [`COUNTS_LEN`] long.
    pub fn new(counts: &'a [AtomicU64]) -> Option<Self> {
        (counts.len() == COUNTS_LEN).then_some(Counts { counts })
    }

    /// A slice the caller took at the layout's length.
    pub(crate) fn of_layout(counts: &'a [AtomicU64]) -> Self {
        debug_assert_eq!(counts.len(), COUNTS_LEN);
        Counts { counts }
    }

    /// Counts one value. Only the owner of the histogram records: a plain
    /// load and store, no read-modify-write.
    #[inline(always)]
    pub fn record(&self, ns: u64) {
        self.record_n(ns, 1);
    }

    /// Counts `n` values of `ns` at once (a batch of messages sent
    /// together, so stamped alike): as `n` calls of [`record`](Self::record).
    #[inline(always)]
    pub fn record_n(&self, ns: u64, n: u64) {
        let c = &self.counts[index_of(ns)];
        // SYNC: Relaxed; single writer, and readers tolerate a snapshot
        // taken mid-way (each counter is read whole, counts only grow
        // between resets; see `Slot::read`).
        c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    /// Zeroes every counter (the owner only).
    pub fn clear(&self) {
        for c in self.counts {
            // SYNC: Relaxed; readers are told by the slot's sequence word.
            if c.load(Ordering::Relaxed) != 0 {
                c.store(0, Ordering::Relaxed);
            }
        }
    }

    /// The counts as the crate's histogram.
    pub fn snapshot(&self) -> Histogram<u64> {
        let mut h = empty();
        for (i, c) in self.counts.iter().enumerate() {
            // SYNC: Relaxed; see `record`.
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                // In range by construction: value_at(i) <= HIGHEST_NS.
                let _ = h.record_n(value_at(i), n);
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_crate() {
        let h = Histogram::<u64>::new_with_bounds(1, HIGHEST_NS, SIGFIG).unwrap();
        assert_eq!(h.distinct_values(), COUNTS_LEN, "counts length");
        let values = [1, 2, 100, 1023, 1024, 2047, 2048, 2049, 4095, 4096, 123_456, 9_999_999, HIGHEST_NS];
        for v in values {
            let i = index_of(v);
            // Same bucket as the crate: equivalent values agree.
            assert!(h.equivalent(value_at(i), v), "value {v} at {i} (lowest {})", value_at(i));
            assert_eq!(h.lowest_equivalent(v), value_at(i), "value {v}");
        }
        assert_eq!(index_of(u64::MAX), index_of(HIGHEST_NS));
        assert!(index_of(HIGHEST_NS) < COUNTS_LEN);
    }

    #[test]
    fn snapshot_equals_recording_into_the_crate() {
        let words: Vec<AtomicU64> = (0..COUNTS_LEN).map(|_| AtomicU64::new(0)).collect();
        let counts = Counts::new(&words).unwrap();
        let mut reference = empty();
        let mut x: u64 = 12345;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = (x >> 20) % 50_000_000 + 1;
            counts.record(v);
            reference.record(v).unwrap();
        }
        let snap = counts.snapshot();
        assert_eq!(snap.len(), reference.len());
        for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(snap.value_at_quantile(q), reference.value_at_quantile(q), "q {q}");
        }
        counts.clear();
        assert_eq!(counts.snapshot().len(), 0);
    }
}
