//! The bulk pool on the heap: slots in order, wrap-around, full arena,
//! oversize, and hostile descriptors refused. (Loom: loom_pool.rs.)
#![cfg(not(loom))]

use ringflow_ring::pool::{self, Consumer, Producer};
use ringflow_ring::{ClaimError, HeapRegion, WakeMode};
use std::sync::Arc;

fn pool(cap: usize) -> (Producer<Arc<HeapRegion>>, Consumer<Arc<HeapRegion>>) {
    let region = Arc::new(HeapRegion::new(pool::region_len(cap)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { pool::init(&*region, WakeMode::Fenced) }.unwrap();
    (Producer::attach(region.clone()).unwrap(), Consumer::attach(region).unwrap())
}

#[test]
fn slots_arrive_in_order_across_wraps() {
    let (mut tx, mut rx) = pool(1024);
    for i in 0..500usize {
        let len = 1 + (i * 37) % 512;
        let mut slot = match tx.try_alloc(len) {
            Ok(s) => s,
            Err(e) => panic!("{i}: {e}"),
        };
        slot.payload_mut().fill(i as u8);
        assert!(slot.payload().iter().all(|&b| b == i as u8));
        let slot = slot.commit();
        // The consumer learns the slot from its descriptor words only.
        let got = rx.validate(slot.pos(), slot.len() as u64).unwrap();
        let got = rx.read(got).unwrap();
        assert!(got.payload().iter().all(|&b| b == i as u8));
        let _ = got.consume().release();
    }
}

#[test]
fn a_full_arena_refuses_until_released() {
    let (mut tx, mut rx) = pool(1024);
    let a = tx.try_alloc(512).unwrap().commit();
    let _ = tx.try_alloc(512).unwrap().commit();
    assert_eq!(tx.try_alloc(1).err(), Some(ClaimError::Full));
    assert!(!tx.fits(1));
    let a = rx.validate(a.pos(), 512).unwrap();
    let _ = rx.read(a).unwrap().consume();
    assert_eq!(tx.try_alloc(1).err(), Some(ClaimError::Full), "not released yet");
    let _ = rx.release();
    assert!(tx.fits(100));
    assert!(tx.try_alloc(100).is_ok());
    assert!(matches!(tx.try_alloc(513), Err(ClaimError::TooLarge { .. })));
}

#[test]
fn an_uncommitted_slot_is_reused() {
    let (mut tx, _rx) = pool(1024);
    let a = tx.try_alloc(100).unwrap().descriptor();
    let b = tx.try_alloc(100).unwrap();
    assert_eq!(a, b.descriptor());
    let _ = b.commit();
    assert_ne!(tx.try_alloc(100).unwrap().descriptor().pos(), a.pos());
}

#[test]
fn hostile_descriptors_are_refused() {
    let (mut tx, rx) = pool(1024);
    let s = tx.try_alloc(100).unwrap().descriptor();
    assert!(rx.validate(s.pos() + 64, 100).is_err(), "out of order");
    assert!(rx.validate(s.pos(), 513).is_err(), "larger than half the arena");
    assert!(rx.validate(s.pos(), u64::MAX).is_err(), "absurd length");
    assert!(rx.validate(u64::MAX - 10, 100).is_err(), "absurd position");
    assert!(rx.validate(s.pos(), 100).is_ok());
}

#[test]
fn a_consumed_or_stale_descriptor_opens_nothing() {
    let (mut tx, mut rx) = pool(1024);
    let a = tx.try_alloc(100).unwrap().commit();
    let _ = tx.try_alloc(100).unwrap().commit();
    let got = rx.validate(a.pos(), 100).unwrap();
    let _ = rx.read(got).unwrap().consume();
    // The descriptor is Copy, but once its slot is consumed it grants nothing.
    assert!(rx.read(got).is_err(), "a consumed slot cannot be read again");
    // A token dropped without consume leaves the slot to read again.
    let b = rx.validate(a.pos() + 128, 100).unwrap();
    assert_eq!(rx.read(b).unwrap().len(), 100);
    assert_eq!(rx.read(b).unwrap().len(), 100, "read again: not consumed");
}

#[test]
fn closing_is_seen() {
    let (mut tx, mut rx) = pool(1024);
    let _ = rx.close();
    assert!(tx.is_consumer_closed());
    assert_eq!(tx.try_alloc(1).err(), Some(ClaimError::Closed));
    tx.close();
    assert!(rx.is_producer_closed());
}
