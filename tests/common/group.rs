//! Helpers for the multi-process group tests (issue 15): a member's
//! delivered events recorded in order and written to a file its parent
//! reads back, payloads that say who sent them and which of the sender's
//! messages they are, and the member roles several tests share.
//!
//! A child member is this test binary re-executed (see `spawn_member`); it
//! inherits the parent's private runtime directory (where a group's keeper
//! binds its name), works only in the directory it is handed, and is killed
//! when its [`ChildProcess`] drops. Waiting parks: a member with nothing to
//! do sleeps in a receive or a short blocking multicast, never spins.

use super::numbered;
use super::{await_file, child_arg, is_child, spawn_flow_child, ChildProcess};
use ringflow::{
    ChangeKind, Deadline, Event, Group, GroupOptions, GroupRecvError, Guarantee, LeaveError, McastError, Member,
    SlowMember,
};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Hang guard for one step (a join, a receive, a child reaching a stage).
pub const LONG: Duration = Duration::from_secs(30);
/// The largest numbered body a test payload carries.
pub const BODY_MAX: usize = 120;
/// A test payload's header: tag (u32) and flags (u32) before the numbered body.
pub const PAYLOAD_HEADER: usize = 8;
/// The maximum message size of the test groups.
pub const MAX_MSG: usize = 4096;
/// Flag: the sender's last message.
pub const LAST: u32 = 1;

/// A member as a comparable pair (id, pid).
pub type Key = (u64, u32);

pub fn key(m: &Member) -> Key {
    (m.id, m.pid)
}

// ---- group settings handed to children --------------------------------------

/// A group's settings, as a string a child can be handed.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub guarantee: &'static str,
    pub slow: &'static str,
    pub log: usize,
    /// `Evict { after }` in milliseconds (with `slow == "evict"`).
    pub evict_ms: u64,
}

impl Spec {
    pub const fn new(guarantee: &'static str, slow: &'static str, log: usize) -> Spec {
        Spec { guarantee, slow, log, evict_ms: 0 }
    }

    pub fn options(&self) -> GroupOptions {
        let guarantee = match self.guarantee {
            "unordered" => Guarantee::Unordered,
            "fifo" => Guarantee::Fifo,
            "agreed" => Guarantee::Agreed,
            "safe" => Guarantee::Safe,
            other => panic!("unknown guarantee {other}"),
        };
        let slow = match self.slow {
            "block" => SlowMember::Block,
            "lap" => SlowMember::Lap,
            "evict" => SlowMember::Evict { after: Duration::from_millis(self.evict_ms) },
            other => panic!("unknown slow-member policy {other}"),
        };
        GroupOptions::new().guarantee(guarantee).slow_member(slow).log_capacity(self.log).max_message(MAX_MSG)
    }

    pub fn arg(&self) -> String {
        format!("{} {} {} {}", self.guarantee, self.slow, self.log, self.evict_ms)
    }

    pub fn parse(s: &str) -> Spec {
        let w: Vec<&str> = s.split_whitespace().collect();
        let pick = |v: &str, all: &[&'static str]| *all.iter().find(|a| **a == v).unwrap_or_else(|| panic!("{v}"));
        Spec {
            guarantee: pick(w[0], &["unordered", "fifo", "agreed", "safe"]),
            slow: pick(w[1], &["block", "lap", "evict"]),
            log: w[2].parse().unwrap(),
            evict_ms: w[3].parse().unwrap(),
        }
    }
}

// ---- payloads ---------------------------------------------------------------

/// Message `n` of the sender tagged `tag`: tag, flags, then numbered message
/// `n` of stream `tag` (its own checksum, length 8..=BODY_MAX).
pub fn payload(tag: u32, n: u64, flags: u32, out: &mut Vec<u8>) {
    let mut body = Vec::new();
    numbered::make_message(tag, n, BODY_MAX, &mut body);
    out.clear();
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&body);
}

/// (tag, n, flags) of a payload, checked whole.
pub fn decode(got: &[u8], expect: &mut Vec<u8>) -> Result<(u32, u64, u32), String> {
    if got.len() < PAYLOAD_HEADER + numbered::HEADER {
        return Err(format!("a {}-byte message, shorter than a test payload", got.len()));
    }
    let tag = u32::from_le_bytes(got[..4].try_into().unwrap());
    let flags = u32::from_le_bytes(got[4..8].try_into().unwrap());
    let n = u64::from(u32::from_le_bytes(got[8..12].try_into().unwrap()));
    numbered::check_message(tag, n, BODY_MAX, &got[PAYLOAD_HEADER..], expect)?;
    Ok((tag, n, flags))
}

