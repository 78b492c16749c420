//! Only invited engines: the engines' key proved in the hello, the hello's
//! deadline, the bound on connections in their hello, and listeners that
//! decide whether other hosts reach them. The far engine runs in a child
//! process (its stderr goes to a file the test reads: the engine's own
//! account of what it refused); raw sockets play the hostile parts before
//! and during the hello. On loopback, bounded by hang guards, ephemeral
//! ports, everything under one temporary directory.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{await_file, child_arg, is_child, spawn_flow_child, ChildProcess};
use ringflow::config::EngineConfig;
use ringflow::remote::RemoteEngine;
use ringflow::{AllocError, Listener, ListenerOptions, Qos, RecvError};
use ringflow_core::wire::{self, auth, AuthKey, Features, Hello, HelloAck, HelloProof, RejectReason};

/// Hang guard of every wait; never reached when the code works.
const LONG: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- child ---

/// The far engine with an echoing listener `echo`. Arguments: DIR, KEY (a
/// path or "none"), REMOTE ("1": the listener takes flows from other
/// hosts), LISTEN, HELLO_MS, MAX_HELLOS. Its stderr goes to DIR/far.stderr;
/// it writes its port to DIR/port, the flows its listener accepted to
/// DIR/accepted, and its listener's `refused()` to DIR/refused when an
/// accept returns with it changed. It runs until killed.
#[test]
#[ignore]
fn child_far_engine() {
    if !is_child() {
        return;
    }
    let dir = PathBuf::from(child_arg("DIR"));
    redirect_stderr(&dir.join("far.stderr"));
    let names = dir.join("names");
    let remote = child_arg("REMOTE") == "1";
    let mut listener = Listener::bind_with("echo", ListenerOptions::new().remote(remote).runtime_dir(&names)).unwrap();
    let key = child_arg("KEY");
    let key = (key != "none").then(|| PathBuf::from(key));
    let cfg = EngineConfig::builder()
        .listen(Some(&child_arg("LISTEN")))
        .key_file(key.as_deref())
        .hello_timeout_ms(child_arg("HELLO_MS").parse().unwrap())
        .max_hellos(child_arg("MAX_HELLOS").parse().unwrap())
        .build()
        .unwrap();
    let engine = RemoteEngine::start(&cfg, Some(names)).unwrap();
    let port = engine.listen_addr().unwrap().port();
    std::fs::write(dir.join("port.tmp"), port.to_string()).unwrap();
    std::fs::rename(dir.join("port.tmp"), dir.join("port")).unwrap();
    let mut refused = u64::MAX;
    let mut flows = 0u64;
    loop {
        // A flow whose setup straddles the accept's deadline is cut off
        // (and counted as refused): a listener that takes remote flows
        // waits long (only `accepted` is read of it); one that refuses them
        // returns often, to report its refusals.
        let wait = if remote { LONG } else { Duration::from_millis(200) };
        let accepted = listener.accept_timeout(wait);
        if listener.refused() != refused {
            refused = listener.refused();
            write_count(&dir, "refused", refused);
        }
        let Ok(mut flow) = accepted else { continue };
        flows += 1;
        write_count(&dir, "accepted", flows);
        // Each flow on a thread of its own: the listener keeps accepting.
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match flow.recv_into_timeout(&mut buf, LONG) {
                    Ok(n) => flow.send(&buf[..n]).unwrap(),
                    Err(RecvError::Closed | RecvError::PeerGone { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        });
    }
}

/// Writes `n` to DIR/`name` (whole or not at all).
fn write_count(dir: &Path, name: &str, n: u64) {
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, n.to_string()).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

/// Points this process's stderr (fd 2) at `path`.
fn redirect_stderr(path: &Path) {
    let file = std::fs::File::create(path).unwrap();
    use std::os::fd::AsRawFd as _;
    // SAFETY: dup2 on two valid descriptors of this process; fd 2 then
    // refers to the file, which stays open through the duplicate.
    assert!(unsafe { libc::dup2(file.as_raw_fd(), 2) } >= 0);
}

// ---------------------------------------------------------------- parent --

/// A far engine in a child process and what the test needs of it.
struct Far {
    // Field order: the child dies before its directory goes.
    child: ChildProcess,
    dir: PathBuf,
    addr: SocketAddr,
}

struct FarSpec<'a> {
    key: Option<&'a Path>,
    remote: bool,
    listen: &'a str,
    hello_ms: u64,
    max_hellos: usize,
}

