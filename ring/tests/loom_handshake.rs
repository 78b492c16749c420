//! Loom models of the handshakes above the rings, each with the function
//! the flow code itself calls:
//!
//! - wake on death: a watcher stores "gone" and alerts (`WaitPoint::alert`)
//!   while a waiter announces itself, re-checks and sleeps, and the peer
//!   scribbles the sleeper count (zero, `u64::MAX`): the waiter always ends.
//!   And when a process that still maps the segment after the hang-up
//!   writes the futex word back to the value the waiter sleeps on, the
//!   waiter still ends: it also sleeps on its process's own state word
//!   (`futex_waitv`), which the watcher changes and wakes; a wait on many
//!   flows sleeps instead on the process's one death word, read before its
//!   last look at the flows, bumped by the watcher after marking the flow.
//! - linger close versus wait (`ringflow_ring::linger`): a sender that
//!   closed and waits for its last message to be consumed is always woken
//!   or sees the count.
//! - readiness arming (`ringflow_ring::arm`): a receiver that armed and
//!   found nothing is always signalled by the publish it missed.
//!
//! The futex is modelled as the kernel keeps it: `futex_wait` checks the
//! word and queues under one lock, and only `futex_wake` (not a change of
//! the word) releases a queued sleeper. A sleeper nobody wakes blocks on a
//! condition variable for ever, which loom reports as a deadlock.
//!
//! Run: RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ringflow-ring --release --test loom_handshake
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use ringflow_ring::spsc::{self, Consumer, Producer};
use ringflow_ring::{arm, linger, HeapRegion, ReadError, WaitPoint};

/// The kernel's side of one futex word: its queue, as a wake generation.
struct Futex {
    queue: Mutex<u64>,
    woken: Condvar,
}

impl Futex {
    fn new() -> Self {
        Futex { queue: Mutex::new(0), woken: Condvar::new() }
    }

    /// `futex_wait(word, token)`: returns at once if the word differs,
    /// else sleeps until a `wake` (never because the word changes later).
    fn wait(&self, wp: &WaitPoint<'_>, token: u32) {
        self.wait_any(wp, token, None);
    }

    /// `futex_waitv` on the wait point's word and, if given, a local word
    /// with its quiet value. (One queue stands for both words' queues: the
    /// models wake both.)
    fn wait_any(&self, wp: &WaitPoint<'_>, token: u32, local: Option<(&AtomicU32, u32)>) {
        let mut queue = self.queue.lock().unwrap();
        // SYNC: Acquire; pairs with the watcher's Release store of the word.
        if wp.current() != token || local.is_some_and(|(w, quiet)| w.load(Ordering::Acquire) != quiet) {
            return;
        }
        let generation = *queue;
        while *queue == generation {
            queue = self.woken.wait(queue).unwrap();
        }
    }

    /// `futex_wake(word, all)`.
    fn wake(&self) {
        *self.queue.lock().unwrap() += 1;
        self.woken.notify_all();
    }
}

/// One death, one waiter, one scribbler writing `scribble` into the
/// sleeper count: the waiter learns of the death whatever the count says.
fn wake_on_death(scribble: u64) {
    loom::model(move || {
        let seq = Arc::new(AtomicU64::new(0));
        let sleepers = Arc::new(AtomicU64::new(0));
        let gone = Arc::new(AtomicBool::new(false));
        let futex = Arc::new(Futex::new());

        let waiter = {
            let (seq, sleepers, gone, futex) = (seq.clone(), sleepers.clone(), gone.clone(), futex.clone());
            thread::spawn(move || {
                let wp = WaitPoint::from_words(&seq, &sleepers);
                // `wait_until`: announce, re-check, sleep, re-check.
                loop {
                    // SYNC: Acquire; pairs with the watcher's Release store.
                    if gone.load(Ordering::Acquire) {
                        return;
                    }
                    let token = wp.prepare();
                    if gone.load(Ordering::Acquire) {
                        wp.finish();
                        return;
                    }
                    futex.wait(&wp, token);
                    wp.finish();
                }
            })
        };
        let scribbler = {
            let sleepers = sleepers.clone();
            // SYNC: Relaxed; a peer's raw store, ordered with nothing.
            thread::spawn(move || sleepers.store(scribble, Ordering::Relaxed))
        };
        // The watcher (this thread): `FlowShared::hung_up`.
        // SYNC: Release; pairs with the waiter's Acquire loads.
        gone.store(true, Ordering::Release);
        let wp = WaitPoint::from_words(&seq, &sleepers);
        if wp.alert().is_wake() {
            futex.wake();
        }
        scribbler.join().unwrap();
        waiter.join().unwrap();
    });
}