// ---- recorded events --------------------------------------------------------

/// One delivered event, as a member saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rec {
    Msg { sender: Key, seq: u64, tag: u32, n: u64, last: bool },
    View { id: String, members: Vec<Key>, changes: Vec<(Key, String)> },
    Lost { count: u64 },
}

impl Rec {
    pub fn is_msg(&self) -> bool {
        matches!(self, Rec::Msg { .. })
    }

    /// A view whose changes hold `who` with `kind` ("Joined", "Left",
    /// "ProcessDown", "Evicted").
    pub fn view_change(&self, who: Key, kind: &str) -> bool {
        matches!(self, Rec::View { changes, .. } if changes.iter().any(|(m, k)| *m == who && k == kind))
    }

    /// A view whose changes hold a member of process `pid` with `kind`.
    pub fn view_change_pid(&self, pid: u32, kind: &str) -> bool {
        matches!(self, Rec::View { changes, .. } if changes.iter().any(|(m, k)| m.1 == pid && k == kind))
    }

    fn line(&self) -> String {
        fn keys(v: &[Key]) -> String {
            if v.is_empty() {
                return "-".into();
            }
            v.iter().map(|(i, p)| format!("{i}:{p}")).collect::<Vec<_>>().join(",")
        }
        match self {
            Rec::Msg { sender, seq, tag, n, last } => {
                format!("M {} {} {seq} {tag} {n} {}", sender.0, sender.1, u8::from(*last))
            }
            Rec::View { id, members, changes } => {
                let ch = if changes.is_empty() {
                    "-".into()
                } else {
                    changes.iter().map(|((i, p), k)| format!("{i}:{p}:{k}")).collect::<Vec<_>>().join(",")
                };
                format!("V {id} {} {ch}", keys(members))
            }
            Rec::Lost { count } => format!("L {count}"),
        }
    }

