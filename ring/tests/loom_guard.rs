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
//! A second model puts the same handshake over a real reliable broadcast
//! log: the member's cursor holds back a producer that filled the log; the
//! keeper evicts the member's consumer slot (`broadcast::evict_consumer`)
//! once the guard is down, and the producer then overwrites the frames the
//! cursor held. A member that read inside its guard got the frames intact.
//!
//! Run: RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ringflow-ring --release --test loom_guard
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use ringflow_ring::broadcast::{self, Consumer, Mode, Producer};
use ringflow_ring::{guard, ClaimError, HeapRegion};

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

/// 96-byte frames in a 256-byte log: two fill it, a third waits for the
/// member's cursor (and wraps over the first).
const CAPACITY: usize = 256;
const LEN: usize = 64;
const SALT: u64 = 0x0123_4567_89ab_cdef;

/// The log, shared as the broadcast models share it.
type Log = std::sync::Arc<HeapRegion>;

/// Sends one frame stamped `stamp` (its first payload byte), yielding
/// while the log is full.
fn send(tx: &mut Producer<Log>, stamp: u8) {
    loop {
        match tx.try_claim(LEN) {
            Ok(mut claim) => {
                claim.write(0, &[stamp]);
                let _ = claim.commit();
                return;
            }
            Err(ClaimError::Full) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn eviction_never_lets_a_producer_overwrite_a_guarded_read() {
    let mut model = loom::model::Builder::new();
    // Every byte of a frame is a modelled atomic: allow the branches.
    model.max_branches = 100_000;
    model.check(|| {
        let log = Log::new(HeapRegion::new(broadcast::region_len(CAPACITY, 1, 1)));
        // SAFETY: a fresh region: no side attached, nobody else uses it yet.
        unsafe { broadcast::init(&*log, Mode::Reliable, 1, 1, SALT) }.unwrap();
        // The member's table entry: its state and guard words.
        let entry = Arc::new((AtomicU64::new(ACTIVE), AtomicU64::new(0)));
        let mut rx = Consumer::attach(log.clone()).unwrap();
        let slot = rx.slot();
        let mut tx = Producer::attach(log.clone()).unwrap();
        send(&mut tx, 1);
        send(&mut tx, 2);

        let member = {
            let entry = entry.clone();
            thread::spawn(move || {
                let (state, guard_word) = &*entry;
                let mut read = 0u8;
                while read < 2 {
                    if !guard::enter(guard_word, state, ACTIVE) {
                        // SYNC: Acquire; pairs with the keeper's store.
                        assert_eq!(state.load(Ordering::Acquire), EVICTING);
                        break;
                    }
                    let mut g = rx.try_read().unwrap();
                    let mut b = [0; 1];
                    assert_eq!(g.read_into(&mut b), Ok(1));
                    assert_eq!(b[0], read + 1, "a member inside its guard read an overwritten frame");
                    drop(g);
                    guard::leave(guard_word);
                    read += 1;
                }
                // As a group end does when it drops: the slot stays the
                // keeper's to free (here: freed by the eviction already).
                let _ = rx.detach();
            })
        };
        // The keeper: `evict_stalled`, retried each tick while the member
        // reads in place, then the eviction.
        let (state, guard_word) = &*entry;
        while guard::close(state, EVICTING, guard_word) {
            thread::yield_now();
        }
        // SAFETY: the member reads nothing in place any more and its slot
        // was never freed (what the handshake promises and loom checks).
        let _ = unsafe { broadcast::evict_consumer(&*log, slot) }.unwrap();
        // The producer, no longer held back: overwrites both frames.
        send(&mut tx, 3);
        send(&mut tx, 4);
        member.join().unwrap();
    });
}
