//! A hostile peer process: it allocates a flow legitimately (so it holds the
//! flow's memfd as one end does), maps the segment a second time and writes
//! chosen and random values into every word it can reach — ring heads and
//! tails, frame headers and padding, bulk descriptors, sleeper counts and
//! futex words, closed flags, the consumed counters and arm words of the
//! state area, the pool's words, the layout header — while the victim (this
//! test process) uses every API form. It is killed with SIGKILL at random
//! points, dies after scribbling, or hangs up its control socket without
//! dying and keeps writing.
//!
//! What must hold, for every value: the victim gets valid data or a typed
//! error, never a hang (each victim operation runs under a watchdog that
//! fails the test), a panic, a crash, a length or count above what the flow
//! granted, or a large allocation of a forged size (a counting allocator
//! records the largest one).
//!
//! The random runs print their seed; `RINGFLOW_HOSTILE_SEED=<n>` replays one.

mod common;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{await_file, child_arg, is_child, spawn_flow_child, within, ChildProcess, WATCHDOG};
use ringflow::ring::frame::{FrameWord, KIND_DATA, KIND_PAD};
use ringflow::ring::{pool, spsc, RawRegion};
use ringflow::{
    CallError, Corruption, Deadline, DeallocError, Flow, FlowSet, Interest, Listener, ListenerOptions, Qos, RecvError,
    SendError,
};
use ringflow_core::flow::memory::FLOW_KIND;
use ringflow_core::flow::{FLAG_BULK, FLAG_FDS, FLAG_PART, FLAG_TURN};
use ringflow_shm::{Layout, Segment};
use ringflow_testkit::Rng;

/// Hang guard for one victim operation (generous: a loaded CI machine).
/// Setup steps (accept, a child reaching a state).
const LONG: Duration = Duration::from_secs(30);
const RING: usize = 16 << 10;
const MAX_MSG: usize = 64 << 10;
/// The largest single allocation the victim may make: its own buffers.
const ALLOC_LIMIT: usize = 4 << 20;
/// The most descriptors one message may announce (the kernel's SCM_MAX_FD).
const SCM_MAX_FD: usize = 253;

// ---- the largest allocation ------------------------------------------------

#[global_allocator]
static ALLOC: ringflow_testkit::LargestAlloc = ringflow_testkit::LargestAlloc;

fn assert_no_forged_allocation() {
    let largest = ringflow_testkit::largest_alloc();
    assert!(largest <= ALLOC_LIMIT, "an allocation of {largest} bytes (a forged size?)");
}

// ---- shared plumbing -------------------------------------------------------

fn qos() -> Qos {
    Qos { max_msg: MAX_MSG, ring_bytes: RING, ..Qos::data() }
}

/// A test directory, removed when dropped (also when the test fails).
struct TempDir(
    PathBuf,
    #[allow(dead_code, reason = "held for its Drop, which removes the directory")] ringflow_testkit::TempDir,
);

impl TempDir {
    fn new(tag: &str) -> Self {
        let guard = ringflow_testkit::temp_dir(&format!("hp-{tag}"));
        TempDir(guard.path().to_path_buf(), guard)
    }
}

/// The hostile child, killed and reaped when dropped (also on failure).
struct Hostile(Option<ChildProcess>);