#[test]
fn death_wakes_a_waiter_whose_sleeper_count_was_zeroed() {
    wake_on_death(0);
}

#[test]
fn death_wakes_a_waiter_whose_sleeper_count_was_maxed() {
    // `prepare` wraps u64::MAX to zero: the count then says nobody sleeps.
    wake_on_death(u64::MAX);
}

/// The flow's sleep (`wait_until_with` with the flow's state word as its
/// alarm) against a watcher and a process that still maps the segment and
/// restores the futex word to its old value around the watcher's bump.
#[test]
fn death_wakes_a_waiter_whose_futex_word_was_restored() {
    const LIVE: u32 = 0;
    const GONE: u32 = 1;
    // The losing interleaving (restorer loads, watcher bumps and wakes,
    // restorer stores, waiter queues) takes four preemptions: without the
    // local word this model deadlocks at that bound, not at CI's 2.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(4);
    model.check(|| {
        let seq = Arc::new(AtomicU64::new(0));
        let sleepers = Arc::new(AtomicU64::new(0));
        let state = Arc::new(AtomicU32::new(LIVE));
        let futex = Arc::new(Futex::new());

        let waiter = {
            let (seq, sleepers, state, futex) = (seq.clone(), sleepers.clone(), state.clone(), futex.clone());
            thread::spawn(move || {
                let wp = WaitPoint::from_words(&seq, &sleepers);
                loop {
                    // SYNC: Acquire; pairs with the watcher's Release store.
                    if state.load(Ordering::Acquire) != LIVE {
                        return;
                    }
                    let token = wp.prepare();
                    if state.load(Ordering::Acquire) != LIVE {
                        wp.finish();
                        return;
                    }
                    futex.wait_any(&wp, token, Some((&state, LIVE)));
                    wp.finish();
                }
            })
        };
        let restorer = restore_word(&seq);
        // The watcher (this thread): `FlowShared::hung_up`.
        // SYNC: Release; pairs with the waiter's Acquire loads.
        state.store(GONE, Ordering::Release);
        futex.wake(); // the local word
        let _ = WaitPoint::from_words(&seq, &sleepers).alert();
        futex.wake(); // the shared word
        restorer.join().unwrap();
        waiter.join().unwrap();
    });
}

/// A wait on many flows (`FlowSet::wait`) sleeps on the process's one
/// death word instead of each flow's state word: it reads the word's value
/// before its last look at the flows' states, and the watcher marks the
/// dead flow gone before it bumps the word (`watch::deaths`,
/// `watch::death`). Two flows, the peer of the second dies while a process
/// restores the shared futex word around the watcher's alert: the set
/// still ends, woken through the death word or seeing the flow gone.
#[test]
fn death_wakes_a_set_through_the_process_death_word() {
    const LIVE: u32 = 0;
    const GONE: u32 = 1;
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let seq = Arc::new(AtomicU64::new(0));
        let sleepers = Arc::new(AtomicU64::new(0));
        let states = Arc::new([AtomicU32::new(LIVE), AtomicU32::new(LIVE)]);
        let deaths = Arc::new(AtomicU32::new(0));
        let futex = Arc::new(Futex::new());

        let set = {
            let (seq, sleepers, states, deaths, futex) =
                (seq.clone(), sleepers.clone(), states.clone(), deaths.clone(), futex.clone());
            thread::spawn(move || {
                let wp = WaitPoint::from_words(&seq, &sleepers);
                // SYNC: Acquire (states); pairs with the watcher's Release.
                let ended = || states.iter().any(|s| s.load(Ordering::Acquire) != LIVE);
                loop {
                    if ended() {
                        return;
                    }
                    // SYNC: Acquire; pairs with the watcher's Release bump.
                    // Read before the last look below, as `FlowSet::wait`.
                    let seen = deaths.load(Ordering::Acquire);
                    let token = wp.prepare();
                    if ended() {
                        wp.finish();
                        return;
                    }
                    futex.wait_any(&wp, token, Some((&deaths, seen)));
                    wp.finish();
                }
            })
        };
        let restorer = restore_word(&seq);
        // The watcher (this thread): `FlowShared::hung_up` for the second
        // flow. SYNC: Release (both); pair with the set's Acquire loads.
        states[1].store(GONE, Ordering::Release);
        futex.wake(); // the flow's own word (nobody in the set sleeps on it)
        deaths.fetch_add(1, Ordering::Release);
        futex.wake(); // the death word
        let _ = WaitPoint::from_words(&seq, &sleepers).alert();
        futex.wake(); // the shared word
        restorer.join().unwrap();
        set.join().unwrap();
    });
}

