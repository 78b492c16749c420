//! Unit tests of the broadcast log (heap regions, real threads).

use super::*;
use crate::error::{ClaimError, ReadError};
use crate::wake::Notify;
use crate::HeapRegion;
use std::sync::Arc;
use std::thread;

const SALT: u64 = 0x5eed_1234_abcd_0042;

fn log(mode: Mode, capacity: usize, consumers: usize, producers: usize) -> Arc<HeapRegion> {
    let region = Arc::new(HeapRegion::new(region_len(capacity, consumers, producers)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    assert_eq!(unsafe { init(&*region, mode, consumers, producers, SALT) }, Ok(capacity));
    region
}

fn content(producer: u16, seq: u64) -> Vec<u8> {
    let len = (seq as usize * 7 + producer as usize * 3) % 90;
    (0..len).map(|k| (producer as usize * 31 + seq as usize * 7 + k) as u8).collect()
}

fn send(tx: &mut Producer<Arc<HeapRegion>>, bytes: &[u8], meta: u64) -> u64 {
    loop {
        match tx.try_claim(bytes.len()) {
            Ok(mut c) => {
                c.write(0, bytes);
                c.set_meta(meta);
                let pos = c.position();
                let _ = c.commit();
                return pos;
            }
            Err(ClaimError::Full) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn reliable_two_producers_two_consumers_same_total_order() {
    const N: u64 = 1500;
    let region = log(Mode::Reliable, 1024, 2, 2);
    let consumers: Vec<_> = (0..2).map(|_| Consumer::attach(region.clone()).unwrap()).collect();
    let producers: Vec<_> = (0..2)
        .map(|_| {
            let mut tx = Producer::attach(region.clone()).unwrap();
            thread::spawn(move || {
                for seq in 0..N {
                    let bytes = content(tx.id(), seq);
                    send(&mut tx, &bytes, seq);
                }
            })
        })
        .collect();
    let readers: Vec<_> = consumers
        .into_iter()
        .map(|mut rx| {
            thread::spawn(move || {
                let mut order = Vec::new();
                while order.len() < 2 * N as usize {
                    match rx.try_read() {
                        Ok(g) => {
                            assert_eq!(g.payload().unwrap(), &content(g.producer(), g.seq())[..]);
                            assert_eq!((g.meta(), g.missed_before()), (g.seq(), 0));
                            order.push((g.producer(), g.seq()));
                        }
                        Err(ReadError::Empty) => thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                    let _ = rx.release();
                }
                assert_eq!(rx.try_read().err(), Some(ReadError::Empty));
                order
            })
        })
        .collect();
    producers.into_iter().for_each(|p| p.join().unwrap());
    let orders: Vec<_> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    assert_eq!(orders[0], orders[1], "one total order for every consumer");
    for p in 0..2 {
        let seqs: Vec<u64> = orders[0].iter().filter(|f| f.0 == p).map(|f| f.1).collect();
        assert_eq!(seqs, (0..N).collect::<Vec<_>>(), "producer {p}: every frame, in order");
    }
}

#[test]
fn reliable_back_pressure_until_release_close_or_evict() {
    let region = log(Mode::Reliable, 256, 2, 1);
    let mut tx = Producer::attach(region.clone()).unwrap();
    let mut slow = Consumer::attach(region.clone()).unwrap();
    let gone = Consumer::attach(region.clone()).unwrap();
    let big = [7u8; 96]; // 128-byte frames: two per lap
    assert!(tx.try_send(&big).is_ok() && tx.try_send(&big).is_ok());
    assert_eq!(tx.try_send(&big).err(), Some(ClaimError::Full));
    assert_eq!(slow.try_read().unwrap().payload(), Some(&big[..]));
    let _ = slow.release();
    assert_eq!(tx.try_send(&big).err(), Some(ClaimError::Full), "the other consumer holds it back");
    let slot = gone.slot();
    std::mem::forget(gone); // dies without closing
                            // SAFETY: no slot 9 exists; nothing is evicted.
    assert_eq!(unsafe { evict_consumer(&*region, 9) }.err(), Some(EvictError::NoSuchSlot { slot: 9, slots: 2 }));
    // SAFETY: `gone` was forgotten: it never reads again, and its slot was
    // never freed, so nobody else holds it.
    let _ = unsafe { evict_consumer(&*region, slot) }.unwrap();
    assert!(tx.try_send(&big).is_ok());
    assert_eq!(tx.try_send(&big).err(), Some(ClaimError::Full));
    let _ = slow.close();
    assert!(tx.try_send(&big).is_ok(), "no consumer: nothing to wait for");
    assert_eq!(tx.try_send(&[0; 200]).err(), Some(ClaimError::TooLarge { len: 200, max: 96 }));
}

#[test]
fn lossy_lapped_consumer_learns_exact_loss_and_gaps() {
    let region = log(Mode::Lossy, 256, 1, 1);
    let mut tx = Producer::attach(region.clone()).unwrap();
    let mut rx = Consumer::attach(region.clone()).unwrap();
    assert_eq!(send(&mut tx, &[1; 8], 0), 0);
    {
        let mut g = rx.try_read().unwrap();
        assert_eq!(g.payload(), None, "no in-place view on a lossy log");
        let mut buf = [0; 8];
        assert_eq!((g.read_into(&mut buf), buf, g.seq()), (Ok(8), [1; 8], 0));
    }
    let read_to = rx.cursor();
    assert_eq!(read_to, 40);
    // 56-byte frames: the log laps the consumer (with padding at 224).
    let positions: Vec<u64> = (1..=10).map(|seq| send(&mut tx, &[seq as u8; 24], seq)).collect();
    let last = *positions.last().unwrap();
    assert!(last > read_to + 256);
    assert_eq!(rx.try_read().err(), Some(ReadError::Lapped { missed_bytes: last - read_to }));
    let mut g = rx.try_read().unwrap();
    let mut buf = [0; 24];
    assert_eq!(g.read_into(&mut buf), Ok(24));
    assert_eq!((buf, g.seq(), g.missed_before()), ([10; 24], 10, 9), "seqs 1..=9 missed");
    drop(g);
    assert_eq!(rx.try_read().err(), Some(ReadError::Empty));
    send(&mut tx, &[11; 3], 11);
    assert_eq!(rx.try_read().map(|g| (g.seq(), g.missed_before())).ok(), Some((11, 0)));
}

#[test]
fn lossy_read_into_detects_overwrite_during_read() {
    let region = log(Mode::Lossy, 256, 1, 1);
    let mut tx = Producer::attach(region.clone()).unwrap();
    let mut rx = Consumer::attach(region.clone()).unwrap();
    send(&mut tx, &[1; 40], 0);
    let mut g = rx.try_read().unwrap();
    let last = (1..=6).map(|seq| send(&mut tx, &[2; 40], seq)).last().unwrap();
    assert_eq!(g.read_into(&mut [0; 40]), Err(ReadError::Lapped { missed_bytes: last }));
    drop(g);
    assert_eq!(rx.try_read().map(|g| g.seq()).ok(), Some(6));
}

#[test]
fn abandoned_claims_become_padding() {
    let region = log(Mode::Reliable, 256, 1, 1);
    let mut tx = Producer::attach(region.clone()).unwrap();
    let mut rx = Consumer::attach(region.clone()).unwrap();
    drop(tx.try_claim(10).unwrap());
    let _ = tx.try_claim(20).unwrap().abandon();
    send(&mut tx, b"after", 0);
    let g = rx.try_read().unwrap();
    assert_eq!((g.payload(), g.seq()), (Some(&b"after"[..]), 0));
}

#[test]
fn dead_producer_hole_is_padded_by_eviction() {
    let region = log(Mode::Reliable, 256, 1, 2);
    let mut dead = Producer::attach(region.clone()).unwrap();
    let mut live = Producer::attach(region.clone()).unwrap();
    let mut rx = Consumer::attach(region.clone()).unwrap();
    std::mem::forget(dead.try_claim(50).unwrap());
    send(&mut live, b"behind the hole", 1);
    assert_eq!(rx.try_read().err(), Some(ReadError::Empty));
    let id = dead.id() as usize;
    std::mem::forget(dead);
    // SAFETY: `dead` and its claim were forgotten: neither writes again, and
    // its slot was never freed, so nobody else holds it.
    let _ = unsafe { evict_producer(&*region, id) }.unwrap();
    let g = rx.try_read().unwrap();
    assert_eq!((g.payload(), g.producer()), (Some(&b"behind the hole"[..]), live.id()));
    drop(g);
    assert!(Producer::attach(region.clone()).is_ok(), "the slot is free again");
}

#[test]
fn attach_validates_and_slots_run_out() {
    let region = Arc::new(HeapRegion::new(region_len(256, 1, 1)));
    assert!(matches!(Consumer::attach(region.clone()), Err(AttachError::BadMagic { .. })));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet (the
    // refused init writes nothing).
    assert!(matches!(unsafe { init(&*region, Mode::Lossy, 2, 1, 0) }, Err(AttachError::BadSize { .. })));
    // SAFETY: as above.
    unsafe { init(&*region, Mode::Lossy, 1, 1, 0) }.unwrap();
    let _rx = Consumer::attach(region.clone()).unwrap();
    assert_eq!(Consumer::attach(region.clone()).err(), Some(AttachError::Busy));
    let tx = Producer::attach(region.clone()).unwrap();
    assert_eq!(Producer::attach(region.clone()).err(), Some(AttachError::Busy));
    tx.close();
    assert!(Producer::attach(region.clone()).is_ok());
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn scribbled_region_never_panics() {
    for mode in [Mode::Reliable, Mode::Lossy] {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let region = log(mode, 512, 2, 2);
        let salt = SALT | SALT_MARK;
        let len = region.len();
        let mut tx = Producer::attach(region.clone()).unwrap();
        let mut rx = Consumer::attach(region.clone()).unwrap();
        for round in 0..3000 {
            // Scribble: random words anywhere, or a plausible header right
            // where the consumer reads (its commit word right, the rest
            // random), or plausible tail and latest positions.
            let data = control_len(2, 2);
            match rng.next() % 4 {
                0 => {
                    let off = (BLOCK + rng.next() as usize % (len - BLOCK)) & !7;
                    region.word(off).store(rng.next(), Ordering::Relaxed);
                }
                1 => {
                    let c = rx.cursor();
                    let off = data + (c as usize & 511);
                    if off + HEADER <= len {
                        let kind = 1 + rng.next() as u8 % 3;
                        let word =
                            FrameWord { len: rng.next() as u32 % 600, kind, flags: 0, tag: rng.next() as u16 % 3 };
                        region.word(off + 8).store(word.encode(), Ordering::Relaxed);
                        region.word(off + 16).store(rng.next() % 4, Ordering::Relaxed);
                        region.word(off).store(c ^ salt, Ordering::Relaxed);
                    }
                }
                2 => region.word(OFF_TAIL).store(rx.cursor() + (rng.next() % 1200), Ordering::Relaxed),
                _ => region.word(OFF_LATEST).store(rx.cursor() + (rng.next() % 1200), Ordering::Relaxed),
            }
            let _ = tx.try_send(&[round as u8; 13]);
            for _ in 0..4 {
                if let Ok(mut g) = rx.try_read() {
                    let _ = g.payload().map(|p| p.len());
                    let _ = g.read_into(&mut [0; 64]);
                }
            }
            let _ = rx.release();
            if round % 97 == 0 {
                // Slots not held by `tx` or `rx` (free, or out of range).
                let mut other = |held: usize| if rng.next() % 2 == 0 { 1 - held } else { 2 };
                let (p, c) = (other(tx.id() as usize), other(rx.slot()));
                // SAFETY: no live producer or consumer holds them (the
                // attaches below drop theirs before the next eviction).
                let _ = unsafe { evict_producer(&*region, p) };
                // SAFETY: as above.
                let _ = unsafe { evict_consumer(&*region, c) };
                let _ = Consumer::attach(region.clone()).map(|mut c| c.try_read().is_ok());
                let _ = Producer::attach(region.clone()).map(|mut p| p.try_send(b"x").is_ok());
            }
        }
    }
}

/// A lossy log lends no writable slice (a lapped reader may be copying the
/// frame), and its word-wise copies keep every byte, whatever the offsets
/// and lengths, partial words included.
#[test]
fn lossy_payloads_travel_through_words_intact() {
    let region = log(Mode::Lossy, 1024, 1, 1);
    let mut tx = Producer::attach(region.clone()).unwrap();
    let mut rx = Consumer::attach(region.clone()).unwrap();
    for len in [0usize, 1, 7, 8, 9, 15, 16, 17, 63] {
        let bytes: Vec<u8> = (0..len).map(|k| (k * 37 + len) as u8).collect();
        let mut claim = tx.try_claim(len).unwrap();
        assert!(claim.payload_mut().is_none(), "no in-place writable view on a lossy log");
        // Written in two parts at an unaligned split, as a gather would.
        let split = len / 3;
        claim.write(split, &bytes[split..]);
        claim.write(0, &bytes[..split]);
        let _ = claim.commit();
        let mut g = rx.try_read().unwrap();
        let mut got = vec![0xAA; len + 5];
        assert_eq!(g.read_into(&mut got), Ok(len));
        assert_eq!(&got[..len], &bytes[..], "len {len}");
        assert!(got[len..].iter().all(|&b| b == 0xAA), "nothing written past the payload");
    }
}

/// A keeper takes slots for a joiner, detaches them, and the joiner adopts
/// them: it reads from the start it was given (nothing before it), its
/// frames continue the slot's sequence numbers, and the detached cursor
/// held producers back until the adoption moved it.
#[test]
fn detached_slots_are_adopted_where_the_keeper_said() {
    let r = log(Mode::Reliable, 256, 2, 3);
    let mut early = Producer::attach_slot(r.clone(), 2).unwrap();
    assert_eq!(early.id(), 2);
    assert!(matches!(Producer::attach_slot(r.clone(), 2), Err(AttachError::Busy)));
    assert!(matches!(Producer::attach_slot(r.clone(), 3), Err(AttachError::BadGeometry { .. })));
    let held = Consumer::attach_slot(r.clone(), 1).unwrap();
    assert!(matches!(Consumer::attach_slot(r.clone(), 1), Err(AttachError::Busy)));
    assert_eq!(held.detach(), 1);
    send(&mut early, b"before", 0);
    let start = tail(&*r).unwrap();
    send(&mut early, b"after", 0);
    // The detached cursor still holds producers back: 256 bytes of log.
    let big = vec![0u8; 64];
    let mut sent = 0;
    while early.try_send(&big).is_ok() {
        sent += 1;
        assert!(sent < 8, "a detached consumer must keep holding the log");
    }
    assert_eq!(consumer_cursor(&*r, 1).unwrap(), Some(0));
    // A start behind the published cursor, past the tail or misaligned is refused.
    let t = tail(&*r).unwrap();
    for bad in [t + 8, start + 4] {
        // SAFETY: slot 1 was detached above and nothing else in this test holds it.
        assert!(matches!(unsafe { Consumer::adopt(r.clone(), 1, bad) }, Err(AttachError::BadGeometry { .. })));
    }
    // SAFETY: as above; the failed attempts created no side.
    let mut rx = unsafe { Consumer::adopt(r.clone(), 1, start) }.unwrap();
    assert_eq!(consumer_cursor(&*r, 1).unwrap(), Some(start));
    let mut got = Vec::new();
    while let Ok(g) = rx.try_read() {
        got.push(g.payload().unwrap().to_vec());
    }
    assert_eq!(got[0], b"after");
    assert_eq!(got.len(), 1 + sent);
    let seq = producer_next_seq(&*r, 2).unwrap().unwrap();
    assert_eq!(seq, 2 + sent as u64);
    assert_eq!(early.detach(), 2);
    // SAFETY: slot 2 was detached just above and nothing else holds it.
    let mut again = unsafe { Producer::adopt(r.clone(), 2) }.unwrap();
    let _ = rx.release();
    let claim = again.try_claim(1).unwrap();
    assert_eq!(claim.seq(), seq);
    drop(claim);
    // A slot nobody holds cannot be adopted.
    // SAFETY: slot 0 is free: adopt must refuse it without creating a side.
    assert!(matches!(unsafe { Consumer::adopt(r.clone(), 0, 0) }, Err(AttachError::BadGeometry { .. })));
}

/// `readable_at` answers for a consumer's cursor what its read would find:
/// nothing at the tail, nothing while the next claim is being written,
/// something once it is committed (padding too, and past the short end of
/// the data area), and a lap on a lossy log.
#[test]
fn readable_at_sees_commits_not_claims() {
    for mode in [Mode::Reliable, Mode::Lossy] {
        let r = log(mode, 256, 1, 1);
        let mut tx = Producer::attach(r.clone()).unwrap();
        let mut rx = Consumer::attach(r.clone()).unwrap();
        assert!(!readable_at(&*r, rx.cursor()).unwrap(), "empty log");
        let claim = tx.try_claim(8).unwrap();
        assert!(!readable_at(&*r, rx.cursor()).unwrap(), "a claim being written");
        let _ = claim.commit();
        assert!(readable_at(&*r, rx.cursor()).unwrap(), "a committed frame");
        drop(rx.try_read().unwrap());
        assert!(!readable_at(&*r, rx.cursor()).unwrap(), "read to the tail");
        drop(tx.try_claim(8).unwrap());
        assert!(readable_at(&*r, rx.cursor()).unwrap(), "an aborted claim is committed padding");
        assert!(rx.try_read().is_err());
        assert!(!readable_at(&*r, rx.cursor()).unwrap(), "padding skipped to the tail");
        // Fill to 8 bytes short of the end: the next frame starts past the short end.
        let mut left = 256 - (rx.cursor() as usize % 256) - 8;
        while left > 0 {
            let frame = if left > 128 { 64 } else { left };
            send(&mut tx, &vec![1u8; frame - HEADER], 0);
            drop(rx.try_read().unwrap());
            let _ = rx.release();
            left -= frame;
        }
        assert_eq!(rx.cursor() % 256, 248);
        assert!(!readable_at(&*r, rx.cursor()).unwrap(), "the short end, nothing after it");
        send(&mut tx, b"wrapped", 0);
        assert!(readable_at(&*r, rx.cursor()).unwrap(), "a frame past the short end");
        if mode == Mode::Lossy {
            for _ in 0..16 {
                send(&mut tx, &[2u8; 40], 0);
            }
            assert!(readable_at(&*r, rx.cursor()).unwrap(), "lapped");
        }
    }
}

/// A producer's own consumer steps over the frames it marked, unread, only
/// where its cursor is, and only over a plausible extent; the producer's
/// next frame then counts no loss. The claim prefetch, at any position,
/// changes nothing.
#[test]
fn own_frames_are_skipped_by_their_marks() {
    let region = log(Mode::Reliable, 256, 2, 2);
    let mut me = Producer::attach(region.clone()).unwrap();
    let mut peer = Producer::attach(region.clone()).unwrap();
    let mut rx = Consumer::attach(region.clone()).unwrap();
    let mut other = Consumer::attach(region.clone()).unwrap();
    let mut claim = me.try_claim(24).unwrap();
    claim.write(0, &[5u8; 24]);
    let mark = claim.mark();
    let _ = claim.commit();
    assert_eq!((mark.position, mark.end, mark.producer, mark.seq), (0, 56, me.id(), 0));
    send(&mut peer, b"from the peer", 0);
    for at in [0, 3, 56, u64::MAX, 1 << 40] {
        me.prefetch_claim(at);
    }
    // Not at the cursor, or not a frame's extent: refused, cursor unchanged.
    for bad in [
        FrameMark { position: 8, ..mark },
        FrameMark { end: mark.position + 8, ..mark },
        FrameMark { end: mark.end + 4, ..mark },
        FrameMark { end: mark.position + 512, ..mark },
    ] {
        assert!(!rx.skip_frame(bad), "{bad:?}");
        assert_eq!(rx.cursor(), 0);
    }
    assert!(rx.skip_frame(mark));
    assert!(!rx.skip_frame(mark), "only where the cursor is");
    let g = rx.try_read().unwrap();
    assert_eq!((g.payload(), g.producer(), g.position(), g.end()), (Some(&b"from the peer"[..]), peer.id(), 56, 104));
    drop(g);
    send(&mut me, b"again", 0);
    let g = rx.try_read().unwrap();
    assert_eq!((g.producer(), g.seq(), g.missed_before()), (me.id(), 1, 0), "the skipped frame counts as read");
    drop(g);
    // A consumer that did not skip reads the marked frame intact.
    let g = other.try_read().unwrap();
    assert_eq!((g.payload(), g.end()), (Some(&[5u8; 24][..]), mark.end));
}

#[test]
fn sent_parts_are_one_frame_read_once_after_a_peek_in_both_modes() {
    for mode in [Mode::Reliable, Mode::Lossy] {
        // 512 bytes: the frames below wrap the data area many times, so
        // claims pad its end and readers step over padding and abandoned
        // claims on the inline path's fallback.
        let region = log(mode, 512, 2, 2);
        let mut tx = Producer::attach(region.clone()).unwrap();
        let mut rx = Consumer::attach(region.clone()).unwrap();
        let mut marks = Consumer::attach(region.clone()).unwrap();
        for seq in 0..200u64 {
            if seq % 7 == 3 {
                let _ = tx.try_claim(40).unwrap().abandon();
            }
            let body = content(tx.id(), seq);
            let (a, b) = body.split_at(body.len() / 3);
            let (n, mark) = tx.try_send_parts(&[a, &[], b], seq * 10, seq as u8).unwrap();
            assert_eq!(n, Notify::None, "nobody sleeps");
            assert_eq!((mark.producer, mark.seq), (tx.id(), seq));
            // A peek, then the read: the same frame, validated once.
            let info = rx.peek_frame().unwrap();
            assert_eq!(
                (info.position, info.len, info.seq, info.meta, info.flags),
                (mark.position, body.len(), seq, seq * 10, seq as u8)
            );
            let mut g = rx.try_read().unwrap();
            assert_eq!((g.position(), g.end(), g.seq(), g.missed_before()), (mark.position, mark.end, seq, 0));
            let mut got = vec![0u8; body.len()];
            assert_eq!(g.read_into(&mut got), Ok(body.len()));
            assert_eq!(got, body, "{mode:?} frame {seq}");
            drop(g);
            assert!(matches!(rx.try_read(), Err(ReadError::Empty)), "read once");
            let _ = rx.release();
            // The sender's mark is the frame's extent (skipped unread, once
            // a peek stepped over the padding in front of it).
            assert_eq!(marks.peek_frame().map(|i| i.position), Ok(mark.position));
            assert!(marks.skip_frame(mark), "{mode:?} frame {seq}");
            let _ = marks.release();
        }
        // A part too large for the log is refused, and the log goes on.
        let big = vec![0u8; tx.max_payload() + 1];
        assert!(matches!(tx.try_send_parts(&[&big], 0, 0), Err(ClaimError::TooLarge { .. })));
        let (_, mark) = tx.try_send_parts(&[b"after"], 0, 0).unwrap();
        let g = rx.try_read().unwrap();
        assert_eq!((g.position(), g.len(), g.seq()), (mark.position, 5, 200));
    }
}

#[test]
fn sent_parts_wait_for_the_slowest_reader_of_a_reliable_log() {
    let region = log(Mode::Reliable, 256, 1, 1);
    let mut tx = Producer::attach(region.clone()).unwrap();
    let mut rx = Consumer::attach(region.clone()).unwrap();
    let msg = [9u8; 40];
    let mut sent = 0;
    while tx.try_send_parts(&[&msg], 0, 0).is_ok() {
        sent += 1;
        assert!(sent < 10, "a 256-byte log holds fewer than ten 72-byte frames");
    }
    assert!(matches!(tx.try_send_parts(&[&msg], 0, 0), Err(ClaimError::Full)));
    for _ in 0..sent {
        assert_eq!(rx.try_read().unwrap().payload(), Some(&msg[..]));
    }
    let _ = rx.release();
    assert!(tx.try_send_parts(&[&msg], 0, 0).is_ok(), "room again once the reader released");
}
