//! A hostile review's findings (issue 14, sections 1 and 2), one test per
//! hole, each failing before its fix: misuse of the safe API from this
//! process (a `Peeked` of another ring, a descriptor of a slot not yet
//! committed), and words a peer writes.

use std::sync::Arc;

use crate::{pool, spsc, HeapRegion, WakeMode};

fn ring(cap: usize) -> (Arc<HeapRegion>, spsc::Producer<Arc<HeapRegion>>, spsc::Consumer<Arc<HeapRegion>>) {
    let region = Arc::new(HeapRegion::new(spsc::region_len(cap)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { spsc::init(&*region) }.unwrap();
    let tx = spsc::Producer::attach(region.clone()).unwrap();
    let rx = spsc::Consumer::attach(region.clone()).unwrap();
    (region, tx, rx)
}

/// Sends and reads `n` frames of `len` bytes.
fn cycle(tx: &mut spsc::Producer<Arc<HeapRegion>>, rx: &mut spsc::Consumer<Arc<HeapRegion>>, n: usize, len: usize) {
    for i in 0..n {
        let _ = tx.try_send(&vec![i as u8; len]).unwrap();
        let p = rx.peek().unwrap();
        assert!(rx.consume(&p));
        let _ = rx.release();
    }
}

/// A `Peeked` of another ring, at this ring's read position and with its
/// next sequence tag but of another length, once moved the read position
/// past what the producer published: the consumer then handed the
/// producer a head beyond its tail (`Corrupt` on its next refresh), and a
/// later read could view stale frames in room the producer was writing.
#[test]
fn spsc_a_peeked_of_another_ring_is_not_consumed() {
    let (_ra, mut txa, mut rxa) = ring(256);
    let (_rb, mut txb, mut rxb) = ring(256);
    cycle(&mut txa, &mut rxa, 1, 8);
    cycle(&mut txb, &mut rxb, 1, 8);
    let _ = txb.try_send(&[9; 100]).unwrap();
    let foreign = rxb.peek().unwrap();
    assert!(!rxa.consume(&foreign), "a frame ring A never held was consumed");
    assert!(rxa.view(&foreign).is_empty());
    let _ = rxa.release();
    // Ring A goes on as if nothing happened.
    for i in 0..40u8 {
        let _ = txa.try_send(&[i; 8]).unwrap();
        assert_eq!(rxa.try_read().unwrap().payload(), &[i; 8]);
        let _ = rxa.release();
    }
}

/// A `Peeked` whose position falls 8 bytes short of the end of this
/// (smaller) ring: its view was empty but pointed past the region, and
/// copying or reading that empty view panicked.
#[test]
fn spsc_a_peeked_past_the_end_of_this_ring_gives_an_empty_view_without_panicking() {
    let (_ra, _txa, rxa) = ring(128);
    let (_rb, mut txb, mut rxb) = ring(256);
    cycle(&mut txb, &mut rxb, 5, 8);
    let _ = txb.try_send(&[3; 8]).unwrap();
    let foreign = rxb.peek().unwrap();
    let view = rxa.view(&foreign);
    assert!(view.is_empty());
    view.copy_to(&mut []);
    assert!(view.payload().is_empty());
    assert!(rxa.payload_of(&foreign).is_empty());
}

/// A stale `Peeked` of this ring (consumed already) is neither viewed nor
/// consumed again; the one past padding, at the start of the next lap, is.
#[test]
fn spsc_stale_and_past_padding_peeks() {
    let (_r, mut tx, mut rx) = ring(128);
    let _ = tx.try_send(&[1; 8]).unwrap();
    let first = rx.peek().unwrap();
    assert!(rx.consume(&first));
    assert!(!rx.consume(&first));
    assert!(rx.view(&first).is_empty());
    let _ = rx.release();
    let _ = tx.try_send(&[2; 32]).unwrap();
    let second = rx.peek().unwrap();
    assert!(rx.consume(&second));
    let _ = rx.release();
    cycle(&mut tx, &mut rx, 1, 8);
    // 24 + 48 + 24 bytes used; a 40-byte frame (56 bytes) does not fit
    // before the end: padding, then the frame at the start of the next lap.
    let _ = tx.try_send(&[4; 40]).unwrap();
    let next = rx.peek().unwrap();
    assert_eq!(rx.view(&next).payload(), &[4; 40]);
    assert!(rx.consume(&next));
    let _ = rx.release();
    assert_eq!(rx.try_read().err(), Some(crate::ReadError::Empty));
}

/// A producer that rewrites a frame's commit word after the consumer found
/// it changes neither what the consumer hands out (the length it
/// validated) nor where it goes next: before, a `RecvBuf` over the frame
/// went from its length to empty and back as the peer wrote, and the
/// consume that followed was refused.
#[test]
fn spsc_a_commit_word_rewritten_after_the_peek_changes_nothing() {
    use crate::frame::{FrameWord, KIND_DATA};
    use crate::region::Access;
    use std::sync::atomic::Ordering::Relaxed;
    let (region, mut tx, mut rx) = ring(256);
    let _ = tx.try_send(&[5; 40]).unwrap();
    let _ = tx.try_send(&[6; 8]).unwrap();
    let p = rx.peek().unwrap();
    for forged in [0, FrameWord { len: 200, kind: KIND_DATA, flags: 0, tag: 0 }.encode(), u64::MAX] {
        region.word(spsc::CONTROL_LEN).store(forged, Relaxed);
        assert_eq!(rx.view(&p).payload(), &[5; 40]);
    }
    assert!(rx.consume(&p));
    assert_eq!(rx.try_read().unwrap().payload(), &[6; 8]);
}

fn pool_pair(cap: usize) -> (pool::Producer<Arc<HeapRegion>>, pool::Consumer<Arc<HeapRegion>>) {
    let region = Arc::new(HeapRegion::new(pool::region_len(cap)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { pool::init(&*region, WakeMode::Fenced) }.unwrap();
    (pool::Producer::attach(region.clone()).unwrap(), pool::Consumer::attach(region).unwrap())
}

/// The consumer opened any descriptor in order, committed or not: safe
/// code held a `WriteSlot`'s `&mut [u8]` and a `ReadSlot`'s `&[u8]` over
/// the same bytes at once (and a peer's descriptor announced before its
/// slot was written got a view of bytes still being written).
#[test]
fn pool_a_slot_still_being_written_does_not_open() {
    let (mut tx, mut rx) = pool_pair(1024);
    let mut w = tx.try_alloc(64).unwrap();
    let d = w.descriptor();
    w.payload_mut()[0] = 1;
    let slot = rx.validate(d.pos(), d.len() as u64).unwrap();
    assert!(rx.read(slot).is_err(), "a slot under a live WriteSlot was opened for reading");
    // Committed, it opens.
    let d = w.commit();
    let r = rx.read(rx.validate(d.pos(), d.len() as u64).unwrap()).unwrap();
    assert_eq!(r.payload()[0], 1);
    let _ = r.consume().release();
    // A forged descriptor of the next slot, nothing committed there: refused.
    let next = rx.validate(d.pos() + 64, 64).unwrap();
    assert!(rx.read(next).is_err());
}

/// A full ring whose consumer has closed said `Full`, a promise of room
/// that never comes: a sender waiting for room (woken by the close) was
/// told `Full` again and again, and spun until its deadline, for ever
/// with none. (A peer can write the consumer's side word at will.)
#[test]
fn spsc_a_full_ring_with_a_closed_consumer_is_closed_not_full() {
    use crate::{region::Access, ClaimError};
    use std::sync::atomic::Ordering::Relaxed;
    let (region, mut tx, _rx) = ring(256);
    while tx.try_send(&[1; 40]).is_ok() {}
    assert_eq!(tx.try_claim(40).err(), Some(ClaimError::Full));
    // The consumer's side word (`OFF_CONSUMER`), as a peer would close it.
    region.word(24).store(2, Relaxed);
    assert_eq!(tx.try_claim(40).err(), Some(ClaimError::Closed));
    assert_eq!(tx.ready_for(40).err(), Some(ClaimError::Closed));
    assert!(matches!(tx.write_batch(4, 40, |_| true), Err(ClaimError::Closed)));
}

#[test]
fn pool_a_full_arena_with_a_closed_consumer_is_closed_not_full() {
    use crate::{region::Access, ClaimError};
    use std::sync::atomic::Ordering::Relaxed;
    let region = Arc::new(HeapRegion::new(pool::region_len(1024)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { pool::init(&*region, WakeMode::Fenced) }.unwrap();
    let mut tx = pool::Producer::attach(region.clone()).unwrap();
    let _rx = pool::Consumer::attach(region.clone()).unwrap();
    while let Ok(s) = tx.try_alloc(256) {
        let _ = s.commit();
    }
    assert_eq!(tx.ready_for(256).err(), Some(ClaimError::Full));
    region.word(24).store(2, Relaxed);
    assert_eq!(tx.ready_for(256).err(), Some(ClaimError::Closed));
}

proptest::proptest! {
    /// Two rings driven by random sends and reads, and at random points
    /// the second ring's next frame offered to the first (consume, view):
    /// the first ring never consumes it, never views a byte of it, and
    /// delivers its own frames whole and in order, its producer never
    /// seeing a consumer position out of range.
    #[test]
    fn spsc_peeks_of_another_ring_never_disturb_this_one(
        ops in proptest::collection::vec((0u8..4, 0usize..60), 1..200),
    ) {
        let (_ra, mut txa, mut rxa) = ring(256);
        let (_rb, mut txb, mut rxb) = ring(256);
        let (mut sent, mut got) = (0u32, 0u32);
        for (op, len) in ops {
            match op {
                0 => {
                    let mut msg = vec![sent as u8; len.max(4)];
                    msg[..4].copy_from_slice(&sent.to_le_bytes());
                    match txa.try_send(&msg) {
                        Ok(_) => sent += 1,
                        Err(crate::ClaimError::Full) => {}
                        Err(e) => proptest::prop_assert!(false, "producer: {e}"),
                    }
                }
                1 => {
                    if let Ok(p) = rxa.peek() {
                        let v = rxa.view(&p);
                        proptest::prop_assert_eq!(&v.payload()[..4], &got.to_le_bytes()[..]);
                        proptest::prop_assert!(rxa.consume(&p));
                        got += 1;
                        let _ = rxa.release();
                    }
                }
                2 => {
                    let _ = txb.try_send(&vec![9; len]);
                    if let Ok(p) = rxb.peek() {
                        if len % 2 == 0 {
                            proptest::prop_assert!(rxb.consume(&p));
                            let _ = rxb.release();
                        }
                    }
                }
                _ => {
                    if let Ok(p) = rxb.peek() {
                        proptest::prop_assert!(rxa.view(&p).is_empty());
                        proptest::prop_assert!(!rxa.consume(&p));
                    }
                }
            }
        }
        while let Ok(p) = rxa.peek() {
            let v = rxa.view(&p);
            proptest::prop_assert_eq!(&v.payload()[..4], &got.to_le_bytes()[..]);
            proptest::prop_assert!(rxa.consume(&p));
            got += 1;
        }
        proptest::prop_assert_eq!(got, sent);
    }
}

/// A ring position a side starts from, not a multiple of 8 (a peer's
/// write between the freshness check and the attach, or memory the peer
/// supplied): it was accepted, and the first frame's commit word then lay
/// at a misaligned offset, where the region panics. (Found by writing 3.)
#[test]
fn a_misaligned_start_position_is_refused_at_attach() {
    use crate::region::Access;
    use std::sync::atomic::Ordering::Relaxed;
    let region = Arc::new(HeapRegion::new(spsc::region_len(256)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { spsc::init(&*region) }.unwrap();
    region.word(spsc::OFF_HEAD).store(3, Relaxed);
    let tx = spsc::Producer::attach(region.clone());
    assert!(tx.is_err(), "a producer attached at position 3");
    let rx = spsc::Consumer::attach(region.clone());
    assert!(rx.is_err(), "a consumer attached at position 3");
    let region = Arc::new(HeapRegion::new(crate::mpsc::region_len(256)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { crate::mpsc::init(&*region) }.unwrap();
    region.word(crate::mpsc::OFF_HEAD).store(5, Relaxed);
    assert!(crate::mpsc::Consumer::attach(region.clone()).is_err());
}

/// A many-producer ring's shared tail, not a multiple of 8: the claim used
/// it as a frame position and panicked on the misaligned commit word.
#[test]
fn mpsc_a_misaligned_tail_is_corrupt_not_a_panic() {
    use crate::{mpsc, region::Access, ClaimError};
    use std::sync::atomic::Ordering::Relaxed;
    let region = Arc::new(HeapRegion::new(mpsc::region_len(256)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { mpsc::init(&*region) }.unwrap();
    let _rx = mpsc::Consumer::attach(region.clone()).unwrap();
    let mut tx = mpsc::Producer::attach(region.clone()).unwrap();
    region.word(mpsc::OFF_TAIL).store(12, Relaxed);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tx.try_send(&[1; 8])));
    assert!(matches!(r, Ok(Err(mpsc::SendError::Claim(ClaimError::Corrupt(_))))), "{r:?}");
}
