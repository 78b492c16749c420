//! A member's end of a group: multicast (copy, gather, loan), receive one
//! stream of events (messages, views, losses), leave. Every operation that
//! can wait has one internal form taking a [`Deadline`].
//!
//! The data path is the broadcast log's: a multicast is one claim on the
//! shared tail, whatever the number of members; a receive reads the frame
//! in place. The keeper is not involved; the only system call is a futex
//! wake when someone sleeps.

use std::collections::VecDeque;
use std::mem::ManuallyDrop;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use ringflow_ring::broadcast::{Consumer, FrameMark, Producer, ReadGuard};
use ringflow_ring::{ClaimError, RawRegion, WaitPoint};

use super::cross::{self, ClusterView, FLAG_CLUSTER_VIEW, FLAG_RELAYED, FLAG_SUBMIT};
use super::error::{JoinError, LeaveError, McastError, RecvError};
use super::join::{self, signal, Shared, ALARM_EXPELLED, ALARM_QUIET};
use super::loan::GroupLoan;
use super::memory::{P_GATEWAY_HOST, P_GATEWAY_MEMBER, P_GATEWAY_QUORUM, P_GATEWAY_SLOT, QUORUM_LOST};
use super::options::{GroupOptions, Guarantee, SlowMember};
use super::ready::{self, Readiness};
use super::stats::Published;
use super::table::{self, Counters};
use super::view::{self, ChangeKind, Member, RawView, View, FLAG_VIEW};
use super::wire::{Msg, MAX_LEN};
use super::{history, memory::GroupConfig, memory::P_LATEST_VIEW};
use crate::remote::Invoker;
use crate::wait::{wait_until_with, Deadline, WaitOutcome};

#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
mod gateway;
#[cfg(feature = "cluster")]
pub(crate) use gateway::GatewayJoinError;
mod receive;

#[cfg(feature = "cluster")]
pub(crate) use gateway::GatewayFrame;

/// One event of the stream.
pub enum Event<'a> {
    /// A message, read in place until dropped.
    Message(Message<'a>),
    /// The membership changed (the first event of every member is the
    /// view of its own join).
    View(View),
    /// Lap groups: this member was overtaken and lost `count` messages.
    Lost {
        /// Messages lost (exact).
        count: u64,
    },
}

/// A message being read. Dropping it consumes it.
pub struct Message<'a> {
    guard: ReadGuard<'a, RawRegion>,
    sender: Member,
    /// Evict groups: the table entry whose guard we hold.
    entry: Option<(&'a RawRegion, usize)>,
    /// A message relayed by the gateway of a group that crosses hosts: its
    /// origin's (seq, send stamp); the payload follows the relay header.
    relayed: Option<(u64, u64)>,
}

impl Message<'_> {
    /// Who sent it.
    pub fn sender(&self) -> Member {
        self.sender
    }

    /// The sender's sequence number of it (per sender, increasing by one;
    /// in a group that crosses hosts, the one its own host's log gave it).
    pub fn seq(&self) -> u64 {
        self.relayed.map_or_else(|| self.guard.seq(), |(seq, _)| seq)
    }

    /// Payload length.
    pub fn len(&self) -> usize {
        self.guard.len() - self.skip()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the frame's payload before the message (the relay header).
    fn skip(&self) -> usize {
        if self.relayed.is_some() {
            cross::RELAY_HEADER
        } else {
            0
        }
    }

    /// The payload in place (zero-copy); `None` on a Lap group, whose
    /// senders may overwrite a frame while a lapped member reads it (use
    /// [`read_into`](Self::read_into) there). Other members cannot change
    /// it unless they misbehave: see "What a peer can and cannot do to
    /// you" in the crate docs.
    pub fn payload(&self) -> Option<&[u8]> {
        self.guard.payload().and_then(|p| p.get(self.skip()..))
    }

    /// Copies the payload (up to `buf.len()` bytes) and returns how many.
    /// On a Lap group a message overwritten during the copy is
    /// `RecvError::Overwritten` (the next receive reports the loss).
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        if self.relayed.is_some() {
            // Relayed frames are on Block and Evict groups only (the
            // gateway refuses Lap ones): the payload is in place.
            let p = self.payload().ok_or(RecvError::Overwritten)?;
            let n = p.len().min(buf.len());
            buf[..n].copy_from_slice(&p[..n]);
            return Ok(n);
        }
        self.guard.read_into(buf).map_err(|_| RecvError::Overwritten)
    }

    /// The sender's clock reading when it sent (see `crate::clock`; across
    /// hosts, the sender's host's clock).
    pub fn sent_at(&self) -> u64 {
        self.relayed.map_or_else(|| self.guard.meta(), |(_, stamp)| stamp)
    }
}

