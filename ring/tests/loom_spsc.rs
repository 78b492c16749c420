//! Loom model of the SPSC ring: every interleaving of one producer and one
//! consumer over a 64-byte ring (wrap-around, padding, full ring, batches).
//! Every frame must arrive exactly once, in order, intact.
//!
//! Run: RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ringflow-ring --release --test loom_spsc
#![cfg(loom)]

use loom::thread;
use ringflow_ring::spsc::{self, Consumer, Producer};
use ringflow_ring::{ClaimError, HeapRegion, ReadError};
use std::sync::Arc;

fn frame(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 16 + j + 1) as u8).collect()
}

/// How the producer sends.
#[derive(Clone, Copy)]
enum Sending {
    /// A claim and a commit per frame.
    Each,
    /// Claims pushed in pairs, each pair committed at once.
    Pairs,
    /// `write_batch_sized` of every frame left (of any lengths), which
    /// places frames after the first without a check per claim.
    Batches,
}

fn run(lens: &'static [usize], send: Sending, read_batches: bool) {
    run_with(64, None, lens, send, read_batches)
}

/// [`run`] over a ring of `cap` bytes whose producer wraps early past
/// `window` bytes when it finds the consumer caught up.
fn run_with(cap: usize, window: Option<usize>, lens: &'static [usize], send: Sending, read_batches: bool) {
    loom::model(move || {
        let region = Arc::new(HeapRegion::new(spsc::region_len(cap)));
        // SAFETY: a fresh region: no side attached, nobody else uses it yet.
        unsafe { spsc::init(&*region) }.unwrap();
        let mut tx = Producer::attach(region.clone()).unwrap();
        if let Some(w) = window {
            tx.set_window(w);
        }
        let mut rx = Consumer::attach(region).unwrap();
        let producer = thread::spawn(move || {
            if let Sending::Batches = send {
                write_batches(&mut tx, lens);
                return;
            }
            for (i, &len) in lens.iter().enumerate() {
                loop {
                    match tx.try_claim(len) {
                        Ok(mut c) => {
                            c.write(0, &frame(i, len));
                            c.set_meta(i as u64);
                            if matches!(send, Sending::Pairs) && i % 2 == 0 {
                                c.push();
                            } else {
                                let _ = c.commit();
                            }
                            break;
                        }
                        Err(ClaimError::Full) => {
                            let _ = tx.commit();
                            thread::yield_now();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            let _ = tx.commit();
        });
        let mut got = 0;
        while got < lens.len() {
            if read_batches {
                // The throughput path: learns what is committed from the
                // published tail, then validates each frame's commit word.
                match rx.read_batch(4, |g| {
                    let mut buf = vec![0; g.len()];
                    g.copy_to(&mut buf);
                    assert_eq!(g.meta(), got as u64);
                    assert_eq!(buf, frame(got, lens[got]), "frame {got} torn or out of order");
                    got += 1;
                }) {
                    Ok(_) => {}
                    Err(ReadError::Empty) => thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
                continue;
            }
            match rx.try_read() {
                Ok(g) => {
                    let mut buf = vec![0; g.len()];
                    g.copy_to(&mut buf);
                    assert_eq!(g.meta(), got as u64);
                    assert_eq!(buf, frame(got, lens[got]), "frame {got} torn or out of order");
                    drop(g);
                    got += 1;
                }
                Err(ReadError::Empty) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
            let _ = rx.release();
        }
        producer.join().unwrap();
        assert_eq!(rx.try_read().err(), Some(ReadError::Closed), "nothing extra, then closed");
    });
}

/// Sends `lens` with `write_batch_sized`, each call asking for every frame
/// left (`write_batch` is the same path with one length).
fn write_batches(tx: &mut Producer<Arc<HeapRegion>>, lens: &[usize]) {
    let mut i = 0;
    while i < lens.len() {
        let base = i;
        let batch = tx.write_batch_sized(
            |k| lens.get(base + k).copied(),
            |slot| {
                slot.write(0, &frame(i, lens[i]));
                slot.set_meta(i as u64);
                i += 1;
                true
            },
        );
        match batch {
            Ok((n, _)) => assert!(n >= 1),
            Err(ClaimError::Full) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn frames_wrap_and_arrive_intact() {
    // 24-byte frames in 64 bytes: the third wraps behind a padding frame and
    // must wait for the consumer.
    run(&[8, 3, 6], Sending::Each, false);
}

#[test]
fn early_wraps_past_the_window_skip_cleanly() {
    // 24-byte frames, window 32 in 128 bytes: the third frame starts the
    // next lap early when the consumer has read the first two by then, and
    // must otherwise go on as usual; either way the consumer skips the
    // padding and reads every frame once.
    run_with(128, Some(32), &[8, 3, 6, 2], Sending::Each, false);
}

#[test]
fn early_wraps_inside_batches() {
    run_with(128, Some(32), &[8, 3, 6, 2], Sending::Pairs, true);
}

#[test]
fn batches_publish_atomically() {
    run(&[2, 5, 1], Sending::Pairs, false);
}

#[test]
fn batch_reads_trust_only_commit_words() {
    run(&[8, 3, 6], Sending::Pairs, true);
}

#[test]
fn written_batches_wrap_and_arrive_intact() {
    // Three 24-byte frames in 64 bytes: the second is placed by the run
    // without checks, the third must wrap behind padding and wait for room,
    // through the checked path.
    run(&[8, 8, 8], Sending::Batches, false);
}

#[test]
fn written_batches_of_mixed_lengths_wrap_and_arrive_intact() {
    // 16-, 24-, 24- and 16-byte frames in 64 bytes: the run places the
    // second inside the room it knows; the third does not fit before the
    // end and wraps behind padding through the checked path.
    run(&[0, 8, 4, 0], Sending::Batches, true);
}

#[test]
fn written_batches_meet_batch_reads() {
    run(&[8, 8, 8], Sending::Batches, true);
}

#[test]
fn written_batches_stop_at_the_window() {
    // 24-byte frames, window 32 in 128 bytes: the run stops short of the
    // window, and the checked path decides whether the lap ends there.
    run_with(128, Some(32), &[8, 8, 8, 8], Sending::Batches, true);
}

#[test]
fn read_batch_sees_whatever_try_read_would() {
    // The tail is published just after the commit words: a consumer can see
    // a frame before the tail covers it. read_batch must not call that Empty.
    loom::model(|| {
        let region = Arc::new(HeapRegion::new(spsc::region_len(64)));
        // SAFETY: a fresh region: no side attached, nobody else uses it yet.
        unsafe { spsc::init(&*region) }.unwrap();
        let mut tx = Producer::attach(region.clone()).unwrap();
        let mut rx = Consumer::attach(region).unwrap();
        let producer = thread::spawn(move || {
            let _ = tx.try_send(&[42]).unwrap();
            std::mem::forget(tx); // stay open: Closed is not what is tested
        });
        if rx.has_frame() {
            let (n, _) = rx.read_batch(4, |_| {}).expect("a visible frame is readable in a batch");
            assert_eq!(n, 1);
        }
        producer.join().unwrap();
    });
}
