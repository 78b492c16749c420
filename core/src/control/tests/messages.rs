//! Messages and passed descriptors on a control connection; hang-up.

use super::{pipe, wait_hung_up};
use crate::control::*;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

const PATIENCE: Option<Duration> = Some(Duration::from_secs(60));

fn is_cloexec(fd: &OwnedFd) -> bool {
    // SAFETY: F_GETFD on a descriptor we own reads its flags only.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    assert!(flags >= 0);
    flags & libc::FD_CLOEXEC != 0
}

#[test]
fn descriptors_travel_with_a_message() {
    let (a, b) = ControlConn::pair().unwrap();
    let (mut read_end, write_end) = pipe();
    a.send(b"pipe", &[read_end.as_fd(), write_end.as_fd()]).unwrap();
    // Ours stay open after sending.
    drop(write_end);

    let mut buf = [0u8; 16];
    let mut slots: [Option<OwnedFd>; 2] = [None, None];
    let got = b.recv(&mut buf, &mut slots, PATIENCE).unwrap();
    assert_eq!(got, Received { len: 4, nfds: 2 });
    assert_eq!(&buf[..4], b"pipe");
    assert!(slots.iter().all(|s| s.as_ref().is_some_and(is_cloexec)));

    // The received write end feeds the original read end.
    let mut received_write = File::from(slots[1].take().unwrap());
    received_write.write_all(b"through").unwrap();
    drop(received_write);
    let mut text = String::new();
    read_end.read_to_string(&mut text).unwrap();
    assert_eq!(text, "through");
}

#[test]
fn too_few_slots_is_fds_truncated() {
    let (a, b) = ControlConn::pair().unwrap();
    let (r, w) = pipe();
    let mut buf = [0u8; 16];

    a.send(b"two", &[r.as_fd(), w.as_fd()]).unwrap();
    let mut one: [Option<OwnedFd>; 1] = [None];
    match b.recv(&mut buf, &mut one, PATIENCE) {
        Err(RecvError::FdsTruncated { len, nfds }) => assert_eq!((len, nfds), (3, 1)),
        other => panic!("expected FdsTruncated, got {other:?}"),
    }
    assert!(one[0].is_some(), "the descriptor that fitted arrived");

    a.send(b"two", &[r.as_fd(), w.as_fd()]).unwrap();
    assert!(matches!(b.recv(&mut buf, &mut [], PATIENCE), Err(RecvError::FdsTruncated { len: 3, nfds: 0 })));

    // The connection goes on: the next message is whole.
    a.send(b"next", &[]).unwrap();
    assert_eq!(b.recv(&mut buf, &mut [], PATIENCE).unwrap(), Received { len: 4, nfds: 0 });
}

#[test]
fn too_long_message_is_truncated() {
    let (a, b) = ControlConn::pair().unwrap();
    a.send(&[7u8; 100], &[]).unwrap();
    let mut small = [0u8; 10];
    match b.recv(&mut small, &mut [], PATIENCE) {
        Err(RecvError::Truncated { len, capacity, nfds }) => assert_eq!((len, capacity, nfds), (100, 10, 0)),
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert_eq!(small, [7u8; 10]);
    // The rest of that message is gone, not delivered as the next one.
    a.send(b"after", &[]).unwrap();
    let mut buf = [0u8; 100];
    assert_eq!(b.recv(&mut buf, &mut [], PATIENCE).unwrap().len, 5);
}

#[test]
fn message_boundaries_are_kept() {
    let (a, b) = ControlConn::pair().unwrap();
    for msg in [&b"a"[..], b"bb", b"ccc"] {
        a.send(msg, &[]).unwrap();
    }
    let mut buf = [0u8; 16];
    for want in [&b"a"[..], b"bb", b"ccc"] {
        let got = b.recv(&mut buf, &mut [], PATIENCE).unwrap();
        assert_eq!(&buf[..got.len], want);
    }
}

#[test]
fn the_most_descriptors_one_message_carries() {
    let (a, b) = ControlConn::pair().unwrap();
    let (r, _w) = pipe();
    let many: Vec<BorrowedFd<'_>> = vec![r.as_fd(); SCM_MAX_FD];
    a.send(b"many", &many).unwrap();
    let mut slots: Vec<Option<OwnedFd>> = (0..SCM_MAX_FD).map(|_| None).collect();
    let mut buf = [0u8; 8];
    assert_eq!(b.recv(&mut buf, &mut slots, PATIENCE).unwrap(), Received { len: 4, nfds: SCM_MAX_FD });
    assert!(slots.iter().all(Option::is_some));

    let too_many: Vec<BorrowedFd<'_>> = vec![r.as_fd(); SCM_MAX_FD + 1];
    assert!(matches!(a.send(b"x", &too_many), Err(SendError::TooManyFds { count: 254, max: 253 })));
}

#[test]
fn empty_messages_are_refused() {
    let (a, _b) = ControlConn::pair().unwrap();
    assert!(matches!(a.send(b"", &[]), Err(SendError::Empty)));
}

#[test]
fn oversized_message_is_too_large() {
    let (a, _b) = ControlConn::pair().unwrap();
    // Far beyond any default socket send buffer (wmem_max).
    let huge = vec![0u8; 8 << 20];
    assert!(matches!(a.send(&huge, &[]), Err(SendError::TooLarge { len }) if len == huge.len()));
}

#[test]
fn recv_with_nothing_sent() {
    let (a, _b) = ControlConn::pair().unwrap();
    let mut buf = [0u8; 8];
    assert!(matches!(a.recv(&mut buf, &mut [], Some(Duration::ZERO)), Err(RecvError::WouldBlock)));
    assert!(matches!(a.recv(&mut buf, &mut [], Some(Duration::from_millis(20))), Err(RecvError::TimedOut)));
    assert!(!a.is_hung_up());
}

#[test]
fn peer_hang_up_is_seen_after_its_last_message() {
    let (a, b) = ControlConn::pair().unwrap();
    a.send(b"last words", &[]).unwrap();
    drop(a);
    wait_hung_up(&b);
    assert!(b.is_hung_up());
    // Looking did not consume the message sent before the hang-up.
    assert!(b.is_hung_up());
    let mut buf = [0u8; 16];
    let got = b.recv(&mut buf, &mut [], PATIENCE).unwrap();
    assert_eq!(&buf[..got.len], b"last words");
    assert!(matches!(b.recv(&mut buf, &mut [], PATIENCE), Err(RecvError::PeerGone)));
    assert!(matches!(b.recv(&mut buf, &mut [], Some(Duration::ZERO)), Err(RecvError::PeerGone)));
    assert!(matches!(b.send(b"anyone?", &[]), Err(SendError::PeerGone)));
}

#[test]
fn conversions_keep_the_socket() {
    let (a, b) = ControlConn::pair().unwrap();
    let fd: OwnedFd = a.into();
    let a = ControlConn::from(fd);
    a.send(b"same", &[]).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(b.recv(&mut buf, &mut [], PATIENCE).unwrap().len, 4);
}