impl Drop for Message<'_> {
    fn drop(&mut self) {
        if let Some((table, slot)) = self.entry {
            if let Some(e) = table::entry(table, slot) {
                e.leave_guard();
            }
        }
    }
}

/// Statistics of one member.
#[derive(Clone, Debug)]
pub struct GroupStats {
    /// Messages this member multicast.
    pub sent: u64,
    /// Messages handed to this member's application.
    pub received: u64,
    /// Messages this member lost (lapped on a Lap group).
    pub lost: u64,
    /// Bytes of log between this member's cursor and the tail.
    pub lag_bytes: u64,
    /// One-way latency, send to receive, in nanoseconds.
    pub latency: Option<Histogram<u64>>,
}

/// A member of a group.
pub struct GroupEnd {
    /// Detached (never freed) in `Drop`: the keeper frees the slots when
    /// our socket closes.
    rx: ManuallyDrop<Consumer<RawRegion>>,
    tx: ManuallyDrop<Producer<RawRegion>>,
    config: GroupConfig,
    me: Member,
    slot: usize,
    spin: Duration,
    view: RawView,
    /// Whether we deliver our own messages.
    loopback: bool,
    /// Our last message (without loopback): the receive steps over it
    /// unread when the cursor reaches it (a header we wrote ourselves).
    own: Option<FrameMark>,
    /// Whether we multicast since our last message received: then we
    /// likely answer the next one, and fetch the claim's line as we
    /// receive it (`Producer::prefetch_claim`).
    answering: bool,
    /// The current view's members by slot (a message's sender, at once).
    senders: Vec<Option<Member>>,
    events: VecDeque<Queued>,
    /// (producer, seq) of a frame whose loss was reported, not yet delivered.
    reported: Option<(u16, u64)>,
    counters: Counters,
    /// Our cursor when we last published it, and how far we read before
    /// publishing it again.
    released: u64,
    release_every: u64,
    /// Counters and latency in this process's stats file (`stats.rs`).
    published: Published,
    buf: Vec<u8>,
    left: bool,
    agent: Option<std::thread::JoinHandle<()>>,
    /// The readiness descriptor (`ready.rs`).
    ready: Readiness,
    /// The group crosses hosts: its gateway's seat and this host's id.
    cross: Option<Cross>,
    /// The last cluster view delivered (crossing groups).
    cluster_view: Option<ClusterView>,
    /// The id of the last cluster view delivered, kept when the gateway
    /// goes: a fresh gateway (its engine restarted) replays the cluster's
    /// log from its start, and what this member delivered of it is past.
    cluster_floor: u64,
    /// Whether the last cluster view queued names this member: until then
    /// it delivers nothing of the cluster (its first event is the cluster
    /// view of its join).
    in_cluster: bool,
    /// The invoker-mode engine this member's calls drive
    /// (`GroupOptions::invoker`).
    invoker: Option<Arc<Invoker>>,
    /// Declared last: the sides above live in its memory.
    shared: Arc<Shared>,
}

enum Queued {
    View(RawView),
    Lost(u64),
    /// A view of a group that crosses hosts.
    Cluster(ClusterView),
    /// The gateway went: the group is one host's again (members of the
    /// keeper's view, every member of other hosts gone).
    Local(View),
}

/// The gateway of a group that crosses hosts, as the keeper recorded it
/// and the current keeper view confirms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cross {
    /// Its seat (producer slot `slot + 1`).
    pub slot: usize,
    /// Its member id.
    pub member: u64,
    /// This host's cluster node id.
    pub host: u64,
}

