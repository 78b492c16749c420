//! Loom models of the broadcast log over a 256-byte data area. Frames carry
//! 64-byte payloads (96-byte frames: two per lap, the third wraps behind a
//! padding frame); the first payload byte is stamped with the producer and
//! sequence number, the metadata word with the sequence number, and both are
//! checked on arrival.
//!
//! Each model has two threads: with three, every yield of a spinning thread
//! is a scheduling choice and the search explodes, so the main thread plays
//! two roles (producer and consumer) where a model needs three actors.
//!
//! Reliable: every frame arrives exactly once per consumer, in per-producer
//! order, intact, with back-pressure at the slowest consumer, also for a
//! consumer joining while a producer runs. Lossy: a consumer never gets a
//! torn frame as valid, only intact frames in order, `Lapped` or `Empty`,
//! also with two producers racing (one may not lap the other's claim).
//!
//! Eviction: a producer that died mid-claim is evicted while a live
//! producer sends past its hole (and waits on its marker), and a consumer
//! that died holding back a reliable log is evicted while the producer
//! waits on it; every live frame arrives exactly once, in order, intact,
//! nothing of the dead producer's.
//!
//! Run: RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ringflow-ring --release --test loom_broadcast
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use ringflow_ring::broadcast::{self, Consumer, Mode, Producer};
use ringflow_ring::{ClaimError, HeapRegion, ReadError};
use std::sync::Arc;

const CAPACITY: usize = 256;
const LEN: usize = 64;
const SALT: u64 = 0x0123_4567_89ab_cdef;

type Region = Arc<HeapRegion>;

/// The payload's first byte (the rest is stale memory): under loom every
/// byte costs atomic operations, so one stamped byte keeps the models small.
fn stamp(producer: u16, seq: u64) -> [u8; 1] {
    [(producer as u8 + 1) << 4 | (seq as u8 + 1)]
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 100_000;
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    eprintln!("{} executions", runs.load(std::sync::atomic::Ordering::Relaxed));
}

