//! Standalone engines (`ringflow engine`) under faults: the counts a
//! `PeerGone` reports through them are exact in both directions; an
//! application killed while it sends leaves nothing held in its engine;
//! an engine out of descriptors says so instead of "nobody listens"; a flow
//! addressed through this host's own engine works; a port in use is said
//! in words.
//!
//! Engines are `ringflow engine` processes; applications are this test
//! process or children (this binary re-run), killed with SIGKILL. Every
//! process is killed and reaped when its guard drops, every wait polls
//! with a hang guard, nothing asserts a duration.

mod support;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use ringflow::{AllocError, Deadline, Flow, FlowOptions, Listener, ListenerOptions, Qos, RecvError, SendError};
use support::{
    child_arg, child_dir, fds_of, is_child, private_dir, sleep_forever, write_marker, AppProc, EngineProc, EngineSpec,
    Fds, LONG,
};

/// Messages of the counted streams.
const COUNT: u64 = 1000;

fn dir(tag: &str) -> ringflow_testkit::TempDir {
    ringflow_testkit::temp_dir(&format!("ef-{tag}"))
}

/// Message `i` of a counted stream: its number, then a few bytes more.
fn message(i: u64) -> Vec<u8> {
    let mut m = i.to_le_bytes().to_vec();
    m.resize(8 + (i as usize * 7) % 200, i as u8);
    m
}

fn listener_in(dir: &Path, name: &str) -> Listener {
    Listener::bind_with(name, ListenerOptions::new().remote(true).runtime_dir(dir)).expect("bind")
}

/// An attached application's flow to `target` through the host engine of
/// `near` (no engine of this process's own).
fn alloc_attached(near: &Path, target: &str) -> Flow {
    let opts = FlowOptions::new().runtime_dir(near);
    Flow::alloc_with(target, &Qos::data(), Deadline::after(LONG), opts).expect("alloc through the host engine")
}

// ---- exact counts through standalone engines -----------------------------

#[test]
#[ignore]
fn child_sends_counted_then_sleeps() {
    if !is_child() {
        return;
    }
    let dir = child_dir();
    let count: u64 = child_arg("COUNT").parse().unwrap();
    let mut listener = listener_in(&dir.join("far"), "src");
    write_marker(&dir, "bound", "");
    let mut flow = listener.accept_timeout(LONG).unwrap();
    for i in 0..count {
        flow.send_timeout(&message(i), LONG).unwrap();
    }
    write_marker(&dir, "sent", "");
    std::mem::forget(flow);
    sleep_forever();
}

#[test]
#[ignore]
fn child_reads_counted_then_sleeps() {
    if !is_child() {
        return;
    }
    let dir = child_dir();
    let count: u64 = child_arg("COUNT").parse().unwrap();
    let mut listener = listener_in(&dir.join("far"), "sink");
    write_marker(&dir, "bound", "");
    let mut flow = listener.accept_timeout(LONG).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    for i in 0..count {
        let n = flow.recv_into_timeout(&mut buf, LONG).unwrap();
        assert_eq!(&buf[..n], &message(i)[..], "message {i}");
    }
    write_marker(&dir, "read", "");
    std::mem::forget(flow);
    sleep_forever();
}

/// The far application sends exactly [`COUNT`] messages and is killed: the
/// near one, attached to a standalone engine, reads them all and then
/// `PeerGone { received: COUNT }` (the attach's own request and answer
/// are no messages of the flow).
#[test]
fn through_standalone_engines_a_killed_senders_count_is_exact() {
    let top = dir("recv");
    let (near_dir, far_dir) = (private_dir(top.path(), "near"), private_dir(top.path(), "far"));
    let far = EngineSpec::new(&far_dir, "127.0.0.1:0").start();
    let _near = EngineSpec::new(&near_dir, "none").start();
    let args = [("DIR", top.path().display().to_string()), ("COUNT", COUNT.to_string())];
    let mut app = AppProc::spawn("child_sends_counted_then_sleeps", &args);
    app.await_marker(&top.path().join("bound"));
    let mut flow = alloc_attached(&near_dir, &format!("src@{}", far.addr));
    let mut buf = vec![0u8; 1 << 16];
    for i in 0..COUNT {
        let n = flow.recv_into_timeout(&mut buf, LONG).unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_eq!(&buf[..n], &message(i)[..], "message {i}");
    }
    app.await_marker(&top.path().join("sent"));
    app.kill();
    match flow.recv_into_timeout(&mut buf, LONG) {
        Err(RecvError::PeerGone { received }) => assert_eq!(received, COUNT, "PeerGone's count"),
        other => panic!("after all {COUNT} messages and the sender's kill -9: {other:?}"),
    }
    assert_eq!(flow.stats().received, COUNT, "the flow's own count");
}