impl GroupEnd {
    /// Joins group `name` (creating it if nobody keeps it) until `deadline`.
    pub fn join(name: &str, opts: &GroupOptions, deadline: Deadline) -> Result<GroupEnd, JoinError> {
        crate::clock::init();
        let ready = Readiness::new()?;
        let s = join::join(name, opts, deadline)?;
        let config = s.shared.mem.config;
        let published = Published::open(
            s.shared.dir.path(),
            &s.shared.name,
            s.shared.member_id,
            s.shared.slot,
            opts.record_latency,
        );
        let mut end = GroupEnd {
            rx: ManuallyDrop::new(s.rx),
            tx: ManuallyDrop::new(s.tx),
            config,
            me: Member::local(s.shared.member_id, std::process::id()),
            slot: s.shared.slot,
            spin: opts.spin,
            view: RawView { id: 0, seats: Vec::new(), changes: Vec::new() },
            senders: vec![None; config.max_members],
            loopback: opts.loopback,
            own: None,
            answering: false,
            events: VecDeque::new(),
            reported: None,
            counters: Counters::default(),
            released: 0,
            release_every: (config.capacity / 8) as u64,
            published,
            buf: Vec::with_capacity(view::max_len(config.max_members)),
            left: false,
            agent: Some(s.agent),
            ready,
            cross: None,
            cluster_view: None,
            cluster_floor: 0,
            in_cluster: false,
            invoker: opts.invoker.clone(),
            shared: s.shared,
        };
        end.me.pid = std::process::id();
        end.released = end.rx.cursor();
        Ok(end)
    }

    /// This member.
    pub fn local_member(&self) -> Member {
        self.me
    }

    /// The members as of the last view delivered (of every host, in a
    /// group that crosses hosts). The gateway of a group that crosses
    /// hosts is never one: until its first view of the cluster is
    /// delivered, the members are this host's.
    pub fn members(&self) -> Vec<Member> {
        match &self.cluster_view {
            Some(v) => v.members.clone(),
            None => {
                let gateway = self.cross.or_else(|| self.gateway_in(&self.view)).map(|c| c.member);
                self.view.seats.iter().map(|s| s.member).filter(|m| Some(m.id) != gateway).collect()
            }
        }
    }

    /// The id of the last view delivered (in a group that crosses hosts,
    /// the index of its entry in the cluster's log times 256 plus its rank
    /// there: the same at every host; after the gateway goes, the keeper's
    /// ids again).
    pub fn view_id(&self) -> u64 {
        self.cluster_view.as_ref().map_or(self.view.id, |v| v.id)
    }

    /// Whether the group crosses hosts now (its host's engine is its
    /// gateway: `cluster.groups`), and this host's cluster node id if so.
    pub fn crossing_host(&self) -> Option<u64> {
        self.cross.map(|c| c.host)
    }

    /// The group's largest message.
    pub fn max_message(&self) -> usize {
        self.config.max_message
    }

    /// The group's slow-member policy.
    pub fn slow_member(&self) -> SlowMember {
        self.config.slow
    }

    /// The group's delivery guarantee (what its creator asked for, or,
    /// for a group that crosses hosts, `cluster.groups` named).
    pub fn guarantee(&self) -> Guarantee {
        self.config.guarantee
    }

    /// This member's statistics.
    pub fn stats(&self) -> GroupStats {
        let tail = ringflow_ring::broadcast::tail(&self.shared.mem.log).unwrap_or(0);
        GroupStats {
            sent: self.counters.sent,
            received: self.counters.received,
            lost: self.counters.lost,
            lag_bytes: tail.saturating_sub(self.rx.cursor()),
            latency: self.published.latency(),
        }
    }

    #[inline]
    fn check_member(&self) -> Result<(), McastError> {
        if self.left {
            return Err(McastError::Left);
        }
        // SYNC: Acquire; pairs with the Release in `join::expel`.
        if self.shared.alarm.load(Ordering::Acquire) == ALARM_EXPELLED {
            return Err(McastError::Evicted);
        }
        if self.evicted() {
            return Err(McastError::Evicted);
        }
        Ok(())
    }

    /// Whether the keeper is evicting this member or has (Evict groups:
    /// no other policy evicts, so the others skip the table's line).
    #[inline]
    fn evicted(&self) -> bool {
        matches!(self.config.slow, SlowMember::Evict { .. })
            && table::entry(&self.shared.mem.table, self.slot)
                .is_some_and(|e| matches!(e.state(), table::EVICTING | table::EVICTED))
    }

    /// Multicasts `payload` (a copy into the log), waiting for room until
    /// `deadline` on Block and Evict groups.
    #[inline]
    pub fn mcast(&mut self, payload: &[u8], deadline: Deadline) -> Result<(), McastError> {
        self.mcast_gather(&[payload], deadline)
    }

