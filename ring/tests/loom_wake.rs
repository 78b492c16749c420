//! Loom model of the wake protocol: a consumer that decides to sleep is
//! always woken by a producer that publishes: no wake-up is ever lost.
//! The futex is modelled: "sleeping" means waiting until the futex word
//! differs from the token, which is what FUTEX_WAIT guarantees.
//!
//! Run: RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ringflow-ring --release --test loom_wake
#![cfg(loom)]

use loom::thread;
use ringflow_ring::spsc::{self, Consumer, Producer};
use ringflow_ring::{HeapRegion, ReadError};
use std::sync::Arc;

#[test]
fn no_lost_wakeup() {
    loom::model(|| {
        let region = Arc::new(HeapRegion::new(spsc::region_len(64)));
        // SAFETY: a fresh region: no side attached, nobody else uses it yet.
        unsafe { spsc::init(&*region) }.unwrap();
        let mut tx = Producer::attach(region.clone()).unwrap();
        let mut rx = Consumer::attach(region).unwrap();
        let producer = thread::spawn(move || {
            // Whether this reports Wake is up to the interleaving; what must
            // hold is that a sleeper below is always released.
            let _ = tx.try_send(b"hi").unwrap();
            std::mem::forget(tx); // keep the side open: we test the data wake
        });
        loop {
            match rx.try_read() {
                Ok(g) => {
                    assert_eq!(g.len(), 2);
                    break;
                }
                Err(ReadError::Empty) => {}
                Err(e) => panic!("{e}"),
            }
            let wait = rx.data_wait();
            let token = wait.prepare();
            if rx.has_frame() {
                rx.data_wait().finish();
                continue;
            }
            // "futex_wait(word, token)": returns once the word changed. If
            // the producer never bumps it this loop never ends and loom
            // reports the execution: that would be a lost wake-up.
            while rx.data_wait().current() == token {
                thread::yield_now();
            }
            rx.data_wait().finish();
        }
        producer.join().unwrap();
    });
}
