//! Another user cannot reach a name: the 0700 directory stops it at
//! connect, and should the directory be loosened, the listener's `Permit`
//! still refuses it. Needs root to become another user; skipped otherwise.

use super::{fork_child, wait_exit, TestDir};
use crate::control::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const NOBODY: u32 = 65534;
const PATIENCE: Option<Duration> = Some(Duration::from_secs(60));

fn running_as_root() -> bool {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// In a forked child: drops to uid/gid NOBODY with no supplementary groups.
fn become_nobody() -> bool {
    // SAFETY: setgroups reads zero gids from a null pointer; setgid and
    // setuid take integers. Order matters: groups and gid while still root.
    unsafe { libc::setgroups(0, std::ptr::null()) == 0 && libc::setgid(NOBODY) == 0 && libc::setuid(NOBODY) == 0 }
}

/// The first directory above `dir` that another user cannot search (a
/// private `TMPDIR`, say): loosening `dir` alone then lets nobody reach it.
fn closed_ancestor(dir: &std::path::Path) -> Option<&std::path::Path> {
    dir.ancestors().skip(1).find(|a| fs::metadata(a).map_or(true, |m| m.permissions().mode() & 0o001 == 0))
}

/// Exit codes of the connecting child.
const DENIED: i32 = 0;
const CONNECTED: i32 = 1;
const NOT_FOUND: i32 = 2;
const OTHER_ERROR: i32 = 3;
const NO_SETUID: i32 = 4;

fn connect_as_nobody(rt: &RuntimeDir, name: &'static str) -> libc::pid_t {
    let rt = rt.clone();
    fork_child(None::<&std::fs::File>, move || {
        if !become_nobody() {
            return NO_SETUID;
        }
        match ControlConn::connect(&rt, name) {
            Err(ConnectError::PermissionDenied { .. }) => DENIED,
            Ok(conn) => {
                // Hold the connection until the listener has looked at it.
                let mut buf = [0u8; 1];
                let _ = conn.recv(&mut buf, &mut [], PATIENCE);
                CONNECTED
            }
            Err(ConnectError::NotFound { .. }) => NOT_FOUND,
            Err(_) => OTHER_ERROR,
        }
    })
}

#[test]
fn another_user_is_stopped_by_the_directory() {
    if !running_as_root() {
        eprintln!("skipped: needs root to connect as another user");
        return;
    }
    let tmp = TestDir::new();
    if let Some(closed) = closed_ancestor(tmp.path()) {
        eprintln!(
            "skipped: other users cannot search {}, so it, not the runtime directory, would stop them",
            closed.display()
        );
        return;
    }
    let rt = tmp.runtime();
    let _listener = ControlListener::bind(&rt, "private").unwrap();
    let pid = connect_as_nobody(&rt, "private");
    assert_eq!(wait_exit(pid), DENIED);
}

#[test]
fn another_user_is_stopped_by_the_permit_if_the_directory_is_loosened() {
    if !running_as_root() {
        eprintln!("skipped: needs root to connect as another user");
        return;
    }
    let tmp = TestDir::new();
    if let Some(closed) = closed_ancestor(tmp.path()) {
        eprintln!("skipped: other users cannot search {} (mode 0700 or the like)", closed.display());
        return;
    }
    let rt = tmp.runtime();
    let listener = ControlListener::bind(&rt, "loose").unwrap();
    // Sabotage: what a careless chmod would do.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o711)).unwrap();
    fs::set_permissions(listener.socket_path(), fs::Permissions::from_mode(0o666)).unwrap();
    let pid = connect_as_nobody(&rt, "loose");
    let conn = listener.accept(PATIENCE).unwrap();
    match Permit::same_user().check_peer(&conn) {
        Err(CheckPeerError::Denied(d)) => assert_eq!((d.uid, d.gid, d.pid), (NOBODY, NOBODY, pid as u32)),
        other => panic!("expected Denied, got {other:?}"),
    }
    assert!(Permit::same_user().allow_uid(NOBODY).check_peer(&conn).is_ok());
    drop(conn);
    assert_eq!(wait_exit(pid), CONNECTED);
}