fn log(mode: Mode, consumers: usize, producers: usize) -> Region {
    let region = Arc::new(HeapRegion::new(broadcast::region_len(CAPACITY, consumers, producers)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { broadcast::init(&*region, mode, consumers, producers, SALT) }.unwrap();
    region
}

/// Tries once to send the producer's next frame; false if the log is full.
fn try_send(tx: &mut Producer<Region>) -> bool {
    match tx.try_claim(LEN) {
        Ok(mut claim) => {
            let seq = claim.seq();
            claim.write(0, &stamp(claim.producer(), seq));
            claim.set_meta(seq);
            let _ = claim.commit();
            true
        }
        Err(ClaimError::Full) => false,
        Err(e) => panic!("{e}"),
    }
}

/// Sends `n` frames, yielding while the log is full.
fn send(tx: &mut Producer<Region>, n: u64) {
    for _ in 0..n {
        while !try_send(tx) {
            thread::yield_now();
        }
    }
}

/// What a consumer has received, checked as it arrives.
#[derive(Default)]
struct Received {
    frames: Vec<(u16, u64)>,
    lapped_bytes: u64,
}

impl Received {
    /// Tries once to read a frame (and releases it); false if none was ready.
    fn try_take(&mut self, rx: &mut Consumer<Region>) -> bool {
        let lossy = rx.mode() == Mode::Lossy;
        let progress = match rx.try_read() {
            Ok(mut g) => {
                let mut buf = [0; 1];
                match g.read_into(&mut buf) {
                    Ok(n) => {
                        assert_eq!(n, 1);
                        assert_eq!(buf, stamp(g.producer(), g.seq()), "torn payload");
                        assert_eq!((g.meta(), g.len()), (g.seq(), LEN), "torn header");
                        let last = self.frames.iter().rev().find(|f| f.0 == g.producer());
                        let expected = last.map_or(0, |f| f.1 + 1);
                        assert!(g.seq() >= expected, "per-producer order");
                        if last.is_some() {
                            assert_eq!(g.missed_before(), g.seq() - expected, "gap reported exactly");
                        }
                        self.frames.push((g.producer(), g.seq()));
                    }
                    // Overwritten while copied (lossy only): never delivered.
                    Err(ReadError::Lapped { missed_bytes }) => self.lapped(lossy, missed_bytes),
                    Err(ReadError::Empty) => {}
                    Err(e) => panic!("{e}"),
                }
                true
            }
            Err(ReadError::Lapped { missed_bytes }) => {
                self.lapped(lossy, missed_bytes);
                true
            }
            Err(ReadError::Empty) => false,
            Err(e) => panic!("{e}"),
        };
        let _ = rx.release();
        progress
    }

    fn lapped(&mut self, lossy: bool, missed_bytes: u64) {
        assert!(lossy, "a reliable consumer is never lapped");
        assert!(missed_bytes > 0 && missed_bytes % 8 == 0);
        self.lapped_bytes += missed_bytes;
    }

    /// Reads until `n` frames arrived, yielding while none is ready.
    fn take(mut self, rx: &mut Consumer<Region>, n: usize) -> Self {
        while self.frames.len() < n {
            if !self.try_take(rx) {
                thread::yield_now();
            }
        }
        self
    }

    fn of(&self, producer: u16) -> Vec<u64> {
        self.frames.iter().filter(|f| f.0 == producer).map(|f| f.1).collect()
    }
}

/// The reliable outcome: every frame exactly once, per-producer order,
/// nothing extra.
fn assert_all(got: &Received, rx: &mut Consumer<Region>, per_producer: &[u64]) {
    for (p, &n) in per_producer.iter().enumerate() {
        assert_eq!(got.of(p as u16), (0..n).collect::<Vec<_>>(), "producer {p}");
    }
    assert_eq!(got.frames.len() as u64, per_producer.iter().sum::<u64>());
    assert_eq!(rx.try_read().err(), Some(ReadError::Empty), "nothing extra");
}

/// One producer (main thread, which also drives the second consumer) and a
/// consumer thread: three frames, the third held back until both consumers
/// released the first.
#[test]
fn reliable_one_producer_two_consumers() {
    model(|| {
        let region = log(Mode::Reliable, 2, 1);
        let mut rx1 = Consumer::attach(region.clone()).unwrap();
        let mut rx2 = Consumer::attach(region.clone()).unwrap();
        let mut tx = Producer::attach(region).unwrap();
        let reader = thread::spawn(move || {
            let got = Received::default().take(&mut rx1, 3);
            assert_all(&got, &mut rx1, &[3]);
        });
        let (mut sent, mut got) = (0, Received::default());
        while sent < 3 || got.frames.len() < 3 {
            let sending = sent < 3 && try_send(&mut tx);
            sent += sending as u64;
            if !got.try_take(&mut rx2) && !sending {
                thread::yield_now();
            }
        }
        assert_all(&got, &mut rx2, &[3]);
        reader.join().unwrap();
    });
}

/// Two producers (one thread, and main, which also consumes) racing for the
/// tail: one total order, each producer's frames in order, back-pressure.
#[test]
fn reliable_two_producers() {
    model(|| {
        let region = log(Mode::Reliable, 1, 2);
        let mut rx = Consumer::attach(region.clone()).unwrap();
        let mut tx0 = Producer::attach(region.clone()).unwrap();
        let mut tx1 = Producer::attach(region).unwrap();
        let writer = thread::spawn(move || send(&mut tx0, 2));
        let (mut sent, mut got) = (0, Received::default());
        while sent < 1 || got.frames.len() < 3 {
            let sending = sent < 1 && try_send(&mut tx1);
            sent += sending as u64;
            if !got.try_take(&mut rx) && !sending {
                thread::yield_now();
            }
        }
        writer.join().unwrap();
        assert_all(&got, &mut rx, &[2, 1]);
    });
}

/// A lossy producer laps a concurrent consumer: it gets intact frames in
/// order, or `Lapped`, never a torn frame; it ends on the last frame.
#[test]
fn lossy_consumer_never_sees_torn_frames() {
    model(|| {
        let region = log(Mode::Lossy, 1, 1);
        let mut rx = Consumer::attach(region.clone()).unwrap();
        let mut tx = Producer::attach(region).unwrap();
        let writer = thread::spawn(move || send(&mut tx, 4));
        let mut got = Received::default();
        while got.frames.last() != Some(&(0, 3)) {
            if !got.try_take(&mut rx) {
                thread::yield_now();
            }
        }
        writer.join().unwrap();
        assert_eq!(rx.try_read().err(), Some(ReadError::Empty));
    });
}

/// Two lossy producers: one (main, which also consumes) cannot lap a claim
/// the other is still writing, so no late write tears a newer frame.
#[test]
fn lossy_two_producers_never_tear() {
    model(|| {
        let region = log(Mode::Lossy, 1, 2);
        let mut rx = Consumer::attach(region.clone()).unwrap();
        let mut tx0 = Producer::attach(region.clone()).unwrap();
        let mut tx1 = Producer::attach(region).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let done = done.clone();
            thread::spawn(move || {
                send(&mut tx0, 1);
                done.store(true, Ordering::Release);
            })
        };
        let (mut sent, mut got) = (0, Received::default());
        loop {
            let sending = sent < 3 && try_send(&mut tx1);
            sent += sending as u64;
            if !got.try_take(&mut rx) && !sending {
                if sent == 3 && done.load(Ordering::Acquire) && !got.try_take(&mut rx) {
                    break;
                }
                thread::yield_now();
            }
        }
        writer.join().unwrap();
        assert!(got.of(1).last() == Some(&2), "the newest frame always arrives");
    });
}

/// A consumer joins a reliable log while a producer (with nobody else to wait
/// for) is writing: every frame claimed after the join arrives intact, with
/// no gap, however the join races the producer's limit.
#[test]
fn reliable_consumer_joins_while_producing() {
    model(|| {
        let region = log(Mode::Reliable, 1, 1);
        let mut tx = Producer::attach(region.clone()).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let done = done.clone();
            thread::spawn(move || {
                send(&mut tx, 4);
                done.store(true, Ordering::Release);
            })
        };
        let mut rx = Consumer::attach(region).unwrap();
        let mut got = Received::default();
        loop {
            if !got.try_take(&mut rx) {
                if done.load(Ordering::Acquire) && !got.try_take(&mut rx) {
                    break;
                }
                thread::yield_now();
            }
        }
        writer.join().unwrap();
        let seqs = got.of(0);
        let first = seqs.first().copied().unwrap_or(4);
        assert_eq!(seqs, (first..4).collect::<Vec<_>>(), "no gap after joining");
    });
}