impl Hostile {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for a child that ends by itself.
    fn reap(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.wait();
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Binds `name`, starts the hostile child in `mode` and accepts its flow.
fn start(dir: &TempDir, name: &str, mode: &str, extra: &[(&str, String)]) -> (Flow, Hostile, Listener) {
    let mut l = Listener::bind_with(name, ListenerOptions::new().runtime_dir(&dir.0)).unwrap();
    let mut args = vec![("DIR", dir.0.display().to_string()), ("NAME", name.to_string()), ("MODE", mode.to_string())];
    args.extend(extra.iter().cloned());
    let child = Hostile(Some(spawn_flow_child("child_hostile", &args)));
    let flow = l.accept_timeout(LONG).unwrap();
    assert_eq!(flow.qos().max_msg, MAX_MSG);
    (flow, child, l)
}

/// Receive outcomes of the random runs, printed per run (what the
/// scribbling reached): [data, corrupt, other errors].
static OUTCOMES: [AtomicUsize; 3] = [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];

/// Every receive outcome is valid data within the grant, or a typed error
/// whose numbers are within the grant too.
fn check_recv(r: &Result<usize, RecvError>) {
    let kind = match r {
        Ok(_) => 0,
        Err(RecvError::CorruptPeer(_)) => 1,
        Err(_) => 2,
    };
    OUTCOMES[kind].fetch_add(1, Ordering::Relaxed);
    match r {
        Ok(n) => assert!(*n <= MAX_MSG, "received {n} bytes on a flow granted {MAX_MSG}"),
        Err(RecvError::TooSmall { needed }) => assert!(*needed <= MAX_MSG, "TooSmall {{ needed: {needed} }}"),
        Err(RecvError::FdSlots { needed }) => assert!(*needed <= SCM_MAX_FD, "FdSlots {{ needed: {needed} }}"),
        Err(_) => {}
    }
}

/// Counts a call's outcome like a receive's and checks what it reports
/// stays within what the caller's buffers hold.
fn check_call(r: &Result<(usize, usize), CallError>, buf: usize, slots: usize) {
    let kind = match r {
        Ok(_) => 0,
        Err(CallError::CorruptPeer(_)) => 1,
        Err(_) => 2,
    };
    OUTCOMES[kind].fetch_add(1, Ordering::Relaxed);
    if let Ok((n, fds)) = r {
        assert!(*n <= buf && *fds <= slots, "({n}, {fds}) into {buf} bytes and {slots} slots");
    }
}

// ---- the hostile child -----------------------------------------------------

/// The flow's segment, mapped a second time by the hostile child, with the
/// addresses of its regions (kinds 1..=5: the inline rings of the two
/// directions, their bulk pools, the state area).
struct Scribbler {
    _segment: Segment,
    /// (base address, length) of each region, by kind - 1.
    regions: [(usize, usize); 5],
    /// The whole mapping (base address, length).
    whole: (usize, usize),
}

// Region kinds of a flow segment (core/src/flow/memory.rs). The child
// allocates: direction 0 is its sending direction, the victim's receiving.
const VICTIM_RX: usize = 0;
const VICTIM_TX: usize = 1;
const VICTIM_RX_BULK: usize = 2;
const VICTIM_TX_BULK: usize = 3;
const STATE: usize = 4;

impl Scribbler {
    /// Maps our flow's memfd again.
    fn open(memfd: OwnedFd) -> Scribbler {
        let segment = Segment::from_fd(memfd, None).unwrap();
        let layout = Layout::read(&segment, FLOW_KIND).unwrap();
        let regions = std::array::from_fn(|i| {
            let (index, _) = layout.find(i as u32 + 1).expect("flow region");
            let (ptr, len) = layout.region_ptr(&segment, index).unwrap();
            (ptr as usize, len)
        });
        let whole = (segment.as_ptr() as usize, segment.len());
        Scribbler { _segment: segment, regions, whole }
    }

    /// The word at `off` of region `r`.
    fn word(&self, r: usize, off: usize) -> &AtomicU64 {
        let (base, len) = self.regions[r];
        assert!(off % 8 == 0 && off + 8 <= len);
        // SAFETY: in bounds of the region (asserted), 8-byte aligned (regions
        // are), inside the mapping `self` keeps alive; AtomicU64 may alias
        // memory another process writes.
        unsafe { &*((base + off) as *const AtomicU64) }
    }

    /// The word at `off` of the whole segment.
    fn any_word(&self, off: usize) -> &AtomicU64 {
        let (base, len) = self.whole;
        assert!(off % 8 == 0 && off + 8 <= len);
        // SAFETY: as in `word`, for the whole mapping (page-aligned base).
        unsafe { &*((base + off) as *const AtomicU64) }
    }

    fn region(&self, r: usize) -> RawRegion {
        let (base, len) = self.regions[r];
        // SAFETY: a region of the mapping `self` keeps alive, 8-aligned; it
        // is used only to find the wait points' words.
        unsafe { RawRegion::new(std::ptr::NonNull::new(base as *mut u8).unwrap(), len) }
    }

    /// Offsets (in their region) of every sleeper count and futex word: the
    /// data and space wait points of both inline rings, the space wait point
    /// of both pools. (region, seq offset, sleepers offset).
    fn wait_words(&self) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for r in [VICTIM_RX, VICTIM_TX] {
            let region = self.region(r);
            let (data, space) = spsc::wait_points(&region).unwrap();
            for wp in [data, space] {
                let (seq, sleepers) = wp.words();
                let base = self.regions[r].0;
                out.push((r, seq.as_ptr() as usize - base, sleepers.as_ptr() as usize - base));
            }
        }
        for r in [VICTIM_RX_BULK, VICTIM_TX_BULK] {
            let region = self.region(r);
            let (seq, sleepers) = pool::space_wait_point(&region).unwrap().words();
            let base = self.regions[r].0;
            out.push((r, seq.as_ptr() as usize - base, sleepers.as_ptr() as usize - base));
        }
        out
    }

    /// Writes a committed frame at data offset `at` of the victim's
    /// receiving ring: its metadata and payload, then its commit word.
    fn forge_frame(&self, at: usize, word: FrameWord, meta: u64, payload: &[u64]) {
        let off = spsc::CONTROL_LEN + at;
        self.word(VICTIM_RX, off + 8).store(meta, Ordering::Relaxed);
        for (i, w) in payload.iter().enumerate() {
            self.word(VICTIM_RX, off + 16 + 8 * i).store(*w, Ordering::Relaxed);
        }
        self.word(VICTIM_RX, off).store(word.encode(), Ordering::Release);
    }
}

fn mark(dir: &Path, what: &str) {
    std::fs::write(dir.join(what), b"").unwrap();
}

fn die() -> ! {
    // SAFETY: ends this (child) process at once, running nothing of ours:
    // as abrupt as a crash, so the flow is never closed.
    unsafe { libc::_exit(0) }
}

fn sleep_forever() -> ! {
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

#[test]
#[ignore]
fn child_hostile() {
    if !is_child() {
        return;
    }
    let dir = PathBuf::from(child_arg("DIR"));
    let name = child_arg("NAME");
    let (flow, memfd) = common::flow_with_memfd(&dir, &name, &qos());
    let s = Scribbler::open(memfd);
    match child_arg("MODE").as_str() {
        "pad_loop" => {
            // Padding at position 0 whose length is the whole ring: it ends
            // at the end of the ring, which is position 0 of the next lap.
            s.forge_frame(0, FrameWord { len: RING as u32, kind: KIND_PAD, flags: 0, tag: 0 }, 0, &[]);
            mark(&dir, "ready");
            sleep_forever();
        }
        "forge" => {
            let (word, meta, payload) = forged(&child_arg("KIND"));
            s.forge_frame(0, word, meta, &payload);
            mark(&dir, "ready");
            sleep_forever();
        }
        "sleepers" => {
            let value: u64 = child_arg("VALUE").parse().unwrap();
            let words = s.wait_words();
            // Wait until the victim announced itself asleep somewhere...
            let end = Instant::now() + LONG;
            while !words.iter().any(|&(r, _, sl)| s.word(r, sl).load(Ordering::Relaxed) != 0) {
                assert!(Instant::now() < end, "the victim never slept");
                thread::sleep(Duration::from_millis(1));
            }
            // ...give it time to reach futex_wait, then lie about every
            // sleeper count and die.
            thread::sleep(Duration::from_millis(100));
            for &(r, _, sl) in &words {
                s.word(r, sl).store(value, Ordering::Relaxed);
            }
            std::mem::forget(flow);
            die();
        }
        "hang_up_and_restore" => {
            let words = s.wait_words();
            let end = Instant::now() + LONG;
            while !words.iter().any(|&(r, _, sl)| s.word(r, sl).load(Ordering::Relaxed) != 0) {
                assert!(Instant::now() < end, "the victim never slept");
                thread::sleep(Duration::from_millis(1));
            }
            thread::sleep(Duration::from_millis(100));
            // The futex words as the victim's sleep found them, written back
            // again and again (and the sleeper counts zeroed) from now on,
            // over the watcher's alerts to come.
            let before: Vec<u64> = words.iter().map(|&(r, seq, _)| s.word(r, seq).load(Ordering::Relaxed)).collect();
            let s = Arc::new(s);
            let restorer = s.clone();
            thread::spawn(move || loop {
                for _ in 0..1000 {
                    for (&(r, seq, sl), &old) in words.iter().zip(&before) {
                        restorer.word(r, seq).store(old, Ordering::Relaxed);
                        restorer.word(r, sl).store(0, Ordering::Relaxed);
                    }
                }
                thread::yield_now();
            });
            // Hang up every socket of ours (the control socket among them)
            // without dying: the victim's watcher sees a death while we keep
            // the segment mapped and writing. The victim kills us after.
            for e in std::fs::read_dir("/proc/self/fd").unwrap().filter_map(|e| e.ok()) {
                if std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:")) {
                    if let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
                        // SAFETY: shutdown on a descriptor number; no memory.
                        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
                    }
                }
            }
            std::mem::forget(flow);
            sleep_forever();
        }
        "random" => random_child(flow, s, child_arg("SEED").parse().unwrap()),
        other => panic!("unknown mode {other}"),
    }
}