    /// Multicasts the concatenation of `parts` as one message. It claims,
    /// copies and commits in one step of the log
    /// (`Producer::try_send_parts`): no claim or loan is built and moved on
    /// this path (a loan cost a ping-pong a tenth of its round trip).
    #[inline]
    pub fn mcast_gather(&mut self, parts: &[&[u8]], deadline: Deadline) -> Result<(), McastError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.check_send(len)?;
        let mut released = false;
        let flags = self.send_flags();
        // Bounded: each pass either publishes, or waits until room or the deadline.
        loop {
            // The stamp is taken as the claim begins (`Message::sent_at`).
            match self.tx.try_send_parts(parts, crate::clock::now(), flags) {
                Ok((n, mark)) => {
                    if !self.loopback {
                        self.own = Some(mark);
                    }
                    self.answering = true;
                    self.counters.sent += 1;
                    self.published.sent();
                    let notified = crate::wait::notify(self.rx.data_wait(), n).map_err(McastError::Io);
                    if let Some(invoker) = &self.invoker {
                        // The gateway takes the submit in this duty cycle.
                        invoker.invoke_after_send(len as u64);
                    }
                    return notified;
                }
                Err(e) => self.no_room(e, len, deadline, &mut released)?,
            }
        }
    }

    /// Loans `len` bytes of the log for a message written in place.
    pub fn loan(&mut self, len: usize, deadline: Deadline) -> Result<GroupLoan<'_>, McastError> {
        self.check_send(len)?;
        let mut released = false;
        // Bounded: each pass either claims, or waits until room or the deadline.
        let flags = self.send_flags();
        loop {
            let tx: *mut Producer<RawRegion> = &mut *self.tx;
            // SAFETY: `tx` is `self.tx`, which `&mut self` lets us borrow
            // mutably. On success the claim keeps that borrow for the loan's
            // life, tied to `&mut self` by the return type; on every other
            // path the claim attempt is over before `self.tx` is used again.
            // (The borrow checker cannot yet see that a borrow returned on
            // one path ends on the others: NLL's "problem case #3".)
            match unsafe { &mut *tx }.try_claim(len) {
                Ok(mut claim) => {
                    claim.set_flags(flags);
                    let data = self.rx.data_wait();
                    let own = (!self.loopback).then_some(&mut self.own);
                    return Ok(GroupLoan {
                        claim,
                        own,
                        answering: &mut self.answering,
                        counters: &mut self.counters,
                        published: &self.published,
                        data,
                        invoker: self.invoker.as_deref(),
                    });
                }
                Err(e) => self.no_room(e, len, deadline, &mut released)?,
            }
        }
    }

    /// The flags of this member's messages: a submit for the gateway in a
    /// group that crosses hosts, plain otherwise. (FIFO and UNORDERED
    /// groups are carried through the cluster's log too for now: ordered
    /// more than they ask, one consensus round trip slower than a direct
    /// relay would be; see `crate::xgroup`.)
    #[inline]
    fn send_flags(&self) -> u8 {
        if self.cross.is_some() {
            FLAG_SUBMIT
        } else {
            0
        }
    }

    /// Whether this member may multicast `len` bytes.
    #[inline]
    fn check_send(&self, len: usize) -> Result<(), McastError> {
        if len > self.config.max_message {
            return Err(McastError::TooLarge { len, max: self.config.max_message });
        }
        if self.cross.is_some() && self.quorum_lost() {
            return Err(McastError::NoQuorum);
        }
        self.check_member()
    }

    /// Whether this host's gateway says its engine lost the cluster's
    /// quorum (a word any member can write: it only ever refuses).
    #[inline]
    fn quorum_lost(&self) -> bool {
        // SYNC: Relaxed; pairs with the Relaxed store in `gateway_quorum`:
        // a flag on its own, no data published through it.
        self.shared.mem.param(P_GATEWAY_QUORUM).load(Ordering::Relaxed) == QUORUM_LOST
    }

    /// A claim of `len` bytes failed with `e`: returns the error to give
    /// up with, or waits (until `deadline`) for room to try again.
    /// `released`: whether this member's own cursor was published once
    /// since the multicast began.
    #[cold]
    fn no_room(
        &mut self,
        e: ClaimError,
        len: usize,
        deadline: Deadline,
        released: &mut bool,
    ) -> Result<(), McastError> {
        match e {
            ClaimError::Full => {}
            ClaimError::TooLarge { len, max } => return Err(McastError::TooLarge { len, max }),
            ClaimError::Corrupt(c) => return Err(McastError::Corrupt(c)),
            _ => return Err(McastError::Left),
        }
        // Our own cursor may be what holds the log: what this member
        // consumed since it last published its cursor (a message dropped
        // after its receive) is room too. Once, before waiting.
        if !*released {
            *released = true;
            let n = self.rx.release();
            let _ = crate::wait::notify(self.rx.space_wait(), n);
            return Ok(());
        }
        if deadline == Deadline::Now {
            if let Some(invoker) = &self.invoker {
                // Room comes as the engine's gateway takes what waits.
                invoker.invoke();
            }
            return Err(McastError::WouldBlock);
        }
        let (tx, shared) = (&mut self.tx, &self.shared);
        let space = wait_points(&shared.mem.log)?.1;
        let room = || tx.would_fit(len) || shared.alarm.load(Ordering::Acquire) != ALARM_QUIET;
        // Invoker mode: room appears only as this thread runs the engine
        // (its gateway takes the submits that hold the log).
        let outcome = wait_on(self.invoker.as_deref(), space, &shared.alarm, room, self.spin, deadline)
            .map_err(McastError::Io)?;
        self.check_member()?;
        if outcome == WaitOutcome::TimedOut && !self.tx.would_fit(len) {
            return Err(McastError::TimedOut);
        }
        Ok(())
    }

    fn store_counters(&self) {
        if let Some(e) = table::entry(&self.shared.mem.table, self.slot) {
            e.store_counters(self.counters);
        }
    }

    /// Leaves the group: the keeper commits our Left view and confirms
    /// (until `deadline`). Our slots are given up either way.
    pub fn leave(&mut self, deadline: Deadline) -> Result<(), LeaveError> {
        if self.left {
            return Ok(());
        }
        self.left = true;
        self.store_counters();
        let mut result = Ok(());
        let conn = self.shared.conn.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(conn) = conn {
            let mut b = Vec::new();
            Msg::Leave.encode(&mut b);
            if conn.send_deadline(&b, &[], Deadline::Now).is_err() {
                result = Err(LeaveError::KeeperGone);
            } else {
                let mut buf = [0u8; MAX_LEN];
                // A member that took the keeper's role over rejoined its own
                // keeper without reading the answer (`join::succeed`): that
                // `Rejoined` may come first. Skipped once, so a keeper
                // repeating it cannot hold us.
                let mut skipped = false;
                result = loop {
                    let timeout = match deadline {
                        Deadline::Now => Some(Duration::ZERO),
                        d => d.remaining(),
                    };
                    break match conn.recv(&mut buf, &mut [], timeout) {
                        Ok(r) if Msg::decode(&buf[..r.len]) == Ok(Msg::Left) => Ok(()),
                        Ok(r) if !skipped && Msg::decode(&buf[..r.len]) == Ok(Msg::Rejoined) => {
                            skipped = true;
                            continue;
                        }
                        Err(crate::control::RecvError::WouldBlock) => Err(LeaveError::WouldBlock),
                        Err(crate::control::RecvError::TimedOut) => Err(LeaveError::TimedOut),
                        _ => Err(LeaveError::KeeperGone),
                    };
                };
            }
            self.shutdown(Some(conn));
        } else {
            self.shutdown(None);
        }
        result
    }

    /// Stops using the slots (they are detached when the end drops; the
    /// keeper frees them once our socket closes), closes the socket, stops
    /// the agent.
    fn shutdown(&mut self, conn: Option<crate::control::ControlConn>) {
        join::release_adoption(&self.shared.mem, self.slot);
        drop(conn);
        self.ready.stop();
        signal(&self.shared.stop);
        if let Some(a) = self.agent.take() {
            // The agent returns at once (stop is readable); a keeper
            // agent answers what is pending first.
            let _ = a.join();
        }
    }
}

