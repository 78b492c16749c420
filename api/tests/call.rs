//! Request/reply between two threads of one process (the same code paths as
//! between processes; the workspace's tests/call_processes.rs kills real
//! server processes in each phase): the turn, out-of-turn calls, plain
//! messages meeting calls, resumable partial receives of bytes and
//! descriptors, pieces, the zero-copy forms, and every bounded form with
//! its resumable `WouldBlock` / `TimedOut`. Short deadlines only trigger a
//! timeout; nothing measures time.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

use ringflow_api::{CallError, Deadline, Flow, Phase, Qos, RecvError};

/// What makes a bounded form give up: nothing comes in it.
const SHORT: Duration = Duration::from_millis(20);
/// A hang guard, never reached when the code works.
const LONG: Duration = Duration::from_secs(30);

/// (client: the allocating end, holds the turn; server).
fn pair(qos: Qos) -> (Flow, Flow) {
    ringflow_testkit::isolate_runtime_dir();
    Flow::pair(&qos).unwrap()
}

fn small() -> Qos {
    Qos::data().with_ring_bytes(16 << 10).with_max_msg(64 << 10)
}

/// Serves `n` requests on another thread: each reply is the request
/// reversed.
fn reverser(mut server: Flow, n: usize) -> thread::JoinHandle<Flow> {
    thread::spawn(move || {
        let mut buf = vec![0u8; 128 << 10];
        let mut len = server.receive_request_timeout(&mut buf, LONG).unwrap();
        for i in 0..n {
            let mut reply = buf[..len].to_vec();
            reply.reverse();
            if i + 1 == n {
                server.reply_timeout(&reply, LONG).unwrap();
            } else {
                len = server.reply_and_receive_timeout(&reply, &mut buf, LONG).unwrap();
            }
        }
        server
    })
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn a_call_turns_the_flow_around_and_back() {
    let (mut client, server) = pair(small());
    assert!(client.holds_turn());
    assert!(!server.holds_turn());
    let server = reverser(server, 3);
    let mut reply = [0u8; 64];
    for req in [&b"abc"[..], b"", b"hello"] {
        let n = client.call_timeout(req, &mut reply, LONG).unwrap();
        let mut want = req.to_vec();
        want.reverse();
        assert_eq!(&reply[..n], &want[..]);
        assert!(client.holds_turn());
    }
    let server = server.join().unwrap();
    assert!(!server.holds_turn(), "the last reply handed the turn back");
}

#[test]
fn calling_out_of_turn_is_an_error_not_a_hang() {
    let (mut client, mut server) = pair(small());
    let mut buf = [0u8; 16];
    // The server does not hold the turn: it cannot call, reply or send a piece.
    assert!(matches!(server.call(b"x", &mut buf), Err(CallError::NotYourTurn)));
    assert!(matches!(server.reply(b"x"), Err(CallError::NotYourTurn)));
    assert!(matches!(server.send_part(b"x"), Err(CallError::NotYourTurn)));
    assert!(matches!(server.loan_reply(4).map(drop), Err(CallError::NotYourTurn)));
    // The client holds it: it cannot wait for a request or an answer.
    assert!(matches!(client.receive_request(&mut buf), Err(CallError::NotYourTurn)));
    assert!(matches!(client.receive_more(&mut buf), Err(CallError::NotYourTurn)));
    assert!(matches!(client.receive_more_ref().map(drop), Err(CallError::NotYourTurn)));
    // Once the client has called, it may not call again before the answer.
    assert!(matches!(
        client.try_call(b"q", &mut buf),
        Err(CallError::WouldBlock { phase: Phase::Over, sent: 1, received: 0 })
    ));
    assert!(matches!(client.call(b"again", &mut buf), Err(CallError::NotYourTurn)));
    assert_eq!(server.receive_request(&mut buf).unwrap(), 1);
    assert!(matches!(server.receive_request(&mut buf), Err(CallError::NotYourTurn)));
    server.reply(b"r").unwrap();
    assert_eq!(client.receive_more_timeout(&mut buf, LONG).unwrap(), 1);
    assert_eq!(buf[0], b'r');
}

#[test]
fn plain_messages_and_calls_never_mix() {
    let (mut client, mut server) = pair(small());
    let mut buf = [0u8; 16];
    // Plain messages flow both ways whatever the turn.
    server.send(b"plain-to-client").unwrap();
    client.send(b"plain-to-server").unwrap();
    // The server's plain message is where the reply is due: the call says
    // so and the message stays.
    client.try_call(b"req", &mut buf).unwrap_err();
    assert!(matches!(client.receive_more(&mut buf), Err(CallError::PlainMessage { len: 15 })));
    assert_eq!(client.recv_into(&mut buf).unwrap(), 15);
    assert_eq!(&buf[..15], b"plain-to-client");
    // The request waits behind the client's plain message.
    assert!(matches!(server.receive_request(&mut buf), Err(CallError::PlainMessage { len: 15 })));
    assert_eq!(server.recv_into(&mut buf).unwrap(), 15);
    assert_eq!(server.receive_request(&mut buf).unwrap(), 3);
    server.reply(b"rep").unwrap();
    // A plain receive that meets the reply leaves it for the call.
    assert!(matches!(client.recv_into(&mut buf), Err(RecvError::CallMessage { len: 3 })));
    assert!(matches!(client.try_recv_ref().map(drop), Err(RecvError::CallMessage { len: 3 })));
    assert_eq!(client.receive_more(&mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], b"rep");
    assert!(client.holds_turn());
}

#[test]
fn a_reply_larger_than_the_buffer_resumes_where_it_stopped() {
    let (mut client, server) = pair(small());
    let server = reverser(server, 2);
    // Inline and bulk (larger than the ring's inline size) replies.
    for len in [100, 40_000] {
        assert_eq!(len > client.inline_max(), len == 40_000, "one inline reply, one through the bulk pool");
        let req = pattern(len, 7);
        let mut want = req.clone();
        want.reverse();
        let mut got = vec![0u8; len];
        let chunk = len / 3 + 1;
        let mut at = 0;
        let mut result = client.call_timeout(&req, &mut got[..chunk], LONG);
        loop {
            match result {
                Err(CallError::RecvMoreData { received }) => {
                    at += chunk.min(len - at);
                    assert_eq!(received, at, "the buffer was filled");
                    let end = (at + chunk).min(len);
                    result = client.receive_more_timeout(&mut got[at..end], LONG);
                }
                Ok(n) => {
                    at += n;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(at, len);
        assert_eq!(got, want, "nothing lost, nothing repeated");
        assert!(client.holds_turn());
    }
    server.join().unwrap();
}

/// A descriptor that says which one it is: a socket whose peer holds a tag.
fn tagged(tag: u8) -> (OwnedFd, UnixStream) {
    let (a, mut b) = UnixStream::pair().unwrap();
    b.write_all(&[tag]).unwrap();
    (OwnedFd::from(a), b)
}

fn tag_of(fd: OwnedFd) -> u8 {
    let mut s = UnixStream::from(fd);
    let mut t = [0u8];
    s.read_exact(&mut t).unwrap();
    t[0]
}

#[test]
fn more_descriptors_than_slots_resume_with_receive_more_fds() {
    let (mut client, mut server) = pair(small());
    let tags: Vec<(OwnedFd, UnixStream)> = (1..=3).map(tagged).collect();
    let mut buf = [0u8; 16];
    let mut slots: [Option<OwnedFd>; 1] = [None];
    // The request's descriptors travel with it.
    let (fd0, _keep0) = tagged(9);
    client.try_call_fds(b"req", &[fd0.as_fd()], &mut buf, &mut slots).unwrap_err();
    let mut req_slots: [Option<OwnedFd>; 2] = [None, None];
    assert_eq!(server.receive_request_fds(&mut buf, &mut req_slots).unwrap(), (3, 1));
    assert_eq!(tag_of(req_slots[0].take().unwrap()), 9);
    // Three descriptors with the reply, one slot offered.
    let fds: Vec<_> = tags.iter().map(|(fd, _)| fd.as_fd()).collect();
    server.reply_fds(b"reply", &fds).unwrap();
    match client.receive_more_fds(&mut buf, &mut slots) {
        Err(CallError::RecvMoreRefs { received: 5, received_refs: 1 }) => {}
        other => panic!("{other:?}"),
    }
    assert!(!client.holds_turn(), "the reply is not delivered whole yet");
    assert_eq!(tag_of(slots[0].take().unwrap()), 1);
    let mut more: [Option<OwnedFd>; 4] = [None, None, None, None];
    assert_eq!(client.receive_more_fds(&mut buf, &mut more).unwrap(), (0, 2));
    assert_eq!(tag_of(more[0].take().unwrap()), 2);
    assert_eq!(tag_of(more[1].take().unwrap()), 3);
    assert!(more[2].is_none());
    assert!(client.holds_turn());
    // An in-place receive cannot take descriptors: it says so, and the
    // reply stays for receive_more_fds.
    let (fd4, _keep4) = tagged(4);
    client.try_call(b"again", &mut buf).unwrap_err();
    assert_eq!(server.receive_request(&mut buf).unwrap(), 5);
    server.reply_fds(b"x", &[fd4.as_fd()]).unwrap();
    assert!(matches!(client.receive_more_ref().map(drop), Err(CallError::RecvMoreRefs { received_refs: 0, .. })));
    assert_eq!(client.receive_more_fds(&mut buf, &mut more).unwrap(), (1, 1));
    assert_eq!(tag_of(more[0].take().unwrap()), 4);
}

#[test]
fn requests_and_replies_in_pieces() {
    let (mut client, mut server) = pair(small());
    let mut buf = [0u8; 64];
    client.send_part(b"he").unwrap();
    client.send_part(b"ll").unwrap();
    assert!(client.holds_turn(), "pieces keep the turn");
    assert!(matches!(
        client.try_call(b"o", &mut buf),
        Err(CallError::WouldBlock { phase: Phase::Over, sent: 5, received: 0 })
    ));
    assert_eq!(server.receive_request(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    server.send_part(b"wor").unwrap();
    // The client sees the first piece: its phase is Recv from there on.
    match client.try_receive_more(&mut buf) {
        Err(CallError::WouldBlock { phase: Phase::Recv, received: 3, .. }) => assert_eq!(&buf[..3], b"wor"),
        other => panic!("{other:?}"),
    }
    server.send_part(b"l").unwrap();
    server.reply(b"d").unwrap();
    {
        // In place, a piece at a time.
        let piece = client.receive_more_ref().unwrap();
        assert_eq!(&*piece, b"l");
        assert!(piece.more_follows());
    }
    {
        let last = client.receive_more_ref().unwrap();
        assert_eq!(&*last, b"d");
        assert!(!last.more_follows());
    }
    assert!(client.holds_turn());
}

#[test]
fn zero_copy_calls_move_no_byte_twice() {
    let (mut client, mut server) = pair(small());
    let big = client.inline_max() + 1000;
    let srv = thread::spawn(move || {
        for _ in 0..2 {
            let len = {
                let req = server.receive_request_ref_timeout(LONG).unwrap();
                assert!(req.iter().all(|&b| b == 0x5a));
                req.len()
            };
            let mut out = server.loan_reply_timeout(len, LONG).unwrap();
            out.fill(0xa5);
            out.send().unwrap();
        }
        server
    });
    for len in [64, big] {
        let mut req = client.loan_request_timeout(len, LONG).unwrap();
        req.fill(0x5a);
        req.send().unwrap();
        assert!(!client.holds_turn());
        let reply = client.receive_more_ref_timeout(LONG).unwrap();
        assert_eq!(reply.len(), len);
        assert!(reply.iter().all(|&b| b == 0xa5));
        assert!(!reply.more_follows());
    }
    srv.join().unwrap();
    // call_ref: the request copied in, the reply read in place.
    let (mut client, server) = pair(small());
    let server = reverser(server, 1);
    let reply = client.call_ref_timeout(b"xyz", LONG).unwrap();
    assert_eq!(&*reply, b"zyx");
    drop(reply);
    server.join().unwrap();
}

#[test]
fn bounded_forms_stop_in_their_phase_and_resume() {
    let (mut client, mut server) = pair(small());
    let mut buf = [0u8; 64];
    // Over: nobody answers.
    assert!(matches!(
        client.call_timeout(b"one", &mut buf, SHORT),
        Err(CallError::TimedOut { phase: Phase::Over, sent: 3, received: 0 })
    ));
    assert!(matches!(
        client.receive_more_deadline(&mut buf, Deadline::after(SHORT)),
        Err(CallError::TimedOut { phase: Phase::Over, .. })
    ));
    // The server's waits time out too, once it has answered.
    assert_eq!(server.try_receive_request(&mut buf).unwrap(), 3);
    server.reply_deadline(b"1", Deadline::after(LONG)).unwrap();
    assert!(matches!(server.try_receive_request(&mut buf), Err(CallError::WouldBlock { phase: Phase::Over, .. })));
    assert!(matches!(
        server.receive_request_timeout(&mut buf, SHORT),
        Err(CallError::TimedOut { phase: Phase::Over, .. })
    ));
    assert_eq!(client.receive_more_timeout(&mut buf, LONG).unwrap(), 1);
    // Recv: the answer began and stopped.
    client.try_call(b"two", &mut buf).unwrap_err();
    assert_eq!(server.receive_request_timeout(&mut buf, LONG).unwrap(), 3);
    server.try_send_part(b"ab").unwrap();
    assert!(matches!(
        client.receive_more_timeout(&mut buf, SHORT),
        Err(CallError::TimedOut { phase: Phase::Recv, sent: 3, received: 2 })
    ));
    assert!(matches!(
        server.try_reply_and_receive(b"c", &mut buf),
        Err(CallError::WouldBlock { phase: Phase::Over, sent: 3, received: 0 })
    ));
    assert_eq!(client.try_receive_more(&mut buf).unwrap(), 1);
    assert_eq!(buf[0], b'c');
    // Send: the ring is full of plain messages the server does not read.
    let filler = vec![0u8; 1000];
    while client.try_send(&filler).is_ok() {}
    assert!(matches!(
        client.try_call(&filler, &mut buf),
        Err(CallError::WouldBlock { phase: Phase::Send, sent: 0, received: 0 })
    ));
    assert!(matches!(
        client.call_timeout(&filler, &mut buf, SHORT),
        Err(CallError::TimedOut { phase: Phase::Send, sent: 0, .. })
    ));
    assert!(matches!(client.try_loan_request(1000).map(drop), Err(CallError::WouldBlock { phase: Phase::Send, .. })));
    assert!(client.holds_turn(), "nothing was sent: the turn stays");
    // The server drains the plain messages; the same call then goes through.
    while server.try_recv_into(&mut vec![0u8; 1000]).is_ok() {}
    assert!(matches!(
        client.try_call(b"three", &mut buf),
        Err(CallError::WouldBlock { phase: Phase::Over, sent: 5, .. })
    ));
    assert_eq!(server.receive_request_timeout(&mut buf, LONG).unwrap(), 5);
}

#[test]
fn a_peer_that_left_is_reported_in_the_phase_it_left_in() {
    let mut buf = [0u8; 64];
    // Ack: gone before the call.
    let (mut client, server) = pair(small());
    drop(server);
    assert!(matches!(client.call(b"x", &mut buf), Err(CallError::AckDisconnected)));
    // Over: the request went whole, the server left without answering.
    let (mut client, mut server) = pair(small());
    let srv = thread::spawn(move || {
        server.receive_request_timeout(&mut [0u8; 8], LONG).unwrap();
    });
    assert!(matches!(client.call_timeout(b"x", &mut buf, LONG), Err(CallError::OverDisconnected)));
    srv.join().unwrap();
    // Recv: the answer began, then the server left.
    let (mut client, mut server) = pair(small());
    let srv = thread::spawn(move || {
        server.receive_request_timeout(&mut [0u8; 8], LONG).unwrap();
        server.send_part(b"part").unwrap();
    });
    assert!(matches!(client.call_timeout(b"x", &mut buf, LONG), Err(CallError::RecvDisconnected { received: 4 })));
    srv.join().unwrap();
    // Send: pieces went, then the server left.
    let (mut client, server) = pair(small());
    client.send_part(b"abc").unwrap();
    drop(server);
    assert!(matches!(client.call(b"x", &mut buf), Err(CallError::SendDisconnected { sent: 3 })));
    // For a server, the client leaving after a reply is the end of its loop.
    let (mut client, mut server) = pair(small());
    client.try_call(b"q", &mut buf).unwrap_err();
    assert_eq!(server.receive_request(&mut buf).unwrap(), 1);
    server.reply(b"r").unwrap();
    drop(client);
    assert!(matches!(server.receive_request_timeout(&mut buf, LONG), Err(CallError::OverDisconnected)));
}

#[test]
fn calls_refuse_a_lossy_flow() {
    let (mut client, _server) = pair(Qos::best_effort());
    let mut buf = [0u8; 8];
    assert!(matches!(client.call(b"x", &mut buf), Err(CallError::Unsupported { .. })));
    assert!(client.holds_turn());
}
