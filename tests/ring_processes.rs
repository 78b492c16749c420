//! The rings across real processes: a memfd segment mapped by a parent and a
//! child (this test binary re-executed). Frames of random sizes, checksummed;
//! nothing lost, nothing duplicated; a killed producer's committed frames all
//! arrive. Both sides park on the ring's futex when they must wait, so the
//! tests never spin both cores.

mod common;

use common::*;
use ringflow_core::{notify, wait_until, Deadline, PeerWatch, WaitOutcome};
use ringflow_ring::{mpsc, spsc, ClaimError, ReadError, WakeMode};
use std::sync::atomic::Ordering;
use std::time::Duration;

const SPIN: Duration = Duration::from_micros(20);
const MAX_PAYLOAD: usize = 300;

// ---------------------------------------------------------------- SPSC

/// The wake mode a test runs in; both processes must register for
/// membarrier before attaching to a `Membarrier` ring.
fn wake_mode(name: &str) -> WakeMode {
    match name {
        "membarrier" => {
            ringflow_core::membarrier::register().expect("membarrier, which the parent test found available");
            WakeMode::Membarrier
        }
        _ => WakeMode::Fenced,
    }
}

/// Whether the kernel (or a seccomp filter) refuses membarrier's global
/// expedited barriers; prints `skipped: membarrier unavailable: <reason>`
/// when it does.
fn membarrier_refused() -> bool {
    match ringflow_core::membarrier::register() {
        Ok(()) => false,
        Err(e) => {
            eprintln!("skipped: membarrier unavailable: {e}");
            true
        }
    }
}

#[test]
fn spsc_two_processes_two_million_frames_fenced() {
    spsc_two_processes_two_million_frames("fenced");
}

#[test]
fn spsc_two_processes_two_million_frames_membarrier() {
    spsc_two_processes_two_million_frames("membarrier");
}

