//! The bridge's steady duty cycle allocates nothing: an invoker-mode engine
//! runs its duty cycles on the test thread (inside the flow's calls), so a
//! counting allocator that counts this thread's allocations only sees every
//! duty cycle of that engine, and nothing of the far engine, the echo
//! thread or the watcher.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use ringflow_core::config::{EngineConfig, NetBackend, ThreadingMode};
use ringflow_core::flow::error::RecvError;
use ringflow_core::flow::listener::{FlowListener, ListenerOptions};
use ringflow_core::flow::Qos;
use ringflow_core::remote::RemoteEngine;
use ringflow_core::Deadline;

#[global_allocator]
static GLOBAL: ringflow_testkit::ThreadCounting = ringflow_testkit::ThreadCounting;

use ringflow_testkit::thread_allocs as allocs;

/// A runtime directory removed when the test ends, passed or failed.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A generous hang guard, never a measured bound.
const GUARD: Duration = Duration::from_secs(60);

#[test]
fn a_steady_bridge_duty_cycle_allocates_nothing() {
    // io_uring where the host allows it (else plain sockets, as `auto` says).
    steady_duty_cycles_allocate_nothing(NetBackend::Auto, "auto", 1);
}

#[test]
fn a_steady_duty_cycle_over_plain_sockets_allocates_nothing() {
    steady_duty_cycles_allocate_nothing(NetBackend::Sockets, "sockets", 1);
}

/// Each request is answered by a burst larger than the local ring holds:
/// the bridge queues what does not fit until the application reads on.
#[test]
fn a_bridge_queueing_for_a_full_ring_allocates_nothing_once_warm() {
    steady_duty_cycles_allocate_nothing(NetBackend::Auto, "burst", 64);
}

/// Requests through an invoker-mode engine (`backend`) to a dedicated one,
/// each answered by `burst` echoes; counts the allocations of the steady
/// ones.
fn steady_duty_cycles_allocate_nothing(backend: NetBackend, tag: &str, burst: usize) {
    // The near engine keeps its statistics in the default runtime directory.
    ringflow_testkit::isolate_runtime_dir();
    let dir = TempDir(std::env::temp_dir().join(format!("ringflow-bridge-alloc-{tag}-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let far_config = EngineConfig::builder().listen(Some("127.0.0.1:0")).build().expect("config");
    let far = RemoteEngine::start(&far_config, Some(dir.0.clone())).expect("far engine");
    let addr = far.listen_addr().expect("far engine listens");
    let mut listener =
        FlowListener::bind_with(tag, ListenerOptions::new().remote(true).runtime_dir(&dir.0)).expect("bind");
    // The echo side: its own thread, behind its own (dedicated) engine.
    let echo = thread::spawn(move || {
        let mut flow = listener.accept(Deadline::after(GUARD)).expect("accept");
        let mut buf = [0u8; 256];
        loop {
            match flow.recv_into_timeout(&mut buf, GUARD) {
                Ok(n) => {
                    for _ in 0..burst {
                        flow.send_timeout(&buf[..n], GUARD).expect("echo");
                    }
                }
                Err(RecvError::Closed | RecvError::PeerGone { .. }) => break,
                Err(e) => panic!("echo: {e}"),
            }
        }
    });
    let near_config = EngineConfig::builder().mode(ThreadingMode::Invoker).backend(backend).build().expect("config");
    let near = RemoteEngine::start(&near_config, None).expect("near engine");
    // The smallest ring: a burst of 64 messages of 200 bytes overflows it.
    let qos = Qos::data().with_ring_bytes(4 << 10);
    let mut flow = near.alloc(&format!("{tag}@{addr}"), &qos, Deadline::after(GUARD)).expect("alloc");

    // With bursts, the deepest queue first: a burst arriving while the one
    // before still waits in the queue. How deep a single burst queues
    // depends on how much of the ring the application has released when
    // it arrives (an answering send runs the engine, which may meet the
    // burst's first frames before the next receive releases the last
    // one's), so the steady state could otherwise find a depth warm-up
    // never reached. Two requests, each burst given time to arrive
    // before the engine runs again: the second burst queues whole behind
    // the first (far below the flow's window).
    if burst > 1 {
        let mut scratch = [0u8; 256];
        for pair in 0..8u64 {
            let mut first = [0u8; 200];
            let mut second = [0u8; 200];
            first[..8].copy_from_slice(&(u64::MAX - 2 * pair).to_le_bytes());
            second[..8].copy_from_slice(&(u64::MAX - 2 * pair - 1).to_le_bytes());
            flow.send_timeout(&first, GUARD).expect("send");
            thread::sleep(Duration::from_millis(2));
            flow.send_timeout(&second, GUARD).expect("send");
            thread::sleep(Duration::from_millis(2));
            for msg in [&first, &second] {
                for _ in 0..burst {
                    let n = flow.recv_into_timeout(&mut scratch, GUARD).expect("recv");
                    assert_eq!(&scratch[..n], msg, "pair {pair}");
                }
            }
        }
    }
    // Blocking calls: they run duty cycles while they spin, then sleep in
    // the engine's io_uring (never a busy wait on both cores).
    let mut buf = [0u8; 256];
    let mut request = |i: u64, pause: bool| {
        let mut msg = [0u8; 200];
        msg[..8].copy_from_slice(&i.to_le_bytes());
        flow.send_timeout(&msg, GUARD).expect("send");
        if pause {
            // Let the whole burst reach this host before the engine runs
            // again, so the next duty cycle queues as much as a burst ever
            // can: the kept buffers reach their high-water mark while warm-up
            // lasts, whatever the machine's load. (Not a synchronisation:
            // a round that queues less only reaches the mark later.)
            thread::sleep(Duration::from_millis(2));
        }
        for _ in 0..burst {
            let n = flow.recv_into_timeout(&mut buf, GUARD).expect("recv");
            assert_eq!(&buf[..n], &msg, "request {i}");
        }
    };
    let rounds = 4_000 / burst as u64;
    // Warm up: every buffer the bridge keeps grows to its working size.
    for i in 0..rounds {
        request(i, burst > 1);
    }
    // Steady state, long enough for the timers (UDP hellos every 100 ms)
    // to run a few times: a loop bound, never an assertion about time.
    let before = allocs();
    let started = Instant::now();
    let mut i = rounds;
    while i < 2 * rounds || started.elapsed() < Duration::from_millis(350) {
        request(i, false);
        i += 1;
    }
    let allocated = allocs() - before;

    flow.dealloc(Deadline::after(GUARD)).expect("dealloc");
    near.shutdown().expect("near shutdown");
    echo.join().expect("echo thread");
    far.shutdown().expect("far shutdown");
    assert_eq!(allocated, 0, "{tag}: {allocated} allocations in {} steady requests", i - rounds);
}
