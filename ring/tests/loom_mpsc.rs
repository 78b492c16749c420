//! Loom model of the MPSC ring: two producers, one consumer, a 64-byte ring
//! (so claims wrap and wait for space). Every frame arrives exactly once,
//! per-producer order holds, contents are intact.
//!
//! And `Consumer::unblock`: a claim revoked while its holder commits is
//! delivered whole or not at all, and its commit writes nothing into the
//! space once revoked (the frame that reuses that space arrives intact); a
//! claim whose holder died before its CLAIMED mark is padded while a live
//! producer sends behind it, and the live frames arrive once, intact.
//!
//! Run: RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ringflow-ring --release --test loom_mpsc
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use ringflow_ring::mpsc::{self, Consumer, Producer, SendError};
use ringflow_ring::{ClaimError, CommitError, HeapRegion, ReadError};
use std::sync::Arc;

fn run(counts: [u8; 2], len: usize) {
    let mut builder = loom::model::Builder::new();
    // Three threads with retry loops need more than the default 1,000 branches.
    builder.max_branches = 20_000;
    builder.check(move || {
        let region = Arc::new(HeapRegion::new(mpsc::region_len(64)));
        // SAFETY: a fresh region: no side attached, nobody else uses it yet.
        unsafe { mpsc::init(&*region) }.unwrap();
        let mut rx = Consumer::attach(region.clone()).unwrap();
        let producers: Vec<_> = counts
            .iter()
            .map(|&n| {
                let mut tx = Producer::attach(region.clone()).unwrap();
                thread::spawn(move || {
                    let id = tx.id() as u8;
                    for seq in 0..n {
                        loop {
                            let mut msg = vec![0u8; len];
                            msg[..3].copy_from_slice(&[id, seq, id ^ seq ^ 0x5a]);
                            match tx.try_send(&msg) {
                                Ok(_) => break,
                                Err(SendError::Claim(ClaimError::Full)) => thread::yield_now(),
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                })
            })
            .collect();
        let mut next = [0u8; 2];
        let total: u8 = counts.iter().sum();
        let mut got = 0;
        while got < total {
            match rx.try_read() {
                Ok(g) => {
                    let mut b = vec![0u8; g.len()];
                    g.copy_to(&mut b);
                    let (id, seq) = (b[0] as usize, b[1]);
                    assert_eq!(g.producer() as usize, id);
                    assert_eq!(b[2], b[0] ^ b[1] ^ 0x5a, "torn frame");
                    assert_eq!(seq, next[id], "producer {id} out of order or duplicated");
                    next[id] += 1;
                    got += 1;
                }
                Err(ReadError::Empty) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
            let _ = rx.release();
        }
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(next, counts);
        assert_eq!(rx.try_read().err(), Some(ReadError::Empty));
    });
}

#[test]
fn two_producers_nothing_lost_or_duplicated() {
    run([1, 1], 3);
}

#[test]
fn claims_wrap_and_wait_for_space() {
    // One producer, three 24-byte frames in 64 bytes: the third wraps behind
    // padding and waits for the consumer's release (and its zeroing).
    run([3, 0], 3);
}

/// Reads one frame, yielding while empty: (payload's first 3 bytes, meta).
fn read_one(rx: &mut Consumer<Arc<HeapRegion>>) -> ([u8; 3], u64) {
    loop {
        match take(rx) {
            Ok(frame) => {
                let _ = rx.release();
                return frame;
            }
            Err(ReadError::Empty) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Consumes the next frame if there is one: (payload's first 3 bytes, meta).
fn take(rx: &mut Consumer<Arc<HeapRegion>>) -> Result<([u8; 3], u64), ReadError> {
    rx.try_read().map(|g| {
        let mut b = [0u8; 3];
        g.copy_to(&mut b);
        (b, g.meta())
    })
}

/// Sends a 3-byte frame `[tag, 0, tag ^ 0x5a]` with meta `tag`, retrying while full.
fn send_tagged(tx: &mut Producer<Arc<HeapRegion>>, tag: u8) {
    loop {
        match tx.try_claim(3) {
            Ok(mut c) => {
                c.write(0, &[tag, 0, tag ^ 0x5a]);
                c.set_meta(tag as u64);
                let _ = c.commit().unwrap();
                return;
            }
            Err(ClaimError::Full) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn a_revoked_commit_writes_nothing() {
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 20_000;
    builder.check(|| {
        // 64 bytes, 24-byte frames: A's claim at 0, B1 at 24, B2 wraps to
        // A's old space once the consumer has released past it.
        let region = Arc::new(HeapRegion::new(mpsc::region_len(64)));
        // SAFETY: a fresh region: no side attached, nobody else uses it yet.
        unsafe { mpsc::init(&*region) }.unwrap();
        let mut rx = Consumer::attach(region.clone()).unwrap();
        let mut b = Producer::attach(region.clone()).unwrap();
        let mut a = Producer::attach(region.clone()).unwrap();
        let written = Arc::new(AtomicBool::new(false));
        let a_written = written.clone();
        let holder = thread::spawn(move || {
            let mut claim = a.try_claim(3).unwrap();
            claim.write(0, &[0xA0, 0, 0xA0 ^ 0x5a]);
            claim.set_meta(0xA0);
            // SYNC: Release; pairs with the Acquire below: the unblock comes
            // after the claim's writes (from here on A only commits).
            a_written.store(true, Ordering::Release);
            claim.commit()
        });
        while !written.load(Ordering::Acquire) {
            thread::yield_now();
        }
        // SAFETY: the blocking claim is A's (the only claim so far); after
        // `written`, A's thread only commits, which writes nothing once
        // revoked.
        let unblocked = unsafe { rx.unblock() };
        send_tagged(&mut b, 0xB1);
        let mut got = vec![read_one(&mut rx)];
        if got[0].0[0] == 0xA0 {
            got.push(read_one(&mut rx));
        }
        send_tagged(&mut b, 0xB2);
        got.push(read_one(&mut rx));
        let committed = holder.join().unwrap();
        match committed {
            Ok(_) => {
                assert!(unblocked.is_none(), "a committed claim was also skipped");
                assert_eq!(got[0], ([0xA0, 0, 0xA0 ^ 0x5a], 0xA0), "A's frame torn");
            }
            Err(CommitError::Revoked) => assert!(unblocked.is_some()),
            Err(e) => panic!("{e}"),
        }
        let b_frames: Vec<_> = got.iter().filter(|(p, _)| p[0] != 0xA0).copied().collect();
        // B2 lies where A's claim was: A's commit must not have touched it.
        assert_eq!(b_frames, [([0xB1, 0, 0xB1 ^ 0x5a], 0xB1), ([0xB2, 0, 0xB2 ^ 0x5a], 0xB2)]);
        assert_eq!(got.len(), 2 + committed.is_ok() as usize, "nothing lost, nothing duplicated");
        assert_eq!(rx.try_read().err(), Some(ReadError::Empty));
    });
}

#[test]
fn unblock_pads_a_dead_claim_while_a_live_producer_sends() {
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 20_000;
    builder.check(|| {
        let region = Arc::new(HeapRegion::new(mpsc::region_len(64)));
        // SAFETY: a fresh region: no side attached, nobody else uses it yet.
        unsafe { mpsc::init(&*region) }.unwrap();
        let mut rx = Consumer::attach(region.clone()).unwrap();
        // A producer won 16 bytes of tail and died before its CLAIMED mark.
        // SAFETY: plays a producer that died after winning the tail: a
        // write a peer could make; no claim or payload borrow is live yet.
        unsafe { region.scribble_word(128) }.fetch_add(16, std::sync::atomic::Ordering::Relaxed);
        let mut b = Producer::attach(region.clone()).unwrap();
        let first_sent = Arc::new(AtomicBool::new(false));
        let sent = first_sent.clone();
        let live = thread::spawn(move || {
            send_tagged(&mut b, 0xB1);
            // SYNC: Release; pairs with the Acquire below.
            sent.store(true, Ordering::Release);
            send_tagged(&mut b, 0xB2);
        });
        while !first_sent.load(Ordering::Acquire) {
            thread::yield_now();
        }
        // SAFETY: between the consumer and B1's mark lies only the dead
        // claim: B's next claim starts after B1, past the padding's end.
        let skipped = unsafe { rx.unblock() };
        assert_eq!(skipped, Some(mpsc::Unblocked { producer: None, bytes: 16 }));
        let got = [read_one(&mut rx), read_one(&mut rx)];
        live.join().unwrap();
        assert_eq!(got, [([0xB1, 0, 0xB1 ^ 0x5a], 0xB1), ([0xB2, 0, 0xB2 ^ 0x5a], 0xB2)]);
        assert_eq!(rx.try_read().err(), Some(ReadError::Empty));
    });
}