fn spsc_two_processes_two_million_frames(mode: &str) {
    if mode == "membarrier" && membarrier_refused() {
        return;
    }
    const N: u64 = 2_000_000;
    let (seg, layout) = create_segment(&[spsc::region_len(1 << 16)]);
    let region = region(&seg, &layout, 0);
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { spsc::init_with(&region, wake_mode(mode)) }.unwrap();
    let mut rx = spsc::Consumer::attach(&region).unwrap();
    let mut child = spawn_child("spsc_producer_child", &seg, &[("N", N.to_string()), ("MODE", mode.to_string())]);
    let mut want = Vec::new();
    let mut next = 0u64;
    while next < N {
        let outcome = wait_until(|| rx.data_wait(), || rx.has_frame(), SPIN, Deadline::after(Duration::from_secs(60)));
        assert_eq!(outcome.unwrap(), WaitOutcome::Ready, "producer stalled at frame {next}");
        let (_, wake) = rx
            .read_batch(256, |g| {
                frame_payload(next, MAX_PAYLOAD, &mut want);
                assert_eq!(g.payload(), &want[..], "frame {next} lost, duplicated or torn");
                assert_eq!(g.meta(), checksum(g.payload()), "frame {next} checksum");
                next += 1;
            })
            .unwrap();
        notify(rx.space_wait(), wake).unwrap();
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(rx.try_read().err(), Some(ReadError::Closed), "nothing after the last frame");
}

#[test]
#[ignore = "child process of spsc_two_processes_two_million_frames_*"]
fn spsc_producer_child() {
    wake_mode(&child_arg("MODE"));
    let (seg, layout) = child_segment();
    let region = region(&seg, &layout, 0);
    let mut tx = spsc::Producer::attach(&region).unwrap();
    let n: u64 = child_arg("N").parse().unwrap();
    let mut buf = Vec::new();
    for seq in 0..n {
        frame_payload(seq, MAX_PAYLOAD, &mut buf);
        loop {
            match tx.try_claim(buf.len()) {
                Ok(mut c) => {
                    c.payload_mut().copy_from_slice(&buf);
                    c.set_meta(checksum(&buf));
                    // Publish in batches of 16 to exercise batch commit.
                    if seq % 16 == 15 || seq + 1 == n {
                        let wake = c.commit();
                        notify(tx.data_wait(), wake).unwrap();
                    } else {
                        c.push();
                    }
                    break;
                }
                Err(ClaimError::Full) => {
                    let wake = tx.commit();
                    notify(tx.data_wait(), wake).unwrap();
                    let free = buf.len() + 64;
                    wait_until(|| tx.space_wait(), || tx.free_bytes() >= free, SPIN, Deadline::Never).unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    let wake = tx.close();
    notify(tx.data_wait(), wake).unwrap();
}

#[test]
fn spsc_killed_producer_every_committed_frame_arrives() {
    // Region 1 holds the producer's count of committed frames, updated after
    // each commit: whatever it says when the producer dies must be readable.
    let (seg, layout) = create_segment(&[spsc::region_len(1 << 14), 4096]);
    let region = region(&seg, &layout, 0);
    let progress = common::region(&seg, &layout, 1);
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { spsc::init(&region) }.unwrap();
    let mut rx = spsc::Consumer::attach(&region).unwrap();
    let mut child = spawn_child("spsc_endless_producer_child", &seg, &[]);
    let watch = PeerWatch::open(child.id()).unwrap();
    let mut want = Vec::new();
    let mut next = 0u64;
    let read = |rx: &mut spsc::Consumer<&ringflow_ring::RawRegion>, next: &mut u64, want: &mut Vec<u8>| {
        loop {
            match rx.try_read() {
                Ok(g) => {
                    frame_payload(*next, MAX_PAYLOAD, want);
                    assert_eq!(g.payload(), &want[..], "frame {next} lost, duplicated or torn");
                    *next += 1;
                }
                Err(ReadError::Empty) => break,
                Err(e) => panic!("{e}"),
            }
        }
        let wake = rx.release();
        notify(rx.space_wait(), wake).unwrap();
    };
    // Read for a while, then kill the producer mid-stream.
    while next < 50_000 {
        read(&mut rx, &mut next, &mut want);
        wait_until(|| rx.data_wait(), || rx.has_frame(), SPIN, Deadline::after(Duration::from_secs(60))).unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(watch.is_gone().unwrap(), "the consumer learns the producer is gone");
    let committed = progress.atomic_word(0).load(Ordering::Acquire);
    read(&mut rx, &mut next, &mut want);
    // The count is bumped just after each commit: the ring may hold one more.
    assert!(next == committed || next == committed + 1, "read {next}, producer had committed {committed}");
    assert_eq!(rx.try_read().err(), Some(ReadError::Empty), "a killed producer never closed its side");
}

#[test]
#[ignore = "child process of spsc_killed_producer_every_committed_frame_arrives"]
fn spsc_endless_producer_child() {
    let (seg, layout) = child_segment();
    let region = region(&seg, &layout, 0);
    let progress = common::region(&seg, &layout, 1);
    let mut tx = spsc::Producer::attach(&region).unwrap();
    let mut buf = Vec::new();
    for seq in 0.. {
        frame_payload(seq, MAX_PAYLOAD, &mut buf);
        loop {
            match tx.try_send(&buf) {
                Ok(wake) => {
                    progress.atomic_word(0).store(seq + 1, Ordering::Release);
                    notify(tx.data_wait(), wake).unwrap();
                    break;
                }
                Err(ClaimError::Full) => {
                    let free = buf.len() + 64;
                    wait_until(|| tx.space_wait(), || tx.free_bytes() >= free, SPIN, Deadline::Never).unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
}

// ---------------------------------------------------------------- MPSC

#[test]
fn mpsc_two_producer_processes_each_in_order() {
    if membarrier_refused() {
        return;
    }
    const N: u64 = 300_000;
    let (seg, layout) = create_segment(&[mpsc::region_len(1 << 16)]);
    let region = region(&seg, &layout, 0);
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { mpsc::init_with(&region, wake_mode("membarrier")) }.unwrap();
    let mut rx = mpsc::Consumer::attach(&region).unwrap();
    let children: Vec<_> = (0..2).map(|_| spawn_child("mpsc_producer_child", &seg, &[("N", N.to_string())])).collect();
    let mut next = std::collections::HashMap::<u16, u64>::new();
    let mut want = Vec::new();
    let mut total = 0;
    while total < 2 * N {
        let ready = wait_until(|| rx.data_wait(), || rx.has_frame(), SPIN, Deadline::after(Duration::from_secs(60)));
        assert_eq!(ready.unwrap(), WaitOutcome::Ready, "producers stalled after {total} frames");
        let (_, wake) = rx
            .read_batch(256, |g| {
                let seq = u64::from_le_bytes(g.payload()[..8].try_into().unwrap());
                let n = next.entry(g.producer()).or_insert(0);
                frame_payload(*n, MAX_PAYLOAD, &mut want);
                assert_eq!(seq, *n, "producer {} out of order", g.producer());
                assert_eq!(g.payload(), &want[..]);
                assert_eq!(g.meta(), checksum(g.payload()));
                *n += 1;
                total += 1;
            })
            .unwrap();
        notify(rx.space_wait(), wake).unwrap();
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(next.values().copied().collect::<Vec<_>>(), vec![N, N]);
}

#[test]
#[ignore = "child process of mpsc_two_producer_processes_each_in_order"]
fn mpsc_producer_child() {
    wake_mode("membarrier");
    let (seg, layout) = child_segment();
    let region = region(&seg, &layout, 0);
    let mut tx = mpsc::Producer::attach(&region).unwrap();
    let n: u64 = child_arg("N").parse().unwrap();
    let mut buf = Vec::new();
    for seq in 0..n {
        frame_payload(seq, MAX_PAYLOAD, &mut buf);
        let wake = loop {
            match tx.try_claim(buf.len()) {
                Ok(mut c) => {
                    c.payload_mut().copy_from_slice(&buf);
                    c.set_meta(checksum(&buf));
                    break c.commit().unwrap();
                }
                // Parks briefly rather than spinning: tests never spin a core.
                Err(ClaimError::Full) => std::thread::sleep(Duration::from_micros(50)),
                Err(e) => panic!("{e}"),
            }
        };
        notify(tx.data_wait(), wake).unwrap();
    }
}

#[test]
fn mpsc_producer_killed_inside_a_claim_is_unblocked() {
    // Region 1: the child's "I hold a claim" flag.
    let (seg, layout) = create_segment(&[mpsc::region_len(1 << 12), 4096]);
    let region = region(&seg, &layout, 0);
    let flag = common::region(&seg, &layout, 1);
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { mpsc::init(&region) }.unwrap();
    let mut rx = mpsc::Consumer::attach(&region).unwrap();
    let mut child = spawn_child("mpsc_claim_and_hang_child", &seg, &[]);
    let watch = PeerWatch::open(child.id()).unwrap();
    // Wait (parked, with a deadline) until the child holds its claim.
    let held = wait_until(
        || rx.data_wait(),
        || flag.atomic_word(0).load(Ordering::Acquire) == 1,
        SPIN,
        Deadline::after(Duration::from_secs(60)),
    );
    assert_eq!(held.unwrap(), WaitOutcome::Ready);
    let mut tx = mpsc::Producer::attach(&region).unwrap();
    let _ = tx.try_send(b"behind the dead claim").unwrap();
    assert_eq!(rx.try_read().err(), Some(ReadError::Empty), "the open claim blocks the consumer");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(watch.is_gone().unwrap());
    // SAFETY: the claim at the consumer's position is the child's (marked
    // CLAIMED before it raised the flag; `tx`'s frame was claimed after
    // it), and the child is dead: killed, reaped, and its pidfd says gone.
    let skipped = unsafe { rx.unblock() }.expect("a dead producer's claim is skippable");
    assert_eq!(skipped.bytes, 16 + 64);
    assert_eq!(rx.try_read().unwrap().payload(), b"behind the dead claim");
}

#[test]
#[ignore = "child process of mpsc_producer_killed_inside_a_claim_is_unblocked"]
fn mpsc_claim_and_hang_child() {
    let (seg, layout) = child_segment();
    let region = region(&seg, &layout, 0);
    let flag = common::region(&seg, &layout, 1);
    let mut tx = mpsc::Producer::attach(&region).unwrap();
    let parent_futex = tx.data_wait().futex_word();
    let mut claim = tx.try_claim(64).unwrap();
    claim.payload_mut().fill(0xee);
    flag.atomic_word(0).store(1, Ordering::Release);
    // The parent waits on the consumer's data futex; wake it.
    // SAFETY: the futex word lives in the segment, mapped for this process's life.
    unsafe { ringflow_core::futex::wake(parent_futex, u32::MAX) }.unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}
