//! SPSC ring behaviour on the heap: order, wrap-around, batches, zero-copy,
//! closing, corruption. (Loom models live in loom_spsc.rs; processes in the
//! workspace's tests/.)
#![cfg(not(loom))]

use proptest::prelude::*;
use ringflow_ring::spsc::{self, Consumer, Producer};
use ringflow_ring::{ClaimError, HeapRegion, ReadError};
use std::collections::VecDeque;
use std::sync::Arc;

fn ring(cap: usize) -> (Producer<Arc<HeapRegion>>, Consumer<Arc<HeapRegion>>) {
    let region = Arc::new(HeapRegion::new(spsc::region_len(cap)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { spsc::init(&*region) }.unwrap();
    (Producer::attach(region.clone()).unwrap(), Consumer::attach(region).unwrap())
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 31 + i * 7) as u8).collect()
}

#[test]
fn frames_arrive_in_order_across_many_wraps() {
    let (mut tx, mut rx) = ring(256);
    let mut next_rx = 0u64;
    for seq in 0..2000u64 {
        let len = (seq as usize * 13) % (tx.max_payload() + 1);
        loop {
            match tx.try_send(&payload(seq, len)) {
                Ok(_) => break,
                Err(ClaimError::Full) => {
                    let g = rx.try_read().unwrap();
                    assert_eq!(g.payload(), &payload(next_rx, g.len())[..]);
                    drop(g);
                    let _ = rx.release();
                    next_rx += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    while let Ok(g) = rx.try_read() {
        assert_eq!(g.payload(), &payload(next_rx, g.len())[..]);
        drop(g);
        next_rx += 1;
    }
    assert_eq!(next_rx, 2000);
}

#[test]
fn init_needs_only_the_first_commit_word_zeroed() {
    // A fresh memfd is zero, caller-supplied memory may hold anything: init
    // must not depend on the data area beyond its first word.
    let cap = 512;
    let region = Arc::new(HeapRegion::new(spsc::region_len(cap)));
    let garbage: Vec<u8> = (0..spsc::region_len(cap)).map(|i| (i * 37 + 11) as u8 | 1).collect();
    for (i, w) in garbage.chunks_exact(8).enumerate() {
        // SAFETY: the ring is not laid out yet and no side is attached.
        unsafe { region.scribble_word(i * 8) }
            .store(u64::from_le_bytes(w.try_into().unwrap()), std::sync::atomic::Ordering::Relaxed);
    }
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { spsc::init(&*region) }.unwrap();
    let (mut tx, mut rx) = (Producer::attach(region.clone()).unwrap(), Consumer::attach(region).unwrap());
    assert!(matches!(rx.try_read(), Err(ReadError::Empty)));
    let mut next_rx = 0u64;
    for seq in 0..500u64 {
        let len = (seq as usize * 29) % (tx.max_payload() + 1);
        while let Err(ClaimError::Full) = tx.try_send(&payload(seq, len)) {
            let g = rx.try_read().unwrap();
            assert_eq!(g.payload(), &payload(next_rx, g.len())[..]);
            drop(g);
            let _ = rx.release();
            next_rx += 1;
        }
    }
    while let Ok(g) = rx.try_read() {
        assert_eq!(g.payload(), &payload(next_rx, g.len())[..]);
        drop(g);
        next_rx += 1;
    }
    assert_eq!(next_rx, 500);
}

#[test]
fn a_kept_frame_is_read_again() {
    let (mut tx, mut rx) = ring(256);
    let _ = tx.try_send(b"first").unwrap();
    let _ = tx.try_send(b"second").unwrap();
    rx.try_read().unwrap().keep();
    assert_eq!(rx.try_read().unwrap().payload(), b"first");
    assert_eq!(rx.try_read().unwrap().payload(), b"second");
}

#[test]
fn peeked_frames_are_consumed_once_and_in_order() {
    let (mut tx, mut rx) = ring(256);
    let _ = tx.try_send(b"one").unwrap();
    let _ = tx.try_send(b"two").unwrap();
    let first = rx.peek().unwrap();
    assert_eq!(rx.view(&first).payload(), b"one");
    assert_eq!(rx.peek().unwrap().len(), 3, "peek does not consume");
    assert!(rx.consume(&first));
    assert!(!rx.consume(&first), "a frame is consumed once");
    assert!(rx.payload_of(&first).is_empty(), "a consumed frame is no longer readable");
    let second = rx.peek().unwrap();
    assert_eq!(rx.view(&second).payload(), b"two");
    assert!(rx.unreleased() > 0);
    assert!(rx.consume(&second));
    let _ = rx.release();
    assert_eq!(rx.unreleased(), 0);
    assert!(matches!(rx.peek(), Err(ReadError::Empty)));
}

#[test]
fn pushed_frames_are_invisible_until_commit() {
    let (mut tx, mut rx) = ring(1024);
    for i in 0..5u8 {
        let mut c = tx.try_claim(10).unwrap();
        c.payload_mut().fill(i);
        c.set_meta(100 + i as u64);
        c.push();
    }
    assert_eq!(rx.try_read().err(), Some(ReadError::Empty));
    assert!(tx.has_pending());
    let _ = tx.commit();
    assert!(!tx.has_pending());
    let mut seen = vec![];
    let (n, _) = rx.read_batch(16, |g| seen.push((g.payload()[0], g.meta()))).unwrap();
    assert_eq!(n, 5);
    assert_eq!(seen, (0..5u8).map(|i| (i, 100 + i as u64)).collect::<Vec<_>>());
}

#[test]
fn dropped_claim_leaves_no_trace() {
    let (mut tx, mut rx) = ring(256);
    {
        let mut abandoned = tx.try_claim(40).unwrap();
        abandoned.payload_mut().fill(0xab);
    } // dropped without commit
    let _ = tx.try_send(b"after").unwrap();
    assert_eq!(rx.try_read().unwrap().payload(), b"after");
}

#[test]
fn full_ring_refuses_then_accepts_after_release() {
    let (mut tx, mut rx) = ring(256);
    let mut sent = 0;
    while tx.try_send(&[7; 32]).is_ok() {
        sent += 1;
    }
    assert!(sent > 0);
    assert_eq!(tx.try_send(&[7; 32]).err(), Some(ClaimError::Full));
    // 48-byte frames in 256 bytes: the next one wraps (16 bytes of padding),
    // so it needs two frames' worth of space back.
    drop(rx.try_read().unwrap());
    drop(rx.try_read().unwrap());
    assert_eq!(tx.try_send(&[7; 32]).err(), Some(ClaimError::Full), "unreleased space stays taken");
    let _ = rx.release();
    assert!(tx.try_send(&[7; 32]).is_ok());
}

#[test]
fn too_large_is_typed() {
    let (mut tx, _rx) = ring(256);
    let max = tx.max_payload();
    assert!(matches!(tx.try_claim(max + 1), Err(ClaimError::TooLarge { max: m, .. }) if m == max));
    assert!(tx.try_claim(max).is_ok());
}

/// `write_batch` across many wraps: payload, metadata and flags of every
/// frame arrive in order; a batch ends where `fill` says or where the ring
/// is full, never earlier.
#[test]
fn written_batches_arrive_whole_across_wraps() {
    let (mut tx, mut rx) = ring(1024);
    let (mut sent, mut next_rx) = (0u64, 0u64);
    let check = |rx: &mut Consumer<Arc<HeapRegion>>, next_rx: &mut u64| {
        while let Ok(g) = rx.try_read() {
            assert_eq!((g.meta(), g.flags()), (*next_rx, *next_rx as u8 & 7));
            assert_eq!(g.payload(), &payload(*next_rx, g.len())[..]);
            drop(g);
            *next_rx += 1;
        }
        let _ = rx.release();
    };
    for round in 0..400usize {
        let len = (round * 13) % 120;
        let max = 1 + round % 9;
        let stop_after = 1 + round % 7;
        let mut filled = 0;
        match tx.write_batch(max, len, |slot| {
            assert_eq!(slot.len(), len);
            slot.payload_mut().copy_from_slice(&payload(sent, len));
            slot.set_meta(sent);
            slot.set_flags(sent as u8 & 7);
            sent += 1;
            filled += 1;
            filled < stop_after
        }) {
            Ok((n, _)) => {
                assert_eq!(n, filled);
                if n < max.min(stop_after) {
                    assert!(!tx.fits(len), "round {round}: {n} frames of {max}, with room left");
                }
            }
            Err(ClaimError::Full) => assert_eq!(filled, 0),
            Err(e) => panic!("{e}"),
        }
        // Read every third round only, so that batches meet a full ring.
        if round % 3 == 2 {
            check(&mut rx, &mut next_rx);
        }
    }
    check(&mut rx, &mut next_rx);
    assert_eq!(next_rx, sent);
}

#[test]
fn written_batches_publish_earlier_pushes_and_check_like_claims() {
    let (mut tx, mut rx) = ring(256);
    let max = tx.max_payload();
    assert!(matches!(tx.write_batch(4, max + 1, |_| true), Err(ClaimError::TooLarge { .. })));
    tx.try_claim(3).unwrap().push();
    assert_eq!(rx.try_read().err(), Some(ReadError::Empty), "pushed, not yet published");
    let (n, _) = tx
        .write_batch(2, 5, |slot| {
            slot.write(0, b"hello");
            true
        })
        .unwrap();
    assert_eq!(n, 2);
    let mut lens = vec![];
    let _ = rx.read_batch(8, |g| lens.push(g.len())).unwrap();
    assert_eq!(lens, [3, 5, 5], "the pushed frame, then the batch");
    // A batch that fills the ring: as many frames as fit, then Full.
    let mut n = 0;
    while let Ok((k, _)) = tx.write_batch(100, 8, |_| true) {
        n += k;
    }
    assert_eq!(n, 256 / 24 - 1, "the ring's frames less the room for the next commit word");
    // With room again, a closed consumer is what the batch reports.
    let (read, _) = rx.read_batch(usize::MAX, |_| {}).unwrap();
    assert_eq!(read, n);
    drop(rx);
    assert_eq!(tx.write_batch(1, 8, |_| true).err(), Some(ClaimError::Closed));
}

/// `write_batch_sized` of mixed lengths across many wraps: every frame
/// arrives whole and in order; a batch stops at a length the ring never
/// takes (the next call reports it) and at the first `None`.
#[test]
fn sized_batches_of_mixed_lengths_arrive_whole() {
    let (mut tx, mut rx) = ring(1024);
    let max = tx.max_payload();
    let (mut sent, mut next_rx) = (0u64, 0u64);
    for round in 0..400usize {
        let lens: Vec<usize> = (0..1 + round % 11).map(|k| (round * 7 + k * 29) % 120).collect();
        let mut filled = 0;
        match tx.write_batch_sized(
            |k| lens.get(k).copied(),
            |slot| {
                assert_eq!(slot.len(), lens[filled]);
                let bytes = payload(sent, slot.len());
                slot.payload_mut().copy_from_slice(&bytes);
                slot.set_meta(sent);
                sent += 1;
                filled += 1;
                true
            },
        ) {
            Ok((n, _)) => {
                assert_eq!(n, filled);
                if n < lens.len() {
                    assert!(!tx.fits(lens[n]), "round {round}: {n} of {} frames, with room left", lens.len());
                }
            }
            Err(ClaimError::Full) => assert_eq!(filled, 0),
            Err(e) => panic!("{e}"),
        }
        if round % 3 == 2 {
            let _ = rx.read_batch(usize::MAX, |g| {
                assert_eq!(g.meta(), next_rx);
                assert_eq!(g.payload(), &payload(next_rx, g.len())[..]);
                next_rx += 1;
            });
        }
    }
    while rx.read_batch(usize::MAX, |_| next_rx += 1).is_ok() {}
    assert_eq!(next_rx, sent);
    // A length the ring never takes ends the batch before it; alone, it is
    // the error.
    let lens = [4, max + 1, 4];
    let (n, _) = tx.write_batch_sized(|k| lens.get(k).copied(), |_| true).unwrap();
    assert_eq!(n, 1);
    let rest = &lens[1..];
    let too_large = tx.write_batch_sized(|k| rest.get(k).copied(), |_| true);
    assert!(matches!(too_large, Err(ClaimError::TooLarge { .. })));
}

/// `read_batch_while`: the first frame refused stays, unconsumed, and ends
/// the batch; refused at once, the batch is 0 frames, not an error.
#[test]
fn a_refused_frame_stays_for_the_next_read() {
    let (mut tx, mut rx) = ring(256);
    for len in [1, 2, 30, 3] {
        let _ = tx.try_send(&vec![7; len]).unwrap();
    }
    let mut seen = vec![];
    let (n, _) = rx
        .read_batch_while(8, |g| {
            let take = g.len() < 10;
            if take {
                seen.push(g.len());
            }
            take
        })
        .unwrap();
    assert_eq!((n, &seen[..]), (2, &[1, 2][..]));
    let (n, _) = rx.read_batch_while(8, |g| g.len() < 10).unwrap();
    assert_eq!(n, 0, "the long frame is refused again, and stays");
    assert_eq!(rx.try_read().unwrap().len(), 30);
    let (n, _) = rx.read_batch_while(8, |_| true).unwrap();
    assert_eq!(n, 1);
    assert_eq!(rx.read_batch_while(8, |_| true).err(), Some(ReadError::Empty));
}

#[test]
fn producer_close_is_seen_after_the_last_frame() {
    let (mut tx, mut rx) = ring(256);
    let _ = tx.try_send(b"last").unwrap();
    assert!(!rx.is_producer_closed());
    drop(tx);
    assert!(rx.is_producer_closed(), "closed, with a frame still to read");
    assert_eq!(rx.try_read().unwrap().payload(), b"last");
    assert_eq!(rx.try_read().err(), Some(ReadError::Closed));
}

#[test]
fn consumer_close_is_seen_by_the_producer() {
    let (mut tx, rx) = ring(256);
    assert!(!tx.is_consumer_closed());
    drop(rx);
    assert!(tx.is_consumer_closed());
    assert_eq!(tx.try_send(b"x").err(), Some(ClaimError::Closed));
}

#[test]
fn sides_attach_once() {
    let region = Arc::new(HeapRegion::new(spsc::region_len(256)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { spsc::init(&*region) }.unwrap();
    let _tx = Producer::attach(region.clone()).unwrap();
    assert!(Producer::attach(region.clone()).is_err());
    assert!(Consumer::attach(region.clone()).is_ok());
}

#[test]
fn bad_regions_are_refused() {
    let region = HeapRegion::new(spsc::region_len(256));
    assert!(Producer::attach(&region).is_err(), "uninitialised");
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    assert!(unsafe { spsc::init(&HeapRegion::new(spsc::region_len(100))) }.is_err(), "not a power of two");
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { spsc::init(&region) }.unwrap();
    // SAFETY: the ring is laid out but no side is attached, so no
    // grant rests on the capacity word; attach must refuse it.
    unsafe { region.scribble_word(8) }.store(1 << 20, std::sync::atomic::Ordering::Relaxed);
    assert!(Consumer::attach(&region).is_err(), "capacity beyond the region");
}

#[test]
fn threads_exchange_a_million_frames() {
    let (mut tx, mut rx) = ring(4096);
    const N: u64 = 200_000;
    let producer = std::thread::spawn(move || {
        for seq in 0..N {
            let len = 8 + (seq as usize % 100);
            loop {
                match tx.try_claim(len) {
                    Ok(mut c) => {
                        c.payload_mut()[..8].copy_from_slice(&seq.to_le_bytes());
                        if seq % 4 == 3 {
                            let _ = c.commit();
                        } else {
                            c.push();
                        }
                        break;
                    }
                    Err(ClaimError::Full) => {
                        let _ = tx.commit();
                        std::thread::yield_now();
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        let _ = tx.commit();
    });
    let mut expect = 0u64;
    loop {
        match rx.read_batch(64, |g| {
            assert_eq!(g.len(), 8 + (expect as usize % 100));
            assert_eq!(u64::from_le_bytes(g.payload()[..8].try_into().unwrap()), expect);
            expect += 1;
        }) {
            Ok(_) => {}
            Err(ReadError::Empty) => std::thread::yield_now(),
            Err(ReadError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    producer.join().unwrap();
    assert_eq!(expect, N);
}

#[test]
fn scribbled_ring_errors_without_panicking() {
    // A hostile peer overwrites the live data area and control words; every
    // read must return a frame or an error, never panic or read outside.
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..200 {
        let region = Arc::new(HeapRegion::new(spsc::region_len(512)));
        // SAFETY: a fresh region: no side attached, nobody else uses it yet.
        unsafe { spsc::init(&*region) }.unwrap();
        let mut tx = Producer::attach(region.clone()).unwrap();
        let mut rx = Consumer::attach(region.clone()).unwrap();
        for i in 0..(round % 7) {
            let _ = tx.try_send(&payload(i, 20));
        }
        for _ in 0..(1 + round % 5) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let off = (spsc::CONTROL_LEN + (rng as usize % 512)) & !7;
            let off = if round % 10 == 0 { (rng as usize % spsc::CONTROL_LEN) & !7 } else { off };
            // SAFETY: plays a hostile peer; one thread, and no payload
            // borrow is live while it scribbles, and no second side attaches.
            unsafe { region.scribble_word(off) }.store(rng, std::sync::atomic::Ordering::Relaxed);
        }
        for i in 0..20 {
            // Both read paths: read_batch also trusts (only as a hint) the
            // producer's published tail, which the scribbling may hit.
            if i % 2 == 0 {
                if rx.read_batch(4, |g| assert!(g.payload().len() <= 512)).is_err() {
                    break;
                }
                continue;
            }
            match rx.try_read() {
                Ok(g) => {
                    let _ = g.payload().iter().map(|&b| b as u64).sum::<u64>();
                }
                Err(_) => break,
            }
        }
        let _ = tx.try_send(b"more");
        let _ = rx.release();
    }
}

#[derive(Debug, Clone)]
enum Op {
    Send(usize),
    Push(usize),
    Commit,
    Read,
    ReadBatch(usize),
    Release,
    /// `write_batch` of up to `max` frames of `len` bytes, `fill` asking to
    /// stop after `stop_after` of them.
    WriteBatch {
        max: usize,
        len: usize,
        stop_after: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..200).prop_map(Op::Send),
        (0usize..200).prop_map(Op::Push),
        Just(Op::Commit),
        Just(Op::Read),
        (1usize..6).prop_map(Op::ReadBatch),
        Just(Op::Release),
        (0usize..12, 0usize..200, 1usize..12).prop_map(|(max, len, stop_after)| Op::WriteBatch {
            max,
            len,
            stop_after
        }),
    ]
}

proptest! {
    /// Random sends, batches, reads and releases against a queue model:
    /// what the ring delivers is exactly what was committed, in order.
    #[test]
    fn matches_a_queue_model(
        ops in prop::collection::vec(op(), 1..300),
        cap_log in 8u32..12,
        window in prop_oneof![Just(usize::MAX), 0usize..2048],
    ) {
        let (mut tx, mut rx) = ring(1 << cap_log);
        // Early wraps (whenever the consumer is caught up past `window`)
        // change where frames go, never what is delivered.
        tx.set_window(window);
        let mut committed: VecDeque<Vec<u8>> = VecDeque::new();
        let mut pending: Vec<Vec<u8>> = vec![];
        let mut seq = 0u64;
        for op in ops {
            match op {
                Op::Send(len) | Op::Push(len) => {
                    let len = len.min(tx.max_payload());
                    let msg = payload(seq, len);
                    match tx.try_claim(len) {
                        Ok(mut c) => {
                            c.payload_mut().copy_from_slice(&msg);
                            seq += 1;
                            pending.push(msg);
                            if matches!(op, Op::Send(_)) {
                                let _ = c.commit();
                                committed.extend(pending.drain(..));
                            } else {
                                c.push();
                            }
                        }
                        Err(ClaimError::Full) => {}
                        Err(e) => prop_assert!(false, "{}", e),
                    }
                }
                Op::Commit => {
                    let _ = tx.commit();
                    committed.extend(pending.drain(..));
                }
                Op::Read => match rx.try_read() {
                    Ok(g) => {
                        let want = committed.pop_front();
                        prop_assert_eq!(Some(g.payload().to_vec()), want);
                    }
                    Err(ReadError::Empty) => prop_assert!(committed.is_empty()),
                    Err(e) => prop_assert!(false, "{}", e),
                },
                Op::ReadBatch(max) => {
                    let mut got = vec![];
                    match rx.read_batch(max, |g| got.push(g.payload().to_vec())) {
                        Ok((n, _)) => prop_assert_eq!(n, got.len()),
                        Err(ReadError::Empty) => prop_assert!(committed.is_empty()),
                        Err(e) => prop_assert!(false, "{}", e),
                    }
                    prop_assert!(got.len() <= max);
                    for msg in got {
                        prop_assert_eq!(Some(msg), committed.pop_front());
                    }
                }
                Op::Release => { let _ = rx.release(); }
                Op::WriteBatch { max, len, stop_after } => {
                    let len = len.min(tx.max_payload());
                    let mut filled = 0;
                    let written = tx.write_batch(max, len, |slot| {
                        let msg = payload(seq, len);
                        slot.payload_mut().copy_from_slice(&msg);
                        seq += 1;
                        pending.push(msg);
                        filled += 1;
                        filled < stop_after
                    });
                    match written {
                        Ok((n, _)) => {
                            prop_assert_eq!(n, filled);
                            prop_assert!(n <= max && (n >= 1 || max == 0));
                            // Cut short only by its caller or a full ring.
                            if n < max && n < stop_after {
                                prop_assert!(!tx.fits(len), "batch of {} ended with room", n);
                            }
                            committed.extend(pending.drain(..));
                        }
                        Err(ClaimError::Full) => prop_assert_eq!(filled, 0),
                        Err(e) => prop_assert!(false, "{}", e),
                    }
                }
            }
        }
    }
}