/// A forged frame: (commit word, metadata, payload words).
fn forged(kind: &str) -> (FrameWord, u64, Vec<u64>) {
    let data = |len: u32, flags: u8| FrameWord { len, kind: KIND_DATA, flags, tag: 0 };
    match kind {
        // A well-formed descriptor of a slot inside the pool, longer than
        // the grant (the Ok(101536) on a flow granted 65,536).
        "oversized_bulk" => (data(16, FLAG_BULK), 0, vec![0, 101_536]),
        // A bulk message short enough to have gone inline.
        "undersized_bulk" => (data(16, FLAG_BULK), 0, vec![0, 100]),
        // A descriptor that points outside the pool.
        "bulk_out_of_range" => (data(16, FLAG_BULK), 0, vec![u64::MAX - 7, 64]),
        // An inline frame longer than the inline size (the ring's own
        // bound is larger).
        "long_inline" => (data(4000, 0), 0, vec![]),
        // A descriptor count above SCM_MAX_FD, and one of zero.
        "fd_count" => (data(8, FLAG_FDS), 255 << 56, vec![0]),
        "fd_zero" => (data(8, FLAG_FDS), 0, vec![0]),
        "unknown_flag" => (data(8, 0x80), 0, vec![0]),
        // A call's last frame that also announces more pieces.
        "both_call_flags" => (data(8, FLAG_TURN | FLAG_PART), 0, vec![0]),
        other => panic!("unknown forgery {other}"),
    }
}