    fn parse(words: &[&str]) -> Rec {
        let key = |s: &str| {
            let mut p = s.split(':');
            (p.next().unwrap().parse().unwrap(), p.next().unwrap().parse().unwrap())
        };
        match words[0] {
            "M" => Rec::Msg {
                sender: (words[1].parse().unwrap(), words[2].parse().unwrap()),
                seq: words[3].parse().unwrap(),
                tag: words[4].parse().unwrap(),
                n: words[5].parse().unwrap(),
                last: words[6] == "1",
            },
            "V" => Rec::View {
                id: words[1].to_string(),
                members: if words[2] == "-" { Vec::new() } else { words[2].split(',').map(key).collect() },
                changes: if words[3] == "-" {
                    Vec::new()
                } else {
                    words[3]
                        .split(',')
                        .map(|c| {
                            let (m, k) = c.rsplit_once(':').unwrap();
                            (key(m), k.to_string())
                        })
                        .collect()
                },
            },
            "L" => Rec::Lost { count: words[1].parse().unwrap() },
            other => panic!("unknown record {other}"),
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the host.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A member's delivered events in order, with the monotonic time each
/// arrived.
pub struct Recorder {
    pub me: Key,
    pub recs: Vec<(u64, Rec)>,
    buf: Vec<u8>,
    expect: Vec<u8>,
}

impl Recorder {
    pub fn new(g: &Group) -> Recorder {
        Recorder { me: key(&g.local_member()), recs: Vec::new(), buf: vec![0; MAX_MSG], expect: Vec::new() }
    }

    /// Records one delivered event (a message must be a whole test payload).
    pub fn take(&mut self, ev: Event<'_>) -> Result<&Rec, GroupRecvError> {
        let rec = match ev {
            Event::Message(mut m) => {
                let sender = key(&m.sender());
                let seq = m.seq();
                let len = m.read_into(&mut self.buf)?;
                // Read in place where the group lends it (not on Lap groups):
                // the same bytes as the copy.
                if let Some(p) = m.payload() {
                    assert_eq!(p, &self.buf[..len], "member {:?}: message {seq} in place and copied differ", self.me);
                }
                let (tag, n, flags) = decode(&self.buf[..len], &mut self.expect)
                    .unwrap_or_else(|e| panic!("member {:?}: message {seq} of {sender:?}: {e}", self.me));
                Rec::Msg { sender, seq, tag, n, last: flags & LAST != 0 }
            }
            Event::View(v) => Rec::View {
                id: format!("{:?}", v.id),
                members: v.members.iter().map(key).collect(),
                changes: v.changes.iter().map(|c| (key(&c.member), kind_name(&c.kind))).collect(),
            },
            Event::Lost { count } => Rec::Lost { count },
        };
        self.recs.push((mono_ns(), rec));
        Ok(&self.recs.last().unwrap().1)
    }

    /// The next event, waiting at most [`LONG`] (a hang guard).
    pub fn next(&mut self, g: &mut Group) -> &Rec {
        let me = self.me;
        match g.recv_timeout(LONG) {
            Ok(ev) => self.take(ev).unwrap_or_else(|e| panic!("member {me:?}: reading a message: {e}")),
            Err(e) => panic!("member {me:?}: recv: {e} (after {} events)", self.recs.len()),
        }
    }

    /// Records every event available now; how many.
    pub fn drain(&mut self, g: &mut Group) -> usize {
        let mut n = 0;
        loop {
            match g.try_recv() {
                Ok(ev) => {
                    self.take(ev).unwrap_or_else(|e| panic!("reading a message: {e}"));
                    n += 1;
                }
                Err(GroupRecvError::WouldBlock) => return n,
                Err(e) => panic!("member {:?}: try_recv: {e}", self.me),
            }
        }
    }

    /// Records events until `done` holds for one of them, those recorded
    /// already included (`done` sees each once, in order, so it may count).
    pub fn until_any(&mut self, g: &mut Group, mut done: impl FnMut(&Rec) -> bool) {
        if self.recs.iter().any(|(_, r)| done(r)) {
            return;
        }
        self.until_next(g, done);
    }

    /// Records events until `done` holds for one recorded from now on.
    pub fn until_next(&mut self, g: &mut Group, mut done: impl FnMut(&Rec) -> bool) {
        while !done(self.next(g)) {}
    }

    /// Records events until it holds the last message of every tag in `tags`.
    pub fn until_lasts(&mut self, g: &mut Group, tags: &[u32]) {
        let mut missing: BTreeSet<u32> = tags.iter().copied().collect();
        self.until_any(g, |r| {
            if let Rec::Msg { tag, last: true, .. } = r {
                missing.remove(tag);
            }
            missing.is_empty()
        });
    }

    /// Writes the records to `path` (whole, through a rename).
    pub fn write(&self, path: &Path) {
        let mut text = format!("ME {} {}\n", self.me.0, self.me.1);
        for (t, r) in &self.recs {
            text.push_str(&format!("{t} {}\n", r.line()));
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
}

pub fn kind_name(kind: &ChangeKind) -> String {
    let name = format!("{kind:?}");
    // A variant with fields would print them; the name is enough.
    name.split(|c: char| !c.is_alphanumeric()).next().unwrap_or_default().to_string()
}

/// A log written by [`Recorder::write`]: the member and its records.
pub fn read_log(path: &Path) -> (Key, Vec<(u64, Rec)>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let me: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let me = (me[1].parse().unwrap(), me[2].parse().unwrap());
    let recs = lines
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0].parse().unwrap(), Rec::parse(&w[1..]))
        })
        .collect();
    (me, recs)
}

/// A predicate for [`Recorder::until_any`] / [`Recorder::until_next`]:
/// true once it has seen `n` messages of each tag in `tags`.
pub fn at_least(n: usize, tags: &[u32]) -> impl FnMut(&Rec) -> bool {
    let mut counts: HashMap<u32, usize> = tags.iter().map(|t| (*t, 0)).collect();
    move |r| {
        if let Rec::Msg { tag, .. } = r {
            if let Some(c) = counts.get_mut(tag) {
                *c += 1;
            }
        }
        counts.values().all(|c| *c >= n)
    }
}

/// Has a message flagged last from every tag in `tags`.
pub fn has_last_from(recs: &[(u64, Rec)], tags: &[u32]) -> bool {
    let got: BTreeSet<u32> =
        recs.iter().filter_map(|(_, r)| matches!(r, Rec::Msg { last: true, .. }).then_some(r)).map(tag_of).collect();
    tags.iter().all(|t| got.contains(t))
}

fn tag_of(r: &Rec) -> u32 {
    match r {
        Rec::Msg { tag, .. } => *tag,
        _ => unreachable!(),
    }
}

/// The records without their times.
pub fn strip(recs: &[(u64, Rec)]) -> Vec<Rec> {
    recs.iter().map(|(_, r)| r.clone()).collect()
}

/// How many messages of `tag` are in `recs`.
pub fn count_of(recs: &[(u64, Rec)], tag: u32) -> usize {
    recs.iter().filter(|(_, r)| matches!(r, Rec::Msg { tag: t, .. } if *t == tag)).count()
}

/// Counts (n) of the messages of each tag, in delivery order.
pub fn counts_by_tag(recs: &[(u64, Rec)]) -> HashMap<u32, Vec<u64>> {
    let mut out: HashMap<u32, Vec<u64>> = HashMap::new();
    for (_, r) in recs {
        if let Rec::Msg { tag, n, .. } = r {
            out.entry(*tag).or_default().push(*n);
        }
    }
    out
}

/// `ns` is `from, from + 1, ...` without a gap or a repeat.
pub fn assert_contiguous(ns: &[u64], from: u64, what: &str) {
    for (i, n) in ns.iter().enumerate() {
        assert_eq!(*n, from + i as u64, "{what}: message {} arrived where {} was due", n, from + i as u64);
    }
}

/// Each sender's sequence numbers increase, and each tag comes from one sender.
pub fn assert_fifo(recs: &[(u64, Rec)], who: &str) {
    let mut last_seq: HashMap<Key, u64> = HashMap::new();
    let mut sender_of: HashMap<u32, Key> = HashMap::new();
    for (_, r) in recs {
        if let Rec::Msg { sender, seq, tag, .. } = r {
            if let Some(prev) = last_seq.insert(*sender, *seq) {
                assert!(*seq > prev, "{who}: {sender:?}'s message {seq} after its {prev}");
            }
            let s = sender_of.entry(*tag).or_insert(*sender);
            assert_eq!(s, sender, "{who}: tag {tag} from two members");
        }
    }
}

/// A member's log (`log`, member `me`) begins with its own join, and from there on equals the
/// recorder's events after the same view.
pub fn check_joined_log(who: &str, reference: &[Rec], me: Key, log: &[Rec]) {
    let first = log.first().unwrap_or_else(|| panic!("{who} recorded nothing"));
    let Rec::View { id, members, .. } = first else { panic!("{who}'s first event is not a view: {first:?}") };
    assert!(first.view_change(me, "Joined"), "{who}'s first view is not its own join: {first:?}");
    assert!(members.contains(&me), "{who} is not among the members of its join view: {first:?}");
    let at = reference
        .iter()
        .position(|r| matches!(r, Rec::View { id: i, .. } if i == id))
        .unwrap_or_else(|| panic!("the recorder never saw {who}'s join view {id}"));
    assert_eq!(&reference[at], first, "{who}'s join view differs from the recorder's");
    let after = &reference[at..];
    assert!(after.len() >= log.len(), "{who} saw {} events, the recorder {} after the join", log.len(), after.len());
    if let Some(k) = log.iter().zip(after).position(|(a, b)| a != b) {
        panic!("{who}: event {k} after its join is {:?}; the recorder's is {:?}", log[k], after[k]);
    }
}

// ---- processes ---------------------------------------------------------------

/// What a child member is told.
pub struct Ctx {
    pub dir: PathBuf,
    pub name: String,
    pub spec: Spec,
    pub label: String,
}

impl Ctx {
    pub fn from_env() -> Ctx {
        Ctx {
            dir: PathBuf::from(child_arg("DIR")),
            name: child_arg("NAME"),
            spec: Spec::parse(&child_arg("SPEC")),
            label: child_arg("LABEL"),
        }
    }

