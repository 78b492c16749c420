//! Loom model of the eviction guard (`ringflow_ring::guard`), the handshake
//! an Evict group's keeper and a member that reads a message in place make
//! (`core/src/group/table.rs`: `mark_evicting`, `enter_guard`,
//! `leave_guard`, which call these very functions; the keeper's use is
//! `Keeper::evict_stalled`, the member's `GroupEnd::take_event` and
//! `Message`'s drop).
//!
//! The member reads two messages in place, each inside a guard; the keeper
//! evicts it meanwhile. What the model abstracts:
//! - the frame the member reads is one cell (loom's `UnsafeCell`, so loom
//!   reports any access to it that races with another);
//! - "take the cursor out of the gate, then a producer overwrites the
//!   frame" is the keeper writing the cell itself: the gate orders the
//!   producer's write after the eviction (the broadcast log's own models
//!   check that), so the keeper's write is the earliest such a write can be;
//! - the keeper's retry "next tick" is a yield and another try.
//!
//! Checked in every interleaving: a member whose guard was entered reads
//! the message intact (no write races with its read: loom would report
//! it); one whose enter fails saw the state EVICTING, i.e. it returns
//! `Evicted`; and the keeper always ends: once it closed the state, the
//! member cannot enter again, so the guard comes down for good.
//!
//! Run: RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ringflow-ring --release --test loom_guard
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use ringflow_ring::guard;

/// The member table's states that matter here (core's `table::ACTIVE`,
/// `table::EVICTING`).
const ACTIVE: u64 = 2;
const EVICTING: u64 = 3;

const MESSAGE: u64 = 0x5eed;
const OVERWRITTEN: u64 = 0xdead;

struct Entry {
    state: AtomicU64,
    guard: AtomicU64,
    /// The frame at the member's cursor, which its cursor holds back from
    /// producers until it is evicted.
    frame: UnsafeCell<u64>,
}

#[test]
fn eviction_waits_for_a_read_in_place() {
    loom::model(|| {
        let entry = Arc::new(Entry {
            state: AtomicU64::new(ACTIVE),
            guard: AtomicU64::new(0),
            frame: UnsafeCell::new(MESSAGE),
        });
        let member = {
            let entry = entry.clone();
            thread::spawn(move || {
                let mut read = 0;
                for _ in 0..2 {
                    if !guard::enter(&entry.guard, &entry.state, ACTIVE) {
                        // `RecvError::Evicted`: it saw why.
                        // SYNC: Acquire; pairs with the keeper's store.
                        assert_eq!(entry.state.load(Ordering::Acquire), EVICTING);
                        return read;
                    }
                    // SAFETY: inside the guard the keeper has not evicted
                    // us, so nothing writes the frame (what loom checks).
                    let seen = entry.frame.with(|p| unsafe { *p });
                    assert_eq!(seen, MESSAGE, "a member inside its guard read an overwritten frame");
                    guard::leave(&entry.guard);
                    read += 1;
                }
                read
            })
        };
        // The keeper: `evict_stalled`, retried each tick while the member
        // reads in place.
        while guard::close(&entry.state, EVICTING, &entry.guard) {
            thread::yield_now();
        }
        // Evicted: producers may now overwrite what the cursor held.
        // SAFETY: the guard was seen down after the state was closed: the
        // member reads nothing in place any more (what loom checks).
        entry.frame.with_mut(|p| unsafe { *p = OVERWRITTEN });
        let read = member.join().unwrap();
        assert!(read <= 2);
    });
}