/// The random hostile: one thread keeps legitimate traffic going (so the
/// rings move), this one scribbles chosen and random values into chosen
/// and random words, a few at a time, until the victim kills us.
fn random_child(mut flow: Flow, s: Scribbler, seed: u64) -> ! {
    thread::spawn(move || {
        let mut rng = Rng(seed ^ 0x5DEE_CE66);
        let mut buf = vec![0u8; MAX_MSG];
        loop {
            let len = if rng.below(8) == 0 { 3000 + rng.below(20_000) as usize } else { 1 + rng.below(500) as usize };
            let _ = flow.try_send(&buf[..len]);
            let _ = flow.try_recv_into(&mut buf);
            thread::sleep(Duration::from_millis(1));
        }
    });
    let mut rng = Rng(seed | 1);
    let words = s.wait_words();
    // Control words of the rings (sides' closed flags, positions) and the
    // state area (arm words, consumed counters, lost counts).
    let control: Vec<(usize, usize)> = [VICTIM_RX, VICTIM_TX, VICTIM_RX_BULK, VICTIM_TX_BULK]
        .iter()
        .flat_map(|&r| (0..spsc::CONTROL_LEN.min(s.regions[r].1) / 8).map(move |i| (r, i * 8)))
        .chain((0..512 / 8).map(|i| (STATE, i * 8)))
        .collect();
    let capacity = RING as u64;
    loop {
        for _ in 0..1 + rng.below(6) {
            let value = match rng.below(8) {
                0 => 0,
                1 => u64::MAX,
                2 => 1,
                3 => rng.below(4 * capacity),
                4 => FrameWord {
                    len: [0, 8, 16, 2049, 4000, RING as u32, (RING / 2) as u32, u32::MAX][rng.below(8) as usize],
                    kind: rng.below(5) as u8,
                    flags: [0, FLAG_BULK, FLAG_FDS, FLAG_BULK | FLAG_FDS, 0xff, FLAG_TURN, FLAG_PART | FLAG_BULK]
                        [rng.below(7) as usize],
                    tag: rng.below(4) as u16,
                }
                .encode(),
                5 => 1 << rng.below(64),
                _ => rng.next_u64(),
            };
            let target = match rng.below(5) {
                // Sleeper counts and futex words.
                0 => {
                    let (r, seq, sl) = words[rng.below(words.len() as u64) as usize];
                    s.word(r, if rng.below(2) == 0 { seq } else { sl })
                }
                // Ring and pool control words, the state area.
                1 => {
                    let (r, off) = control[rng.below(control.len() as u64) as usize];
                    s.word(r, off)
                }
                // Frame headers (commit words, metadata, descriptors) near
                // the rings' positions.
                2 | 3 => {
                    let r = if rng.below(3) == 0 { VICTIM_TX } else { VICTIM_RX };
                    let at = if rng.below(2) == 0 {
                        // At or just past the reader's published position
                        // (the head word, one block into the control area).
                        // SYNC: Relaxed; a peer's raw load.
                        let head = s.word(r, ringflow::ring::BLOCK).load(Ordering::Relaxed);
                        (head & !7).wrapping_add(rng.below(64) * 8) % capacity
                    } else {
                        rng.below(capacity / 8) * 8
                    };
                    s.word(r, spsc::CONTROL_LEN + at as usize)
                }
                // Anywhere: the layout header, the pools' data, padding.
                _ => s.any_word((rng.below(s.whole.1 as u64 / 8) * 8) as usize),
            };
            // SYNC: Relaxed or Release at random; a peer's raw store.
            target.store(value, if rng.below(2) == 0 { Ordering::Relaxed } else { Ordering::Release });
        }
        thread::sleep(Duration::from_millis(1 + rng.below(3)));
    }
}

