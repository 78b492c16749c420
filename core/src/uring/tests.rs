//! Tests of the io_uring layer: probing (real and simulated failures) and an
//! echo over loopback for each setup-flag combination. They park in
//! `TcpDriver::wait` instead of spinning, and assert bytes and events, never
//! durations (the deadlines only stop a broken test from hanging).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::probe::{classify_from, SetupFlags};
use super::*;
use crate::config::{EngineConfig, IoUringSection};

/// Whether the kernel refuses the ring `cfg` describes (no io_uring, a
/// seccomp filter or the sysctl, setup flags or operations it lacks); prints
/// `skipped: io_uring unavailable: <reason>` when it does. Every io_uring
/// test of this crate starts with it. Other failures (locked memory, say)
/// are not a reason to skip: the test goes on and reports them.
pub(super) fn refused(cfg: &IoUringSection) -> bool {
    match probe_with(cfg, None) {
        Err(
            why @ (UringUnavailable::DisabledBySysctl { .. }
            | UringUnavailable::Forbidden
            | UringUnavailable::NotInKernel
            | UringUnavailable::InvalidFlags { .. }
            | UringUnavailable::MissingFeature { .. }),
        ) => {
            eprintln!("skipped: io_uring unavailable: {why}");
            true
        }
        _ => false,
    }
}

pub(super) fn small_cfg() -> IoUringSection {
    let mut cfg = EngineConfig::default().io_uring().clone();
    cfg.entries = 64;
    cfg.provided_buffers = 8;
    cfg.buffer_size = 512;
    cfg
}

/// A driver as `cfg` says, listening on a loopback port; `None` (the
/// reason printed) where the kernel refuses the ring.
pub(super) fn listening(cfg: &IoUringSection) -> Option<(TcpDriver, SocketAddr)> {
    if refused(cfg) {
        return None;
    }
    let mut tcp = TcpDriver::new(cfg).expect("driver");
    let addr = tcp.listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
    Some((tcp, addr))
}

#[test]
fn probe_finds_io_uring_and_its_opcodes() {
    if refused(&small_cfg()) {
        return;
    }
    let support = probe_with(&small_cfg(), None).expect("io_uring is available on this machine");
    assert!(support.setup.single_issuer && support.setup.defer_taskrun && support.setup.taskrun_flag);
    assert!(support.accept_multi && support.recv_multi && support.buf_ring && support.provide_buffers);
    println!("io_uring support here: {support:?}");
}

#[test]
fn simulated_failures_name_cause_and_fix() {
    let cfg = small_cfg();
    let cases: [(i32, &[&str]); 4] = [
        (libc::EPERM, &["seccomp", "io_uring_setup", "fix"]),
        (libc::ENOMEM, &["RLIMIT_MEMLOCK", "ulimit -l", "LimitMEMLOCK="]),
        (libc::ENOSYS, &["kernel", "5.1", "fix"]),
        (libc::EINVAL, &["SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG", "fix"]),
    ];
    for (errno, words) in cases {
        let err = probe_with(&cfg, Some(errno)).expect_err("simulated failure");
        let text = err.to_string();
        for word in words {
            assert!(text.contains(word), "errno {errno}: {text:?} lacks {word:?}");
        }
    }
    // The sysctl wins over seccomp when it is set.
    let flags = SetupFlags::from_config(&cfg);
    for value in [1u8, 2] {
        let err = classify_from(libc::EPERM, flags, Some(value), None);
        assert_eq!(err, UringUnavailable::DisabledBySysctl { value });
        assert!(err.to_string().contains("kernel.io_uring_disabled"));
        assert!(err.to_string().contains("sysctl -w kernel.io_uring_disabled=0"));
    }
    let err = classify_from(libc::ENOMEM, flags, None, Some(64 << 10));
    assert!(err.to_string().contains("64 KiB"), "{err}");
}

/// The client's half: writes `msgs` then reads back as many bytes, then closes.
fn client(addr: SocketAddr, msgs: Vec<Vec<u8>>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let total: usize = msgs.iter().map(Vec::len).sum();
        for m in &msgs {
            sock.write_all(m).expect("write");
        }
        let mut back = vec![0u8; total];
        sock.read_exact(&mut back).expect("read echo");
        back
    })
}

fn messages(provided: u32, big: usize) -> Vec<Vec<u8>> {
    let mut msgs: Vec<Vec<u8>> = (0..provided * 3).map(|i| (0..100u32).map(|j| (i * 7 + j) as u8).collect()).collect();
    msgs.push((0..big).map(|j| (j % 251) as u8).collect());
    msgs
}

