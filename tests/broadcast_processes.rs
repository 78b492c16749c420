//! The broadcast log across real processes: producers in child processes
//! (this test binary re-executed), consumers in the parent. A reliable log
//! delivers every frame to every consumer in one total order; a lossy log
//! tells a slow consumer how much it missed and never hands it a torn frame.
//! Waiting parks (sleeps) rather than spins: tests never spin both cores.

mod common;

use common::*;
use ringflow_ring::broadcast::{self, Mode};
use ringflow_ring::{ClaimError, RawRegion, ReadError};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const MAX_PAYLOAD: usize = 200;
const PRODUCERS: usize = 2;

fn log_region_len(capacity: usize) -> usize {
    broadcast::region_len(capacity, 4, 4)
}

/// Sends `n` frames (payload from `frame_payload`, checksum in meta),
/// sleeping briefly whenever the log is full.
fn produce(region: &RawRegion, n: u64) {
    let mut tx = broadcast::Producer::attach(region).unwrap();
    let mut buf = Vec::new();
    for seq in 0..n {
        frame_payload(seq, MAX_PAYLOAD, &mut buf);
        loop {
            match tx.try_claim(buf.len()) {
                Ok(mut claim) => {
                    claim.write(0, &buf);
                    claim.set_meta(checksum(&buf));
                    let _ = claim.commit();
                    break;
                }
                Err(ClaimError::Full) => std::thread::sleep(Duration::from_micros(20)),
                Err(e) => panic!("{e}"),
            }
        }
    }
}

#[test]
fn reliable_log_two_producer_processes_two_consumers_one_order() {
    const N: u64 = 50_000;
    let (seg, layout) = create_segment(&[log_region_len(1 << 16)]);
    let region = region(&seg, &layout, 0);
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { broadcast::init(&region, Mode::Reliable, 4, 4, 0x5eed_1234_abcd_0001) }.unwrap();
    let mut consumers = [broadcast::Consumer::attach(&region).unwrap(), broadcast::Consumer::attach(&region).unwrap()];
    let children: Vec<_> =
        (0..PRODUCERS).map(|_| spawn_child("bcast_producer_child", &seg, &[("N", N.to_string())])).collect();
    let mut orders: [Vec<(u16, u64)>; 2] = [Vec::new(), Vec::new()];
    let mut next: [HashMap<u16, u64>; 2] = [HashMap::new(), HashMap::new()];
    let mut want = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let total = PRODUCERS as u64 * N;
    while orders.iter().any(|o| (o.len() as u64) < total) {
        assert!(Instant::now() < deadline, "stalled: {} and {} of {total}", orders[0].len(), orders[1].len());
        let mut progressed = false;
        for (i, rx) in consumers.iter_mut().enumerate() {
            loop {
                match rx.try_read() {
                    Ok(g) => {
                        let payload = g.payload().expect("a reliable log reads in place");
                        let seq = u64::from_le_bytes(payload[..8].try_into().unwrap());
                        let expect = next[i].entry(g.producer()).or_insert(0);
                        assert_eq!(seq, *expect, "consumer {i}: producer {} out of order", g.producer());
                        assert_eq!(g.missed_before(), 0, "a reliable log loses nothing");
                        frame_payload(seq, MAX_PAYLOAD, &mut want);
                        assert_eq!(payload, &want[..], "consumer {i}: frame torn");
                        assert_eq!(g.meta(), checksum(payload));
                        *expect += 1;
                        orders[i].push((g.producer(), seq));
                        progressed = true;
                    }
                    Err(ReadError::Empty) => break,
                    Err(e) => panic!("consumer {i}: {e}"),
                }
            }
            let _ = rx.release();
        }
        if !progressed {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(orders[0], orders[1], "both consumers see one total order");
    assert!(next.iter().all(|m| m.len() == PRODUCERS && m.values().all(|&n| n == N)));
}

#[test]
#[ignore = "child process of the broadcast tests"]
fn bcast_producer_child() {
    let (seg, layout) = child_segment();
    let region = region(&seg, &layout, 0);
    produce(&region, child_arg("N").parse().unwrap());
}

#[test]
fn lossy_log_slow_consumer_learns_what_it_missed_and_reads_nothing_torn() {
    const N: u64 = 200_000;
    let (seg, layout) = create_segment(&[log_region_len(1 << 12)]);
    let region = region(&seg, &layout, 0);
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { broadcast::init(&region, Mode::Lossy, 4, 4, 0x5eed_1234_abcd_0002) }.unwrap();
    let mut rx = broadcast::Consumer::attach(&region).unwrap();
    let mut child = spawn_child("bcast_producer_child", &seg, &[("N", N.to_string())]);
    let (mut laps, mut missed_bytes, mut delivered, mut missed_frames) = (0u64, 0u64, 0u64, 0u64);
    let (mut first_seq, mut last_seq): (Option<u64>, Option<u64>) = (None, None);
    let mut buf = vec![0u8; MAX_PAYLOAD];
    let mut want = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Read slowly until the producer is done and the log is drained.
    loop {
        assert!(Instant::now() < deadline, "lossy test stalled");
        let done = child.try_wait().unwrap().is_some();
        match rx.try_read() {
            Ok(mut g) => {
                let missed_before = g.missed_before();
                match g.read_into(&mut buf) {
                    Ok(len) => {
                        let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
                        frame_payload(seq, MAX_PAYLOAD, &mut want);
                        assert_eq!(&buf[..len], &want[..], "a delivered frame is never torn");
                        if let Some(prev) = last_seq {
                            assert!(seq > prev, "frames stay in order");
                            assert_eq!(seq - prev - 1, missed_before, "missed_before counts the gap exactly");
                        }
                        if first_seq.is_some() {
                            missed_frames += missed_before;
                        }
                        first_seq.get_or_insert(seq);
                        last_seq = Some(seq);
                        delivered += 1;
                    }
                    Err(ReadError::Lapped { missed_bytes: m }) => {
                        laps += 1;
                        missed_bytes += m;
                    }
                    Err(ReadError::Empty) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            Err(ReadError::Lapped { missed_bytes: m }) => {
                laps += 1;
                missed_bytes += m;
            }
            Err(ReadError::Empty) if done => break,
            Err(ReadError::Empty) => {}
            Err(e) => panic!("{e}"),
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(child.wait().unwrap().success());
    assert!(laps > 0 && missed_bytes > 0, "a consumer this slow is lapped and told so");
    assert!(delivered > 0, "it still reads what is there");
    // Exact conservation: between the first and the last frame delivered,
    // every frame was either delivered or reported missing (per producer).
    let (first, last) = (first_seq.unwrap(), last_seq.unwrap());
    assert_eq!(delivered + missed_frames, last - first + 1, "every frame accounted for");
}
