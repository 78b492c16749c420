//! MPSC ring behaviour on the heap: per-producer order under concurrency,
//! abandoned claims, unblocking a dead producer, corruption.
#![cfg(not(loom))]

use ringflow_ring::mpsc::{self, Consumer, Producer, Unblocked};
use ringflow_ring::{ClaimError, CommitError, HeapRegion, ReadError};
use std::sync::Arc;

fn ring(cap: usize) -> (Arc<HeapRegion>, Consumer<Arc<HeapRegion>>) {
    let region = Arc::new(HeapRegion::new(mpsc::region_len(cap)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { mpsc::init(&*region) }.unwrap();
    let rx = Consumer::attach(region.clone()).unwrap();
    (region, rx)
}

#[test]
fn many_producers_each_in_order_nothing_lost() {
    let (region, mut rx) = ring(2048);
    const PRODUCERS: u64 = 3;
    const N: u64 = 30_000;
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let mut tx = Producer::attach(region.clone()).unwrap();
            std::thread::spawn(move || {
                let id = tx.id() as u64;
                for seq in 0..N {
                    let len = 16 + (seq as usize % 40);
                    loop {
                        match tx.try_claim(len) {
                            Ok(mut c) => {
                                c.payload_mut()[..8].copy_from_slice(&id.to_le_bytes());
                                c.payload_mut()[8..16].copy_from_slice(&seq.to_le_bytes());
                                let _ = c.commit().unwrap();
                                break;
                            }
                            Err(ClaimError::Full) => std::thread::yield_now(),
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    let mut next = vec![0u64; PRODUCERS as usize];
    let mut total = 0;
    while total < PRODUCERS * N {
        match rx.read_batch(64, |g| {
            let p = g.payload();
            let id = u64::from_le_bytes(p[..8].try_into().unwrap());
            let seq = u64::from_le_bytes(p[8..16].try_into().unwrap());
            assert_eq!(id, g.producer() as u64);
            assert_eq!(seq, next[id as usize], "producer {id} out of order; payload {:?}", &p[..16]);
            assert_eq!(g.len(), 16 + (seq as usize % 40));
            next[id as usize] += 1;
        }) {
            Ok((n, _)) => total += n as u64,
            Err(ReadError::Empty) => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
    for h in handles {
        h.join().unwrap();
    }
    assert!(next.iter().all(|&n| n == N));
    assert_eq!(rx.try_read().err(), Some(ReadError::Empty));
}

#[test]
fn a_claim_blocks_later_frames_until_committed() {
    let (region, mut rx) = ring(1024);
    let mut a = Producer::attach(region.clone()).unwrap();
    let mut b = Producer::attach(region.clone()).unwrap();
    assert_eq!(rx.producers(), 2);
    let mut claim = a.try_claim(8).unwrap();
    let _ = b.try_send(b"second").unwrap();
    assert_eq!(rx.try_read().err(), Some(ReadError::Empty), "no frame overtakes an open claim");
    claim.write(0, b"first!!!");
    let _ = claim.commit().unwrap();
    assert_eq!(rx.try_read().unwrap().payload(), b"first!!!");
    assert_eq!(rx.try_read().unwrap().payload(), b"second");
}

#[test]
fn dropped_claim_becomes_padding() {
    let (region, mut rx) = ring(1024);
    let mut a = Producer::attach(region.clone()).unwrap();
    drop(a.try_claim(100).unwrap());
    let _ = a.try_send(b"after").unwrap();
    assert_eq!(rx.try_read().unwrap().payload(), b"after");
}

#[test]
fn unblock_skips_a_dead_producers_claim_and_revokes_it() {
    let (region, mut rx) = ring(1024);
    let mut dead = Producer::attach(region.clone()).unwrap();
    let mut live = Producer::attach(region.clone()).unwrap();
    let dead_id = dead.id();
    let claim = dead.try_claim(24).unwrap();
    let _ = live.try_send(b"live").unwrap();
    assert_eq!(rx.try_read().err(), Some(ReadError::Empty));
    // SAFETY: the blocking claim is `dead`'s, which from here on is only
    // committed (a CAS that writes nothing once revoked), never written.
    let skipped = unsafe { rx.unblock() }.unwrap();
    assert_eq!(skipped, Unblocked { producer: Some(dead_id), bytes: 40 });
    assert_eq!(rx.try_read().unwrap().payload(), b"live");
    assert_eq!(claim.commit().err(), Some(CommitError::Revoked));
    // SAFETY: no claim is outstanding.
    assert_eq!(unsafe { rx.unblock() }, None, "nothing blocks any more");
}

#[test]
fn unblock_pads_a_claim_that_never_got_its_mark() {
    // A producer that died between winning the tail and writing its CLAIMED
    // mark leaves zeros; simulate it by advancing the tail by hand.
    let (region, mut rx) = ring(1024);
    // SAFETY: plays a producer that died after winning the tail: a
    // write a peer could make; no claim or payload borrow is live.
    let tail = unsafe { region.scribble_word(128) }.fetch_add(48, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(tail, 0);
    let mut live = Producer::attach(region.clone()).unwrap();
    let _ = live.try_send(b"later").unwrap();
    assert_eq!(rx.try_read().err(), Some(ReadError::Empty));
    // SAFETY: the space was claimed by hand, by no producer: nobody writes it.
    assert_eq!(unsafe { rx.unblock() }, Some(Unblocked { producer: None, bytes: 48 }));
    assert_eq!(rx.try_read().unwrap().payload(), b"later");
}

#[test]
fn space_is_reused_after_release_and_wraps() {
    let (region, mut rx) = ring(256);
    let mut tx = Producer::attach(region.clone()).unwrap();
    for i in 0..1000u32 {
        let len = (i as usize * 7) % tx.max_payload();
        let msg: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
        while let Err(e) = tx.try_send(&msg) {
            assert!(matches!(e, mpsc::SendError::Claim(ClaimError::Full)), "{e}");
            let (_, _) = rx.read_batch(8, |_| {}).unwrap();
        }
        let _ = rx.read_batch(1, |g| {
            let want: Vec<u8> = (0..g.len()).map(|j| (i as usize + j) as u8).collect();
            assert_eq!(g.payload(), &want[..]);
        });
    }
}

#[test]
fn closed_consumer_refuses_claims() {
    let (region, rx) = ring(256);
    let mut tx = Producer::attach(region.clone()).unwrap();
    drop(rx);
    assert_eq!(tx.try_claim(8).err(), Some(ClaimError::Closed));
}

#[test]
fn scribbled_ring_errors_without_panicking() {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..200usize {
        let (region, mut rx) = ring(512);
        let mut tx = Producer::attach(region.clone()).unwrap();
        for _ in 0..round % 6 {
            let _ = tx.try_send(&[round as u8; 30]);
        }
        for _ in 0..1 + round % 4 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let off =
                if round % 9 == 0 { rng as usize % mpsc::CONTROL_LEN } else { mpsc::CONTROL_LEN + rng as usize % 512 };
            // SAFETY: plays a hostile peer; one thread, and no payload
            // borrow is live while it scribbles, and no second side attaches.
            unsafe { region.scribble_word(off & !7) }.store(rng, std::sync::atomic::Ordering::Relaxed);
        }
        for _ in 0..20 {
            match rx.try_read() {
                Ok(g) => assert!(g.payload().len() <= 512),
                Err(_) => break,
            }
        }
        let _ = rx.release();
        // SAFETY: `tx`'s sends are complete (`try_send` commits or drops
        // its claim before returning): no producer holds a claim.
        let _ = unsafe { rx.unblock() };
        let _ = tx.try_send(b"more");
    }
}