#[derive(Default)]
struct EchoReport {
    received_events: usize,
    largest_event: usize,
    sent_bytes: usize,
}

/// Echo server over `TcpDriver`: holds received buffers until all are lent
/// (forcing ENOBUFS and re-arming) or the link goes quiet, then echoes them.
fn echo(cfg: &IoUringSection) -> Option<EchoReport> {
    if refused(cfg) {
        return None;
    }
    let mut tcp = TcpDriver::new(cfg).expect("driver");
    let addr = tcp.listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let msgs = messages(cfg.provided_buffers, cfg.buffer_size * 5 + 17);
    let expect: Vec<u8> = msgs.concat();
    let peer = client(addr, msgs);

    let mut events = Vec::new();
    let mut held: Vec<(ConnId, RecvBuf)> = Vec::new();
    let mut report = EchoReport::default();
    let mut conn = None;
    let mut closed = None;
    let guard = Instant::now() + Duration::from_secs(30);
    while closed.is_none() {
        assert!(Instant::now() < guard, "echo did not finish");
        let n = tcp.wait(Duration::from_millis(20), &mut events);
        for ev in events.drain(..) {
            match ev {
                TcpEvent::Accepted(id) => conn = Some(id),
                TcpEvent::Received(id, buf) => {
                    report.received_events += 1;
                    report.largest_event = report.largest_event.max(buf.len());
                    held.push((id, buf));
                }
                TcpEvent::Sent(_, n) => report.sent_bytes += n,
                TcpEvent::Closed(id, reason) => closed = Some((id, reason)),
                TcpEvent::Rang { .. } => panic!("nothing is watched"),
            }
        }
        if held.len() >= cfg.provided_buffers as usize || n == 0 || closed.is_some() {
            for (id, buf) in held.drain(..) {
                let bytes = tcp.data(&buf).to_vec();
                tcp.recycle(buf);
                let _ = tcp.send(id, &bytes);
            }
        }
    }
    let back = peer.join().expect("client");
    assert_eq!(back.len(), expect.len());
    assert!(back == expect, "echoed bytes differ from those sent");
    let (id, reason) = closed.expect("closed");
    assert_eq!(Some(id), conn);
    assert_eq!(reason, CloseReason::Eof);
    assert!(tcp.send(id, b"late").is_err(), "send after Closed must fail");
    // More bytes than the provided buffers hold: they were recycled.
    assert!(expect.len() > cfg.provided_buffers as usize * cfg.buffer_size);
    assert!(report.largest_event <= cfg.buffer_size);
    assert_eq!(report.sent_bytes, expect.len());
    println!("echo stats: {:?} / {:?}", tcp.stats(), tcp.driver().stats());
    Some(report)
}

#[test]
fn echo_single_issuer_defer_taskrun() {
    let cfg = small_cfg();
    assert!(cfg.single_issuer && cfg.defer_taskrun);
    let Some(report) = echo(&cfg) else { return };
    assert!(report.received_events > 5, "the large message must span several Received events");
}

#[test]
fn echo_coop_taskrun() {
    let mut cfg = small_cfg();
    cfg.single_issuer = false;
    cfg.defer_taskrun = false;
    cfg.coop_taskrun = true;
    echo(&cfg);
}

#[test]
fn echo_without_setup_flags() {
    let mut cfg = small_cfg();
    cfg.single_issuer = false;
    cfg.defer_taskrun = false;
    echo(&cfg);
}

#[test]
fn echo_send_zc() {
    let mut cfg = small_cfg();
    cfg.send_zc_threshold = 1024;
    echo(&cfg);
}

#[test]
fn echo_sqpoll() {
    let mut cfg = small_cfg();
    cfg.single_issuer = false;
    cfg.defer_taskrun = false;
    cfg.sqpoll = true;
    // The kernel thread polls this long after each submission: keep it short.
    cfg.sqpoll_idle = Duration::from_millis(1);
    echo(&cfg);
}

#[test]
fn local_close_reports_local_and_refuses_stale_ids() {
    if refused(&small_cfg()) {
        return;
    }
    let mut tcp = TcpDriver::new(&small_cfg()).expect("driver");
    let addr = tcp.listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let mut sock = TcpStream::connect(addr).expect("connect");
    let mut events = Vec::new();
    let guard = Instant::now() + Duration::from_secs(20);
    let id = loop {
        assert!(Instant::now() < guard);
        tcp.wait(Duration::from_millis(20), &mut events);
        if let Some(TcpEvent::Accepted(id)) = events.pop() {
            break id;
        }
    };
    tcp.close(id).expect("close");
    let reason = loop {
        assert!(Instant::now() < guard);
        tcp.wait(Duration::from_millis(20), &mut events);
        if let Some(TcpEvent::Closed(_, reason)) = events.pop() {
            break reason;
        }
    };
    assert_eq!(reason, CloseReason::Local);
    assert_eq!(tcp.send(id, b"x"), Err(TcpError::UnknownConn));
    let mut buf = [0u8; 1];
    assert_eq!(sock.read(&mut buf).expect("read EOF"), 0, "the peer sees EOF");
}