/// The mirror: the near application sends [`COUNT`] messages, the far one
/// reads exactly those and is killed: the next sends end in
/// `PeerGone { delivered: COUNT }`, never more than the peer read.
#[test]
fn through_standalone_engines_a_killed_readers_count_is_exact() {
    let top = dir("send");
    let (near_dir, far_dir) = (private_dir(top.path(), "near"), private_dir(top.path(), "far"));
    let far = EngineSpec::new(&far_dir, "127.0.0.1:0").start();
    let _near = EngineSpec::new(&near_dir, "none").start();
    let args = [("DIR", top.path().display().to_string()), ("COUNT", COUNT.to_string())];
    let mut app = AppProc::spawn("child_reads_counted_then_sleeps", &args);
    app.await_marker(&top.path().join("bound"));
    let mut flow = alloc_attached(&near_dir, &format!("sink@{}", far.addr));
    for i in 0..COUNT {
        flow.send_timeout(&message(i), LONG).unwrap_or_else(|e| panic!("message {i}: {e}"));
    }
    assert_eq!(flow.stats().sent, COUNT, "the flow's own count");
    app.await_marker(&top.path().join("read"));
    app.kill();
    // Sends go on (nobody reads them) until the death reaches this side.
    let end = Instant::now() + LONG;
    let outcome = loop {
        match flow.send_timeout(b"after the death", LONG) {
            Ok(()) => {
                assert!(Instant::now() < end, "the reader's death never reached the sender");
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => break e,
        }
    };
    match outcome {
        SendError::PeerGone { delivered } => assert_eq!(delivered, COUNT, "PeerGone's count"),
        other => panic!("after the reader's kill -9: {other:?}"),
    }
}

// ---- nothing held after a death -------------------------------------------

#[test]
#[ignore]
fn child_sends_until_killed() {
    if !is_child() {
        return;
    }
    let dir = child_dir();
    let marker = child_arg("MARKER");
    let mut listener = listener_in(&dir.join("far"), "src");
    write_marker(&dir, &marker, "");
    let mut flow = listener.accept_timeout(LONG).unwrap();
    for i in 0.. {
        if flow.send_timeout(&message(i), LONG).is_err() {
            break; // its reader or an engine died
        }
    }
    std::process::exit(0);
}

/// Descriptors of both engines, for messages.
fn both(far: &EngineProc, near: &EngineProc) -> (Fds, Fds) {
    (fds_of(far.pid()), fds_of(near.pid()))
}

/// Applications killed while they send (their engine forwarding, the flow
/// full of unread messages): once each death has reached the other side,
/// both engines hold as many memfds and sockets as before the first.
#[test]
fn an_application_killed_while_it_sends_leaves_nothing_in_either_engine() {
    const KILLS: u64 = 4;
    let top = dir("leak");
    let (near_dir, far_dir) = (private_dir(top.path(), "near"), private_dir(top.path(), "far"));
    let far = EngineSpec::new(&far_dir, "127.0.0.1:0").start();
    let near = EngineSpec::new(&near_dir, "none").start();
    let mut buf = vec![0u8; 1 << 16];
    // One clean flow first: the link between the engines is up, and stays.
    {
        let mut listener = listener_in(&far_dir, "clean");
        let server = thread::spawn(move || {
            let mut flow = listener.accept_timeout(LONG).unwrap();
            flow.send_timeout(b"hello", LONG).unwrap();
            flow.dealloc_timeout(LONG).unwrap();
        });
        let mut flow = alloc_attached(&near_dir, &format!("clean@{}", far.addr));
        assert_eq!(&*flow.recv_ref_timeout(LONG).unwrap(), b"hello");
        assert!(matches!(flow.recv_into_timeout(&mut buf, LONG), Err(RecvError::Closed)));
        drop(flow);
        server.join().unwrap();
    }
    // Settled: the clean flow is gone from both engines.
    let mut before = both(&far, &near);
    support::wait_until("the clean flow's descriptors to settle", || {
        thread::sleep(Duration::from_millis(100));
        let now = both(&far, &near);
        let was = std::mem::replace(&mut before, now);
        if was == now {
            Ok(())
        } else {
            Err(format!("{was:?} then {now:?}"))
        }
    });
    println!("baseline: far {:?}, near {:?}", before.0, before.1);
    for kill in 0..KILLS {
        let marker = format!("bound{kill}");
        let args = [("DIR", top.path().display().to_string()), ("MARKER", marker.clone())];
        let mut app = AppProc::spawn("child_sends_until_killed", &args);
        app.await_marker(&top.path().join(&marker));
        let mut flow = alloc_attached(&near_dir, &format!("src@{}", far.addr));
        for i in 0..100 {
            let n = flow.recv_into_timeout(&mut buf, LONG).unwrap();
            assert_eq!(&buf[..n], &message(i)[..]);
        }
        app.kill();
        // Read on (the ring and the engines hold more) until the death.
        let mut read = 100;
        loop {
            match flow.recv_into_timeout(&mut buf, LONG) {
                Ok(n) => {
                    assert_eq!(&buf[..n], &message(read)[..]);
                    read += 1;
                }
                Err(RecvError::PeerGone { received }) => {
                    assert_eq!(received, read);
                    break;
                }
                Err(e) => panic!("kill {kill}: {e}"),
            }
        }
        drop(flow);
        let now = both(&far, &near);
        println!("after kill {kill} ({read} read): far {:?}, near {:?}", now.0, now.1);
    }
    let baseline = before;
    let memfds_and_sockets = |(far, near): (Fds, Fds)| (far.memfds, far.sockets, near.memfds, near.sockets);
    let mut last = baseline;
    support::wait_until("both engines back to their memfds and sockets", || {
        last = both(&far, &near);
        if memfds_and_sockets(last) == memfds_and_sockets(baseline) {
            Ok(())
        } else {
            Err(format!("baseline {baseline:?}, now {last:?}"))
        }
    });
    println!("settled: far {:?}, near {:?}", last.0, last.1);
}

// ---- out of descriptors ----------------------------------------------------

/// Sets the soft RLIMIT_NOFILE of process `pid` (keeping its hard limit);
/// returns the soft limit it had.
fn set_nofile(pid: u32, soft: u64) -> u64 {
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: reads the limit into `old`, a live local; no new limit.
    let r = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit { rlim_cur: soft, rlim_max: old.rlim_max };
    // SAFETY: `new` is a live local; the old value is not asked for.
    let r = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
    old.rlim_cur
}

/// An echo listener `name` in `dir`, served on threads of this process:
/// ends with its flows when their engine goes, or at the hang guard.
fn echo_listener(dir: &Path, name: &str) -> thread::JoinHandle<()> {
    let mut listener = listener_in(dir, name);
    thread::spawn(move || {
        while let Ok(mut flow) = listener.accept_timeout(LONG) {
            thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = flow.recv_into_timeout(&mut buf, LONG) {
                    if flow.send_timeout(&buf[..n], LONG).is_err() {
                        return;
                    }
                }
            });
        }
    })
}

