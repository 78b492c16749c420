//! Loom model of the slot handover a group join makes
//! (`core/src/group/keeper.rs` `admit` and `flush_views`,
//! `core/src/group/join.rs` `adopt`): the keeper takes a free consumer slot
//! for the joiner (`Consumer::attach_slot`, which publishes a cursor at the
//! tail), detaches it (`Consumer::detach`: the slot stays taken and its
//! cursor holds producers back), commits the join view and grants the
//! joiner its position; the joiner adopts the slot there
//! (`Consumer::adopt`) and reads. A member's producer sends all the while.
//!
//! When producers filled the log between the slot's taking and the view,
//! the joiner's held cursor leaves no room for its view: the keeper then
//! moves it to the tail (`Keeper::flush_views` and `rehold_joiners`, whose
//! two steps `flush_view` here repeats with the same ring calls).
//!
//! Checked in every interleaving: the join view always gets in (the keeper
//! never waits for ever on room only its joiner could make); the joiner's
//! first frame is its join view, then it receives every frame committed
//! after the view, intact and in order, and none from before it (the
//! frames it receives are the last ones sent, consecutive); while the slot
//! is held for it, producers never overwrite a frame at or after the
//! cursor the keeper published.
//!
//! What the model abstracts: the keeper and the joiner are one thread (the
//! grant is a message between them: it orders the adopt after the view's
//! commit, as the socket does); the keeper's view producer is a second
//! producer slot as in the group; the frames carry a one-byte stamp.
//!
//! Run: RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ringflow-ring --release --test loom_handover
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use ringflow_ring::broadcast::{self, Consumer, Mode, Producer};
use ringflow_ring::{ClaimError, HeapRegion, ReadError};
use std::sync::Arc;

/// 96-byte frames in a 256-byte log: two fit a lap.
const CAPACITY: usize = 256;
const LEN: usize = 64;
const SALT: u64 = 0x0123_4567_89ab_cdef;
/// The view frame's stamp (the member's frames are stamped 1, 2, ...).
const VIEW: u8 = 0xee;

type Log = Arc<HeapRegion>;

/// Claims and commits one frame stamped `stamp`, yielding while the log is
/// full; returns its position.
fn send(tx: &mut Producer<Log>, stamp: u8) -> u64 {
    loop {
        match tx.try_claim(LEN) {
            Ok(mut claim) => {
                let pos = claim.position();
                claim.write(0, &[stamp]);
                let _ = claim.commit();
                return pos;
            }
            Err(ClaimError::Full) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

/// The keeper's `flush_views` for the one queued join view: claims it, or
/// when the log is full moves the joiner's held cursor to the tail once
/// (`rehold_joiners`: the joiner has read nothing) and tries again. `None`:
/// still full, retried next tick.
fn flush_view(views: &mut Producer<Log>, log: &Log, slot: usize) -> Option<u64> {
    let mut reheld = false;
    loop {
        match views.try_claim(LEN) {
            Ok(mut claim) => {
                let pos = claim.position();
                claim.write(0, &[VIEW]);
                let _ = claim.commit();
                return Some(pos);
            }
            Err(ClaimError::Full) if !reheld => {
                let tail = broadcast::tail(&**log).unwrap();
                // SAFETY: the keeper took and detached the slot for the
                // joiner, whose grant is not sent yet: nobody else uses it.
                let _ = unsafe { Consumer::adopt(log.clone(), slot, tail) }.unwrap().detach();
                reheld = true;
            }
            Err(ClaimError::Full) => return None,
            Err(e) => panic!("{e}"),
        }
    }
}

fn join_while_a_member_sends(frames: u8, preemptions: Option<usize>) {
    let mut model = loom::model::Builder::new();
    if preemptions.is_some() {
        model.preemption_bound = preemptions;
    }
    // Every byte of a frame is a modelled atomic: allow the branches.
    model.max_branches = 100_000;
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    model.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = Log::new(HeapRegion::new(broadcast::region_len(CAPACITY, 1, 2)));
        // SAFETY: a fresh region: no side attached, nobody else uses it yet.
        unsafe { broadcast::init(&*log, Mode::Reliable, 1, 2, SALT) }.unwrap();
        let mut views = Producer::attach_slot(log.clone(), 0).unwrap();
        let done = loom::sync::Arc::new(AtomicBool::new(false));
        let member = {
            let (log, done) = (log.clone(), done.clone());
            thread::spawn(move || {
                let mut tx = Producer::attach_slot(log, 1).unwrap();
                for stamp in 1..=frames {
                    send(&mut tx, stamp);
                }
                // SYNC: Release; pairs with the joiner's Acquire: every
                // frame was committed before.
                done.store(true, Ordering::Release);
            })
        };

        // The keeper admits the joiner: takes its slot, detaches it,
        // commits the join view.
        let slot = Consumer::attach_slot(log.clone(), 0).unwrap().detach();
        // `flush_views`, each keeper tick until the view is in.
        let start = loop {
            if let Some(pos) = flush_view(&mut views, &log, slot) {
                break pos;
            }
            thread::yield_now();
        };
        // The joiner, granted `start`.
        // SAFETY: the slot was detached for us and nobody else uses it.
        let mut rx = unsafe { Consumer::adopt(log.clone(), slot, start) }.unwrap();
        let mut got = Vec::new();
        let mut finished = false;
        loop {
            let frame = match rx.try_read() {
                Ok(mut g) => {
                    let mut b = [0; 1];
                    assert_eq!(g.read_into(&mut b), Ok(1));
                    Some(b[0])
                }
                Err(ReadError::Empty) => None,
                Err(e) => panic!("{e}"),
            };
            let _ = rx.release();
            match frame {
                Some(stamp) => got.push(stamp),
                // Empty after the member finished: everything is in.
                None if finished => break,
                // SYNC: Acquire; pairs with the member's Release store.
                None => {
                    finished = done.load(Ordering::Acquire);
                    if !finished {
                        thread::yield_now();
                    }
                }
            }
        }
        member.join().unwrap();
        assert_eq!(got.first(), Some(&VIEW), "the joiner's first frame is its view");
        let after = &got[1..];
        let first = frames + 1 - after.len() as u8;
        assert!(after.iter().copied().eq(first..=frames), "every frame after the view, in order: {got:?}");
    });
    eprintln!("{} executions", runs.load(std::sync::atomic::Ordering::Relaxed));
}

#[test]
fn join_while_a_member_sends_one() {
    join_while_a_member_sends(1, None);
}

/// Two frames and the view do not fit one lap: when both frames land
/// between the keeper's `attach_slot` and its view claim, the joiner's held
/// cursor leaves no room for the view. Without `rehold_joiners` nothing
/// could move that cursor before the grant, and the join and every
/// producer of the reliable log would wait until the joiner gave up.
#[test]
fn join_while_a_member_fills_the_log() {
    join_while_a_member_sends(2, None);
}

/// Three frames: after the view the joiner's cursor holds the member
/// back (the third frame wraps over the first). One preemption: at CI's
/// two the search takes minutes.
#[test]
fn join_while_a_member_laps_the_log() {
    join_while_a_member_sends(3, Some(1));
}