/// A ring of 64 bytes in a loom heap region, both sides attached.
fn ring() -> (Producer<std::sync::Arc<HeapRegion>>, Consumer<std::sync::Arc<HeapRegion>>) {
    let region = std::sync::Arc::new(HeapRegion::new(spsc::region_len(64)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { spsc::init(&*region) }.unwrap();
    (Producer::attach(region.clone()).unwrap(), Consumer::attach(region).unwrap())
}

#[test]
fn linger_close_never_misses_the_last_consumption() {
    loom::model(|| {
        let (mut tx, mut rx) = ring();
        let count = Arc::new(AtomicU64::new(0));
        let futex = Arc::new(Futex::new());
        let _ = tx.try_send(b"last").unwrap();

        let receiver = {
            let (count, futex) = (count.clone(), futex.clone());
            thread::spawn(move || {
                // `recv`: the message is there (sent before the spawn).
                let frame = rx.peek().unwrap();
                linger::store_consumed(&count, 1);
                rx.consume(&frame);
                // `buf::consume`: release at once when the sender closed.
                if rx.is_producer_closed() && rx.release().is_wake() {
                    futex.wake();
                }
                std::mem::forget(rx); // keep the side open: not a close
            })
        };
        // The sender (this thread): `Flow::dealloc`.
        let _ = tx.close();
        loop {
            if linger::consumed(&count) == 1 {
                break;
            }
            let wp = tx.space_wait();
            let token = wp.prepare();
            // (the heavy barrier: under loom, the fence in store_consumed)
            if linger::consumed(&count) == 1 {
                wp.finish();
                break;
            }
            futex.wait(&wp, token);
            wp.finish();
        }
        receiver.join().unwrap();
    });
}

#[test]
fn an_armed_receiver_never_misses_a_publish() {
    loom::model(|| {
        let (mut tx, mut rx) = ring();
        let armed = Arc::new(AtomicU64::new(0));
        let signalled = Arc::new(AtomicBool::new(false));

        let sender = {
            let (armed, signalled) = (armed.clone(), signalled.clone());
            thread::spawn(move || {
                // `send` then `published`: the commit's notify ran its fence.
                let _ = tx.try_send(b"hi").unwrap();
                if arm::take_arm(&armed) {
                    // SYNC: Relaxed; read after the join.
                    signalled.store(true, Ordering::Relaxed);
                }
                std::mem::forget(tx); // keep the side open
            })
        };
        // The receiver (this thread): `try_recv` found nothing, then `Flow::arm`.
        let seen = match rx.peek() {
            Ok(_) => true,
            Err(ReadError::Empty) => {
                arm::arm(&armed);
                !matches!(rx.peek(), Err(ReadError::Empty))
            }
            Err(e) => panic!("{e}"),
        };
        sender.join().unwrap();
        // SYNC: Relaxed; ordered by the join.
        assert!(seen || signalled.load(Ordering::Relaxed), "the publish was missed and nothing signalled it");
        let _ = rx.try_read().unwrap();
    });
}

/// A peer process that reads the shared futex word and writes back what it
/// read, around the watcher's alert (a scribble that undoes a bump).
fn restore_word(seq: &Arc<AtomicU64>) -> thread::JoinHandle<()> {
    let seq = seq.clone();
    thread::spawn(move || {
        // SYNC: Relaxed; a peer's raw load and store.
        let old = seq.load(Ordering::Relaxed);
        seq.store(old, Ordering::Relaxed);
    })
}
