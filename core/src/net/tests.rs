//! The plain-socket transport keeps the io_uring driver's promises: a
//! backed-up write finishes whole once the reader reads, a received stream
//! is every byte in order, a local close is reported as such and the id is
//! dead after it. They wait in `wait`, never spin, and assert bytes and
//! events, never durations.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::SocketDriver;
use crate::config::EngineConfig;
use crate::uring::{CloseReason, ConnId, TcpError, TcpEvent};

fn driver() -> SocketDriver {
    let mut cfg = EngineConfig::default().io_uring().clone();
    cfg.provided_buffers = 4;
    cfg.buffer_size = 4096;
    SocketDriver::new(&cfg).expect("epoll")
}

fn accept(d: &mut SocketDriver, events: &mut Vec<TcpEvent>) -> ConnId {
    let guard = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < guard, "no connection accepted");
        d.wait(Duration::from_millis(20), events);
        if let Some(pos) = events.iter().position(|e| matches!(e, TcpEvent::Accepted(_))) {
            if let TcpEvent::Accepted(id) = events.remove(pos) {
                return id;
            }
        }
    }
}

#[test]
fn backed_up_writes_and_reads_keep_every_byte_in_order() {
    let mut d = driver();
    let addr = d.listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let blob: Vec<u8> = (0..(4usize << 20)).map(|i| (i % 251) as u8).collect();
    let expect = blob.clone();
    let (go, wait_for_go) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let mut sock = TcpStream::connect(addr).expect("connect");
        // Read nothing until the driver has taken the whole blob, so its
        // writes back up. (A test that fails first drops `go`: no hang.)
        let _ = wait_for_go.recv();
        let mut back = vec![0u8; expect.len()];
        sock.read_exact(&mut back).expect("read");
        assert!(back == expect, "the stream arrived damaged");
        sock.write_all(&back).expect("echo");
        sock
    });
    let mut events = Vec::new();
    let id = accept(&mut d, &mut events);
    d.send(id, &blob).expect("send");
    let _ = go.send(());
    let mut got = Vec::new();
    let guard = Instant::now() + Duration::from_secs(20);
    while got.len() < blob.len() {
        assert!(Instant::now() < guard, "only {} bytes came back", got.len());
        d.wait(Duration::from_millis(20), &mut events);
        for ev in events.drain(..) {
            if let TcpEvent::Received(conn, buf) = ev {
                assert_eq!(conn, id);
                got.extend_from_slice(d.data(&buf));
                d.recycle(buf);
            }
        }
    }
    assert_eq!(d.unsent(id), Ok(0));
    assert!(got == blob, "the echo arrived damaged");
    let sock = peer.join().expect("peer");

    d.close(id).expect("close");
    let guard = Instant::now() + Duration::from_secs(20);
    let reason = loop {
        assert!(Instant::now() < guard, "no Closed event");
        d.wait(Duration::from_millis(20), &mut events);
        if let Some(TcpEvent::Closed(conn, reason)) = events.iter().find(|e| matches!(e, TcpEvent::Closed(..))) {
            assert_eq!(*conn, id);
            break *reason;
        }
    };
    assert_eq!(reason, CloseReason::Local);
    assert_eq!(d.send(id, b"late"), Err(TcpError::UnknownConn), "a closed id is dead");
    drop(sock);
}

/// `handed` counts what the kernel took of a connection's stream, and with
/// `unsent` places every appended byte: a mark taken at `appended` right
/// after a frame is reached exactly when that frame (and all before it)
/// is in the kernel's hands, on either backend (the close handshake of
/// `remote::bridge` relies on it).
#[test]
fn handed_reaches_the_mark_of_the_last_frame_once_the_kernel_took_it() {
    use super::NetDriver;
    use crate::config::NetBackend;
    for backend in [NetBackend::Sockets, NetBackend::IoUring] {
        let mut cfg = EngineConfig::default().io_uring().clone();
        cfg.provided_buffers = 4;
        cfg.buffer_size = 4096;
        let mut d = match NetDriver::new(&cfg, backend) {
            Ok((d, _)) => d,
            Err(e) => {
                eprintln!("skipped {backend:?}: {e}");
                continue;
            }
        };
        let addr = d.listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
        let blob: Vec<u8> = (0..(8usize << 20)).map(|i| (i % 251) as u8).collect();
        let (go, wait_for_go) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let mut sock = TcpStream::connect(addr).expect("connect");
            let _ = wait_for_go.recv();
            let mut all = Vec::new();
            sock.read_to_end(&mut all).expect("read");
            all.len()
        });
        let mut events = Vec::new();
        let guard = Instant::now() + Duration::from_secs(20);
        let id = loop {
            assert!(Instant::now() < guard, "no connection accepted");
            d.wait(Duration::from_millis(20), &mut events);
            if let Some(TcpEvent::Accepted(id)) = events.iter().find(|e| matches!(e, TcpEvent::Accepted(_))) {
                break *id;
            }
        };
        let start = d.handed(id).expect("live");
        assert_eq!(d.appended(id), Ok(start), "nothing queued yet");
        d.send(id, &blob).expect("send");
        let Ok(Ok(())) = d.append_with(id, 5, |b: &mut [u8]| {
            b.copy_from_slice(b"close");
            Ok::<(), ()>(())
        }) else {
            panic!("append")
        };
        let mark = d.appended(id).expect("live");
        assert_eq!(mark - start, blob.len() as u64 + 5);
        d.flush(id);
        let _ = go.send(());
        let guard = Instant::now() + Duration::from_secs(20);
        loop {
            let (handed, unsent) = (d.handed(id).expect("live"), d.unsent(id).expect("live"));
            assert_eq!(handed + unsent as u64, mark, "{backend:?}: every byte is handed or unsent");
            if handed >= mark {
                break;
            }
            assert!(Instant::now() < guard, "{backend:?}: the kernel took only {} bytes", handed - start);
            d.wait(Duration::from_millis(20), &mut events);
            events.clear();
        }
        assert_eq!(d.handed(id), Ok(mark), "{backend:?}: handed never passes what was appended");
        d.close(id).expect("close");
        let guard = Instant::now() + Duration::from_secs(20);
        while !events.iter().any(|e| matches!(e, TcpEvent::Closed(..))) {
            assert!(Instant::now() < guard, "no Closed event");
            d.wait(Duration::from_millis(20), &mut events);
        }
        assert_eq!(peer.join().expect("peer"), blob.len() + 5, "{backend:?}: the peer read every byte handed");
    }
}
