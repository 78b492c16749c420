//! Caller-supplied memory on the accepting side (libdill's `ipc_accept_mem`,
//! the counterpart of `FlowOptions::memory`): the direction the acceptor
//! receives on lives in a segment it supplies, checked as strictly as the
//! allocating side's.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use ringflow_api::shm::{HugePages, Layout, Segment, SegmentOptions};
use ringflow_api::{
    AcceptError, AllocError, Deadline, Flow, FlowOptions, Listener, ListenerOptions, MemorySupply, Qos, Refusal,
};
use ringflow_core::flow::memory::FLOW_RX_KIND;

/// A runtime directory removed when the test ends, even by a panic.
struct TestDir(PathBuf);

impl TestDir {
    fn new() -> TestDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TestDir(std::env::temp_dir().join(format!("ringflow-acceptmem-{}-{n}", std::process::id())))
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A supply that makes segments of `extra` bytes more than asked (0: just
/// enough) and keeps a descriptor of each, so the test can look inside.
fn recording_supply(extra: usize) -> (MemorySupply, Arc<Mutex<Vec<OwnedFd>>>) {
    let made = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&made);
    let supply = MemorySupply::new(move |len| {
        let seg = Segment::create(&SegmentOptions::new("acceptor-rx", len + extra).huge_pages(HugePages::IfAvailable))?;
        seen.lock().unwrap().push(seg.try_clone_fd().expect("dup the supplied segment's fd"));
        Ok(seg)
    });
    (supply, made)
}

fn qos() -> Qos {
    Qos::data().with_ring_bytes(64 << 10).with_max_msg(1 << 20)
}

/// Allocates `name` from another thread with `opts` and accepts it.
fn connect(
    l: &mut Listener,
    dir: &TestDir,
    opts: FlowOptions,
) -> (Result<Flow, AllocError>, Result<Flow, AcceptError>) {
    let d = dir.0.clone();
    let client = thread::spawn(move || Flow::alloc_with("accmem", &qos(), Deadline::Never, opts.runtime_dir(d)));
    let accepted = l.accept();
    (client.join().unwrap(), accepted)
}

/// Whether `needle` lies in the bytes of the segment behind `fd`.
fn segment_holds(fd: &OwnedFd, needle: &[u8]) -> bool {
    let seg = Segment::from_fd(fd.try_clone().unwrap(), None).unwrap();
    assert!(Layout::read(&seg, FLOW_RX_KIND).is_ok(), "the supplied segment carries the receiving direction's layout");
    // SAFETY: the mapping is `seg.len()` bytes long and lives while `seg`
    // does; the flow's threads have finished writing (the message was
    // received before this call), so the bytes are stable while we read.
    let bytes = unsafe { std::slice::from_raw_parts(seg.as_ptr(), seg.len()) };
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn an_accepting_side_receives_in_memory_it_supplies() {
    let dir = TestDir::new();
    let (supply, made) = recording_supply(0);
    let mut l = Listener::bind_with("accmem", ListenerOptions::new().runtime_dir(&dir.0).memory(supply)).unwrap();
    let (a, b) = connect(&mut l, &dir, FlowOptions::new());
    let (mut a, mut b) = (a.unwrap(), b.unwrap());

    let inline = b"inline message that lands in the acceptor's own memory";
    a.send(inline).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let n = b.recv_into(&mut buf).unwrap();
    assert_eq!(&buf[..n], inline);
    // A bulk message (through the pool of the same direction) and the
    // other direction, which lives in the allocating side's segment.
    let bulk: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    a.send(&bulk).unwrap();
    assert_eq!(&*b.recv_ref().unwrap(), &bulk[..]);
    b.send(b"reply").unwrap();
    assert_eq!(&*a.recv_ref().unwrap(), b"reply");

    let fds = made.lock().unwrap();
    assert_eq!(fds.len(), 1, "one segment supplied per accepted flow");
    assert!(segment_holds(&fds[0], inline), "the acceptor's receiving ring lives in its supplied segment");
    assert!(!segment_holds(&fds[0], b"reply"), "the other direction does not");
}

#[test]
fn both_sides_may_supply_memory_at_once() {
    let dir = TestDir::new();
    let (supply, made) = recording_supply(4096);
    let mut l = Listener::bind_with("accmem", ListenerOptions::new().runtime_dir(&dir.0).memory(supply)).unwrap();
    let own = Segment::create(&SegmentOptions::new("initiator", Flow::segment_len_for(&qos()).unwrap())).unwrap();
    let (a, b) = connect(&mut l, &dir, FlowOptions::new().memory(own));
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    for i in 0..200u32 {
        a.send(&i.to_le_bytes()).unwrap();
        assert_eq!(&*b.recv_ref().unwrap(), &i.to_le_bytes());
        b.send(&(i + 1).to_le_bytes()).unwrap();
        assert_eq!(&*a.recv_ref().unwrap(), &(i + 1).to_le_bytes());
    }
    a.dealloc().unwrap();
    assert_eq!(made.lock().unwrap().len(), 1);
}

#[test]
fn supplied_memory_that_is_refused_ends_the_accept_and_refuses_the_peer() {
    let dir = TestDir::new();
    // Too small for the grant.
    let small = MemorySupply::new(|_| Segment::create(&SegmentOptions::new("too-small", 4096)));
    let mut l = Listener::bind_with("accmem", ListenerOptions::new().runtime_dir(&dir.0).memory(small)).unwrap();
    let (a, b) = connect(&mut l, &dir, FlowOptions::new());
    assert!(matches!(b, Err(AcceptError::Memory(_))), "{b:?}");
    assert!(matches!(a, Err(AllocError::Refused(Refusal::ResourceLimit))), "{a:?}");
    drop(l);

    // Already laid out (a segment reused from an earlier flow): refused, not
    // overwritten.
    let reused = Arc::new(Mutex::new(None::<OwnedFd>));
    let keep = Arc::clone(&reused);
    let again = MemorySupply::new(move |len| {
        let mut kept = keep.lock().unwrap();
        match kept.as_ref() {
            Some(fd) => Ok(Segment::from_fd(fd.try_clone().unwrap(), None).unwrap()),
            None => {
                let seg = Segment::create(&SegmentOptions::new("once", len))?;
                *kept = Some(seg.try_clone_fd().unwrap());
                Ok(seg)
            }
        }
    });
    let mut l = Listener::bind_with("accmem", ListenerOptions::new().runtime_dir(&dir.0).memory(again)).unwrap();
    let (a, b) = connect(&mut l, &dir, FlowOptions::new());
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    a.send(b"first").unwrap();
    assert_eq!(&*b.recv_ref().unwrap(), b"first");
    let (a2, b2) = connect(&mut l, &dir, FlowOptions::new());
    assert!(matches!(b2, Err(AcceptError::Memory(_))), "{b2:?}");
    assert!(matches!(a2, Err(AllocError::Refused(Refusal::ResourceLimit))), "{a2:?}");
    // The first flow is untouched by the refused second one.
    a.send(b"still here").unwrap();
    assert_eq!(&*b.recv_ref().unwrap(), b"still here");
}
