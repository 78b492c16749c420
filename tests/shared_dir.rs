//! Two users share flows through a shared runtime directory: the listener's
//! user owns the directory (no one else may write it), its mode lets the
//! other user reach the names, and each listener's `Permit` decides who is
//! admitted. Needs root, to run the client as another user (uid 65534);
//! skipped otherwise.

mod common;

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{child_arg, is_child, spawn_flow_child};
use ringflow::{
    AcceptError, AllocError, Deadline, Flow, FlowOptions, Listener, ListenerOptions, Permit, Qos, RecvError,
};

const NOBODY: u32 = 65534;
const LONG: Duration = Duration::from_secs(60);

fn running_as_root() -> bool {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// In a child: becomes uid/gid NOBODY with no supplementary groups.
fn become_nobody() {
    // SAFETY: plain syscalls dropping privileges in this child process;
    // groups and gid first, while still root.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
        assert_eq!(libc::setgid(NOBODY), 0);
        assert_eq!(libc::setuid(NOBODY), 0);
    }
}

/// The first directory above `dir` that another user cannot search: it,
/// not the shared directory, would then stop them.
fn closed_ancestor(dir: &Path) -> Option<&Path> {
    dir.ancestors().skip(1).find(|a| fs::metadata(a).map_or(true, |m| m.permissions().mode() & 0o001 == 0))
}

/// A directory root owns and only root writes, which others may search
/// (as the test's temporary directory, its parent, now may); `None` when a
/// directory above them is closed to other users.
fn shared_dir(tmp: &Path) -> Option<PathBuf> {
    fs::set_permissions(tmp, fs::Permissions::from_mode(0o711)).unwrap();
    if let Some(closed) = closed_ancestor(tmp) {
        eprintln!("skipped: other users cannot search {}", closed.display());
        return None;
    }
    let dir = tmp.join("shared");
    fs::DirBuilder::new().mode(0o711).create(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o711)).unwrap();
    Some(dir)
}

#[test]
#[ignore]
fn child_as_nobody_calls_through_the_shared_dir() {
    if !is_child() {
        return;
    }
    become_nobody();
    let opts = FlowOptions::new().shared_runtime_dir(child_arg("DIR"));
    let mut flow = Flow::alloc_with(&child_arg("NAME"), &Qos::data(), Deadline::after(LONG), opts).unwrap();
    flow.send(b"from nobody").unwrap();
    let mut buf = [0u8; 64];
    let n = flow.recv_into_timeout(&mut buf, LONG).unwrap();
    assert_eq!(&buf[..n], b"FROM NOBODY");
    flow.dealloc_timeout(LONG).unwrap();
}

#[test]
#[ignore]
fn child_as_nobody_is_refused_by_the_permit() {
    if !is_child() {
        return;
    }
    become_nobody();
    let opts = FlowOptions::new().shared_runtime_dir(child_arg("DIR"));
    let r = Flow::alloc_with(&child_arg("NAME"), &Qos::data(), Deadline::after(LONG), opts);
    assert!(matches!(r, Err(AllocError::PermissionDenied)), "{r:?}");
}

#[test]
fn another_user_allocates_a_flow_in_a_shared_dir_its_listener_permits() {
    if !running_as_root() {
        eprintln!("skipped: needs root to run a client as another user");
        return;
    }
    let tmp = ringflow_testkit::temp_dir("shared");
    let Some(dir) = shared_dir(tmp.path()) else { return };
    let opts = ListenerOptions::new().shared_runtime_dir(&dir).permit(Permit::same_user().allow_uid(NOBODY));
    let mut listener = Listener::bind_with("svc", opts).unwrap();
    // The socket is 0666 in a shared directory: the directory's mode and
    // the permit decide, not the socket's.
    assert_eq!(fs::metadata(dir.join("svc.sock")).unwrap().mode() & 0o777, 0o666);
    let mut child = spawn_flow_child(
        "child_as_nobody_calls_through_the_shared_dir",
        &[("DIR", dir.display().to_string()), ("NAME", "svc".into())],
    );
    let mut flow = listener.accept_timeout(LONG).unwrap();
    let mut buf = [0u8; 64];
    let n = flow.recv_into_timeout(&mut buf, LONG).unwrap();
    assert_eq!(&buf[..n], b"from nobody");
    flow.send(&buf[..n].to_ascii_uppercase()).unwrap();
    assert!(matches!(flow.recv_into_timeout(&mut buf, LONG), Err(RecvError::Closed)));
    assert!(child.wait().unwrap().success(), "the client as uid {NOBODY} failed");
}

#[test]
fn a_listener_in_a_shared_dir_still_refuses_whom_its_permit_does_not_name() {
    if !running_as_root() {
        eprintln!("skipped: needs root to run a client as another user");
        return;
    }
    let tmp = ringflow_testkit::temp_dir("shared-refused");
    let Some(dir) = shared_dir(tmp.path()) else { return };
    // The default permit: this user only.
    let mut listener = Listener::bind_with("mine", ListenerOptions::new().shared_runtime_dir(&dir)).unwrap();
    let mut child = spawn_flow_child(
        "child_as_nobody_is_refused_by_the_permit",
        &[("DIR", dir.display().to_string()), ("NAME", "mine".into())],
    );
    // A refused peer never ends an accept: it only ever times out, and
    // answers the client in one of its waits.
    let end = Instant::now() + LONG;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "the refused client never returned");
        let r = listener.accept_timeout(Duration::from_millis(10));
        assert!(matches!(r, Err(AcceptError::TimedOut)), "{r:?}");
    }
    assert!(child.wait().unwrap().success(), "the client was not refused as it should be");
    assert_eq!(listener.refused(), 1);
}