impl Default for FarSpec<'_> {
    fn default() -> Self {
        FarSpec { key: None, remote: true, listen: "127.0.0.1:0", hello_ms: 3000, max_hellos: 128 }
    }
}

impl Far {
    fn start(root: &Path, tag: &str, spec: FarSpec<'_>) -> Far {
        let dir = root.join(tag);
        std::fs::create_dir(&dir).unwrap();
        let key = spec.key.map_or_else(|| "none".to_owned(), |p| p.display().to_string());
        let child = spawn_flow_child(
            "child_far_engine",
            &[
                ("DIR", dir.display().to_string()),
                ("KEY", key),
                ("REMOTE", if spec.remote { "1" } else { "0" }.to_owned()),
                ("LISTEN", spec.listen.to_owned()),
                ("HELLO_MS", spec.hello_ms.to_string()),
                ("MAX_HELLOS", spec.max_hellos.to_string()),
            ],
        );
        await_file(&dir.join("port"));
        let port: u16 = std::fs::read_to_string(dir.join("port")).unwrap().trim().parse().unwrap();
        Far { child, dir, addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }

    fn target(&self) -> String {
        format!("echo@{}", self.addr)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("far.stderr")).unwrap_or_default()
    }

    /// Waits until the far engine's stderr holds `what`.
    fn await_stderr(&self, what: &str) {
        ringflow_testkit::wait_for(&format!("the far engine to say {what:?}"), || self.stderr().contains(what));
    }

    /// The listener's `refused()`, as last written after an accept returned
    /// (a listener that refuses remote flows returns every 200 ms).
    fn refused(&self) -> u64 {
        self.count("refused")
    }

    /// Flows the listener accepted.
    fn accepted(&self) -> u64 {
        self.count("accepted")
    }

    fn count(&self, name: &str) -> u64 {
        std::fs::read_to_string(self.dir.join(name)).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Descriptors the far engine's process holds.
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, |d| d.count())
    }
}

/// A key file of `len` random-looking bytes with `mode`.
fn key_file(dir: &Path, name: &str, seed: u8, mode: u32) -> PathBuf {
    let path = dir.join(name);
    let bytes: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(31).wrapping_add(seed)).collect();
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn near_engine(key: Option<&Path>) -> RemoteEngine {
    let cfg = EngineConfig::builder().key_file(key).build().unwrap();
    RemoteEngine::start(&cfg, None).unwrap()
}

/// A round trip of a few messages through `target`.
fn echo_works(near: &RemoteEngine, far: &Far) {
    let mut flow = match near.alloc_timeout(&far.target(), &Qos::data(), LONG) {
        Ok(flow) => flow,
        Err(e) => panic!("alloc {}: {e:?}; the far engine said: {}", far.target(), far.stderr()),
    };
    for i in 0..20u32 {
        let msg = i.to_le_bytes();
        flow.send(&msg).unwrap();
        assert_eq!(&*flow.recv_ref_timeout(LONG).unwrap(), &msg[..], "round trip {i}");
    }
}

fn refused_with(result: Result<ringflow::Flow, AllocError>) -> RejectReason {
    match result {
        Err(AllocError::EngineRefused { reason, .. }) => reason,
        Err(e) => panic!("expected EngineRefused, got {e}"),
        Ok(_) => panic!("expected EngineRefused, got a flow"),
    }
}

/// Waits until the far end closes `sock` (EOF or reset), reading and
/// discarding whatever it answers; fails after the hang guard.
fn await_closed(sock: &mut TcpStream) {
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let until = Instant::now() + LONG;
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < until, "the engine never closed the connection");
        match sock.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// Reads one handshake message of type `T` from `sock`.
