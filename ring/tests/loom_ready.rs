//! Loom models of the readiness watcher (`ringflow_ring::ready`): the very
//! arm word, watcher loop and stop a group member's readiness descriptor
//! runs (`core/src/group/ready.rs` only gives them their system calls),
//! over a real broadcast log with a publisher.
//!
//! The member is an event loop: it receives until the log is empty, arms
//! the watcher at its cursor (`Arm::arm`, as `GroupEnd`'s receive does when
//! it finds nothing), and polls its descriptor; at the end it stops the
//! watcher (`Readiness::stop`). Checked in every interleaving:
//! - no lost wakeup: a member armed at a cursor where a frame is committed
//!   always has its descriptor signalled (else its poll blocks for ever,
//!   which loom reports as a deadlock);
//! - no stale readiness: once the member re-armed past every frame, and the
//!   watcher is stopped, the descriptor is not readable (a signal for an
//!   old arming was drained, by the member or the watcher);
//! - stop always ends the watcher, also when it sleeps on the data word
//!   alone (no `futex_waitv`): the join would deadlock otherwise.
//!
//! What the models abstract (the system calls of `WatchIo` in core):
//! - the futex as the kernel keeps it: a wait checks its words and queues
//!   under one lock, and only a wake of one of its words (not a change of
//!   the word) releases it; `futex_waitv` on the data and arm words is one
//!   wait on both queues; the member's alarm word (expulsion) is left out;
//! - the eventfd as a counter under a lock: signal adds one, drain reads
//!   it to zero, a poll blocks until it is not zero;
//! - `may_have_event` is `broadcast::readable_at` alone (core adds the
//!   member's own table state and alarm, i.e. eviction and expulsion);
//! - the membarrier mode is not modelled (loom runs the fenced mode).
//!
//! Run: RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ringflow-ring --release --test loom_ready
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use ringflow_ring::broadcast::{self, Consumer, Mode, Producer};
use ringflow_ring::ready::{self, Arm, WatchIo};
use ringflow_ring::{HeapRegion, ReadError};

const CAPACITY: usize = 256;
const LEN: usize = 8;
const SALT: u64 = 0x0123_4567_89ab_cdef;

/// The futex queues of the two words the watcher sleeps on.
const DATA: usize = 0;
const ARM: usize = 1;

/// The kernel's side of the futex words: a wake count per queue.
struct Futexes {
    queues: Mutex<[u64; 2]>,
    woken: Condvar,
}

impl Futexes {
    /// `futex_wait` / `futex_waitv`: each `(queue, unchanged)` is a word
    /// and whether it still holds the expected value. Returns at once if
    /// one does not, else sleeps until one of the queues is woken.
    fn wait(&self, words: &[(usize, &dyn Fn() -> bool)]) {
        let mut queues = self.queues.lock().unwrap();
        if words.iter().any(|(_, unchanged)| !unchanged()) {
            return;
        }
        let seen = *queues;
        while words.iter().all(|&(q, _)| queues[q] == seen[q]) {
            queues = self.woken.wait(queues).unwrap();
        }
    }

    /// `futex_wake` on one word.
    fn wake(&self, queue: usize) {
        self.queues.lock().unwrap()[queue] += 1;
        self.woken.notify_all();
    }
}

/// An eventfd: a counter under the kernel's lock.
struct EventFd {
    count: Mutex<u64>,
    readable: Condvar,
}

impl EventFd {
    fn signal(&self) {
        *self.count.lock().unwrap() += 1;
        self.readable.notify_all();
    }

    fn drain(&self) {
        *self.count.lock().unwrap() = 0;
    }

    /// `poll` for readability, blocking.
    fn poll(&self) {
        let mut count = self.count.lock().unwrap();
        while *count == 0 {
            count = self.readable.wait(count).unwrap();
        }
    }

    fn readable(&self) -> bool {
        *self.count.lock().unwrap() != 0
    }
}

/// What the member, its watcher and the publisher share.
struct World {
    log: HeapRegion,
    arm: Arm,
    event: EventFd,
    futex: Futexes,
    /// Whether the watcher has `futex_waitv`.
    waitv: bool,
    /// The member's table state says evicted (core's `ready::closed`).
    evicted: AtomicBool,
}

impl World {
    /// An empty reliable log with one consumer and one producer slot.
    fn new(waitv: bool) -> World {
        let log = HeapRegion::new(broadcast::region_len(CAPACITY, 1, 1));
        // SAFETY: a fresh region: no side attached, nobody else uses it yet.
        unsafe { broadcast::init(&log, Mode::Reliable, 1, 1, SALT) }.unwrap();
        World {
            log,
            arm: Arm::new(),
            event: EventFd { count: Mutex::new(0), readable: Condvar::new() },
            futex: Futexes { queues: Mutex::new([0; 2]), woken: Condvar::new() },
            waitv,
            evicted: AtomicBool::new(false),
        }
    }

    /// `Readiness::stop` up to its final signal: stops the watcher, wakes
    /// it and joins it.
    fn stop(&self, watcher: thread::JoinHandle<()>) {
        let plain_sleeper = self.arm.stop();
        self.futex.wake(ARM);
        if plain_sleeper.is_wake() {
            let _ = self.data().alert();
            self.futex.wake(DATA);
        }
        watcher.join().unwrap();
    }

    /// The data word's wait point, as the watcher finds it in the log.
    fn data(&self) -> ringflow_ring::WaitPoint<'_> {
        broadcast::wait_points(&self.log).unwrap().0
    }
}

/// The watcher's system calls, modelled.
impl WatchIo for World {
    type Sleep = u32;