/// Waits until `ready` or `deadline`: parked on the log's wait point
/// `word` (and the member's `alarm`), or, with an invoker-mode engine,
/// running it (`GroupOptions::invoker`): what it brings (a committed
/// message, room left by its gateway) comes only as this thread runs it.
fn wait_on(
    invoker: Option<&Invoker>,
    word: WaitPoint<'_>,
    alarm: &std::sync::atomic::AtomicU32,
    ready: impl FnMut() -> bool,
    spin: Duration,
    deadline: Deadline,
) -> std::io::Result<WaitOutcome> {
    match invoker {
        Some(invoker) => Ok(match invoker.drive_until(ready, spin, deadline) {
            true => WaitOutcome::Ready,
            false => WaitOutcome::TimedOut,
        }),
        None => wait_until_with(
            || word,
            ready,
            spin,
            deadline,
            Some((alarm, ALARM_QUIET)),
            crate::wait::membarrier_if_needed,
        ),
    }
}

fn wait_points(log: &RawRegion) -> Result<(WaitPoint<'_>, WaitPoint<'_>), McastError> {
    ringflow_ring::broadcast::wait_points(log).map_err(|e| {
        McastError::Corrupt(ringflow_ring::Corrupt {
            offset: 0,
            value: 0,
            what: match e {
                ringflow_ring::AttachError::BadMagic { .. } => "group log magic overwritten",
                _ => "group log control area overwritten",
            },
        })
    })
}