    pub fn join(&self) -> Group {
        Group::join_timeout(&self.name, &self.spec.options(), LONG)
            .unwrap_or_else(|e| panic!("{}: joining {}: {e}", self.label, self.name))
    }

    /// Marks stage `what` of this child ("<label>-<what>").
    pub fn mark(&self, what: &str) {
        std::fs::write(self.dir.join(format!("{}-{what}", self.label)), b"").unwrap();
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.label))
    }

    pub fn arg(&self, name: &str) -> String {
        child_arg(name)
    }
}

/// Runs child entry `entry` of this test binary as member `label` of
/// group `name`, with `role` and more arguments.
pub fn spawn_member(
    entry: &str,
    dir: &Path,
    name: &str,
    spec: &Spec,
    label: &str,
    role: &str,
    extra: &[(&str, String)],
) -> ChildProcess {
    let mut args = vec![
        ("DIR", dir.display().to_string()),
        ("NAME", name.to_string()),
        ("SPEC", spec.arg()),
        ("LABEL", label.to_string()),
        ("ROLE", role.to_string()),
    ];
    args.extend(extra.iter().cloned());
    spawn_flow_child(entry, &args)
}

/// Waits for child `label`'s stage `what`.
pub fn await_stage(dir: &Path, label: &str, what: &str) {
    await_file(&dir.join(format!("{label}-{what}")));
}