fn round_trip(flow: &mut Flow) {
    flow.send_timeout(b"ping", LONG).unwrap();
    assert_eq!(&*flow.recv_ref_timeout(LONG).unwrap(), b"ping");
}

/// The far engine at its descriptor limit: an open of a bound name fails
/// as a resource limit with its cause (EMFILE), not as `NotFound`; once
/// the limit is raised, the same open works.
#[test]
fn an_engine_out_of_descriptors_says_so_not_that_nobody_listens() {
    let top = dir("nofile");
    let (near_dir, far_dir) = (private_dir(top.path(), "near"), private_dir(top.path(), "far"));
    let far = EngineSpec::new(&far_dir, "127.0.0.1:0").start();
    let _near = EngineSpec::new(&near_dir, "none").start();
    let _echo = echo_listener(&far_dir, "echo");
    let target = format!("echo@{}", far.addr);
    // The link between the engines is up before the limit bites.
    let mut first = alloc_attached(&near_dir, &target);
    round_trip(&mut first);
    first.dealloc_timeout(LONG).unwrap();
    let mut open = fds_of(far.pid()).total;
    support::wait_until("the far engine's descriptors to settle", || {
        thread::sleep(Duration::from_millis(100));
        let now = fds_of(far.pid()).total;
        let was = std::mem::replace(&mut open, now);
        if was == now {
            Ok(())
        } else {
            Err(format!("{was} then {now}"))
        }
    });
    // No descriptor above those open now.
    let old = set_nofile(far.pid(), open as u64);
    let opts = FlowOptions::new().runtime_dir(&near_dir);
    let r = Flow::alloc_with(&target, &Qos::data(), Deadline::after(LONG), opts);
    match &r {
        Err(AllocError::RemoteResourceLimit { errno }) => {
            assert_eq!(*errno, libc::EMFILE, "the cause");
            let text = r.as_ref().unwrap_err().to_string();
            assert!(text.contains("resource") && text.contains("open files"), "{text}");
        }
        other => panic!("the far engine out of descriptors: {:?}, expected RemoteResourceLimit", other.as_ref().err()),
    }
    set_nofile(far.pid(), old);
    let mut again = alloc_attached(&near_dir, &target);
    round_trip(&mut again);
}

