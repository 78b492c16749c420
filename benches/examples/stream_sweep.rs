//! Sweeps the SPSC ring's stream throughput over its knobs — batch size,
//! wake mode, ring capacity — between two threads pinned to cores 0 and 1,
//! so a user can see what each knob does on their host (tuning.md quotes it).
//!
//! `cargo run --release -p ringflow-bench --example stream_sweep [CAPACITY BATCH]`
//! (with arguments: that one cell only, e.g. for a profiler).
//!
//! Each cell streams 4 M messages of 64 bytes. Figures are msgs/s of this
//! run; compare cells of the same run, not runs of different days.

use ringflow_ring::spsc::{self, Consumer, Producer};
use ringflow_ring::{HeapRegion, WakeMode};
use std::sync::Arc;
use std::time::Instant;

const MESSAGES: u64 = 4_000_000;

fn pin(id: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id })
}

/// Streams MESSAGES 64-byte messages; returns msgs/s.
fn stream(capacity: usize, batch: usize, mode: WakeMode) -> Result<f64, String> {
    let region = Arc::new(HeapRegion::new(spsc::region_len(capacity)));
    // SAFETY: a fresh region: no side attached, nobody else uses it yet.
    unsafe { spsc::init_with(&*region, mode) }.map_err(|e| e.to_string())?;
    let mut tx = Producer::attach(region.clone()).map_err(|e| e.to_string())?;
    let mut rx = Consumer::attach(region).map_err(|e| e.to_string())?;
    let producer = std::thread::spawn(move || {
        pin(1);
        let msg = [7u8; 64];
        let mut sent = 0;
        while sent < MESSAGES {
            let mut pushed = 0;
            while pushed < batch && sent < MESSAGES {
                match tx.try_claim(msg.len()) {
                    Ok(mut claim) => {
                        claim.payload_mut().copy_from_slice(&msg);
                        claim.push();
                        pushed += 1;
                        sent += 1;
                    }
                    Err(_) => {
                        let _ = tx.commit();
                        std::hint::spin_loop();
                    }
                }
            }
            let _ = tx.commit();
        }
    });
    pin(0);
    let start = Instant::now();
    let (mut got, mut sum) = (0u64, 0u64);
    while got < MESSAGES {
        match rx.read_batch(batch, |frame| sum += frame.payload()[0] as u64) {
            Ok((n, _)) => got += n as u64,
            Err(_) => std::hint::spin_loop(),
        }
    }
    let elapsed = start.elapsed();
    producer.join().map_err(|_| "producer thread panicked".to_string())?;
    if sum != 7 * MESSAGES {
        return Err(format!("payload check failed: {sum}"));
    }
    Ok(MESSAGES as f64 / elapsed.as_secs_f64())
}

fn main() {
    let membarrier = ringflow_core::membarrier::register().is_ok();
    let modes: &[(&str, WakeMode)] = if membarrier {
        &[("fenced", WakeMode::Fenced), ("membarrier", WakeMode::Membarrier)]
    } else {
        println!("membarrier unavailable here: fenced mode only");
        &[("fenced", WakeMode::Fenced)]
    };
    if core_affinity::get_core_ids().map_or(0, |ids| ids.len()) < 2 {
        println!("fewer than 2 cores: threads unpinned, figures not meaningful");
    }
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (capacities, batches) = match args[..] {
        [capacity, batch] => (vec![capacity], vec![batch]),
        _ => (vec![1usize << 12, 1 << 17, 1 << 20], vec![1usize, 8, 32]),
    };
    println!("{:>10} {:>6} {:>11} {:>12}", "capacity", "batch", "wake", "msgs/s");
    for &capacity in &capacities {
        for &batch in &batches {
            for &(name, mode) in modes {
                match stream(capacity, batch, mode) {
                    Ok(rate) => println!("{capacity:>10} {batch:>6} {name:>11} {:>11.1}M", rate / 1e6),
                    Err(e) => println!("{capacity:>10} {batch:>6} {name:>11} error: {e}"),
                }
            }
        }
    }
}
