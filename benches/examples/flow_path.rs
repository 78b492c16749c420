//! The flow API's software path on one thread (no cache-line transfers): a
//! send and a receive of a 64-byte message per round, so the cost of the
//! API itself can be told apart from the cost of moving lines between cores.
//! `cargo run --release -p ringflow-bench --example flow_path`

use std::time::{Duration, Instant};

use ringflow_api::{Deadline, Flow, FlowOptions, Listener, ListenerOptions, Qos};

#[path = "shared/batch.rs"]
mod batch;

fn main() {
    let dir = std::env::temp_dir().join(format!("ringflow-path-{}", std::process::id()));
    let mut l = Listener::bind_with("path", ListenerOptions::new().runtime_dir(&dir)).expect("bind");
    let d = dir.clone();
    let t = std::thread::spawn(move || {
        Flow::alloc_with(
            "path",
            &Qos::data().with_ring_bytes(64 << 10),
            Deadline::Never,
            FlowOptions::new().runtime_dir(d),
        )
    });
    let mut b = l.accept().expect("accept");
    let mut a = t.join().expect("join").expect("alloc");
    let msg = [7u8; 64];
    let mut buf = [0u8; 64];
    for (name, rounds) in [("warm-up", 1_000_000u32), ("send + recv_into", 5_000_000), ("send + recv_ref", 5_000_000)] {
        let start = Instant::now();
        let mut sum = 0u64;
        for _ in 0..rounds {
            a.send(&msg).expect("send");
            if name == "send + recv_ref" {
                sum += b.try_recv_ref().expect("recv")[0] as u64;
            } else {
                sum += b.try_recv_into(&mut buf).expect("recv") as u64;
            }
        }
        let per = start.elapsed().as_nanos() as f64 / rounds as f64;
        std::hint::black_box(sum);
        println!("{name:>18}: {per:.1} ns per message");
    }
    // Batches of 32: `send_batch_with` writes them in place, `recv_batch`
    // reads them in place.
    let start = Instant::now();
    let mut sum = 0u64;
    for _ in 0..5_000_000 / batch::BATCH {
        sum += batch::round(&mut a, &mut b, &msg);
    }
    std::hint::black_box(sum);
    println!("{:>18}: {:.1} ns per message", "batches of 32", start.elapsed().as_nanos() as f64 / 5e6);
    // The bare ring, for comparison: claim + copy + commit, read + release.
    let region = std::sync::Arc::new(ringflow_ring::HeapRegion::new(ringflow_ring::spsc::region_len(64 << 10)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { ringflow_ring::spsc::init_with(&*region, ringflow_core::membarrier::preferred_wake_mode()) }
        .expect("init");
    let mut tx = ringflow_ring::spsc::Producer::attach(region.clone()).expect("tx");
    let mut rx = ringflow_ring::spsc::Consumer::attach(region).expect("rx");
    let start = Instant::now();
    let mut sum = 0u64;
    for _ in 0..5_000_000u32 {
        let _ = tx.try_send(&msg).expect("send");
        sum += rx.try_read().expect("read").payload()[0] as u64;
        let _ = rx.release();
    }
    std::hint::black_box(sum);
    println!("{:>18}: {:.1} ns per message", "bare ring", start.elapsed().as_nanos() as f64 / 5e6);
    let start = Instant::now();
    for _ in 0..5_000_000u32 / 32 {
        let (n, _) = tx
            .write_batch(32, 64, |slot| {
                slot.payload_mut().copy_from_slice(&msg);
                true
            })
            .expect("write batch");
        assert_eq!(n, 32);
        let (n, _) = rx.read_batch(32, |f| sum += f.payload()[0] as u64).expect("read batch");
        assert_eq!(n, 32);
    }
    std::hint::black_box(sum);
    println!("{:>18}: {:.1} ns per message", "bare ring batches", start.elapsed().as_nanos() as f64 / 5e6);
    drop((a, b, l));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = Duration::ZERO;
}