// ---- a flow through this host's own engine ---------------------------------

/// A flow addressed to this host's engine by its own listening address
/// (the name bound in the same runtime directory) works both ways.
#[test]
fn a_flow_addressed_through_this_hosts_own_engine_works() {
    let top = dir("self");
    let host_dir = private_dir(top.path(), "host");
    let engine = EngineSpec::new(&host_dir, "127.0.0.1:0").start();
    let _echo = echo_listener(&host_dir, "hello");
    let mut flow = alloc_attached(&host_dir, &format!("hello@{}", engine.addr));
    for i in 0..50u64 {
        flow.send_timeout(&message(i), LONG).unwrap();
        assert_eq!(&*flow.recv_ref_timeout(LONG).unwrap(), &message(i)[..], "round trip {i}");
    }
    flow.dealloc_timeout(LONG).unwrap();
}

/// The same with an engine of this process's own: `RemoteEngine::alloc`
/// to its own address reaches the listener of its runtime directory.
#[test]
fn a_flow_addressed_to_an_engines_own_address_works() {
    let top = dir("selfemb");
    let host_dir = private_dir(top.path(), "host");
    ringflow_testkit::isolate_runtime_dir();
    let config = ringflow::config::EngineConfig::builder().listen(Some("127.0.0.1:0")).build().unwrap();
    let engine = ringflow::remote::RemoteEngine::start(&config, Some(host_dir.clone())).unwrap();
    let addr = engine.listen_addr().expect("it listens");
    let _echo = echo_listener(&host_dir, "hello");
    let mut flow = engine.alloc_timeout(&format!("hello@{addr}"), &Qos::data(), LONG).unwrap();
    for i in 0..50u64 {
        flow.send_timeout(&message(i), LONG).unwrap();
        assert_eq!(&*flow.recv_ref_timeout(LONG).unwrap(), &message(i)[..], "round trip {i}");
    }
    flow.dealloc_timeout(LONG).unwrap();
    engine.shutdown().unwrap();
}

// ---- a port in use ---------------------------------------------------------

/// A second engine on a port the first holds says so in words, with the
/// address, and exits non-zero.
#[test]
fn an_engine_on_a_port_in_use_says_so_in_words() {
    let top = dir("inuse");
    let (a, b) = (private_dir(top.path(), "a"), private_dir(top.path(), "b"));
    let first = EngineSpec::new(&a, "127.0.0.1:0").start();
    let (status, stderr) = EngineSpec::new(&b, &first.addr).run_to_end();
    assert!(!status.success(), "the second engine started: {stderr}");
    assert!(stderr.contains("already in use") && stderr.contains(&first.addr), "{stderr}");
    assert!(!stderr.contains("errno") && !stderr.contains("Io {"), "{stderr}");
}

// ---- kill -9 at random moments ---------------------------------------------

#[test]
#[ignore]
fn child_reads_until_killed() {
    if !is_child() {
        return;
    }
    let dir = child_dir();
    let near = dir.join(child_arg("NEAR"));
    let opts = FlowOptions::new().runtime_dir(&near);
    // A short peer timeout: an engine's death ends the flow soon.
    let qos = Qos { peer_timeout: Duration::from_secs(1), ..Qos::data() };
    let mut flow = match Flow::alloc_with(&child_arg("TARGET"), &qos, Deadline::after(LONG), opts) {
        Ok(flow) => flow,
        Err(e) => panic!("reader: {e} ({e:?})"),
    };
    let mut buf = vec![0u8; 1 << 16];
    let mut marked = false;
    while flow.recv_into_timeout(&mut buf, LONG).is_ok() {
        if !marked {
            write_marker(&dir, &child_arg("MARKER"), "");
            marked = true;
        }
    }
    std::process::exit(0);
}

