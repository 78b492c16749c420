//! Binding, connecting and accepting by name; name ownership and stale
//! reclaim across processes.

use super::{fork_child, pipe, wait_exit, TestDir, CHILD_FD};
use crate::control::*;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

/// Long enough never to expire on a loaded machine when things work.
const PATIENCE: Option<Duration> = Some(Duration::from_secs(60));

fn euid() -> u32 {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn bind_connect_accept_round_trip() {
    let tmp = TestDir::new();
    let rt = tmp.runtime();
    let listener = ControlListener::bind(&rt, "orders").unwrap();
    assert_eq!(listener.name(), "orders");
    assert_eq!(listener.socket_path(), rt.socket_path("orders").unwrap());
    assert!(fs::symlink_metadata(listener.socket_path()).unwrap().file_type().is_socket());
    assert_eq!(mode_of(listener.socket_path()), 0o600);
    assert_eq!(mode_of(&rt.lock_path("orders").unwrap()), 0o600);
    assert_eq!(rt.list_names().unwrap(), ["orders"]);

    let client = ControlConn::connect(&rt, "orders").unwrap();
    let server = listener.accept(PATIENCE).unwrap();
    for cred in [client.peer_cred().unwrap(), server.peer_cred().unwrap()] {
        assert_eq!((cred.pid, cred.uid), (std::process::id(), euid()));
    }
    client.send(b"hello", &[]).unwrap();
    let mut buf = [0u8; 16];
    let got = server.recv(&mut buf, &mut [], PATIENCE).unwrap();
    assert_eq!(got, Received { len: 5, nfds: 0 });
    assert_eq!(&buf[..got.len], b"hello");
    server.send(b"welcome", &[]).unwrap();
    let got = client.recv(&mut buf, &mut [], PATIENCE).unwrap();
    assert_eq!(&buf[..got.len], b"welcome");
}

#[test]
fn accept_with_nobody_connecting() {
    let tmp = TestDir::new();
    let listener = ControlListener::bind(&tmp.runtime(), "idle").unwrap();
    assert!(matches!(listener.accept(Some(Duration::ZERO)), Err(AcceptError::WouldBlock)));
    assert!(matches!(listener.accept(Some(Duration::from_millis(20))), Err(AcceptError::TimedOut)));
    // A pending connection is taken by a try-once accept.
    let _client = ControlConn::connect(&tmp.runtime(), "idle").unwrap();
    assert!(listener.accept(Some(Duration::ZERO)).is_ok());
}

#[test]
fn connect_to_an_unbound_name_is_not_found() {
    let tmp = TestDir::new();
    match ControlConn::connect(&tmp.runtime(), "nobody") {
        Err(ConnectError::NotFound { name, dir }) => {
            assert_eq!(name, "nobody");
            assert_eq!(dir, tmp.runtime().path(), "the directory looked in");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn dropped_listener_leaves_nothing_and_is_not_found() {
    let tmp = TestDir::new();
    let rt = tmp.runtime();
    let listener = ControlListener::bind(&rt, "brief").unwrap();
    let client = ControlConn::connect(&rt, "brief").unwrap();
    drop(listener);
    assert!(tmp.entries().is_empty(), "left behind: {:?}", tmp.entries());
    assert!(matches!(ControlConn::connect(&rt, "brief"), Err(ConnectError::NotFound { .. })));
    // The never-accepted connection was reset with the listener.
    super::wait_hung_up(&client);
    // The name is free again.
    let _again = ControlListener::bind(&rt, "brief").unwrap();
}

#[test]
fn second_bind_of_a_live_name_is_in_use() {
    let tmp = TestDir::new();
    let rt = tmp.runtime();
    let first = ControlListener::bind(&rt, "taken").unwrap();
    match ControlListener::bind(&rt, "taken") {
        Err(BindError::InUse { name }) => assert_eq!(name, "taken"),
        other => panic!("expected InUse, got {other:?}"),
    }
    // The refused bind touched nothing: the first listener still works.
    let _client = ControlConn::connect(&rt, "taken").unwrap();
    first.accept(PATIENCE).unwrap();
    // Another name binds alongside.
    let _other = ControlListener::bind(&rt, "free").unwrap();
}

#[test]
fn bad_names_and_long_paths_are_refused_before_any_file_exists() {
    let tmp = TestDir::new();
    let rt = tmp.runtime();
    assert!(matches!(ControlListener::bind(&rt, "a/b"), Err(BindError::Name(NameError::PathSeparator))));
    assert!(matches!(ControlConn::connect(&rt, ""), Err(ConnectError::Name(NameError::Empty))));
    // A directory long enough that a maximal name overflows sun_path while
    // "short.sock" just fits, wherever the temporary directory is.
    let room = MAX_SOCKET_PATH.saturating_sub(tmp.path().as_os_str().len() + "/".len() + "/short.sock".len());
    if room == 0 {
        eprintln!("skipped: the temporary directory {} is too long for a socket path", tmp.path().display());
        return;
    }
    let deep = RuntimeDir::at(tmp.path().join("d".repeat(room))).unwrap();
    let name = "n".repeat(MAX_NAME_LEN);
    match ControlListener::bind(&deep, &name) {
        Err(BindError::PathTooLong(e)) => assert!(e.len > e.max && e.max == MAX_SOCKET_PATH, "{e:?}"),
        other => panic!("expected PathTooLong, got {other:?}"),
    }
    assert!(matches!(ControlConn::connect(&deep, &name), Err(ConnectError::PathTooLong(_))));
    assert!(fs::read_dir(deep.path()).unwrap().next().is_none());
    // A short name still fits there.
    let _ok = ControlListener::bind(&deep, "short").unwrap();
}

#[test]
fn a_killed_listeners_name_is_reclaimed() {
    let tmp = TestDir::new();
    let rt = tmp.runtime();
    let (mut ready_rx, ready_tx) = pipe();
    let child_rt = rt.clone();
    let pid = fork_child(Some(&ready_tx), move || {
        // SAFETY: fork_child placed the pipe's write end at CHILD_FD for us.
        let mut ready = fs::File::from(unsafe { OwnedFd::from_raw_fd(CHILD_FD) });
        let Ok(listener) = ControlListener::bind(&child_rt, "stale") else { return 1 };
        // Never dropped: the parent kills us while we hold the name.
        std::mem::forget(listener);
        if ready.write_all(b"!").is_err() {
            return 2;
        }
        loop {
            // SAFETY: pause only waits for a signal.
            unsafe { libc::pause() };
        }
    });
    drop(ready_tx);
    let mut byte = [0u8];
    ready_rx.read_exact(&mut byte).expect("child bound the name");

    // Alive in another process: the name is in use.
    assert!(matches!(ControlListener::bind(&rt, "stale"), Err(BindError::InUse { .. })));
    // SAFETY: kill sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert_eq!(wait_exit(pid), -libc::SIGKILL);

    // The crash left its files; nobody answers on the socket.
    assert_eq!(tmp.entries(), ["stale.lock", "stale.sock"]);
    assert_eq!(rt.list_names().unwrap(), ["stale"]);
    assert!(matches!(ControlConn::connect(&rt, "stale"), Err(ConnectError::NotFound { .. })));

    // The next bind reclaims the name and works.
    let listener = ControlListener::bind(&rt, "stale").unwrap();
    let client = ControlConn::connect(&rt, "stale").unwrap();
    let server = listener.accept(PATIENCE).unwrap();
    client.send(b"alive", &[]).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(server.recv(&mut buf, &mut [], PATIENCE).unwrap().len, 5);
    drop(listener);
    assert!(tmp.entries().is_empty(), "left behind: {:?}", tmp.entries());
}

#[test]
fn a_loosened_socket_is_tightened_on_rebind() {
    // A crashed listener's socket file with a wide mode is replaced by one
    // with mode 0600.
    let tmp = TestDir::new();
    let rt = tmp.runtime();
    let path = rt.socket_path("wide").unwrap();
    let leftover = std::os::unix::net::UnixListener::bind(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    drop(leftover);
    let listener = ControlListener::bind(&rt, "wide").unwrap();
    assert_eq!(mode_of(listener.socket_path()), 0o600);
}

#[test]
fn a_full_backlog_ends_a_connect_at_its_deadline() {
    let tmp = TestDir::new();
    let rt = tmp.runtime();
    let _listener = ControlListener::bind(&rt, "busy").unwrap();
    // Nobody accepts: connect until the backlog is full.
    let mut held = Vec::new();
    loop {
        match ControlConn::connect_deadline(&rt, "busy", crate::wait::Deadline::Now) {
            Ok(c) => held.push(c),
            Err(ConnectError::TimedOut) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(held.len() < 100_000, "the backlog never filled");
    }
    let late = ControlConn::connect_deadline(&rt, "busy", crate::wait::Deadline::after(Duration::from_millis(20)));
    assert!(matches!(late, Err(ConnectError::TimedOut)), "{late:?}");
}
