//! Hostile peers: words a peer can write, set to patterns chosen to trap a
//! reader (padding that points back at itself, padding of length 0 or
//! longer than the ring, lengths beyond the capacity, positions behind the
//! reader or more than a lap ahead), then every read form is called. Each
//! must return a frame or a typed error: never hang (a watchdog thread fails
//! the test after a generous deadline), never panic.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc as chan, Arc};
use std::thread;
use std::time::Duration;

use proptest::prelude::*;

use crate::frame::{FrameWord, KIND_CLAIMED, KIND_DATA, KIND_PAD};
use crate::region::Access;
use crate::{broadcast, mpsc, pool, spsc, ClaimError, HeapRegion, ReadError, WakeMode};

/// Runs `f` on its own thread and fails if it does not return within a
/// generous deadline (a hang guard, not a timing assertion) or panics.
fn watchdog<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = chan::channel();
    let _worker = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(v) => v,
        Err(chan::RecvTimeoutError::Timeout) => panic!("{what}: hung (a loop over peer-written memory is unbounded)"),
        Err(chan::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

fn pad(len: u64) -> u64 {
    FrameWord { len: len as u32, kind: KIND_PAD, flags: 0, tag: 0 }.encode()
}

fn data(len: u64, tag: u16) -> u64 {
    FrameWord { len: len as u32, kind: KIND_DATA, flags: 0, tag }.encode()
}

fn is_corrupt(r: &Result<impl Sized, ReadError>) -> bool {
    matches!(r, Err(ReadError::Corrupt(_)))
}

// ---------------------------------------------------------------- SPSC

const SPSC_CAP: usize = 256;

fn spsc_ring() -> (Arc<HeapRegion>, spsc::Producer<Arc<HeapRegion>>, spsc::Consumer<Arc<HeapRegion>>) {
    let region = Arc::new(HeapRegion::new(spsc::region_len(SPSC_CAP)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { spsc::init(&*region) }.unwrap();
    let tx = spsc::Producer::attach(region.clone()).unwrap();
    let rx = spsc::Consumer::attach(region.clone()).unwrap();
    (region, tx, rx)
}

/// Every read form of the SPSC consumer, each once; true if each gave a
/// `Corrupt` error.
fn spsc_all_reads_corrupt(rx: &mut spsc::Consumer<Arc<HeapRegion>>) -> bool {
    let peek = rx.peek();
    let has = rx.has_frame();
    let read = rx.try_read().map(|g| g.len());
    let batch = rx.read_batch(usize::MAX, |f| assert!(f.len() <= SPSC_CAP)).map(|(n, _)| n);
    is_corrupt(&peek) && !has && is_corrupt(&read) && is_corrupt(&batch)
}

/// Writes `words` (offset in the data area, value) and points the
/// producer's published tail at `tail` (a hint read_batch follows).
fn spsc_scribble(region: &HeapRegion, words: &[(usize, u64)], tail: u64) {
    for &(at, w) in words {
        region.word(spsc::DATA + at).store(w, Relaxed);
    }
    region.word(spsc::OFF_TAIL).store(tail, Relaxed);
}

/// A hostile pattern: its name, words (data-area offset, value), the tail.
type SpscCase = (&'static str, Vec<(usize, u64)>, u64);

#[test]
fn spsc_padding_that_points_back_at_itself_is_corrupt() {
    let cap = SPSC_CAP as u64;
    let cases: Vec<SpscCase> = vec![
        // A whole lap of padding at offset 0: skipping it lands on itself.
        ("lap at 0", vec![(0, pad(cap))], cap),
        ("length 0", vec![(0, pad(0))], 64),
        ("longer than the ring", vec![(0, pad(2 * cap))], 64),
        ("u32::MAX", vec![(0, pad(u32::MAX as u64))], 64),
        ("not to the end", vec![(0, pad(64))], 64),
        // Valid padding at 128, then padding at 0 that loops forever.
        ("wrap to itself", vec![(128, pad(128)), (0, pad(cap))], 2 * cap),
        ("header length beyond capacity", vec![(0, data(cap * 4, 0))], 64),
        ("header length u32::MAX", vec![(0, data(u32::MAX as u64, 0))], 64),
        ("unknown kind", vec![(0, FrameWord { len: 8, kind: 9, flags: 0, tag: 0 }.encode())], 64),
        ("claimed kind", vec![(0, FrameWord { len: 8, kind: KIND_CLAIMED, flags: 0, tag: 0 }.encode())], 64),
        ("sequence out of order", vec![(0, data(8, 7))], 64),
    ];
    for (what, words, tail) in cases {
        let ok = watchdog(what, move || {
            let (region, _tx, mut rx) = spsc_ring();
            if words[0].0 != 0 {
                // Reach offset 128 with honest frames first.
                let mut tx = _tx;
                for _ in 0..4 {
                    let _ = tx.try_send(&[1; 16]).unwrap();
                }
                for _ in 0..4 {
                    drop(rx.try_read().unwrap());
                }
                let _ = rx.release();
                std::mem::forget(tx);
            }
            spsc_scribble(&region, &words, tail);
            spsc_all_reads_corrupt(&mut rx)
        });
        assert!(ok, "{what}: every read form must report Corrupt");
    }
}

#[test]
fn spsc_tail_behind_or_more_than_a_lap_ahead_is_corrupt() {
    for (what, tail) in [("a lap and 8 ahead", SPSC_CAP as u64 + 8 + 32), ("u64::MAX", u64::MAX), ("behind", 8)] {
        let r = watchdog(what, move || {
            let (region, mut tx, mut rx) = spsc_ring();
            let _ = tx.try_send(&[3; 16]).unwrap();
            drop(rx.try_read().unwrap()); // consumer at 32
            region.word(spsc::OFF_TAIL).store(tail, Relaxed);
            rx.read_batch(usize::MAX, |_| ()).map(|(n, _)| n)
        });
        assert!(is_corrupt(&r), "{what}: {r:?}");
    }
}

#[test]
fn spsc_consumer_position_out_of_range_is_corrupt_for_the_producer() {
    for (what, head) in [("ahead of the tail", 4096u64), ("u64::MAX", u64::MAX)] {
        let r = watchdog(what, move || {
            let (region, mut tx, _rx) = spsc_ring();
            region.word(spsc::OFF_HEAD).store(head, Relaxed);
            // Fill until the producer must read the head.
            loop {
                match tx.try_send(&[0; 40]) {
                    Ok(_) => continue,
                    other => return other,
                }
            }
        });
        assert!(matches!(r, Err(ClaimError::Corrupt(_))), "{what}: {r:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random words from a hostile alphabet (padding and frames of any
    /// length, zero, all ones) at random places, a random tail: every read
    /// form returns, and what it returns is a frame inside the ring or an
    /// error.
    #[test]
    fn spsc_any_scribble_ends_in_a_frame_or_an_error(
        words in prop::collection::vec((0usize..SPSC_CAP / 8, 0u8..6, any::<u32>()), 1..12),
        tail in prop_oneof![0u64..4 * SPSC_CAP as u64, any::<u64>()],
    ) {
        let words: Vec<(usize, u64)> = words
            .into_iter()
            .map(|(i, k, len)| {
                let w = match k {
                    0 => pad(len as u64 % (2 * SPSC_CAP as u64)),
                    1 => data(len as u64 % (2 * SPSC_CAP as u64), 0),
                    2 => pad(len as u64),
                    3 => 0,
                    4 => u64::MAX,
                    _ => (len as u64) << 32 | len as u64,
                };
                (i * 8, w)
            })
            .collect();
        watchdog("spsc scribble", move || {
            let (region, mut tx, mut rx) = spsc_ring();
            spsc_scribble(&region, &words, tail);
            // The consumer's position too, as the producer reads it.
            region.word(spsc::OFF_HEAD).store(tail.rotate_left(7), Relaxed);
            for i in 0..8 {
                let _ = (tx.free_bytes(), tx.fits(i * 20), tx.ready_for(i * 20));
                let _ = tx.try_send(&[i as u8; 24]);
                let _ = rx.peek();
                if let Ok(g) = rx.try_read() {
                    assert!(g.len() <= spsc::max_payload(SPSC_CAP));
                }
                let _ = rx.read_batch(usize::MAX, |f| assert!(f.len() <= spsc::max_payload(SPSC_CAP)));
                let _ = rx.release();
            }
        });
    }
}

// ---------------------------------------------------------------- MPSC

const MPSC_CAP: usize = 256;

fn mpsc_ring() -> (Arc<HeapRegion>, mpsc::Consumer<Arc<HeapRegion>>) {
    let region = Arc::new(HeapRegion::new(mpsc::region_len(MPSC_CAP)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { mpsc::init(&*region) }.unwrap();
    let rx = mpsc::Consumer::attach(region.clone()).unwrap();
    (region, rx)
}

#[test]
fn mpsc_padding_loops_are_corrupt() {
    let cap = MPSC_CAP as u64;
    let every_word_pads: Vec<(usize, u64)> = (0..MPSC_CAP / 8).map(|i| (i * 8, pad(8))).collect();
    let cases: Vec<(&str, Vec<(usize, u64)>)> = vec![
        ("a lap of padding at 0", vec![(0, pad(cap))]),
        ("every word pads 8 bytes", every_word_pads),
        ("padding to the end, then a lap at 0", vec![(0, pad(64)), (64, pad(cap - 64))]),
        ("length 0", vec![(0, pad(0))]),
        ("longer than the ring", vec![(0, pad(2 * cap))]),
        ("header length beyond capacity", vec![(0, data(cap * 4, 0))]),
    ];
    for (what, words) in cases {
        let (read, batch) = watchdog(what, move || {
            let (region, mut rx) = mpsc_ring();
            for &(at, w) in &words {
                region.word(mpsc::DATA + at).store(w, Relaxed);
            }
            region.word(mpsc::OFF_TAIL).store(u64::MAX, Relaxed);
            let read = rx.try_read().map(|g| g.len());
            let batch = rx.read_batch(usize::MAX, |_| ()).map(|(n, _)| n);
            let _ = rx.release();
            // SAFETY: no producer is attached: nobody holds a claim.
            let _ = unsafe { rx.unblock() };
            (read, batch)
        });
        assert!(is_corrupt(&read) && is_corrupt(&batch), "{what}: {read:?} {batch:?}");
    }
}

#[test]
fn mpsc_a_lap_of_valid_frames_is_read_at_most_once_per_release() {
    // Data frames in every slot of the ring, never released: the consumer
    // reads one lap of them and then refuses to read its own frames again.
    let n = watchdog("lap of frames", || {
        let (region, mut rx) = mpsc_ring();
        for i in 0..MPSC_CAP / 32 {
            region.word(mpsc::DATA + i * 32).store(data(16, 0), Relaxed);
        }
        let mut n = 0;
        while let Ok(g) = rx.try_read() {
            drop(g);
            n += 1;
            assert!(n <= MPSC_CAP / 32, "read past one lap");
        }
        n
    });
    assert!(n <= MPSC_CAP / 32);
}

#[test]
fn mpsc_producer_refuses_tails_and_heads_out_of_range() {
    // (tail, head) as a peer could leave them: the claim must end in a
    // typed error, never an overflow panic or a claim behind the consumer.
    let cases = [
        ("tail u64::MAX", u64::MAX, 0),
        ("tail near u64::MAX", u64::MAX - 7, 0),
        ("tail behind the head", 64, 128),
        ("head u64::MAX", 1 << 20, u64::MAX),
    ];
    for (what, tail, head) in cases {
        let r = watchdog(what, move || {
            let (region, _rx) = mpsc_ring();
            let mut tx = mpsc::Producer::attach(region.clone()).unwrap();
            // A first claim reads the head (the ring looks full from 0).
            let _ = tx.try_send(&[1; 8]);
            region.word(mpsc::OFF_HEAD).store(head, Relaxed);
            region.word(mpsc::OFF_TAIL).store(tail, Relaxed);
            (0..8).map(|_| tx.try_send(&[2; 100])).last().unwrap()
        });
        assert!(matches!(r, Err(mpsc::SendError::Claim(ClaimError::Corrupt(_) | ClaimError::Full))), "{what}: {r:?}");
    }
}

#[test]
fn spsc_producer_reads_of_a_hostile_head_never_overflow() {
    watchdog("free_bytes", || {
        let (region, tx, _rx) = spsc_ring();
        region.word(spsc::OFF_HEAD).store(u64::MAX, Relaxed);
        assert!(tx.free_bytes() <= SPSC_CAP);
        assert!(!tx.fits(1 << 20));
    });
}

#[test]
fn broadcast_producer_refuses_a_tail_out_of_range() {
    for tail in [u64::MAX - 7, u64::MAX - 15, 12] {
        let r = watchdog("broadcast tail", move || {
            let (region, _rx, _, _) = bc_log();
            let mut tx = broadcast::Producer::attach(region.clone()).unwrap();
            region.word(broadcast::OFF_TAIL).store(tail, Relaxed);
            tx.try_send(&[0; 40])
        });
        assert!(matches!(r, Err(ClaimError::Corrupt(_) | ClaimError::Full)), "{tail:#x}: {r:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn mpsc_any_scribble_ends_in_a_frame_or_an_error(
        words in prop::collection::vec((0usize..MPSC_CAP / 8, 0u8..5, any::<u32>()), 1..40),
        tail in any::<u64>(),
    ) {
        watchdog("mpsc scribble", move || {
            let (region, mut rx) = mpsc_ring();
            for (i, k, len) in words {
                let w = match k {
                    0 => pad(8 * (len as u64 % 40)),
                    1 => data(len as u64 % 200, len as u16),
                    2 => FrameWord { len: len % 200, kind: KIND_CLAIMED, flags: 0, tag: 1 }.encode(),
                    3 => 0,
                    _ => len as u64 * 0x9E37_79B9,
                };
                region.word(mpsc::DATA + i * 8).store(w, Relaxed);
            }
            region.word(mpsc::OFF_TAIL).store(tail, Relaxed);
            let mut tx = mpsc::Producer::attach(region.clone()).unwrap();
            region.word(mpsc::OFF_HEAD).store(tail.rotate_left(7), Relaxed);
            for _ in 0..8 {
                let _ = tx.try_send(&[5; 40]);
                let _ = rx.read_batch(usize::MAX, |f| assert!(f.len() <= mpsc::max_payload(MPSC_CAP)));
                // SAFETY: no producer is attached: nobody holds a claim.
                let _ = unsafe { rx.unblock() };
            }
        });
    }
}

// ---------------------------------------------------------------- broadcast

const BC_CAP: usize = 256;

fn bc_log() -> (Arc<HeapRegion>, broadcast::Consumer<Arc<HeapRegion>>, usize, u64) {
    let region = Arc::new(HeapRegion::new(broadcast::region_len(BC_CAP, 2, 2)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { broadcast::init(&*region, broadcast::Mode::Reliable, 2, 2, 0x1234_5678) }.unwrap();
    let rx = broadcast::Consumer::attach(region.clone()).unwrap();
    let salt = region.word(broadcast::OFF_SALT).load(Relaxed);
    (region, rx, broadcast::control_len(2, 2), salt)
}

/// Writes a committed broadcast header at `pos` (the commit word a peer
/// can compute: the salt is in the region).
fn bc_header(region: &HeapRegion, data: usize, salt: u64, pos: u64, word: u64) {
    let off = data + (pos as usize & (BC_CAP - 1));
    region.word(off + 8).store(word, Relaxed);
    region.word(off).store(pos ^ salt, Relaxed);
}

#[test]
fn broadcast_padding_past_the_tail_is_corrupt() {
    let cap = BC_CAP as u64;
    let cases: Vec<(&str, Vec<(u64, u64)>)> = vec![
        ("a lap of padding", (0..cap / 32).map(|i| (i * 32, pad(32))).collect()),
        ("padding to the end", vec![(0, pad(cap))]),
        ("length 0", vec![(0, pad(0))]),
        ("longer than the ring", vec![(0, pad(2 * cap))]),
        ("header length beyond capacity", vec![(0, data(4 * cap, 0))]),
        ("producer id out of range", vec![(0, data(8, 9))]),
    ];
    for (what, headers) in cases {
        let r = watchdog(what, move || {
            let (region, mut rx, data_off, salt) = bc_log();
            for &(pos, w) in &headers {
                bc_header(&region, data_off, salt, pos, w);
            }
            let r = rx.try_read().map(|g| g.len());
            let _ = rx.try_read().map(|g| g.len());
            r
        });
        assert!(is_corrupt(&r), "{what}: {r:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn broadcast_any_scribble_ends_in_a_frame_or_an_error(
        headers in prop::collection::vec((0u64..BC_CAP as u64 / 8 - 3, 0u8..3, any::<u32>()), 1..20),
        tail in any::<u64>(),
    ) {
        watchdog("broadcast scribble", move || {
            let (region, mut rx, data_off, salt) = bc_log();
            for (i, k, len) in headers {
                let w = match k {
                    0 => pad(8 * (len as u64 % 80)),
                    1 => data(len as u64 % 300, (len % 3) as u16),
                    _ => len as u64,
                };
                bc_header(&region, data_off, salt, i * 8, w);
            }
            region.word(broadcast::OFF_TAIL).store(tail, Relaxed);
            for _ in 0..8 {
                if let Ok(g) = rx.try_read() {
                    assert!(g.len() <= broadcast::max_payload(BC_CAP));
                }
                let _ = rx.release();
            }
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A lossy log's lap words (what readers validate copies against) and
    /// its tail, scribbled: readers get frames, losses or nothing, producers
    /// claims or `Full`; never a panic or a hang.
    #[test]
    fn broadcast_lossy_scribbled_lap_words_end_in_a_frame_or_an_error(
        laps in prop::collection::vec(any::<u64>(), broadcast::CHUNKS),
        tail in prop::option::of(any::<u64>()),
        sent in 0usize..40,
    ) {
        watchdog("broadcast lap-word scribble", move || {
            let region = Arc::new(HeapRegion::new(broadcast::region_len(BC_CAP, 2, 2)));
            // SAFETY: a fresh region: no side attached, nobody else uses it yet.
            unsafe { broadcast::init(&*region, broadcast::Mode::Lossy, 2, 2, 0x1234_5678) }.unwrap();
            let mut rx = broadcast::Consumer::attach(region.clone()).unwrap();
            let mut tx = broadcast::Producer::attach(region.clone()).unwrap();
            for i in 0..sent {
                let _ = tx.try_send(&[i as u8; 24]);
            }
            for (k, lap) in laps.iter().enumerate() {
                region.word(broadcast::OFF_CHUNKS + 8 * k).store(*lap, Relaxed);
            }
            if let Some(t) = tail {
                region.word(broadcast::OFF_TAIL).store(t, Relaxed);
            }
            for i in 0..8 {
                let mut buf = [0u8; 64];
                if let Ok(mut g) = rx.try_read() {
                    assert!(g.len() <= broadcast::max_payload(BC_CAP));
                    let _ = g.read_into(&mut buf);
                }
                let _ = tx.try_send(&[i as u8; 40]);
            }
        });
    }
}

// ---------------------------------------------------------------- pool

#[test]
fn pool_consumer_position_out_of_range_is_corrupt_for_the_producer() {
    for (what, head) in [("ahead of the allocation", 4096u64), ("u64::MAX", u64::MAX)] {
        let r = watchdog(what, move || {
            let region = Arc::new(HeapRegion::new(pool::region_len(1024)));
            // SAFETY: a fresh region: no side attached, nobody else uses it yet.
            unsafe { pool::init(&*region, WakeMode::Fenced) }.unwrap();
            let mut tx = pool::Producer::attach(region.clone()).unwrap();
            let _rx = pool::Consumer::attach(region.clone()).unwrap();
            for _ in 0..2 {
                let _ = tx.try_alloc(512).unwrap().commit();
            }
            region.word(pool::OFF_HEAD).store(head, Relaxed);
            tx.try_alloc(64).map(|s| s.len())
        });
        assert!(matches!(r, Err(ClaimError::Corrupt(_))), "{what}: {r:?}");
    }
}