/// A `ringflow engine` of the random-kill test, and what it held idle.
struct Held {
    engine: EngineProc,
    idle: Fds,
    rss_kib: u64,
}

impl Held {
    fn start(dir: &Path, listen: &str) -> Held {
        let engine = EngineSpec::new(dir, listen).start();
        let idle = fds_of(engine.pid());
        let rss_kib = support::rss_kib(engine.pid());
        Held { engine, idle, rss_kib }
    }

    /// Nothing of a flow left: no memfd, no more sockets than idle plus
    /// one link's connection, resident memory within a margin of idle.
    fn check(&self, what: &str) -> Result<String, String> {
        let now = fds_of(self.engine.pid());
        let rss = support::rss_kib(self.engine.pid());
        let report = format!("{what}: fds {now:?} (idle {:?}), VmRSS {rss} KiB (idle {} KiB)", self.idle, self.rss_kib);
        if now.memfds == 0 && now.sockets <= self.idle.sockets + 1 && rss <= self.rss_kib + (32 << 10) {
            Ok(report)
        } else {
            Err(report)
        }
    }
}

/// Rounds of a far application sending to a near one through two engines,
/// where one of the four processes (either application, either engine) is
/// killed with SIGKILL at a random moment, then the applications: after
/// each round both engines (one restarted if it was the victim) hold no
/// memfd, no socket of a flow, and no more memory than a margin over idle.
/// The seed is printed (RINGFLOW_TEST_SEED replays it).
#[test]
fn kill_9_at_random_moments_leaves_the_engines_clean() {
    const ROUNDS: u64 = 6;
    let seed = std::env::var("RINGFLOW_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    });
    println!("seed {seed} (RINGFLOW_TEST_SEED={seed} replays it)");
    let mut rng = ringflow_testkit::Rng(seed);
    let top = dir("kills");
    let (near_dir, far_dir) = (private_dir(top.path(), "near"), private_dir(top.path(), "far"));
    let mut far = Held::start(&far_dir, "127.0.0.1:0");
    let mut near = Held::start(&near_dir, "none");
    for round in 0..ROUNDS {
        let (bound, reading) = (format!("bound{round}"), format!("reading{round}"));
        let dir_arg = ("DIR", top.path().display().to_string());
        let mut sender = AppProc::spawn("child_sends_until_killed", &[dir_arg.clone(), ("MARKER", bound.clone())]);
        sender.await_marker(&top.path().join(&bound));
        let target = format!("src@{}", far.engine.addr);
        let args = [dir_arg, ("MARKER", reading.clone()), ("NEAR", "near".into()), ("TARGET", target)];
        let mut reader = AppProc::spawn("child_reads_until_killed", &args);
        reader.await_marker(&top.path().join(&reading));
        thread::sleep(Duration::from_millis(rng.below(50)));
        let victim = rng.below(4);
        let name = ["the sender", "the reader", "the near engine", "the far engine"][victim as usize];
        match victim {
            0 => sender.kill(),
            1 => reader.kill(),
            2 => near.engine.kill(),
            _ => far.engine.kill(),
        }
        thread::sleep(Duration::from_millis(rng.below(50)));
        sender.kill();
        reader.kill();
        if victim == 2 {
            near = Held::start(&near_dir, "none");
        }
        if victim == 3 {
            far = Held::start(&far_dir, "127.0.0.1:0");
        }
        let what = format!("round {round}, {name} killed");
        let mut last = (String::new(), String::new());
        support::wait_until("both engines to let go of the round's flows", || {
            let (f, n) = (far.check("far"), near.check("near"));
            let ok = f.is_ok() && n.is_ok();
            last = (f.unwrap_or_else(|e| e), n.unwrap_or_else(|e| e));
            if ok {
                Ok(())
            } else {
                Err(format!("{what}: {} / {}", last.0, last.1))
            }
        });
        println!("{what}: {} / {}", last.0, last.1);
    }
}