#[test]
fn poll_without_work_does_not_enter_the_kernel() {
    if refused(&small_cfg()) {
        return;
    }
    let mut driver = UringDriver::new(&small_cfg()).expect("driver");
    driver.poll();
    let before = driver.stats().enters;
    for _ in 0..100 {
        assert_eq!(driver.poll(), 0);
    }
    assert_eq!(driver.stats().enters, before, "idle polls must stay in user space");
}

/// Accepts one connection, parking between steps.
pub(super) fn accept_one(tcp: &mut TcpDriver, events: &mut Vec<TcpEvent>) -> ConnId {
    let guard = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < guard, "no connection accepted");
        tcp.wait(Duration::from_millis(20), events);
        if let Some(pos) = events.iter().position(|e| matches!(e, TcpEvent::Accepted(_))) {
            if let TcpEvent::Accepted(id) = events.remove(pos) {
                return id;
            }
        }
    }
}

#[test]
fn exhausted_buffers_end_recv_with_enobufs_and_it_resumes_after_recycling() {
    let cfg = small_cfg();
    if refused(&cfg) {
        return;
    }
    let mut tcp = TcpDriver::new(&cfg).expect("driver");
    let addr = tcp.listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let total = cfg.provided_buffers as usize * cfg.buffer_size * 3;
    let blob: Vec<u8> = (0..total).map(|i| (i % 253) as u8).collect();
    let mut sock = TcpStream::connect(addr).expect("connect");
    sock.write_all(&blob).expect("write");
    let mut events = Vec::new();
    let id = accept_one(&mut tcp, &mut events);
    let mut got = Vec::new();
    let mut held = Vec::new();
    let guard = Instant::now() + Duration::from_secs(20);
    // Hold every buffer: with bytes still queued in the socket, the multishot
    // recv must end with ENOBUFS.
    while tcp.stats().enobufs == 0 {
        assert!(Instant::now() < guard, "no ENOBUFS while every buffer was held");
        tcp.wait(Duration::from_millis(20), &mut events);
        for ev in events.drain(..) {
            if let TcpEvent::Received(from, buf) = ev {
                assert_eq!(from, id);
                held.push(buf);
            }
        }
    }
    assert_eq!(held.len(), cfg.provided_buffers as usize);
    for buf in held.drain(..) {
        got.extend_from_slice(tcp.data(&buf));
        tcp.recycle(buf);
    }
    while got.len() < total {
        assert!(Instant::now() < guard, "recv did not resume after recycling");
        tcp.wait(Duration::from_millis(20), &mut events);
        for ev in events.drain(..) {
            if let TcpEvent::Received(_, buf) = ev {
                got.extend_from_slice(tcp.data(&buf));
                tcp.recycle(buf);
            }
        }
    }
    assert!(got == blob, "bytes lost or reordered across ENOBUFS");
    assert!(tcp.stats().recv_rearms >= 1);
}

#[test]
fn large_send_uses_send_zc_above_threshold_and_arrives_whole() {
    let mut cfg = small_cfg();
    cfg.send_zc_threshold = 1024;
    if refused(&cfg) {
        return;
    }
    let mut tcp = TcpDriver::new(&cfg).expect("driver");
    if !tcp.driver().support().send_zc {
        eprintln!("skipped: this kernel has no SEND_ZC");
        return;
    }
    let addr = tcp.listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let blob: Vec<u8> = (0..(1usize << 20)).map(|i| (i % 241) as u8).collect();
    let expect = blob.clone();
    let reader = std::thread::spawn(move || {
        let mut sock = TcpStream::connect(addr).expect("connect");
        let mut back = Vec::new();
        sock.read_to_end(&mut back).expect("read");
        back
    });
    let mut events = Vec::new();
    let id = accept_one(&mut tcp, &mut events);
    tcp.send(id, &blob).expect("send");
    tcp.send(id, b"tail").expect("send small");
    let guard = Instant::now() + Duration::from_secs(20);
    while tcp.unsent(id).expect("open") > 0 {
        assert!(Instant::now() < guard, "send did not finish");
        tcp.wait(Duration::from_millis(20), &mut events);
    }
    tcp.close(id).expect("close");
    let back = reader.join().expect("reader");
    assert_eq!(back.len(), expect.len() + 4);
    assert!(back[..expect.len()] == expect[..] && &back[expect.len()..] == b"tail");
    let stats = tcp.stats();
    println!("send stats: {stats:?}");
    assert!(stats.zc_sends >= 1);
}