    fn prepare(&self) -> Option<u32> {
        Some(self.data().prepare())
    }

    fn finish(&self, _: &u32) {
        self.data().finish();
    }

    fn may_have_event(&self, at: u64) -> bool {
        // SYNC: Acquire; pairs with the keeper's Release store.
        self.evicted.load(Ordering::Acquire) || broadcast::readable_at(&self.log, at).unwrap()
    }

    fn sleep(&self, &token: &u32, word: &AtomicU32, armed: u32) -> bool {
        if !self.waitv {
            return false;
        }
        let data = self.data();
        // SYNC: Relaxed; the kernel's read of the word, under its lock.
        let arm_unchanged = || word.load(Ordering::Relaxed) == armed;
        self.futex.wait(&[(DATA, &|| data.current() == token), (ARM, &arm_unchanged)]);
        true
    }

    fn sleep_on_data(&self, &token: &u32) {
        let data = self.data();
        self.futex.wait(&[(DATA, &|| data.current() == token)]);
    }

    fn wait_word(&self, word: &AtomicU32, current: u32) {
        // SYNC: Relaxed; the kernel's read of the word, under its lock.
        self.futex.wait(&[(ARM, &|| word.load(Ordering::Relaxed) == current)]);
    }

    fn signal(&self) {
        self.event.signal();
    }

    fn drain(&self) {
        self.event.drain();
    }
}

/// One publisher sends `frames` frames while the member, armed at its
/// cursor from the start (`Readiness::start`), receives them as an event
/// loop and re-arms after each empty receive; then it stops the watcher.
fn member_event_loop(frames: usize, waitv: bool) {
    let mut model = loom::model::Builder::new();
    // Every byte of a frame is a modelled atomic: allow the branches.
    model.max_branches = 100_000;
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    model.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let world = Arc::new(World::new(waitv));
        let mut rx = Consumer::attach(&world.log).unwrap();
        world.arm.start_armed(rx.cursor());

        let watcher = {
            let world = world.clone();
            thread::spawn(move || ready::watch(&world.arm, &*world))
        };
        let publisher = {
            let world = world.clone();
            thread::spawn(move || {
                let mut tx = Producer::attach(&world.log).unwrap();
                for i in 0..frames {
                    let mut claim = tx.try_claim(LEN).unwrap();
                    claim.write(0, &[i as u8 + 1]);
                    if claim.commit().is_wake() {
                        world.futex.wake(DATA);
                    }
                }
            })
        };

        let mut received = 0;
        loop {
            let got = match rx.try_read() {
                Ok(mut g) => {
                    let mut b = [0; 1];
                    assert_eq!(g.read_into(&mut b), Ok(1));
                    Some(b[0])
                }
                Err(ReadError::Empty) => None,
                Err(e) => panic!("{e}"),
            };
            if let Some(b) = got {
                assert_eq!(b, received as u8 + 1);
                received += 1;
                let _ = rx.release();
                continue;
            }
            // `GroupEnd`'s receive found nothing: arm at the cursor.
            if world.arm.arm(rx.cursor(), || world.event.drain()).is_wake() {
                world.futex.wake(ARM);
            }
            if received == frames {
                break;
            }
            // The event loop polls the descriptor: a lost wakeup blocks
            // here for ever.
            world.event.poll();
            // A signal for an arming the member has replaced reads ready
            // until the watcher takes it back (a spurious wake): the loop
            // goes round until the watcher runs, as a real one would.
            thread::yield_now();
        }
        publisher.join().unwrap();

        world.stop(watcher);
        assert!(!world.event.readable(), "readiness left behind with nothing to receive");
    });
    eprintln!("{} executions", runs.load(std::sync::atomic::Ordering::Relaxed));
}

#[test]
fn one_frame_with_futex_waitv() {
    member_event_loop(1, true);
}

#[test]
fn one_frame_on_the_data_word_alone() {
    member_event_loop(1, false);
}

/// The member re-arms while the publisher still sends: an arming at the
/// second frame's position races its commit.
#[test]
fn two_frames_with_futex_waitv() {
    member_event_loop(2, true);
}

#[test]
fn two_frames_on_the_data_word_alone() {
    member_event_loop(2, false);
}

/// The keeper evicts the member while its watcher is armed with nothing
/// to read (`Keeper::evict_stalled`: the member's table state, then an
/// alert of the log's data word): the descriptor is signalled, so the
/// member's next receive learns of its eviction.
fn eviction_signals_an_armed_member(waitv: bool) {
    loom::model(move || {
        let world = Arc::new(World::new(waitv));
        let rx = Consumer::attach(&world.log).unwrap();
        world.arm.start_armed(rx.cursor());
        let watcher = {
            let world = world.clone();
            thread::spawn(move || ready::watch(&world.arm, &*world))
        };
        let keeper = {
            let world = world.clone();
            thread::spawn(move || {
                // SYNC: Release; pairs with the watcher's Acquire load.
                world.evicted.store(true, Ordering::Release);
                let _ = world.data().alert();
                world.futex.wake(DATA);
            })
        };
        // A lost wakeup blocks here for ever.
        world.event.poll();
        keeper.join().unwrap();
        world.stop(watcher);
    });
}

#[test]
fn eviction_signals_an_armed_member_with_futex_waitv() {
    eviction_signals_an_armed_member(true);
}

#[test]
fn eviction_signals_an_armed_member_on_the_data_word_alone() {
    eviction_signals_an_armed_member(false);
}

/// No publisher: the watcher goes to sleep armed, and the stop must still
/// reach it.
#[test]
fn stop_reaches_a_sleeping_watcher() {
    member_event_loop(0, true);
    member_event_loop(0, false);
}
