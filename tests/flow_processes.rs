//! Named flows between real processes: a child is this test binary re-run
//! (see common/mod.rs). Peers are killed with SIGKILL while the survivor is
//! blocked in send, blocked in receive, or idle; a peer scribbles garbage
//! into the shared rings; descriptors cross; names of crashed listeners are
//! reclaimed; other users are kept out. Nothing here asserts a duration: a
//! peer is killed once the survivor is seen blocked, and deadlines are hang
//! guards.

mod common;

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use common::{checksum, child_arg, frame_payload, is_child, spawn_flow_child, ChildProcess};
use ringflow::{
    AllocError, Deadline, Flow, FlowOptions, FlowSet, Interest, Listener, ListenerOptions, Permit, Qos, RecvError,
    SendError,
};
use ringflow_testkit::{thread_id, wait_until_blocked, TempDir};

const LONG: Duration = Duration::from_secs(60);

fn test_dir(tag: &str) -> TempDir {
    ringflow_testkit::temp_dir(&format!("proc-{tag}"))
}

fn listen(dir: &Path, name: &str) -> Listener {
    Listener::bind_with(name, ListenerOptions::new().runtime_dir(dir)).unwrap()
}

fn child(entry: &str, dir: &Path, name: &str, extra: &[(&str, String)]) -> ChildProcess {
    let mut args = vec![("DIR", dir.display().to_string()), ("NAME", name.to_string())];
    args.extend(extra.iter().cloned());
    spawn_flow_child(entry, &args)
}

/// Waits (polling, parked) until `file` exists: the child's "I got there".
fn await_file(file: &Path) {
    let end = Instant::now() + LONG;
    while !file.exists() {
        assert!(Instant::now() < end, "child never reached {file:?}");
        thread::sleep(Duration::from_millis(2));
    }
}

fn kill(c: ChildProcess) {
    drop(c);
}

/// Kills `c` once `file` exists and the calling thread, the survivor, is
/// blocked.
fn kill_later(c: ChildProcess, file: PathBuf) -> thread::JoinHandle<()> {
    let survivor = thread_id();
    thread::spawn(move || {
        await_file(&file);
        wait_until_blocked(survivor);
        kill(c);
    })
}

// ---- children ------------------------------------------------------------

fn child_flow(qos: Qos) -> (Flow, PathBuf) {
    let dir = PathBuf::from(child_arg("DIR"));
    let flow = Flow::alloc_with(&child_arg("NAME"), &qos, Deadline::after(LONG), FlowOptions::new().runtime_dir(&dir))
        .unwrap();
    (flow, dir)
}