#[test]
fn datagrams_arrive_one_per_event_and_an_empty_one_ends_nothing() {
    if refused(&small_cfg()) {
        return;
    }
    let mut tcp = TcpDriver::new(&small_cfg()).expect("driver");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = sock.local_addr().expect("addr");
    let id = tcp.adopt_datagram(sock).expect("adopt");
    assert_eq!(tcp.send(id, b"x"), Err(TcpError::Closed), "a datagram socket is not written through the driver");
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
    peer.send_to(b"first", addr).expect("send");
    peer.send_to(b"", addr).expect("send empty");
    peer.send_to(b"second datagram", addr).expect("send");
    let mut got = Vec::new();
    let mut events = Vec::new();
    let guard = Instant::now() + Duration::from_secs(20);
    while got.len() < 2 {
        assert!(Instant::now() < guard, "datagrams did not arrive: {got:?}");
        tcp.wait(Duration::from_millis(20), &mut events);
        for ev in events.drain(..) {
            match ev {
                TcpEvent::Received(conn, buf) => {
                    assert_eq!(conn, id);
                    got.push(tcp.data(&buf).to_vec());
                    tcp.recycle(buf);
                }
                TcpEvent::Closed(..) => panic!("an empty datagram closed the socket"),
                _ => {}
            }
        }
    }
    assert_eq!(got, vec![b"first".to_vec(), b"second datagram".to_vec()]);
}

/// Waits (parking in the ring) until `tcp` reports the next watch event.
fn next_rang(tcp: &mut TcpDriver) -> (u32, bool) {
    let mut events = Vec::new();
    let guard = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < guard, "no watch event");
        tcp.wait(Duration::from_millis(20), &mut events);
        if let Some(ev) = events.drain(..).find_map(|ev| match ev {
            TcpEvent::Rang { token, more } => Some((token, more)),
            _ => None,
        }) {
            return ev;
        }
    }
}

/// A watched descriptor rings once it becomes readable, again on the next
/// datagram (the bytes are left to its owner), and a last time, saying
/// so, once unwatched; the driver then holds nothing of it and drops
/// without waiting.
#[test]
fn a_watched_descriptor_rings_until_unwatched() {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::net::UnixDatagram;
    if refused(&small_cfg()) {
        return;
    }
    let mut tcp = TcpDriver::new(&small_cfg()).expect("driver");
    let (bell, ringer) = UnixDatagram::pair().expect("socketpair");
    bell.set_nonblocking(true).expect("nonblocking");
    // SAFETY: `bell` stays open for the whole test.
    assert!(unsafe { tcp.watch(bell.as_raw_fd(), 7) });
    // SAFETY: as above.
    assert!(!unsafe { tcp.watch(bell.as_raw_fd(), 7) }, "a token is watched once");
    ringer.send(b"!").expect("ring");
    assert_eq!(next_rang(&mut tcp), (7, true));
    let mut byte = [0u8; 1];
    assert_eq!(bell.recv(&mut byte).expect("the byte is still there"), 1);
    ringer.send(b"!").expect("ring again");
    assert_eq!(next_rang(&mut tcp), (7, true));
    tcp.unwatch(7);
    assert_eq!(next_rang(&mut tcp), (7, false));
    assert!(!tcp.in_flight(), "an ended watch holds nothing");
}

