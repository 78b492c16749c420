//! Round trips of a remote flow after idle spells: two dedicated engines
//! with the default configuration (threads that back off and park), a
//! client that sends one 64-byte request every `GAP_MS` and blocks for the
//! echo. What a request/response service with quiet gaps sees: whether an
//! idle engine notices a message at once or at its next park timeout.
//! `cargo run --release -p ringflow-bench --example sparse_remote -- [ROUNDS] [GAP_MS]`

use std::thread;
use std::time::{Duration, Instant};

use ringflow_api::remote::RemoteEngine;
use ringflow_api::{EngineConfig, Listener, ListenerOptions, Qos};

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let rounds = args.first().copied().unwrap_or(200) as usize;
    let gap = Duration::from_millis(args.get(1).copied().unwrap_or(10));
    let dir = std::env::temp_dir().join(format!("ringflow-sparse-{}", std::process::id()));
    let mut listener =
        Listener::bind_with("echo", ListenerOptions::new().remote(true).runtime_dir(&dir)).expect("bind");
    let far_cfg = EngineConfig::builder().listen(Some("127.0.0.1:0")).build().expect("config");
    let far = RemoteEngine::start(&far_cfg, Some(dir.clone())).expect("far engine");
    let near = RemoteEngine::start(&EngineConfig::default(), None).expect("near engine");
    let addr = far.listen_addr().expect("listening");
    let server = thread::spawn(move || {
        let mut flow = listener.accept_timeout(Duration::from_secs(10)).expect("accept");
        let mut buf = [0u8; 64];
        while let Ok(n) = flow.recv_into(&mut buf) {
            if flow.send(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut flow = near.alloc_timeout(&format!("echo@{addr}"), &Qos::data(), Duration::from_secs(10)).expect("alloc");
    let mut rtts = Vec::with_capacity(rounds);
    let mut buf = [0u8; 64];
    for i in 0..rounds {
        thread::sleep(gap);
        let t0 = Instant::now();
        flow.send(&(i as u64).to_le_bytes()).expect("send");
        flow.recv_into(&mut buf).expect("recv");
        rtts.push(t0.elapsed());
    }
    drop(flow);
    let _ = server.join();
    rtts.sort();
    let at = |q: f64| rtts[((rtts.len() - 1) as f64 * q) as usize];
    println!(
        "sparse_remote: {rounds} round trips after {gap:?} idle each: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        at(0.5),
        at(0.9),
        at(0.99),
        rtts[rtts.len() - 1]
    );
    let _ = near.shutdown();
    let _ = far.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
