//! A fixed number of 64-byte round trips over one remote flow between two
//! invoker-mode engines (as `bench remote`'s `pingpong-64B` runs them: each
//! side's pinned thread drives its own engine by spinning on the `try_`
//! forms), for counting what a round trip costs independently of time:
//! `perf stat -e 'syscalls:sys_enter_io_uring_enter,raw_syscalls:sys_enter'`
//! (or `strace -c -f`, `valgrind --tool=callgrind`) over two runs with
//! different counts, the difference divided by the difference in rounds.
//! It also prints each engine's own send and direct-receive counters per
//! round trip.
//!
//! `cargo run --release -p ringflow-bench --example remote_rounds -- [ROUNDS]`

use std::sync::mpsc;
use std::time::{Duration, Instant};

use ringflow_api::config::{EngineConfig, ThreadingMode};
use ringflow_api::remote::RemoteEngine;
use ringflow_api::{Flow, Listener, ListenerOptions, Qos, RecvError, SendError};

const TIMEOUT: Duration = Duration::from_secs(30);

fn config(listen: Option<&str>) -> EngineConfig {
    EngineConfig::builder()
        .mode(ThreadingMode::Invoker)
        .listen(listen)
        .single_issuer(true)
        .defer_taskrun(true)
        .build()
        .expect("engine configuration")
}

fn pin(core: usize) {
    if let Some(id) = core_affinity::get_core_ids().and_then(|ids| ids.get(core % ids.len()).copied()) {
        core_affinity::set_for_current(id);
    }
}

fn send(flow: &mut Flow, msg: &[u8]) {
    loop {
        match flow.try_send(msg) {
            Ok(()) => return,
            Err(SendError::WouldBlock) => std::hint::spin_loop(),
            Err(e) => panic!("send: {e}"),
        }
    }
}

fn recv(flow: &mut Flow, buf: &mut [u8; 64]) -> usize {
    loop {
        match flow.try_recv_ref() {
            Ok(m) => {
                let n = m.len().min(64);
                buf[..n].copy_from_slice(&m[..n]);
                return n;
            }
            Err(RecvError::WouldBlock) => std::hint::spin_loop(),
            Err(e) => panic!("recv: {e}"),
        }
    }
}

fn main() {
    let rounds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("ringflow-rounds-{}", std::process::id()));
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new().mode(0o700).create(&dir).expect("runtime dir");
    }
    let (addr_tx, addr_rx) = mpsc::channel();
    let server_dir = dir.clone();
    let server = std::thread::spawn(move || {
        pin(1);
        let engine = RemoteEngine::start(&config(Some("127.0.0.1:0")), Some(server_dir.clone())).expect("engine");
        let opts = ListenerOptions::new().remote(true).runtime_dir(&server_dir).engine(&engine);
        let mut listener = Listener::bind_with("rounds", opts).expect("bind");
        addr_tx.send(engine.listen_addr().expect("listens")).expect("addr");
        let mut flow = listener.accept_timeout(TIMEOUT).expect("accept");
        let mut buf = [0u8; 64];
        let before = engine.stats();
        for _ in 0..rounds {
            let n = recv(&mut flow, &mut buf);
            send(&mut flow, &buf[..n]);
        }
        let after = engine.stats();
        // The client closes; drive the engine until it did.
        while !matches!(flow.recv_ref_timeout(TIMEOUT), Err(RecvError::Closed)) {}
        drop(flow);
        let _ = engine.shutdown_within(Duration::from_secs(2));
        (
            (after.plain_sends - before.plain_sends) as f64 / rounds as f64,
            (after.doorbells_rung - before.doorbells_rung) as f64 / rounds as f64,
            (after.direct_receives - before.direct_receives) as f64 / rounds as f64,
        )
    });
    pin(0);
    let addr = addr_rx.recv().expect("server address");
    let engine = RemoteEngine::start(&config(None), None).expect("engine");
    let mut flow = engine.alloc_timeout(&format!("rounds@{addr}"), &Qos::data(), TIMEOUT).expect("alloc");
    let mut msg = [7u8; 64];
    // What one duty cycle with nothing to do costs (the far side waits).
    let idle_cycles: u32 = std::env::var("IDLE_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let t = Instant::now();
    for _ in 0..idle_cycles {
        std::hint::black_box(engine.invoke());
    }
    let idle_ns = t.elapsed().as_nanos() as f64 / f64::from(idle_cycles);
    let t = Instant::now();
    for _ in 0..idle_cycles {
        let _ = std::hint::black_box(flow.try_recv_ref().map(|m| m.len()));
    }
    let try_recv_ns = t.elapsed().as_nanos() as f64 / f64::from(idle_cycles);
    let before = engine.stats();
    let cycles_before = invoker_cycles();
    let mut times = Vec::with_capacity(rounds as usize);
    let start = Instant::now();
    for i in 0..rounds {
        let t = Instant::now();
        msg[..8].copy_from_slice(&i.to_le_bytes());
        send(&mut flow, &msg);
        recv(&mut flow, &mut msg);
        times.push(t.elapsed());
    }
    let took = start.elapsed();
    let cycles = invoker_cycles() - cycles_before;
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_nanos();
    let after = engine.stats();
    flow.dealloc_timeout(TIMEOUT).expect("dealloc");
    let (server_sends, server_rung, server_direct) = server.join().expect("server");
    let _ = engine.shutdown_within(Duration::from_secs(2));
    let _ = std::fs::remove_dir_all(&dir);
    println!("duty cycles per round trip (both sides): {:.1}", cycles as f64 / rounds as f64);
    println!("an idle duty cycle: {idle_ns:.0} ns; a try_recv that finds nothing (one cycle): {try_recv_ns:.0} ns");
    println!(
        "{rounds} round trips, mean {:.2} us, p50 {} ns, p99 {} ns; socket writes per round trip: client {:.3}, server {:.3}",
        took.as_secs_f64() * 1e6 / rounds as f64,
        at(0.5),
        at(0.99),
        (after.plain_sends - before.plain_sends) as f64 / rounds as f64,
        server_sends
    );
    println!(
        "doorbells rung per round trip: client {:.3}, server {server_rung:.3}",
        (after.doorbells_rung - before.doorbells_rung) as f64 / rounds as f64
    );
    println!(
        "direct receives per round trip: client {:.3}, server {server_direct:.3}",
        (after.direct_receives - before.direct_receives) as f64 / rounds as f64
    );
}

/// Duty cycles the invoking threads of this process ran so far (their
/// `ringflow-invoker` slots' first counter).
fn invoker_cycles() -> u64 {
    let Ok(dir) = ringflow_api::stats::runtime_dir(None) else { return 0 };
    let Ok(procs) = ringflow_api::stats::read_dir(&dir) else { return 0 };
    procs
        .iter()
        .filter(|p| p.pid == std::process::id())
        .flat_map(|p| p.slots.iter())
        .filter(|s| s.name == "ringflow-invoker")
        .map(|s| s.counters[0])
        .sum()
}