fn sleep_forever() -> ! {
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

#[test]
#[ignore]
fn child_sends_then_sleeps() {
    if !is_child() {
        return;
    }
    let (mut flow, dir) = child_flow(Qos::data());
    let count: u64 = child_arg("COUNT").parse().unwrap();
    let mut buf = Vec::new();
    for seq in 0..count {
        frame_payload(seq, 3000, &mut buf);
        flow.send(&buf).unwrap();
    }
    std::fs::write(dir.join("sent"), b"").unwrap();
    sleep_forever();
}

#[test]
#[ignore]
fn child_reads_some_then_sleeps() {
    if !is_child() {
        return;
    }
    let (mut flow, dir) = child_flow(Qos::data().with_ring_bytes(16 << 10));
    let mut buf = [0u8; 1000];
    for _ in 0..5 {
        flow.recv_into(&mut buf).unwrap();
    }
    std::fs::write(dir.join("read"), b"").unwrap();
    sleep_forever();
}

#[test]
#[ignore]
fn child_scribbles_over_its_rings() {
    if !is_child() {
        return;
    }
    let (mut flow, dir) = child_flow(Qos::data().with_ring_bytes(16 << 10));
    flow.send(b"before the garbage").unwrap();
    // Wait until the parent holds its end (it attached before writing).
    let mut go = [0u8; 2];
    flow.recv_into(&mut go).unwrap();
    // Find our flow's mapping (its memfd is closed once mapped) and
    // scribble past the header.
    let name = format!("memfd:ringflow:{}", child_arg("NAME"));
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let range = maps.lines().find(|l| l.contains(&name)).expect("the flow's mapping");
    let (start, end) = range.split(' ').next().unwrap().split_once('-').unwrap();
    let (start, end) = (usize::from_str_radix(start, 16).unwrap(), usize::from_str_radix(end, 16).unwrap());
    for (i, at) in (start + 4096..end).enumerate() {
        // SAFETY: inside the flow's shared mapping, which the flow keeps
        // (it lives until this process is killed). This is the hostile
        // peer: bytes written over the rings as another process could
        // write them, while this process's flow sits idle (its thread
        // sleeps below and never touches it again).
        unsafe { (at as *mut u8).write_volatile(0xA5 ^ (i as u8)) };
    }
    std::fs::write(dir.join("scribbled"), b"").unwrap();
    sleep_forever();
}

#[test]
#[ignore]
fn child_sends_a_descriptor() {
    if !is_child() {
        return;
    }
    let (mut flow, dir) = child_flow(Qos::data());
    let path = dir.join("payload.txt");
    std::fs::write(&path, b"read through a passed descriptor").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    flow.send_fds(b"here", &[file.as_fd()]).unwrap();
    drop(file);
    // Wait for the reply so the message is consumed before we go.
    let mut buf = [0u8; 8];
    flow.recv_into(&mut buf).unwrap();
    flow.dealloc_timeout(LONG).unwrap();
}

#[test]
#[ignore]
fn child_echoes() {
    if !is_child() {
        return;
    }
    let (mut flow, _) = child_flow(Qos::data().with_ring_bytes(64 << 10));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match flow.recv_into(&mut buf) {
            Ok(n) => {
                let mut loan = flow.loan(n).unwrap();
                loan.copy_from_slice(&buf[..n]);
                loan.send().unwrap();
            }
            Err(RecvError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
#[ignore]
fn child_binds_then_sleeps() {
    if !is_child() {
        return;
    }
    let dir = PathBuf::from(child_arg("DIR"));
    let _l = Listener::bind_with(&child_arg("NAME"), ListenerOptions::new().runtime_dir(&dir)).unwrap();
    std::fs::write(dir.join("bound"), b"").unwrap();
    sleep_forever();
}

#[test]
#[ignore]
fn child_as_another_user_is_refused() {
    if !is_child() {
        return;
    }
    // SAFETY: plain syscalls dropping privileges in this child process.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
        assert_eq!(libc::setgid(65534), 0);
        assert_eq!(libc::setuid(65534), 0);
    }
    let dir = PathBuf::from(child_arg("DIR"));
    let r =
        Flow::alloc_with(&child_arg("NAME"), &Qos::data(), Deadline::after(LONG), FlowOptions::new().runtime_dir(&dir));
    assert!(matches!(r, Err(AllocError::PermissionDenied) | Err(AllocError::RuntimeDir(_))), "{r:?}");
}

// ---- tests ---------------------------------------------------------------

#[test]
fn peer_killed_while_we_are_blocked_in_recv() {
    let tmp = test_dir("recv");
    let dir = tmp.path().to_path_buf();
    let mut l = listen(&dir, "recv-kill");
    let c = child("child_sends_then_sleeps", &dir, "recv-kill", &[("COUNT", "200".into())]);
    let mut flow = l.accept_timeout(LONG).unwrap();
    let killer = kill_later(c, dir.join("sent"));
    let mut buf = vec![0u8; 4096];
    let mut expect = Vec::new();
    for seq in 0..200 {
        let n = flow.recv_into(&mut buf).unwrap();
        frame_payload(seq, 3000, &mut expect);
        assert_eq!(checksum(&buf[..n]), checksum(&expect), "message {seq}");
    }
    // Blocked (parked) here until the watcher sees the hang-up.
    match flow.recv_into(&mut buf) {
        Err(RecvError::PeerGone { received }) => assert_eq!(received, 200),
        other => panic!("{other:?}"),
    }
    assert!(flow.is_peer_gone());
    assert!(matches!(flow.send(b"x"), Err(SendError::PeerGone { delivered: 0 })));
    killer.join().unwrap();
}

#[test]
fn peer_killed_while_we_are_blocked_in_send() {
    let tmp = test_dir("send");
    let dir = tmp.path().to_path_buf();
    let mut l = listen(&dir, "send-kill");
    let c = child("child_reads_some_then_sleeps", &dir, "send-kill", &[]);
    let mut flow = l.accept_timeout(LONG).unwrap();
    let killer = kill_later(c, dir.join("read"));
    let msg = [3u8; 1000];
    let err = loop {
        if let Err(e) = flow.send(&msg) {
            break e;
        }
    };
    match err {
        SendError::PeerGone { delivered } => assert_eq!(delivered, 5),
        other => panic!("{other:?}"),
    }
    killer.join().unwrap();
}

#[test]
fn peer_killed_while_we_are_idle() {
    ringflow_testkit::require_futex_waitv!();
    let tmp = test_dir("idle");
    let dir = tmp.path().to_path_buf();
    let mut l = listen(&dir, "idle-kill");
    let c = child("child_sends_then_sleeps", &dir, "idle-kill", &[("COUNT", "3".into())]);
    let flow = l.accept_timeout(LONG).unwrap();
    await_file(&dir.join("sent"));
    kill(c);
    // A set waiting on the idle flow learns it, and so does its readiness fd.
    let fd = flow.as_raw_fd();
    let mut set = FlowSet::new();
    let key = set.insert(flow, Interest::Readable);
    let mut ready = Vec::new();
    let mut closed = false;
    while !closed {
        assert!(set.wait_timeout(&mut ready, LONG).unwrap() > 0);
        closed = ready.iter().any(|r| r.key == key && r.closed);
        if !closed {
            thread::sleep(Duration::from_millis(1)); // readable, not yet known closed
        }
    }
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    assert_eq!(unsafe { libc::poll(&mut p, 1, 60_000) }, 1);
    let mut flow = set.remove(key).unwrap();
    let mut buf = vec![0u8; 4096];
    for _ in 0..3 {
        flow.recv_into(&mut buf).unwrap();
    }
    assert!(matches!(flow.recv_into(&mut buf), Err(RecvError::PeerGone { received: 3 })));
}

#[test]
fn garbage_in_the_shared_ring_is_an_error_not_a_crash() {
    let tmp = test_dir("garbage");
    let dir = tmp.path().to_path_buf();
    let mut l = listen(&dir, "garbage");
    let c = child("child_scribbles_over_its_rings", &dir, "garbage", &[]);
    let mut flow = l.accept_timeout(LONG).unwrap();
    flow.send(b"go").unwrap();
    await_file(&dir.join("scribbled"));
    let mut buf = vec![0u8; 1 << 16];
    let r = flow.recv_into_timeout(&mut buf, Duration::from_secs(1));
    assert!(matches!(r, Err(RecvError::CorruptPeer(_))), "{r:?}");
    // Sending into rings whose control words are garbage: an error or a
    // send, never a panic or a hang.
    for _ in 0..100 {
        if flow.try_send(&[1u8; 100]).is_err() {
            break;
        }
    }
    kill(c);
}

#[test]
fn descriptors_cross_processes() {
    let tmp = test_dir("fds");
    let dir = tmp.path().to_path_buf();
    let mut l = listen(&dir, "fds");
    let c = child("child_sends_a_descriptor", &dir, "fds", &[]);
    let mut flow = l.accept_timeout(LONG).unwrap();
    let mut buf = [0u8; 16];
    let mut none: [Option<OwnedFd>; 0] = [];
    assert!(matches!(
        flow.recv_fds_deadline(&mut buf, &mut none, Deadline::after(LONG)),
        Err(RecvError::FdSlots { needed: 1 })
    ));
    let mut slots = [None];
    let (n, nfds) = flow.recv_fds(&mut buf, &mut slots).unwrap();
    assert_eq!((&buf[..n], nfds), (&b"here"[..], 1));
    let mut text = String::new();
    std::fs::File::from(slots[0].take().unwrap()).read_to_string(&mut text).unwrap();
    assert_eq!(text, "read through a passed descriptor");
    flow.send(b"thanks").unwrap();
    assert!(matches!(flow.recv_into(&mut buf), Err(RecvError::Closed)));
    let mut c = c;
    assert!(c.wait().unwrap().success());
}

#[test]
fn ping_pong_across_processes_in_every_form() {
    let tmp = test_dir("echo");
    let dir = tmp.path().to_path_buf();
    let mut l = listen(&dir, "echo");
    let mut c = child("child_echoes", &dir, "echo", &[]);
    let mut flow = l.accept_timeout(LONG).unwrap();
    let mut msg = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    for seq in 0..3000u64 {
        // Mostly small, sometimes past the inline size (bulk ring).
        let max = if seq % 100 == 7 { 300_000 } else { 2000 };
        frame_payload(seq, max, &mut msg);
        match seq % 4 {
            0 => flow.send(&msg).unwrap(),
            1 => flow.send_timeout(&msg, LONG).unwrap(),
            2 => flow.send_deadline(&msg, Deadline::Never).unwrap(),
            _ => {
                let mut loan = flow.loan(msg.len()).unwrap();
                loan.copy_from_slice(&msg);
                loan.send().unwrap();
            }
        }
        let got = match seq % 3 {
            0 => checksum(&flow.recv_ref().unwrap()),
            1 => {
                let n = flow.recv_into_timeout(&mut buf, LONG).unwrap();
                checksum(&buf[..n])
            }
            _ => loop {
                match flow.try_recv_ref() {
                    Ok(m) => break checksum(&m),
                    Err(RecvError::WouldBlock) => thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            },
        };
        assert_eq!(got, checksum(&msg), "round trip {seq}");
    }
    flow.dealloc_timeout(LONG).unwrap();
    assert!(c.wait().unwrap().success());
}

#[test]
fn a_crashed_listeners_name_is_reclaimed() {
    let tmp = test_dir("reclaim");
    let dir = tmp.path().to_path_buf();
    let c = child("child_binds_then_sleeps", &dir, "reclaimed", &[]);
    await_file(&dir.join("bound"));
    assert!(matches!(
        Listener::bind_with("reclaimed", ListenerOptions::new().runtime_dir(&dir)),
        Err(ringflow::BindError::InUse { .. })
    ));
    kill(c);
    let l = listen(&dir, "reclaimed");
    drop(l);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("bound")], "only the test's own marker is left");
}

#[test]
fn other_users_are_refused() {
    let tmp = test_dir("perm");
    let dir = tmp.path().to_path_buf();
    // A policy that admits nobody refuses even the same user.
    let mut l =
        Listener::bind_with("closed", ListenerOptions::new().runtime_dir(&dir).permit(Permit::nobody())).unwrap();
    let d2 = dir.clone();
    let t = thread::spawn(move || {
        Flow::alloc_with("closed", &Qos::data(), Deadline::after(LONG), FlowOptions::new().runtime_dir(d2))
    });
    // Every attempt is refused, so accept only ever times out; it answers
    // the client in one of them.
    let guard = Instant::now() + LONG;
    while !t.is_finished() {
        assert!(Instant::now() < guard, "the refused client never returned");
        let r = l.accept_timeout(Duration::from_millis(10));
        assert!(matches!(r, Err(ringflow::AcceptError::TimedOut)), "{r:?}");
    }
    let r = t.join().unwrap();
    assert!(matches!(r, Err(AllocError::PermissionDenied)), "{r:?}");
    assert_eq!(l.refused(), 1);
    // Another uid cannot even reach the socket (directory 0700, socket 0600).
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: skipping the other-uid child");
        return;
    }
    let _open = listen(&dir, "open");
    let mut c = child("child_as_another_user_is_refused", &dir, "open", &[]);
    assert!(c.wait().unwrap().success());
}
