//! Calls between hosts: two engines on loopback in one process (the wire
//! between them is real TCP), the turn flag and the pieces travelling with
//! the frames. The same calls, errors and resumes as on one host: a reply
//! in pieces and larger than the buffer, in place and copied, a bulk reply,
//! a server that leaves in phase Over or Recv, and invoker-mode engines.

use std::thread;
use std::time::Duration;

use ringflow_testkit::TempDir;

use ringflow_api::{CallError, Flow, Listener, ListenerOptions, Phase, Qos};

const LONG: Duration = Duration::from_secs(30);

mod support;
use support::engines;

fn test_dir() -> TempDir {
    support::test_dir("rcall")
}

/// The reply to `req`: `req` reversed, then as many bytes again.
fn reply_for(req: &[u8]) -> Vec<u8> {
    let mut r: Vec<u8> = req.iter().rev().copied().collect();
    r.extend(req.iter().map(|b| b ^ 0x55));
    r
}

/// Serves calls on one accepted flow until the client leaves: each reply
/// in two pieces (`send_part`) and a last frame. Returns the calls served.
fn serve(listener: &mut Listener) -> u32 {
    let mut flow = listener.accept_timeout(LONG).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut served = 0;
    let mut len = match flow.receive_request_timeout(&mut buf, LONG) {
        Ok(n) => n,
        Err(CallError::OverDisconnected) => return 0,
        Err(e) => panic!("server: {e}"),
    };
    loop {
        let reply = reply_for(&buf[..len]);
        let third = reply.len() / 3;
        flow.send_part_timeout(&reply[..third], LONG).unwrap();
        flow.send_part_timeout(&reply[third..2 * third], LONG).unwrap();
        served += 1;
        let mut next = flow.reply_and_receive_timeout(&reply[2 * third..], &mut buf, LONG);
        loop {
            match next {
                Ok(n) => {
                    len = n;
                    break;
                }
                // A plain message where the next request was due: it is
                // read as one, and the wait for the request goes on.
                Err(CallError::PlainMessage { len }) => {
                    assert_eq!(flow.recv_into_timeout(&mut buf, LONG).unwrap(), len);
                    assert_eq!(&buf[..len], b"plain");
                    next = flow.receive_more_timeout(&mut buf, LONG);
                }
                Err(CallError::OverDisconnected) => return served,
                Err(e) => panic!("server: {e}"),
            }
        }
    }
}

fn calls(flow: &mut Flow) {
    let mut out = vec![0u8; 1 << 20];
    for i in 0..100u32 {
        // Small, and now and then larger than the inline size (bulk).
        let req: Vec<u8> = if i % 25 == 3 { vec![i as u8; 100_000] } else { (i * 7).to_le_bytes().to_vec() };
        let want = reply_for(&req);
        match i % 3 {
            0 => {
                let n = flow.call_timeout(&req, &mut out, LONG).unwrap();
                assert_eq!(&out[..n], &want[..], "call {i}");
            }
            1 => {
                // A buffer smaller than the reply: resumed where it stopped.
                let half = want.len() / 2 + 1;
                let mut at = match flow.call_timeout(&req, &mut out[..half], LONG) {
                    Err(CallError::RecvMoreData { received }) => received,
                    other => panic!("call {i}: {other:?}"),
                };
                at += flow.receive_more_timeout(&mut out[at..], LONG).unwrap();
                assert_eq!(&out[..at], &want[..], "call {i}");
            }
            _ => {
                // In place, a piece at a time.
                let mut got = Vec::new();
                let mut more = {
                    let b = flow.call_ref_timeout(&req, LONG).unwrap();
                    got.extend_from_slice(&b);
                    b.more_follows()
                };
                while more {
                    let b = flow.receive_more_ref_timeout(LONG).unwrap();
                    got.extend_from_slice(&b);
                    more = b.more_follows();
                }
                assert_eq!(got, want, "call {i}");
            }
        }
        assert!(flow.holds_turn());
    }
}

#[test]
fn calls_cross_hosts_with_their_turn_and_pieces() {
    let tmp = test_dir();
    let dir = tmp.path().to_path_buf();
    let mut listener = Listener::bind_with("svc", ListenerOptions::new().remote(true).runtime_dir(&dir)).unwrap();
    let (near, far) = engines(&dir);
    let addr = far.listen_addr().unwrap();
    let server = thread::spawn(move || serve(&mut listener));
    let mut flow = near.alloc_timeout(&format!("svc@{addr}"), &Qos::data(), LONG).unwrap();
    assert!(flow.holds_turn());
    calls(&mut flow);
    // Plain messages still flow beside calls, and never mix with them.
    flow.send(b"plain").unwrap();
    let mut out = [0u8; 8];
    let fd = std::io::stdin();
    assert!(matches!(
        flow.try_call_fds(b"x", &[std::os::fd::AsFd::as_fd(&fd)], &mut out, &mut []),
        Err(CallError::TooManyFds { count: 1, max: 0 })
    ));
    assert!(flow.holds_turn(), "refused before anything was sent");
    flow.dealloc_timeout(LONG).unwrap();
    assert_eq!(server.join().unwrap(), 100);
}

#[test]
fn a_remote_server_that_leaves_is_reported_in_its_phase() {
    let tmp = test_dir();
    let dir = tmp.path().to_path_buf();
    let mut listener = Listener::bind_with("svc", ListenerOptions::new().remote(true).runtime_dir(&dir)).unwrap();
    let (near, far) = engines(&dir);
    let addr = far.listen_addr().unwrap();
    let server = thread::spawn(move || {
        let mut buf = [0u8; 64];
        // Over: takes the request, leaves without a word.
        let mut flow = listener.accept_timeout(LONG).unwrap();
        flow.receive_request_timeout(&mut buf, LONG).unwrap();
        drop(flow);
        // Recv: one piece of the reply, then leaves.
        let mut flow = listener.accept_timeout(LONG).unwrap();
        flow.receive_request_timeout(&mut buf, LONG).unwrap();
        flow.send_part_timeout(b"piece", LONG).unwrap();
        drop(flow);
    });
    let mut out = [0u8; 64];
    let mut flow = near.alloc_timeout(&format!("svc@{addr}"), &Qos::data(), LONG).unwrap();
    match flow.call_timeout(b"request", &mut out, LONG) {
        Err(e @ CallError::OverDisconnected) => assert_eq!(e.phase(), Some(Phase::Over)),
        other => panic!("{other:?}"),
    }
    let mut flow = near.alloc_timeout(&format!("svc@{addr}"), &Qos::data(), LONG).unwrap();
    match flow.call_timeout(b"request", &mut out, LONG) {
        Err(CallError::RecvDisconnected { received: 5 }) => assert_eq!(&out[..5], b"piece"),
        other => panic!("{other:?}"),
    }
    server.join().unwrap();
}

#[test]
fn calls_cross_hosts_between_invoker_mode_engines() {
    let tmp = test_dir();
    let (far, mut listener, addr) = support::invoker_server("inv", tmp.path());
    let server = thread::spawn(move || {
        let served = serve(&mut listener);
        far.shutdown().unwrap();
        served
    });
    let near = support::invoker_engine(None, None);
    let mut flow = near.alloc_timeout(&format!("inv@{addr}"), &Qos::data(), LONG).unwrap();
    calls(&mut flow);
    flow.dealloc_timeout(LONG).unwrap();
    assert_eq!(server.join().unwrap(), 100);
}