// ---- the three found cases -------------------------------------------------

#[test]
fn self_pointing_padding_is_corrupt_not_a_hang() {
    let dir = TempDir::new("pad");
    let (flow, _child, _l) = start(&dir, "pad-loop", "pad_loop", &[]);
    await_file(&dir.0.join("ready"));
    let (mut flow, r) = within("try_recv_into over self-pointing padding", move || {
        let mut flow = flow;
        let mut buf = vec![0u8; 1024];
        let r = flow.try_recv_into(&mut buf);
        (flow, r)
    });
    assert!(matches!(r, Err(RecvError::CorruptPeer(_))), "{r:?}");
    let r = within("recv_into over self-pointing padding", move || {
        let mut buf = vec![0u8; 1024];
        flow.recv_into_deadline(&mut buf, Deadline::after(Duration::from_secs(2)))
    });
    assert!(matches!(r, Err(RecvError::CorruptPeer(_))), "{r:?}");
}

/// The victim's blocking operation in one of every form that sleeps.
#[derive(Clone, Copy, Debug)]
enum Sleeper {
    RecvInto,
    RecvRef,
    Send,
    Loan,
    SetWait,
    Dealloc,
}

/// Blocks the victim with `Deadline::Never` in `form` while the hostile
/// sets every sleeper count to `value` and dies: the death must wake it.
fn death_wakes(form: Sleeper, value: u64) {
    let dir = TempDir::new("sleepers");
    let name = format!("sleepers-{form:?}-{}", value != 0).to_lowercase();
    let (mut flow, mut child, _l) = start(&dir, &name, "sleepers", &[("VALUE", value.to_string())]);
    // Make the form block: a full ring for the senders, an unread message
    // for the linger.
    match form {
        Sleeper::Send | Sleeper::Loan => while flow.try_send(&[7u8; 1000]).is_ok() {},
        Sleeper::Dealloc => flow.send(b"never read").unwrap(),
        _ => {}
    }
    let what = format!("{form:?} after the peer set the sleeper counts to {value} and died");
    let ok = within(&what, move || match form {
        Sleeper::RecvInto => {
            let mut buf = [0u8; 64];
            matches!(flow.recv_into(&mut buf), Err(RecvError::PeerGone { received: 0 }))
        }
        Sleeper::RecvRef => matches!(flow.recv_ref().map(|b| b.len()), Err(RecvError::PeerGone { received: 0 })),
        Sleeper::Send => matches!(flow.send(&[7u8; 1000]), Err(SendError::PeerGone { .. })),
        Sleeper::Loan => matches!(flow.loan(1000).map(|b| b.len()), Err(SendError::PeerGone { .. })),
        Sleeper::SetWait => {
            let mut set = FlowSet::new();
            let key = set.insert(flow, Interest::Readable);
            let mut ready = Vec::new();
            set.wait(&mut ready).unwrap() == 1 && ready[0].key == key && ready[0].closed
        }
        Sleeper::Dealloc => flow.dealloc() == Err(DeallocError::PeerGone { unconsumed: 1 }),
    });
    assert!(ok, "{what}: the wrong outcome");
    child.reap();
}

