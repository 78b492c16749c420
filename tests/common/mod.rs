//! Helpers for tests that run several real processes: a child is this same
//! test binary re-executed to run one `#[ignore]`d entry test, with a memfd
//! segment handed over as file descriptor 3.
//!
//! A test's files live in a `ringflow_testkit::temp_dir` guard the parent
//! test owns; a child only works in the directory it is handed, is killed
//! when its [`ChildProcess`] drops, and inherits the parent's private
//! runtime directory, so a killed child leaves nothing behind.
#![allow(dead_code)]

pub mod group;
pub mod numbered;
pub mod proxy;

use ringflow_ring::RawRegion;
use ringflow_shm::{Layout, LayoutBuilder, Segment, SegmentOptions};
use ringflow_testkit::ChildCommand;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// The descriptor number a child finds its segment at.
pub const SEGMENT_FD: i32 = 3;
/// Environment variable telling a re-executed test binary it is a child.
pub const CHILD_ENV: &str = "RINGFLOW_TEST_CHILD";
const TEST_KIND: u32 = 0x7e57;

/// True inside a child process started by [`spawn_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// A child argument passed through the environment.
pub fn child_arg(name: &str) -> String {
    std::env::var(format!("RINGFLOW_TEST_{name}")).unwrap_or_default()
}

/// A child process, killed (SIGKILL) and reaped when dropped (testkit's
/// guard): create the directory guard first, since locals drop in reverse
/// order.
pub use ringflow_testkit::ChildProcess;

/// Re-executes this test binary to run the ignored test `entry`, with
/// `segment` at fd 3 and `args` as RINGFLOW_TEST_<name> variables.
pub fn spawn_child(entry: &str, segment: &Segment, args: &[(&str, String)]) -> ChildProcess {
    spawn(entry, Some(segment.fd().as_raw_fd()), args)
}

/// Re-executes this test binary to run the ignored test `entry` with `args`
/// (no segment: flow tests find each other by name).
pub fn spawn_flow_child(entry: &str, args: &[(&str, String)]) -> ChildProcess {
    spawn(entry, None, args)
}

fn spawn(entry: &str, fd: Option<i32>, args: &[(&str, String)]) -> ChildProcess {
    // The child inherits this process's private runtime directory (for what
    // it does with the default one), which this process removes at exit.
    ringflow_testkit::isolate_runtime_dir();
    let mut cmd = ChildCommand::reexec(entry).env(CHILD_ENV, "1");
    for (k, v) in args {
        cmd = cmd.env(format!("RINGFLOW_TEST_{k}"), v);
    }
    if let Some(fd) = fd {
        cmd = cmd.fd_at(fd, SEGMENT_FD);
    }
    cmd.spawn()
}

/// A segment holding `regions` (lengths), with a validated layout header.
pub fn create_segment(regions: &[usize]) -> (Segment, Layout) {
    let mut b = LayoutBuilder::new(TEST_KIND);
    for &len in regions {
        b.add_region(TEST_KIND, len).unwrap();
    }
    let seg = Segment::create(&SegmentOptions::new("ringflow-test", b.total_len())).unwrap();
    let layout = b.write_header(&seg).unwrap();
    (seg, layout)
}

/// In a child: maps the segment at fd 3 and validates its layout.
pub fn child_segment() -> (Segment, Layout) {
    // SAFETY: the parent placed an open memfd at fd 3 for us (spawn_child),
    // and nothing else in this process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(SEGMENT_FD) };
    let seg = Segment::from_fd(fd, None).unwrap();
    let layout = Layout::read(&seg, TEST_KIND).unwrap();
    (seg, layout)
}

/// Region `i` of the segment as a ring region.
pub fn region(seg: &Segment, layout: &Layout, i: usize) -> RawRegion {
    let (ptr, len) = layout.region_ptr(seg, i).unwrap();
    // SAFETY: the pointer and length come from a validated layout of `seg`;
    // every test keeps `seg` alive longer than the rings built on it, and the
    // memory is only accessed through rings and atomics.
    unsafe { RawRegion::new(NonNull::new(ptr).unwrap(), len) }
}

/// FNV-1a, the frames' checksum.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// Deterministic payload of frame `seq`: length and bytes both derived from
/// the sequence number so the reader can check them independently.
pub fn frame_payload(seq: u64, max: usize, buf: &mut Vec<u8>) {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let len = 8 + (x % (max as u64 - 7)) as usize;
    buf.clear();
    buf.extend_from_slice(&seq.to_le_bytes());
    while buf.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf.push(x as u8);
    }
}

/// Waits until `file` exists (a child announcing a stage), failing the test
/// after the kit's hang guard.
pub fn await_file(file: &std::path::Path) {
    ringflow_testkit::wait_for(&format!("the child to reach {file:?}"), || file.exists());
}

/// How long [`within`] lets an operation run before calling it a hang.
pub const WATCHDOG: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs `op` on another thread and fails the test if it has not returned
/// within [`WATCHDOG`]: a hang is a failure, never a stuck run.
pub fn within<T: Send + 'static>(what: &str, op: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(op());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{what}: no return within {WATCHDOG:?} (a hang)"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: the operation panicked"),
    }
}

/// A hostile child's flow: allocates `name` in `dir` (with `qos`, no spin)
/// on a segment the child made itself, and returns a second descriptor of
/// that segment (the flow's own closes once mapped) to map and scribble on.
pub fn flow_with_memfd(dir: &std::path::Path, name: &str, qos: &ringflow::Qos) -> (ringflow::Flow, OwnedFd) {
    use ringflow::{Deadline, Flow, FlowOptions};
    let len = Flow::segment_len_for(qos).unwrap();
    let segment = Segment::create(&SegmentOptions::new(format!("ringflow:{name}"), len)).unwrap();
    let memfd = segment.try_clone_fd().unwrap();
    let options = FlowOptions::new().runtime_dir(dir).spin(std::time::Duration::ZERO).memory(segment);
    let flow = Flow::alloc_with(name, qos, Deadline::after(std::time::Duration::from_secs(30)), options).unwrap();
    (flow, memfd)
}
