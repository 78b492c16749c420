//! Hostile patterns a review found that `hostile_peer.rs` does not try: a
//! peer process that maps the flow's segment writes a word while the
//! victim uses the API, and the victim must get a typed error or valid
//! data, never a hang (each victim operation runs under a watchdog).
//!
//! - A full sending ring (or bulk pool) whose consumer side the peer marks
//!   closed while keeping its control socket open: a blocking `send` or
//!   `loan` was woken by the close, told `Full` by the ring, and went back
//!   to wait for a condition already true: a spin without end.

mod common;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use common::{await_file, child_arg, is_child, spawn_flow_child, within, ChildProcess};
use ringflow::{Deadline, Flow, Listener, ListenerOptions, Qos, SendError};
use ringflow_core::flow::memory::FLOW_KIND;
use ringflow_shm::{Layout, Segment};

/// Hang guard for one victim operation (generous: a loaded CI machine).
/// Setup steps (accept, a child reaching a state).
const LONG: Duration = Duration::from_secs(30);
const RING: usize = 16 << 10;
const MAX_MSG: usize = 64 << 10;

// Region kinds of a flow segment, less one (core/src/flow/memory.rs). The
// child allocates: direction 1 is the victim's sending direction.
const VICTIM_TX: usize = 1;
const VICTIM_TX_BULK: usize = 3;
/// A ring's (and a pool's) consumer side word, and its "closed" value
/// (ring/src/control.rs).
const OFF_CONSUMER: usize = 24;
const SIDE_CLOSED: u64 = 2;

fn qos() -> Qos {
    Qos { max_msg: MAX_MSG, ring_bytes: RING, ..Qos::data() }
}

/// The child's second mapping of the flow's segment: (base, length) of
/// each region, by kind - 1.
struct Scribbler {
    _segment: Segment,
    regions: [(usize, usize); 5],
}

impl Scribbler {
    fn open(memfd: OwnedFd) -> Scribbler {
        let segment = Segment::from_fd(memfd, None).unwrap();
        let layout = Layout::read(&segment, FLOW_KIND).unwrap();
        let regions = std::array::from_fn(|i| {
            let (index, _) = layout.find(i as u32 + 1).expect("flow region");
            let (ptr, len) = layout.region_ptr(&segment, index).unwrap();
            (ptr as usize, len)
        });
        Scribbler { _segment: segment, regions }
    }

    fn word(&self, r: usize, off: usize) -> &AtomicU64 {
        let (base, len) = self.regions[r];
        assert!(off % 8 == 0 && off + 8 <= len);
        // SAFETY: in bounds of the region (asserted), 8-byte aligned (regions
        // are), inside the mapping `self` keeps alive; AtomicU64 may alias
        // memory another process writes.
        unsafe { &*((base + off) as *const AtomicU64) }
    }
}

#[test]
#[ignore = "a child process of the tests below"]
fn child_review() {
    if !is_child() {
        return;
    }
    let dir = PathBuf::from(child_arg("DIR"));
    let name = child_arg("NAME");
    let (flow, memfd) = common::flow_with_memfd(&dir, &name, &qos());
    let s = Scribbler::open(memfd);
    match child_arg("MODE").as_str() {
        "close_consumer" => {
            await_file(&dir.join("full"));
            // Our consumer side of the victim's sending ring and pool,
            // marked closed; the control socket stays open (no hang-up).
            s.word(VICTIM_TX, OFF_CONSUMER).store(SIDE_CLOSED, Ordering::Release);
            s.word(VICTIM_TX_BULK, OFF_CONSUMER).store(SIDE_CLOSED, Ordering::Release);
            std::fs::write(dir.join("closed"), b"").unwrap();
            let _keep = flow;
            loop {
                thread::sleep(Duration::from_secs(3600));
            }
        }
        other => panic!("unknown mode {other}"),
    }
}

/// The victim's side: a flow from a hostile child in `mode`.
fn start(dir: &Path, name: &str, mode: &str) -> (Flow, ChildProcess, Listener) {
    let mut l = Listener::bind_with(name, ListenerOptions::new().runtime_dir(dir)).unwrap();
    let args = [("DIR", dir.display().to_string()), ("NAME", name.to_string()), ("MODE", mode.to_string())];
    let child = spawn_flow_child("child_review", &args);
    let flow = l.accept_deadline(Deadline::after(LONG)).unwrap();
    (flow, child, l)
}

#[derive(Clone, Copy, Debug)]
enum Form {
    Send,
    SendBulk,
    Loan,
    LoanBulk,
}

#[test]
fn a_full_flow_whose_consumer_closes_ends_every_blocking_send() {
    for form in [Form::Send, Form::SendBulk, Form::Loan, Form::LoanBulk] {
        let tmp = ringflow_testkit::temp_dir("hr-close");
        let name = format!("close-{form:?}").to_lowercase();
        let (mut flow, _child, _l) = start(tmp.path(), &name, "close_consumer");
        let len = match form {
            Form::Send | Form::Loan => 1000,
            Form::SendBulk | Form::LoanBulk => 30_000,
        };
        let msg = vec![7u8; len];
        while flow.try_send(&msg).is_ok() {}
        std::fs::write(tmp.path().join("full"), b"").unwrap();
        await_file(&tmp.path().join("closed"));
        let what = format!("{form:?} on a full flow whose consumer closed");
        let r = within(&what, move || match form {
            Form::Send | Form::SendBulk => flow.send(&msg),
            Form::Loan | Form::LoanBulk => flow.loan(len).map(drop),
        });
        assert!(matches!(r, Err(SendError::Closed)), "{what}: {r:?}");
    }
}