#[test]
fn death_wakes_every_sleeper_whose_count_was_zeroed() {
    for form in [Sleeper::RecvInto, Sleeper::RecvRef, Sleeper::Send, Sleeper::Loan, Sleeper::SetWait, Sleeper::Dealloc]
    {
        death_wakes(form, 0);
    }
}

#[test]
fn death_wakes_every_sleeper_whose_count_was_maxed() {
    for form in [Sleeper::RecvInto, Sleeper::RecvRef, Sleeper::Send, Sleeper::Loan, Sleeper::SetWait, Sleeper::Dealloc]
    {
        death_wakes(form, u64::MAX);
    }
}

/// A peer that hangs up its control socket without dying, and keeps
/// writing the victim's futex words back to the values its sleep found
/// (and zeroing the sleeper counts), cannot keep the victim asleep: the
/// watcher's wake reaches it through its own process's state word.
#[test]
fn a_hang_up_wakes_a_sleeper_while_the_peer_restores_its_futex_word() {
    for form in [Sleeper::RecvInto, Sleeper::Send, Sleeper::SetWait, Sleeper::Dealloc] {
        let dir = TempDir::new("restore");
        let name = format!("restore-{form:?}").to_lowercase();
        let (mut flow, mut child, _l) = start(&dir, &name, "hang_up_and_restore", &[]);
        match form {
            Sleeper::Send => while flow.try_send(&[7u8; 1000]).is_ok() {},
            Sleeper::Dealloc => flow.send(b"never read").unwrap(),
            _ => {}
        }
        let what = format!("{form:?} while the peer hung up and restored the futex words");
        let ok = within(&what, move || match form {
            Sleeper::RecvInto => {
                let mut buf = [0u8; 64];
                matches!(flow.recv_into(&mut buf), Err(RecvError::PeerGone { received: 0 }))
            }
            Sleeper::Send => matches!(flow.send(&[7u8; 1000]), Err(SendError::PeerGone { .. })),
            Sleeper::SetWait => {
                let mut set = FlowSet::new();
                let key = set.insert(flow, Interest::Readable);
                let mut ready = Vec::new();
                set.wait(&mut ready).unwrap() == 1 && ready[0].key == key && ready[0].closed
            }
            Sleeper::Dealloc => flow.dealloc() == Err(DeallocError::PeerGone { unconsumed: 1 }),
            _ => unreachable!(),
        });
        assert!(ok, "{what}: the wrong outcome");
        child.kill();
    }
}