/// Waits for a child to end by itself, successfully (a hang guard of 2 × LONG).
pub fn wait_success(child: &mut ChildProcess, what: &str) {
    let guard = Instant::now() + 2 * LONG;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{what} failed: {status}");
            return;
        }
        assert!(Instant::now() < guard, "{what} never ended");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Kills a child with SIGKILL and reaps it; the monotonic time just before.
pub fn kill9(child: &mut ChildProcess) -> u64 {
    let t = mono_ns();
    child.kill().unwrap();
    let _ = child.wait();
    t
}

/// A closure running on a thread of its own, whose kernel id is known (to
/// see it blocked).
pub struct InThread<T> {
    handle: std::thread::JoinHandle<T>,
    pub tid: i32,
}

pub fn in_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> InThread<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        tx.send(ringflow_testkit::thread_id()).unwrap();
        f()
    });
    InThread { handle, tid: rx.recv().unwrap() }
}

impl<T> InThread<T> {
    /// Waits until the thread is blocked in the kernel.
    pub fn wait_blocked(&self) {
        ringflow_testkit::wait_until_blocked(self.tid);
    }

    /// Its result; a thread that has not returned within [`LONG`] is a hang.
    pub fn join(self, what: &str) -> T {
        let guard = Instant::now() + LONG;
        while !self.handle.is_finished() {
            assert!(Instant::now() < guard, "{what}: no return within {LONG:?} (a hang)");
            std::thread::sleep(Duration::from_millis(1));
        }
        self.handle.join().unwrap_or_else(|_| panic!("{what}: panicked"))
    }
}

pub fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// How a test multicasts: a copy, a gather of two parts, or a loan
/// written in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Copy,
    Gather,
    Loan,
}

impl Form {
    /// The form of message `n` when a sender rotates through all three.
    pub fn rotating(n: u64) -> Form {
        [Form::Copy, Form::Gather, Form::Loan][(n % 3) as usize]
    }
}

/// One multicast attempt in `form` that waits until `deadline`.
pub fn mcast_form(g: &mut Group, payload: &[u8], form: Form, deadline: Deadline) -> Result<(), McastError> {
    match form {
        Form::Copy => g.mcast_deadline(payload, deadline).map(drop),
        Form::Gather => {
            let (a, b) = payload.split_at(payload.len() / 2);
            g.mcast_gather_deadline(&[a, b], deadline).map(drop)
        }
        Form::Loan => {
            let mut loan = g.loan_deadline(payload.len(), deadline)?;
            loan.write(0, payload);
            loan.send().map(drop)
        }
    }
}

/// Multicasts `payload` in `form`, recording events meanwhile, so that this
/// member's own cursor never holds the log: on a full log it records what
/// it can, and otherwise waits in a short blocking attempt (a parking wait).
pub fn mcast_recording(g: &mut Group, rec: &mut Recorder, payload: &[u8], form: Form) -> Result<(), McastError> {
    let guard = Instant::now() + LONG;
    let mut deadline = Deadline::Now;
    loop {
        match mcast_form(g, payload, form, deadline) {
            Ok(()) => return Ok(()),
            Err(McastError::WouldBlock | McastError::TimedOut) => {}
            Err(e) => return Err(e),
        }
        deadline = if rec.drain(g) == 0 { Deadline::after(Duration::from_millis(2)) } else { Deadline::Now };
        assert!(Instant::now() < guard, "member {:?}: a multicast stalled for {LONG:?}", rec.me);
    }
}

/// Multicasts messages of `tag` from `n` on until only a member that does
/// not read holds the log: three multicasts in a row that wait find no room
/// while this member has read everything. The next `n`. Fails if the log
/// takes more messages than a log of `capacity` bytes can hold (no
/// back-pressure at all).
pub fn fill_until_held(g: &mut Group, rec: &mut Recorder, tag: u32, mut n: u64, capacity: usize) -> u64 {
    let bound = n + (capacity / (PAYLOAD_HEADER + numbered::HEADER)) as u64;
    let mut buf = Vec::new();
    let mut held = 0;
    while held < 3 {
        assert!(n <= bound, "{n} messages of {tag} went into a {capacity}-byte log with a member not reading");
        payload(tag, n, 0, &mut buf);
        match g.mcast_timeout(&buf, Duration::from_millis(20)) {
            Ok(_) => {
                n += 1;
                held = 0;
            }
            Err(McastError::TimedOut) => held += 1,
            Err(e) => panic!("filling the log: {e}"),
        }
        if rec.drain(g) > 0 {
            held = 0;
        }
    }
    n
}

