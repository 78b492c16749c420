//! Loom model of the bulk pool with its descriptor ring: the producer
//! allocates a slot, writes it, publishes a descriptor (position, length)
//! through an SPSC ring and commits the slot; the consumer validates the
//! descriptor, reads the slot in place, consumes and releases it. Slots wrap
//! around a 256-byte arena and the producer waits for room. Every message
//! must arrive once, in order, intact.
//!
//! Run: RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ringflow-ring --release --test loom_pool
#![cfg(loom)]

use loom::thread;
use ringflow_ring::pool;
use ringflow_ring::spsc::{self, Consumer, Producer};
use ringflow_ring::{ClaimError, HeapRegion, ReadError, WakeMode};
use std::sync::Arc;

fn message(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 16 + j + 1) as u8).collect()
}

fn run(lens: &'static [usize]) {
    let mut builder = loom::model::Builder::new();
    // Every byte of a slot is a modelled atomic write: allow the branches.
    builder.max_branches = 100_000;
    builder.check(move || {
        let ring = Arc::new(HeapRegion::new(spsc::region_len(128)));
        // SAFETY: a fresh region: no side attached, nobody else uses it yet.
        unsafe { spsc::init(&*ring) }.unwrap();
        let arena = Arc::new(HeapRegion::new(pool::region_len(256)));
        // SAFETY: a fresh region: no side attached, nobody else uses it yet.
        unsafe { pool::init(&*arena, WakeMode::Fenced) }.unwrap();
        let (mut desc_tx, mut desc_rx) = (Producer::attach(ring.clone()).unwrap(), Consumer::attach(ring).unwrap());
        let (mut pool_tx, mut pool_rx) =
            (pool::Producer::attach(arena.clone()).unwrap(), pool::Consumer::attach(arena).unwrap());
        let producer = thread::spawn(move || {
            for (i, &len) in lens.iter().enumerate() {
                let mut slot = loop {
                    match pool_tx.try_alloc(len) {
                        Ok(slot) => break slot,
                        Err(ClaimError::Full) => thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                };
                slot.write(0, &message(i, len));
                let mut d = loop {
                    match desc_tx.try_claim(16) {
                        Ok(d) => break d,
                        Err(ClaimError::Full) => thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                };
                let slot = slot.commit();
                d.write(0, &slot.pos().to_le_bytes());
                d.write(8, &(slot.len() as u64).to_le_bytes());
                let _ = d.commit();
            }
        });
        for (i, &len) in lens.iter().enumerate() {
            let (pos, dlen) = loop {
                match desc_rx.try_read() {
                    Ok(g) => {
                        let mut b = [0u8; 16];
                        g.copy_to(&mut b);
                        let w = |k: usize| u64::from_le_bytes(b[k..k + 8].try_into().unwrap());
                        break (w(0), w(8));
                    }
                    Err(ReadError::Empty) => thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            };
            let _ = desc_rx.release();
            let slot = pool_rx.validate(pos, dlen).expect("descriptor in order and in bounds");
            let slot = pool_rx.read(slot).expect("a validated descriptor opens");
            let mut buf = vec![0u8; slot.len()];
            slot.copy_to(&mut buf);
            assert_eq!(buf, message(i, len), "message {i} torn or out of order");
            let _ = slot.consume().release();
        }
        producer.join().unwrap();
    });
}

#[test]
fn slots_wrap_and_wait_for_room() {
    // 64-byte slots fill 192 of 256 bytes; the fourth (100 B -> 128 B)
    // wraps to the start and must wait for the first two to be released.
    run(&[40, 24, 16, 100]);
}
