//! Loom model of the MPSC ring: two producers, one consumer, a 64-byte ring
//! (so claims wrap and wait for space). Every frame arrives exactly once,
//! per-producer order holds, contents are intact.
//!
//! Run: RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ringflow-ring --release --test loom_mpsc
#![cfg(loom)]

use loom::thread;
use ringflow_ring::mpsc::{self, Consumer, Producer, SendError};
use ringflow_ring::{ClaimError, HeapRegion, ReadError};
use std::sync::Arc;

fn run(counts: [u8; 2], len: usize) {
    let mut builder = loom::model::Builder::new();
    // Three threads with retry loops need more than the default 1,000 branches.
    builder.max_branches = 20_000;
    builder.check(move || {
        let region = Arc::new(HeapRegion::new(mpsc::region_len(64)));
        mpsc::init(&*region).unwrap();
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