fn read_msg<T>(sock: &mut TcpStream, decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, wire::WireError>) -> T {
    sock.set_read_timeout(Some(LONG)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        if let Some((msg, _)) = decode(&got).unwrap() {
            return msg;
        }
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "the engine hung up mid-hello");
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn keyed_engines_connect_and_carry_a_flow() {
    let tmp = ringflow_testkit::temp_dir("auth-keyed");
    let key = key_file(tmp.path(), "key", 1, 0o600);
    let far = Far::start(tmp.path(), "far", FarSpec { key: Some(&key), ..FarSpec::default() });
    let near = near_engine(Some(&key));
    echo_works(&near, &far);
    assert!(!far.stderr().contains("refused"), "{}", far.stderr());
    near.shutdown().unwrap();
}

#[test]
fn a_wrong_key_is_refused_at_both_ends_with_the_reason() {
    let tmp = ringflow_testkit::temp_dir("auth-wrong");
    let key = key_file(tmp.path(), "key", 1, 0o600);
    let other = key_file(tmp.path(), "other", 2, 0o600);
    let far = Far::start(tmp.path(), "far", FarSpec { key: Some(&key), ..FarSpec::default() });
    let near = near_engine(Some(&other));
    let reason = refused_with(near.alloc_timeout(&far.target(), &Qos::data(), LONG));
    assert_eq!(reason, RejectReason::BadProof);
    far.await_stderr("keys (net.key_file) differ");
    assert_eq!(far.accepted(), 0, "no flow reached the listener");
    near.shutdown().unwrap();
}

#[test]
fn keyed_and_unkeyed_engines_refuse_each_other_saying_why() {
    let tmp = ringflow_testkit::temp_dir("auth-mismatch");
    let key = key_file(tmp.path(), "key", 1, 0o600);
    // An unkeyed engine dials a keyed one.
    let keyed_far = Far::start(tmp.path(), "keyed", FarSpec { key: Some(&key), ..FarSpec::default() });
    let unkeyed_near = near_engine(None);
    let err = unkeyed_near.alloc_timeout(&keyed_far.target(), &Qos::data(), LONG);
    let text = err.as_ref().err().map(ToString::to_string).unwrap_or_default();
    assert_eq!(refused_with(err), RejectReason::KeyRequired);
    assert!(text.contains("requires a key"), "{text}");
    keyed_far.await_stderr("requires a key");
    unkeyed_near.shutdown().unwrap();
    // A keyed engine dials an unkeyed one.
    let unkeyed_far = Far::start(tmp.path(), "unkeyed", FarSpec::default());
    let keyed_near = near_engine(Some(&key));
    assert_eq!(refused_with(keyed_near.alloc_timeout(&unkeyed_far.target(), &Qos::data(), LONG)), RejectReason::NoKey);
    unkeyed_far.await_stderr("has a key (net.key_file) and this one has none");
    keyed_near.shutdown().unwrap();
}

/// A legitimate dialler's hello and proof, recorded by playing its
/// acceptor (the test holds the key), then replayed at the real far
/// engine, frames included; and the far engine's own proof reflected back.
#[test]
fn a_replayed_or_reflected_proof_is_refused_and_nothing_after_it_is_read() {
    let tmp = ringflow_testkit::temp_dir("auth-replay");
    let path = key_file(tmp.path(), "key", 1, 0o600);
    let key = AuthKey::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
    let mut far = Far::start(tmp.path(), "far", FarSpec { key: Some(&path), ..FarSpec::default() });

    // Record: a keyed near engine dials a fake acceptor that proves the key.
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_addr = fake.local_addr().unwrap();
    let near = near_engine(Some(&path));
    let recorder = std::thread::spawn(move || {
        let (mut sock, _) = fake.accept().unwrap();
        let (theirs, hello_len) = {
            sock.set_read_timeout(Some(LONG)).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            loop {
                if let Some(h) = Hello::decode(&got).unwrap() {
                    break (h.0, got);
                }
                let n = sock.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
        };
        let ours = Hello::new(0xFA4E, Features::NONE, 100, Some([9; auth::NONCE_LEN]));
        let (ack, agreed) = wire::respond(&ours, &theirs, Some(&key));
        assert!(agreed.is_ok());
        let mut out = Vec::new();
        ack.encode(&mut out);
        sock.write_all(&out).unwrap();
        // The dialler's proof, then whatever frames it sends (its Open).
        let mut recorded = hello_len;
        sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut buf = [0u8; 4096];
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            match sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => recorded.extend_from_slice(&buf[..n]),
                Err(_) if recorded.len() > 61 + 41 => break,
                Err(_) => {}
            }
        }
        (recorded, key)
    });
    let opened = near.alloc_timeout(&format!("echo@{fake_addr}"), &Qos::data(), Duration::from_secs(3));
    let (recorded, _key) = recorder.join().unwrap();
    drop(opened);
    near.shutdown().unwrap();
    assert!(recorded.len() > 61 + 41, "hello, proof and an Open frame recorded ({} bytes)", recorded.len());
    assert!(HelloProof::decode(&recorded[61..]).unwrap().is_some(), "the proof follows the hello");

    // Replay all of it at the real far engine: its nonce is new, so the
    // recorded proof fails, and the Open behind it is never read.
    let mut replay = TcpStream::connect(far.addr).unwrap();
    replay.write_all(&recorded).unwrap();
    await_closed(&mut replay);
    far.await_stderr("replayed or forged");

    // Reflect: hand the far engine's own proof back as ours.
    let mut sock = TcpStream::connect(far.addr).unwrap();
    let mut out = Vec::new();
    Hello::new(0xBAD, Features::NONE, 100, Some([5; auth::NONCE_LEN])).encode(&mut out);
    sock.write_all(&out).unwrap();
    let ack = read_msg(&mut sock, HelloAck::decode);
    let HelloAck::Accept { auth: Some((_, their_proof)), .. } = ack else { panic!("{ack:?}") };
    let mut out = Vec::new();
    HelloProof::Proof(their_proof).encode(&mut out);
    sock.write_all(&out).unwrap();
    await_closed(&mut sock);

    assert_eq!(far.accepted(), 0, "the replayed Open never reached the listener");
    assert!(far.alive());
    let near = near_engine(Some(&path));
    echo_works(&near, &far);
    near.shutdown().unwrap();
}

