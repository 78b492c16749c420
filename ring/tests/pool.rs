//! The bulk pool on the heap: slots in order, wrap-around, full arena,
//! oversize, and hostile descriptors refused. (Loom: loom_pool.rs.)
#![cfg(not(loom))]

use ringflow_ring::pool::{self, Consumer, Producer};
use ringflow_ring::{ClaimError, HeapRegion, WakeMode};
use std::sync::Arc;

fn pool(cap: usize) -> (Producer<Arc<HeapRegion>>, Consumer<Arc<HeapRegion>>) {
    let region = Arc::new(HeapRegion::new(pool::region_len(cap)));
    pool::init(&*region, WakeMode::Fenced).unwrap();
    (Producer::attach(region.clone()).unwrap(), Consumer::attach(region).unwrap())
}

#[test]
fn slots_arrive_in_order_across_wraps() {
    let (mut tx, mut rx) = pool(1024);
    for i in 0..500usize {
        let len = 1 + (i * 37) % 512;
        let slot = match tx.try_alloc(len) {
            Ok(s) => s,
            Err(e) => panic!("{i}: {e}"),
        };
        tx.payload_mut(&slot).fill(i as u8);
        tx.commit(&slot);
        // The consumer learns the slot from its descriptor words only.
        let got = rx.validate(slot.pos(), slot.len() as u64).unwrap();
        assert!(rx.payload(&got).iter().all(|&b| b == i as u8));
        rx.consume(&got);
        let _ = rx.release();
    }
}

#[test]
fn a_full_arena_refuses_until_released() {
    let (mut tx, mut rx) = pool(1024);
    let a = tx.try_alloc(512).unwrap();
    tx.commit(&a);
    let b = tx.try_alloc(512).unwrap();
    tx.commit(&b);
    assert_eq!(tx.try_alloc(1), Err(ClaimError::Full));
    assert!(!tx.fits(1));
    let a = rx.validate(a.pos(), 512).unwrap();
    rx.consume(&a);
    assert_eq!(tx.try_alloc(1), Err(ClaimError::Full), "not released yet");
    let _ = rx.release();
    assert!(tx.fits(100));
    assert!(tx.try_alloc(100).is_ok());
    assert!(matches!(tx.try_alloc(513), Err(ClaimError::TooLarge { .. })));
}

#[test]
fn an_uncommitted_slot_is_reused() {
    let (mut tx, _rx) = pool(1024);
    let a = tx.try_alloc(100).unwrap();
    let b = tx.try_alloc(100).unwrap();
    assert_eq!(a, b);
    tx.commit(&b);
    assert_ne!(tx.try_alloc(100).unwrap().pos(), a.pos());
}

#[test]
fn hostile_descriptors_are_refused() {
    let (mut tx, rx) = pool(1024);
    let s = tx.try_alloc(100).unwrap();
    assert!(rx.validate(s.pos() + 64, 100).is_err(), "out of order");
    assert!(rx.validate(s.pos(), 513).is_err(), "larger than half the arena");
    assert!(rx.validate(s.pos(), u64::MAX).is_err(), "absurd length");
    assert!(rx.validate(u64::MAX - 10, 100).is_err(), "absurd position");
    assert!(rx.validate(s.pos(), 100).is_ok());
}

#[test]
fn closing_is_seen() {
    let (mut tx, mut rx) = pool(1024);
    let _ = rx.close();
    assert!(tx.is_consumer_closed());
    assert_eq!(tx.try_alloc(1), Err(ClaimError::Closed));
    tx.close();
    assert!(rx.is_producer_closed());
}
