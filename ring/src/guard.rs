//! The in-place reader's guard against eviction: how a process that takes
//! a reader's cursor away (and so lets producers overwrite the frames the
//! cursor held back) learns that the reader is not reading one of them in
//! place right now, without a lock and without the reader paying more than
//! two stores and a load per read.
//!
//! Two words, in memory both sides map: the reader's `state`, written by
//! the evicter, and the reader's `guard`, written by the reader.
//!
//! ```text
//! reader (about to read in place):    evicter:
//!   guard := 1                          state := closed
//!   [SeqCst fence]                      [SeqCst fence]
//!   state open? no: guard := 0, stop    guard != 0? yes: retry later
//!   read the frame in place             no: take the cursor away
//!   guard := 0
//! ```
//!
//! A Dekker pair: the fences order each side's store before its load, so
//! either the reader sees the state closed (and never reads), or the
//! evicter sees the guard up (and waits for it to come down). The reader's
//! `guard := 0` (Release) pairs with the evicter's load (Acquire): the
//! reader's reads of the frame happen before whatever the evicter does
//! after it saw the guard down. Once the evicter closed the state, the
//! reader can no longer enter, so an evicter that retries sees the guard
//! down once the reader leaves its guard.
//!
//! The pair is built on fences, not on SeqCst stores and loads: one full
//! barrier per side either way (a SeqCst store is one on x86), and loom
//! models SeqCst fences but treats SeqCst accesses as AcqRel (a Dekker
//! built on SeqCst stores and loads alone is correct, but loom would
//! report it broken).
//!
//! Both words are input: a guard forged to 1 delays an eviction; one forged
//! to 0 lets the evicter take the cursor of a reader that reads in place,
//! and only the reader's own process can write its guard, so it only hurts
//! itself. Nothing here blocks or makes a system call: the evicter retries
//! when it likes.

use crate::sync::{fence, AtomicU64, Ordering};

/// Evicter: closes `state` (stores `closed`) and tells whether the reader
/// is inside its guard now. True: it may be reading in place; take nothing
/// away, call again later (its next [`enter`] fails, so the guard comes
/// down for good once it leaves). False: it reads nothing in place now and
/// never will again while `state` stays closed.
#[must_use = "true means the reader reads in place: do not evict it yet"]
pub fn close(state: &AtomicU64, closed: u64, guard: &AtomicU64) -> bool {
    // SYNC: Relaxed store, then a SeqCst fence; pairs with the fence in
    // `enter` (Dekker): either the reader's load of `state` after its fence
    // sees `closed`, or our load of the guard after ours sees its 1.
    state.store(closed, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    // SYNC: Acquire; pairs with the Release store in `leave`: the reader's
    // reads in place happen before our eviction.
    guard.load(Ordering::Acquire) != 0
}

/// Reader: announces a read in place; true if `state` is still `open`.
/// False means the evicter closed it: the guard is down again and the
/// reader must not read in place.
#[must_use = "false means the reader is being evicted: it must not read in place"]
pub fn enter(guard: &AtomicU64, state: &AtomicU64, open: u64) -> bool {
    // SYNC: Relaxed store, then a SeqCst fence; pairs with the fence in
    // `close` (Dekker).
    guard.store(1, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    // SYNC: Acquire; ordered after our store by the fence above, and pairs
    // with whatever Release store made the state `open`.
    if state.load(Ordering::Acquire) == open {
        return true;
    }
    leave(guard);
    false
}

/// Reader: the read in place is over.
pub fn leave(guard: &AtomicU64) {
    // SYNC: Release; pairs with the Acquire load in `close`: our reads of
    // the frame happen before the evicter takes our cursor away.
    guard.store(0, Ordering::Release);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const OPEN: u64 = 2;
    const CLOSED: u64 = 3;

    #[test]
    fn a_reader_inside_holds_the_evicter_off_until_it_leaves() {
        let (state, guard) = (AtomicU64::new(OPEN), AtomicU64::new(0));
        assert!(enter(&guard, &state, OPEN));
        assert!(close(&state, CLOSED, &guard), "the reader is inside");
        leave(&guard);
        assert!(!close(&state, CLOSED, &guard));
    }

    #[test]
    fn a_closed_state_keeps_the_reader_out_with_its_guard_down() {
        let (state, guard) = (AtomicU64::new(OPEN), AtomicU64::new(0));
        assert!(!close(&state, CLOSED, &guard));
        assert!(!enter(&guard, &state, OPEN));
        assert_eq!(guard.load(Ordering::SeqCst), 0);
    }
}