/// Every receive form meets the forged frame `kind` and must call it corrupt.
fn forged_frame_is_corrupt(kind: &str) {
    let dir = TempDir::new("forge");
    let name = format!("forge-{kind}").replace('_', "-");
    let (flow, _child, _l) = start(&dir, &name, "forge", &[("KIND", kind.to_string())]);
    await_file(&dir.0.join("ready"));
    let results = within(&format!("receiving a forged {kind}"), move || {
        let mut flow = flow;
        let mut buf = vec![0u8; 1 << 20];
        let mut slots: [Option<OwnedFd>; 4] = Default::default();
        vec![
            ("try_recv_into", flow.try_recv_into(&mut buf)),
            ("recv_into_timeout", flow.recv_into_timeout(&mut buf, Duration::from_secs(2))),
            ("recv_into", flow.recv_into(&mut buf)),
            ("try_recv_ref", flow.try_recv_ref().map(|b| b.len())),
            ("recv_ref", flow.recv_ref().map(|b| b.len())),
            ("try_recv_fds", flow.try_recv_fds(&mut buf, &mut slots).map(|(n, _)| n)),
        ]
    });
    // What the corruption is called: a descriptor outside the pool is the
    // pool's finding in shared memory; a count, flag or length beyond the
    // grant is the flow's finding about the frame (a bulk length beyond the
    // pool is the pool's first).
    let named = |c: &Corruption| match kind {
        "bulk_out_of_range" => matches!(c, Corruption::Memory(_)),
        "oversized_bulk" => matches!(c, Corruption::Memory(_) | Corruption::Frame(_)),
        _ => matches!(c, Corruption::Frame(_)),
    };
    for (form, r) in results {
        check_recv(&r);
        assert!(matches!(&r, Err(RecvError::CorruptPeer(c)) if named(c)), "{kind}, {form}: {r:?}");
    }
    assert_no_forged_allocation();
}

#[test]
fn an_oversized_bulk_descriptor_is_corrupt() {
    forged_frame_is_corrupt("oversized_bulk");
}

#[test]
fn every_length_and_count_is_checked_against_the_grant() {
    for kind in [
        "undersized_bulk",
        "bulk_out_of_range",
        "long_inline",
        "fd_count",
        "fd_zero",
        "unknown_flag",
        "both_call_flags",
    ] {
        forged_frame_is_corrupt(kind);
    }
}

// ---- randomized scribbling, kill -9 at random points -----------------------

/// What the victim is doing, for the watchdog's message.
static DOING: Mutex<&str> = Mutex::new("starting");

fn doing(what: &'static str) {
    *DOING.lock().unwrap_or_else(|p| p.into_inner()) = what;
}