/// A producer dies mid-claim (its claim and itself forgotten: no drop, no
/// padding); a live producer's second frame needs the dead claim's space
/// (it waits on the dead marker) while the main thread evicts the dead
/// producer and consumes.
#[test]
fn evicting_a_dead_producer_unblocks_the_live_one() {
    model(|| {
        let region = log(Mode::Reliable, 1, 2);
        let mut rx = Consumer::attach(region.clone()).unwrap();
        let mut dead = Producer::attach(region.clone()).unwrap();
        let mut live = Producer::attach(region.clone()).unwrap();
        let dead_slot = dead.id() as usize;
        let mut claim = dead.try_claim(LEN).unwrap();
        claim.write(0, &[0xDD]);
        std::mem::forget(claim);
        std::mem::forget(dead);
        let writer = thread::spawn(move || send(&mut live, 2));
        // SAFETY: the dead producer and its claim were forgotten: neither
        // writes again, and its slot was never freed, so nobody else holds it.
        let _ = unsafe { broadcast::evict_producer(&*region, dead_slot) }.unwrap();
        let got = Received::default().take(&mut rx, 2);
        writer.join().unwrap();
        assert_all(&got, &mut rx, &[0, 2]);
    });
}

/// A consumer dies holding back a reliable log (forgotten: its cursor
/// stays); the producer's third frame waits on it while the main thread
/// evicts it and consumes with the live consumer.
#[test]
fn evicting_a_dead_consumer_unblocks_the_producer() {
    model(|| {
        let region = log(Mode::Reliable, 2, 1);
        let mut rx = Consumer::attach(region.clone()).unwrap();
        let dead = Consumer::attach(region.clone()).unwrap();
        let dead_slot = dead.slot();
        std::mem::forget(dead);
        let mut tx = Producer::attach(region.clone()).unwrap();
        let writer = thread::spawn(move || send(&mut tx, 3));
        // SAFETY: the dead consumer was forgotten: it never reads again, and
        // its slot was never freed, so nobody else holds it.
        let _ = unsafe { broadcast::evict_consumer(&*region, dead_slot) }.unwrap();
        let got = Received::default().take(&mut rx, 3);
        writer.join().unwrap();
        assert_all(&got, &mut rx, &[3]);
    });
}