impl Drop for GroupEnd {
    /// Never blocks: announces the leave, gives the slots up, closes.
    fn drop(&mut self) {
        if !self.left {
            let _ = self.leave(Deadline::Now);
        }
        // SAFETY: the field is not used after this (Drop runs once), and
        // `left` has kept every operation off it since `leave`.
        let rx = unsafe { ManuallyDrop::take(&mut self.rx) };
        // SAFETY: as above.
        let tx = unsafe { ManuallyDrop::take(&mut self.tx) };
        rx.detach();
        tx.detach();
    }
}

/// Readiness: the member's descriptor for event loops, and what a wait on
/// many ends (ringflow-api's `FlowSet`) checks and sleeps on (`ready.rs`).
impl GroupEnd {
    /// The readiness descriptor: readable when a receive may return an
    /// event (a message, a view, a loss, or an error such as an eviction).
    /// It is edge-like: a receive that finds nothing (`WouldBlock`,
    /// `TimedOut`) resets and re-arms it, so after it fires, receive with
    /// `Deadline::Now` until `WouldBlock`. The first call starts the
    /// member's watcher thread; an error says it could not (the descriptor
    /// is then left readable for good).
    pub fn ready_fd(&self) -> std::io::Result<std::os::fd::BorrowedFd<'_>> {
        if self.left {
            // Stopped, and left readable (a receive reports the leave).
            return Ok(self.ready.fd());
        }
        self.ready.start(&self.shared, self.rx.cursor(), !self.events.is_empty())
    }

    /// Whether a receive may return an event now, or an error (left,
    /// evicted, a corrupt log). A frame still being written is not one.
    pub fn has_event(&self) -> bool {
        self.left || !self.events.is_empty() || ready::may_have_event(&self.shared, self.rx.cursor())
    }

    /// Whether this member is out of the group: it left, or was evicted
    /// or expelled (receives and sends say which).
    pub fn is_closed(&self) -> bool {
        self.left || ready::closed(&self.shared)
    }

    /// Whether a message of the group's largest size fits in the log now
    /// (so any multicast goes through without waiting).
    pub fn can_send(&mut self) -> bool {
        !self.left && self.tx.would_fit(self.config.max_message)
    }

    /// The log's wait points (data, space), or `None` if its control area
    /// is garbage (a receive reports it).
    pub fn wait_points(&self) -> Option<(WaitPoint<'_>, WaitPoint<'_>)> {
        ringflow_ring::broadcast::wait_points(&self.shared.mem.log).ok()
    }

    /// The member's local alarm word and its quiet value: a sleeper on the
    /// log's words also sleeps on it, so an expulsion (a change made in
    /// this process) wakes it whatever the shared words say.
    pub fn alarm(&self) -> (&std::sync::atomic::AtomicU32, u32) {
        (&self.shared.alarm, ALARM_QUIET)
    }
}

impl std::os::fd::AsFd for GroupEnd {
    /// [`GroupEnd::ready_fd`]; if the watcher cannot start, the descriptor
    /// left readable for good (spurious wakes, never a missed event).
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.ready_fd().unwrap_or_else(|_| self.ready.fd())
    }
}