/// Frames flushed on one connection between two kernel entries leave in
/// one direct `send(2)` (no submission, no completion); a queue larger
/// than a direct send takes goes as SENDs, and a frame flushed while one
/// is in flight waits for it: all in order.
#[test]
fn a_lone_flush_is_one_direct_send_and_the_rest_follows_in_order() {
    let cfg = small_cfg();
    if refused(&cfg) {
        return;
    }
    let mut tcp = TcpDriver::new(&cfg).expect("driver");
    let addr = tcp.listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
    // Larger than the socket's buffers on either side while nobody reads.
    let blob: Vec<u8> = (0..(16usize << 20)).map(|i| (i % 239) as u8).collect();
    let expect = [&b"first"[..], b"second", &blob, b"tail"].concat();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut sock = TcpStream::connect(addr).expect("connect");
        go_rx.recv().expect("go");
        let mut back = Vec::new();
        sock.read_to_end(&mut back).expect("read");
        back
    });
    let mut events = Vec::new();
    let id = accept_one(&mut tcp, &mut events);
    tcp.submit(); // the new connection's recv
    let before = tcp.stats();
    tcp.send(id, b"first").expect("send");
    tcp.send(id, b"second").expect("send");
    let enters = tcp.driver().stats().enters;
    tcp.submit();
    let after = tcp.stats();
    assert_eq!(after.direct_sends - before.direct_sends, 1, "{after:?}");
    assert_eq!(after.plain_sends - before.plain_sends, 1, "{after:?}");
    assert_eq!(tcp.unsent(id).expect("open"), 0, "the socket took both frames");
    assert_eq!(tcp.driver().stats().enters, enters, "nothing was submitted");
    tcp.send(id, &blob).expect("send");
    tcp.submit();
    assert_eq!(tcp.stats().direct_sends, after.direct_sends, "a large queue goes as a SEND");
    // The socket cannot hold it all: the SEND is in flight, and a frame
    // flushed now waits for it (never a direct send past it).
    tcp.send(id, b"tail").expect("send");
    tcp.submit();
    go_tx.send(()).expect("go");
    let guard = Instant::now() + Duration::from_secs(20);
    while tcp.unsent(id).expect("open") > 0 {
        assert!(Instant::now() < guard, "send did not finish");
        tcp.wait(Duration::from_millis(20), &mut events);
    }
    tcp.close(id).expect("close");
    let back = reader.join().expect("reader");
    assert_eq!(back.len(), expect.len());
    assert!(back == expect, "bytes lost or reordered");
    let stats = tcp.stats();
    println!("send stats: {stats:?}");
    assert_eq!(stats.direct_sends - before.direct_sends, 1, "{stats:?}");
}

/// Without a single issuer any thread may drive the ring, but the kernel
/// runs a recv's completions on the thread that armed it. A thread that
/// drives the ring for a while takes the recvs over (cancelled, armed
/// again from there), and nothing sent before, during or after the move
/// is lost or reordered.
#[test]
fn a_recv_moves_to_the_thread_that_drives_the_ring() {
    let mut cfg = small_cfg();
    (cfg.single_issuer, cfg.defer_taskrun, cfg.coop_taskrun) = (false, false, true);
    if refused(&cfg) {
        return;
    }
    let mut tcp = TcpDriver::new(&cfg).expect("driver");
    // Its few connections would be spun instead (`tcp::spin`, tested in
    // `direct_tests`); the move is what many connections get.
    tcp.no_spin_reads();
    let addr = tcp.listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let mut sock = TcpStream::connect(addr).expect("connect");
    let mut events = Vec::new();
    // Accepted here: this thread arms the recv.
    let id = accept_one(&mut tcp, &mut events);
    sock.write_all(b"before,").expect("write");
    let want = b"before,during,after".to_vec();
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            let mut got = Vec::new();
            let take = |tcp: &mut TcpDriver, events: &mut Vec<TcpEvent>, got: &mut Vec<u8>| {
                for ev in events.drain(..) {
                    if let TcpEvent::Received(from, buf) = ev {
                        assert_eq!(from, id);
                        got.extend_from_slice(tcp.data(&buf));
                        tcp.recycle(buf);
                    }
                }
            };
            let guard = Instant::now() + Duration::from_secs(20);
            let mut polls = 0u32;
            // Polled in a row by this thread (yielding now and then: the
            // cancel's completion is task work of the first thread, which
            // its sleep in `join` runs).
            while tcp.stats().recv_moves == 0 {
                assert!(Instant::now() < guard, "the recv never moved ({polls} polls)");
                tcp.poll(&mut events);
                take(&mut tcp, &mut events, &mut got);
                polls += 1;
                if polls == 100 {
                    sock.write_all(b"during,").expect("write");
                }
                if polls % 64 == 0 {
                    std::thread::yield_now();
                }
            }
            sock.write_all(b"after").expect("write");
            while got.len() < want.len() {
                assert!(Instant::now() < guard, "only {:?} arrived", String::from_utf8_lossy(&got));
                tcp.wait(Duration::from_millis(20), &mut events);
                take(&mut tcp, &mut events, &mut got);
            }
            got
        })
        .join()
        .expect("driving thread")
    });
    assert_eq!(got, want, "bytes lost or reordered across the move");
    assert_eq!(tcp.stats().recv_moves, 1);
}