/// The victim's side of a random run: every API form, over and over, with
/// the outcome of each checked, until the peer is gone; then every form
/// once more with `Deadline::Never` (each must return: the peer is dead).
fn victim(mut flow: Flow, seed: u64, gone: Arc<AtomicBool>) {
    let mut rng = Rng(seed ^ 0xA5A5);
    let mut buf = vec![0u8; 1 << 20];
    let mut slots: [Option<OwnedFd>; 2] = Default::default();
    let short = Duration::from_millis(20);
    let mut last_round = false;
    loop {
        // SYNC: Relaxed; set by the main thread after it killed the peer.
        if gone.load(Ordering::Relaxed) {
            last_round = true;
        }
        // Now and then a form that blocks for ever while the peer lives:
        // the kill must end it.
        let never = last_round || rng.below(16) == 0;
        let deadline = if never { Deadline::Never } else { Deadline::after(short) };
        let big = 3000 + rng.below(30_000) as usize;
        doing("recv_into_deadline");
        check_recv(&flow.recv_into_deadline(&mut buf, deadline));
        doing("try_recv_into");
        check_recv(&flow.try_recv_into(&mut buf));
        doing("recv_ref_deadline");
        check_recv(&flow.recv_ref_deadline(deadline).map(|b| {
            // Read every byte: the view must stay inside the mapping.
            std::hint::black_box(b.iter().fold(0u8, |a, &x| a ^ x));
            b.len()
        }));
        doing("recv_fds_deadline");
        check_recv(&flow.recv_fds_deadline(&mut buf, &mut slots, deadline).map(|(n, fds)| {
            assert!(fds <= slots.len());
            n
        }));
        slots.iter_mut().for_each(|s| *s = None);
        doing("try_send");
        let _ = flow.try_send(&buf[..1 + rng.below(200) as usize]);
        doing("send_deadline (bulk)");
        let _ = flow.send_deadline(&buf[..big], deadline);
        doing("send_vectored_deadline");
        let _ = flow.send_vectored_deadline(&[&buf[..10], &buf[..20]], deadline);
        doing("loan_deadline");
        if let Ok(mut loan) = flow.loan_deadline(1 + rng.below(3000) as usize, deadline) {
            loan.fill(9);
            let _ = loan.send();
        }
        // A call's forms: a call when this side holds the turn, else the
        // wait for (the rest of) an answer, whatever the peer's frames say.
        let len = buf.len();
        if flow.holds_turn() {
            doing("call_deadline");
            let (req, rest) = buf.split_at_mut(1 + rng.below(200) as usize);
            check_call(&flow.call_deadline(req, rest, deadline).map(|n| (n, 0)), len, 0);
        } else {
            doing("receive_more_fds_deadline");
            check_call(&flow.receive_more_fds_deadline(&mut buf, &mut slots, deadline), len, slots.len());
            slots.iter_mut().for_each(|s| *s = None);
            doing("receive_more_ref_deadline");
            let r = flow.receive_more_ref_deadline(deadline).map(|b| {
                // Read every byte: the view must stay inside the mapping.
                std::hint::black_box(b.iter().fold(0u8, |a, &x| a ^ x));
                (b.len(), 0)
            });
            check_call(&r, MAX_MSG, 0);
        }
        doing("FlowSet::wait");
        let mut set = FlowSet::new();
        let key = set.insert(flow, Interest::Both);
        let mut ready = Vec::new();
        let _ = set.wait_deadline(&mut ready, deadline);
        flow = set.remove(key).unwrap();
        if last_round {
            break;
        }
        thread::sleep(Duration::from_micros(200));
    }
    doing("dealloc");
    let _ = flow.dealloc();
    doing("done");
}

fn random_run(seed: u64) {
    eprintln!("hostile peer: seed {seed} (replay with RINGFLOW_HOSTILE_SEED={seed})");
    let dir = TempDir::new("random");
    let name = format!("random-{seed}");
    let (flow, mut child, _l) = start(&dir, &name, "random", &[("SEED", seed.to_string())]);
    let gone = Arc::new(AtomicBool::new(false));
    let v = {
        let gone = gone.clone();
        thread::spawn(move || victim(flow, seed, gone))
    };
    // Kill the hostile at a random point of its scribbling.
    let mut rng = Rng(seed.wrapping_mul(31) | 1);
    thread::sleep(Duration::from_millis(100 + rng.below(1200)));
    child.kill();
    // SYNC: Relaxed; the victim reads it at its next round.
    gone.store(true, Ordering::Relaxed);
    let end = Instant::now() + WATCHDOG;
    while !v.is_finished() {
        let what = *DOING.lock().unwrap_or_else(|p| p.into_inner());
        assert!(Instant::now() < end, "seed {seed}: the victim hung in {what} after the peer's death");
        thread::sleep(Duration::from_millis(10));
    }
    if let Err(p) = v.join() {
        std::panic::resume_unwind(p);
    }
    let [data, corrupt, other] = OUTCOMES.each_ref().map(|c| c.swap(0, Ordering::Relaxed));
    eprintln!("seed {seed}: {data} messages received, {corrupt} CorruptPeer, {other} other errors");
    assert_no_forged_allocation();
}

#[test]
fn random_scribbling_and_kill_9_never_hang_crash_or_lie() {
    let seed = match std::env::var("RINGFLOW_HOSTILE_SEED") {
        Ok(s) => s.parse().expect("RINGFLOW_HOSTILE_SEED: a number"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
    };
    for round in 0..4 {
        random_run(seed.wrapping_add(round));
    }
}