#[test]
fn a_key_file_others_can_read_or_too_short_is_refused_at_load() {
    let tmp = ringflow_testkit::temp_dir("auth-perms");
    for (name, mode, len) in [("open", 0o644, 64), ("group", 0o640, 64), ("short", 0o600, 16)] {
        let path = tmp.path().join(name);
        std::fs::write(&path, vec![7u8; len]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let cfg = EngineConfig::builder().key_file(Some(&path)).build().unwrap();
        let err = match RemoteEngine::start(&cfg, None) {
            Err(e) => e.to_string(),
            Ok(engine) => {
                engine.shutdown().unwrap();
                panic!("{name}: the engine started");
            }
        };
        let expected = if len < 32 { "holds 16 bytes" } else { "chmod 600" };
        assert!(err.contains(expected) && err.contains("net.key_file"), "{name}: {err}");
    }
}

/// A connection that trickles a valid hello a byte at a time, and one that
/// finishes its hello but never proves the key: both dropped at the
/// deadline; then a legitimate flow goes through.
#[test]
fn the_hello_deadline_drops_tricklers_and_connections_that_never_authenticate() {
    let tmp = ringflow_testkit::temp_dir("auth-deadline");
    let key = key_file(tmp.path(), "key", 1, 0o600);
    let mut far = Far::start(tmp.path(), "far", FarSpec { key: Some(&key), hello_ms: 300, ..FarSpec::default() });
    let mut hello = Vec::new();
    Hello::new(0x7717, Features::NONE, 100, Some([1; auth::NONCE_LEN])).encode(&mut hello);
    let addr = far.addr;
    let trickler = std::thread::spawn(move || {
        let mut sock = TcpStream::connect(addr).unwrap();
        // One byte every 50 ms: each keeps the connection from falling
        // silent, none finishes the hello before the deadline.
        for b in &hello[..hello.len() - 1] {
            if sock.write_all(&[*b]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
            let mut probe = [0u8; 1];
            sock.set_nonblocking(true).unwrap();
            let closed = matches!(sock.read(&mut probe), Ok(0));
            sock.set_nonblocking(false).unwrap();
            if closed {
                return true;
            }
        }
        false
    });
    let mut silent = TcpStream::connect(far.addr).unwrap();
    let mut out = Vec::new();
    Hello::new(0x5173, Features::NONE, 100, Some([2; auth::NONCE_LEN])).encode(&mut out);
    silent.write_all(&out).unwrap();
    let ack = read_msg(&mut silent, HelloAck::decode);
    assert!(matches!(ack, HelloAck::Accept { auth: Some(_), .. }), "{ack:?}");
    // ... and never sends its proof.
    await_closed(&mut silent);
    assert!(trickler.join().unwrap(), "the trickling connection was dropped before its hello was whole");
    assert!(far.alive());
    let near = near_engine(Some(&key));
    echo_works(&near, &far);
    near.shutdown().unwrap();
}

#[test]
fn garbage_before_the_hello_is_refused_and_the_engine_stays_up() {
    let tmp = ringflow_testkit::temp_dir("auth-garbage");
    let key = key_file(tmp.path(), "key", 1, 0o600);
    let mut far = Far::start(tmp.path(), "far", FarSpec { key: Some(&key), ..FarSpec::default() });
    let mut rng = ringflow_testkit::Rng(0x6A7B);
    let mut inputs: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        wire::MAGIC.iter().copied().chain([0xFF, 0xFF]).collect(), // a hello that claims 64 KiB
        wire::MAGIC.iter().copied().chain([1, 0, 0]).collect(),    // shorter than any hello
    ];
    for _ in 0..20 {
        let len = 1 + rng.below(300) as usize;
        inputs.push((0..len).map(|_| rng.next_u64() as u8).collect());
    }
    for bytes in &inputs {
        let mut sock = TcpStream::connect(far.addr).unwrap();
        let _ = sock.write_all(bytes);
        await_closed(&mut sock);
    }
    assert!(far.alive());
    assert_eq!(far.accepted(), 0, "no flow reached the listener");
    let near = near_engine(Some(&key));
    echo_works(&near, &far);
    near.shutdown().unwrap();
}

/// As many idle connections as this process may open (at least a few
/// hundred): the far engine keeps at most `net.max_hellos` of them, a
/// legitimate flow still gets through while they are open, and the engine
/// stays up with its descriptors bounded.
#[test]
fn thousands_of_idle_connections_do_not_stop_a_legitimate_flow() {
    let tmp = ringflow_testkit::temp_dir("auth-idle");
    let key = key_file(tmp.path(), "key", 1, 0o600);
    let max_hellos = 32;
    let mut far = Far::start(tmp.path(), "far", FarSpec { key: Some(&key), max_hellos, ..FarSpec::default() });
    let before = far.fds();
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into `limit`, a valid rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    // Room for thousands where the hard limit allows (this process only).
    let raised = libc::rlimit { rlim_cur: limit.rlim_max.min(4096).max(limit.rlim_cur), rlim_max: limit.rlim_max };
    // SAFETY: setrlimit reads `raised`, a valid rlimit; a soft limit up to
    // the hard one needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        limit = raised;
    }
    let budget = (limit.rlim_cur as usize).saturating_sub(256).min(3000);
    assert!(budget >= 300, "this test needs a descriptor limit of at least 556 (have {})", limit.rlim_cur);
    let mut idle = Vec::with_capacity(budget);
    for _ in 0..budget {
        match TcpStream::connect(far.addr) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect {} failed: {e}", idle.len()),
        }
    }
    // The far engine holds at most max_hellos strangers (plus what it had).
    ringflow_testkit::wait_for("the far engine to shed the idle connections", || far.fds() <= before + max_hellos + 8);
    let near = near_engine(Some(&key));
    echo_works(&near, &far);
    assert!(far.alive());
    assert!(far.fds() <= before + max_hellos + 16, "far holds {} descriptors (had {before})", far.fds());
    drop(idle);
    echo_works(&near, &far);
    near.shutdown().unwrap();
}

#[test]
fn a_listener_decides_whether_other_hosts_reach_it() {
    let tmp = ringflow_testkit::temp_dir("auth-listener");
    // Unkeyed and listening on every interface: it says so at start.
    let mut closed =
        Far::start(tmp.path(), "closed", FarSpec { remote: false, listen: "0.0.0.0:0", ..FarSpec::default() });
    closed.await_stderr("beyond loopback, without a key");
    let near = near_engine(None);
    match near.alloc_timeout(&closed.target(), &Qos::data(), LONG) {
        Err(AllocError::PermissionDenied) => {}
        other => panic!("expected PermissionDenied, got {:?}", other.map(|_| "a flow")),
    }
    ringflow_testkit::wait_for("the listener to count the refusal", || closed.refused() == 1);
    assert!(closed.alive());
    // A listener that takes remote flows (on loopback: no warning).
    let open = Far::start(tmp.path(), "open", FarSpec::default());
    echo_works(&near, &open);
    assert!(!open.stderr().contains("without a key"), "{}", open.stderr());
    near.shutdown().unwrap();
}
