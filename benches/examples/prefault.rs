//! What prefaulting a flow's rings at setup (`FlowOptions::prefault`, on by
//! default) changes: the setup's time, the first message's, the first and
//! second laps through the ring (64-byte messages sent and received on one
//! thread: the first lap meets every page of the ring for the first time,
//! the second none; and the slowest message of the first lap), for rings
//! prefaulted and lazily touched, taking turns. (The first message never
//! meets a fresh page: laying the ring out wrote its first bytes.)
//! `cargo run --release -p ringflow-bench --example prefault [ROUNDS]`

use std::time::{Duration, Instant};

use ringflow_api::{Flow, FlowOptions, Qos};

fn main() {
    ringflow_testkit::isolate_runtime_dir();
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(40);
    let qos = Qos::data();
    let ring = qos.ring_bytes;
    // Frames of 64 payload bytes take 80 bytes of ring.
    let lap = ring / 80;
    let msg = [7u8; 64];
    let mut figures: [Vec<[Duration; 5]>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [true, false] } else { [false, true] };
        for prefault in order {
            let i = usize::from(!prefault);
            let t = Instant::now();
            let (mut a, mut b) = Flow::pair_with(&qos, FlowOptions::new().prefault(prefault)).expect("pair");
            let setup = t.elapsed();
            let t = Instant::now();
            a.try_send(&msg).expect("send");
            assert_eq!(b.try_recv_ref().expect("recv").len(), 64);
            let first = t.elapsed();
            let mut laps = [Duration::ZERO; 2];
            let mut slowest = Duration::ZERO;
            for (n, l) in laps.iter_mut().enumerate() {
                let t = Instant::now();
                for _ in 0..lap {
                    let m = Instant::now();
                    a.try_send(&msg).expect("send");
                    assert_eq!(b.try_recv_ref().expect("recv").len(), 64);
                    if n == 0 {
                        slowest = slowest.max(m.elapsed());
                    }
                }
                *l = t.elapsed();
            }
            figures[i].push([setup, first, laps[0], laps[1], slowest]);
        }
    }
    println!("{rounds} rounds, Qos::data() ({} KiB rings), {lap} messages of 64 B a lap, medians:", ring >> 10);
    for (i, name) in ["prefaulted", "lazy"].iter().enumerate() {
        let median = |k: usize| {
            let mut v: Vec<Duration> = figures[i].iter().map(|f| f[k]).collect();
            v.sort();
            v[v.len() / 2]
        };
        println!(
            "  {name:>10}: setup {:>7.1} us, first message {:>6.2} us, first lap {:>7.1} us (slowest message \
             {:>5.2} us), second lap {:>7.1} us",
            median(0).as_secs_f64() * 1e6,
            median(1).as_secs_f64() * 1e6,
            median(2).as_secs_f64() * 1e6,
            median(4).as_secs_f64() * 1e6,
            median(3).as_secs_f64() * 1e6,
        );
    }
}