// ---- roles several tests share -----------------------------------------------

/// A child's entry: `None` in the parent (the test binary run normally) or
/// when `shared_role` ran the child's role; otherwise the context and the
/// role for the test file's own roles.
pub fn own_child_role() -> Option<(Ctx, String)> {
    if !is_child() {
        return None;
    }
    let ctx = Ctx::from_env();
    let role = ctx.arg("ROLE");
    if shared_role(&ctx, &role) {
        return None;
    }
    Some((ctx, role))
}

/// Runs one of the shared roles; false if `role` is not one of them.
///
/// - `idle`: joins, marks `joined`, never reads; killed by the parent.
/// - `sender`: joins; waits for a view of `MEMBERS` members (0: none);
///   sends `N` messages tagged `TAG` (or, without `N`, until the file
///   `stop` appears), `PACE_US` apart, then one flagged last (`FORMS=all`:
///   copy, gather and loan in turn, otherwise copies); records until
///   it holds the last message of every tag in `UNTIL` (its own by
///   default); writes its log and leaves.
/// - `recorder`: joins, marks `joined`, records until it holds the last
///   message of every tag in `UNTIL`, writes its log and leaves.
pub fn shared_role(ctx: &Ctx, role: &str) -> bool {
    match role {
        "idle" => {
            let g = ctx.join();
            ctx.mark("joined");
            let _keep = g;
            sleep_forever();
        }
        "sender" => sender(ctx),
        "recorder" => {
            let mut g = ctx.join();
            let mut rec = Recorder::new(&g);
            rec.next(&mut g);
            ctx.mark("joined");
            let until = tags(&ctx.arg("UNTIL"));
            rec.until_lasts(&mut g, &until);
            rec.write(&ctx.log_path());
            leave(g);
        }
        _ => return false,
    }
    true
}

/// A comma-separated list of tags.
pub fn tags(s: &str) -> Vec<u32> {
    s.split(',').filter(|t| !t.is_empty()).map(|t| t.parse().unwrap()).collect()
}

fn sender(ctx: &Ctx) {
    let mut g = ctx.join();
    let mut rec = Recorder::new(&g);
    let tag: u32 = ctx.arg("TAG").parse().unwrap();
    let members: usize = ctx.arg("MEMBERS").parse().unwrap_or(0);
    let count: Option<u64> = ctx.arg("N").parse().ok();
    let pace = Duration::from_micros(ctx.arg("PACE_US").parse().unwrap_or(0));
    let all_forms = ctx.arg("FORMS") == "all";
    let mut until = tags(&ctx.arg("UNTIL"));
    if until.is_empty() {
        until.push(tag);
    }
    rec.next(&mut g);
    ctx.mark("joined");
    rec.until_any(&mut g, |r| matches!(r, Rec::View { members: m, .. } if m.len() >= members));
    let stop = ctx.dir.join("stop");
    let mut buf = Vec::new();
    let mut n = 0u64;
    while count.map_or(!stop.exists(), |c| n + 1 < c) {
        payload(tag, n, 0, &mut buf);
        let form = if all_forms { Form::rotating(n) } else { Form::Copy };
        mcast_recording(&mut g, &mut rec, &buf, form).unwrap_or_else(|e| panic!("{}: mcast {n}: {e}", ctx.label));
        rec.drain(&mut g);
        n += 1;
        if !pace.is_zero() {
            std::thread::sleep(pace);
        }
    }
    payload(tag, n, LAST, &mut buf);
    mcast_recording(&mut g, &mut rec, &buf, Form::Copy).unwrap_or_else(|e| panic!("{}: last mcast: {e}", ctx.label));
    rec.until_lasts(&mut g, &until);
    rec.write(&ctx.log_path());
    leave(g);
}

/// Leaves the group. Other members may be leaving at the same instant,
/// the keeper's process among them: it may go before it confirms our leave,
/// which `LeaveError::KeeperGone` reports (the member is out either way).
pub fn leave(g: Group) {
    match g.leave() {
        Ok(()) | Err(LeaveError::KeeperGone) => {}
        Err(e) => panic!("leave: {e}"),
    }
}
