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
use ringflow_ring::{ClaimError, RawRegion, ReadError, WaitPoint};

use super::error::{JoinError, LeaveError, McastError, RecvError};
use super::join::{self, signal, Shared, ALARM_EXPELLED, ALARM_QUIET};
use super::loan::GroupLoan;
use super::options::{GroupOptions, SlowMember};
use super::ready::{self, Readiness};
use super::stats::Published;
use super::table::{self, Counters};
use super::view::{self, Member, RawView, View, FLAG_VIEW};
use super::wire::{Msg, MAX_LEN};
use super::{history, memory::GroupConfig, memory::P_LATEST_VIEW};
use crate::wait::{wait_until_with, Deadline, WaitOutcome};

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
}

impl Message<'_> {
    /// Who sent it.
    pub fn sender(&self) -> Member {
        self.sender
    }

    /// The sender's sequence number of it (per sender slot, increasing by one).
    pub fn seq(&self) -> u64 {
        self.guard.seq()
    }

    /// Payload length.
    pub fn len(&self) -> usize {
        self.guard.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.guard.is_empty()
    }

    /// The payload in place (zero-copy); `None` on a Lap group, whose
    /// senders may overwrite a frame while a lapped member reads it (use
    /// [`read_into`](Self::read_into) there). Other members cannot change
    /// it unless they misbehave: see "What a peer can and cannot do to
    /// you" in the crate docs.
    pub fn payload(&self) -> Option<&[u8]> {
        self.guard.payload()
    }

    /// Copies the payload (up to `buf.len()` bytes) and returns how many.
    /// On a Lap group a message overwritten during the copy is
    /// `RecvError::Overwritten` (the next receive reports the loss).
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.guard.read_into(buf).map_err(|_| RecvError::Overwritten)
    }

    /// The sender's clock reading when it sent (see `crate::clock`).
    pub fn sent_at(&self) -> u64 {
        self.guard.meta()
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
    /// Declared last: the sides above live in its memory.
    shared: Arc<Shared>,
}

enum Queued {
    View(RawView),
    Lost(u64),
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
            me: Member { id: s.shared.member_id, pid: std::process::id() },
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

    /// The members as of the last view delivered.
    pub fn members(&self) -> Vec<Member> {
        self.view.seats.iter().map(|s| s.member).collect()
    }

    /// The id of the last view delivered.
    pub fn view_id(&self) -> u64 {
        self.view.id
    }

    /// The group's largest message.
    pub fn max_message(&self) -> usize {
        self.config.max_message
    }

    /// The group's slow-member policy.
    pub fn slow_member(&self) -> SlowMember {
        self.config.slow
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
        // Bounded: each pass either publishes, or waits until room or the deadline.
        loop {
            // The stamp is taken as the claim begins (`Message::sent_at`).
            match self.tx.try_send_parts(parts, crate::clock::now(), 0) {
                Ok((n, mark)) => {
                    if !self.loopback {
                        self.own = Some(mark);
                    }
                    self.answering = true;
                    self.counters.sent += 1;
                    self.published.sent();
                    return crate::wait::notify(self.rx.data_wait(), n).map_err(McastError::Io);
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
        loop {
            let tx: *mut Producer<RawRegion> = &mut *self.tx;
            // SAFETY: `tx` is `self.tx`, which `&mut self` lets us borrow
            // mutably. On success the claim keeps that borrow for the loan's
            // life, tied to `&mut self` by the return type; on every other
            // path the claim attempt is over before `self.tx` is used again.
            // (The borrow checker cannot yet see that a borrow returned on
            // one path ends on the others: NLL's "problem case #3".)
            match unsafe { &mut *tx }.try_claim(len) {
                Ok(claim) => {
                    let data = self.rx.data_wait();
                    let own = (!self.loopback).then_some(&mut self.own);
                    return Ok(GroupLoan {
                        claim,
                        own,
                        answering: &mut self.answering,
                        counters: &mut self.counters,
                        published: &self.published,
                        data,
                    });
                }
                Err(e) => self.no_room(e, len, deadline, &mut released)?,
            }
        }
    }

    /// Whether this member may multicast `len` bytes.
    #[inline]
    fn check_send(&self, len: usize) -> Result<(), McastError> {
        if len > self.config.max_message {
            return Err(McastError::TooLarge { len, max: self.config.max_message });
        }
        self.check_member()
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
            return Err(McastError::WouldBlock);
        }
        let (tx, shared) = (&mut self.tx, &self.shared);
        let space = wait_points(&shared.mem.log)?.1;
        let outcome = wait_until_with(
            || space,
            || tx.would_fit(len) || shared.alarm.load(Ordering::Acquire) != ALARM_QUIET,
            self.spin,
            deadline,
            Some((&shared.alarm, ALARM_QUIET)),
            crate::wait::membarrier_if_needed,
        )
        .map_err(McastError::Io)?;
        self.check_member()?;
        if outcome == WaitOutcome::TimedOut && !self.tx.would_fit(len) {
            return Err(McastError::TimedOut);
        }
        Ok(())
    }

    /// The next event, waiting until `deadline`.
    #[inline]
    pub fn recv(&mut self, deadline: Deadline) -> Result<Event<'_>, RecvError> {
        match self.straight() {
            Straight::Message => return self.take_message(),
            // Nothing at the cursor and nothing to publish: what the full
            // path would find too, without its second look (a receive
            // polled in a loop notices the next message sooner).
            Straight::Empty if deadline == Deadline::Now && self.rx.cursor() == self.released => {
                self.ready.arm(self.rx.cursor());
                return Err(RecvError::WouldBlock);
            }
            Straight::Empty | Straight::No => {}
        }
        self.recv_slow(deadline)
    }

    /// Whether the next event is a plain message, found at once: no event
    /// queued, nothing to publish, and at the cursor (past our own last
    /// message, stepped over) a committed frame of a member of the view
    /// with no loss before it. Then `take_message` hands it out; the full
    /// path (`recv_slow`) decides every other case, and checks this one
    /// again: a frame peeked here is not read twice (the consumer keeps
    /// it), and nothing here consumes or skips anything another path would
    /// not. `Empty`: under the same conditions, nothing is committed at
    /// the cursor.
    #[inline]
    fn straight(&mut self) -> Straight {
        // SYNC: Acquire; pairs with the Release in `join::expel` (as in
        // `poll_event`).
        if !self.events.is_empty()
            || self.left
            || matches!(self.config.slow, SlowMember::Evict { .. })
            || self.shared.alarm.load(Ordering::Acquire) == ALARM_EXPELLED
            || self.rx.cursor().wrapping_sub(self.released) >= self.release_every
        {
            return Straight::No;
        }
        if let Some(mark) = self.own {
            if self.rx.skip_frame(mark) {
                self.own = None;
            }
        }
        match self.rx.peek_frame() {
            Ok(info)
                if info.missed_before == 0
                    && self.sender_of(info.producer).is_some()
                    && (self.loopback || info.producer as usize != self.slot + 1) =>
            {
                Straight::Message
            }
            Ok(_) => Straight::No,
            Err(ReadError::Empty) => Straight::Empty,
            Err(ReadError::Lapped { .. }) => {
                // The cursor jumped: the views it may have passed come
                // first (as `poll_event` does on a lap).
                self.replay_views();
                Straight::No
            }
            Err(_) => Straight::No,
        }
    }

    /// [`recv`](Self::recv)'s full path: views, losses, skipped frames,
    /// publishing the cursor, waiting.
    #[inline(never)]
    fn recv_slow(&mut self, deadline: Deadline) -> Result<Event<'_>, RecvError> {
        loop {
            let polled = self.poll_event()?;
            // Publish our cursor (what we consumed is room for senders
            // again on Block and Evict groups, and our lag as others see
            // it) before we would wait, and every eighth of the log while
            // we keep reading: a store and a fence per batch, not per message.
            if matches!(polled, Polled::Empty) || self.rx.cursor().wrapping_sub(self.released) >= self.release_every {
                self.released = self.rx.cursor();
                let n = self.rx.release();
                let _ = crate::wait::notify(self.rx.space_wait(), n);
            }
            match polled {
                Polled::Ready => break,
                Polled::Empty => {}
            }
            if deadline == Deadline::Now {
                self.ready.arm(self.rx.cursor());
                return Err(RecvError::WouldBlock);
            }
            let (rx, shared) = (&self.rx, &self.shared);
            let data = wait_points(&shared.mem.log)
                .map_err(|e| match e {
                    McastError::Corrupt(c) => RecvError::Corrupt(c),
                    _ => RecvError::Left,
                })?
                .0;
            // A committed frame (or a lap), not a claim still being written:
            // a long loan elsewhere must not make this wait spin.
            let tail_now = || ringflow_ring::broadcast::readable_at(&shared.mem.log, rx.cursor()).unwrap_or(true);
            let outcome = wait_until_with(
                || data,
                || tail_now() || shared.alarm.load(Ordering::Acquire) != ALARM_QUIET,
                self.spin,
                deadline,
                Some((&shared.alarm, ALARM_QUIET)),
                crate::wait::membarrier_if_needed,
            )
            .map_err(RecvError::Io)?;
            if outcome == WaitOutcome::TimedOut && !tail_now() {
                self.ready.arm(rx.cursor());
                return Err(RecvError::TimedOut);
            }
        }
        self.take_event()
    }

    /// Reads ahead until an event is ready (queued, or a frame to deliver).
    fn poll_event(&mut self) -> Result<Polled, RecvError> {
        // Bounded: each pass consumes a frame, or returns.
        for _ in 0..1024 {
            if !self.events.is_empty() {
                return Ok(Polled::Ready);
            }
            if self.left {
                return Err(RecvError::Left);
            }
            if self.shared.alarm.load(Ordering::Acquire) == ALARM_EXPELLED {
                return Err(RecvError::Evicted);
            }
            if self.evicted() {
                return Err(RecvError::Evicted);
            }
            // Our own last message (without loopback): stepped over
            // without reading the header we wrote.
            if let Some(mark) = self.own {
                if self.rx.skip_frame(mark) {
                    self.own = None;
                    continue;
                }
            }
            // The frame's header, left in place (the receive that delivers
            // it reads it from the consumer's cache, not the log again).
            let info = match self.rx.peek_frame() {
                Ok(info) => info,
                Err(ReadError::Empty) => return Ok(Polled::Empty),
                Err(ReadError::Lapped { .. }) => {
                    self.replay_views();
                    continue;
                }
                Err(ReadError::Corrupt(c)) => return Err(RecvError::Corrupt(c)),
                Err(ReadError::Closed) => return Err(RecvError::Left),
                Err(_) => return Ok(Polled::Empty),
            };
            if info.producer == 0 {
                self.take_view(info.flags, info.len)?;
                continue;
            }
            // A message: from a member of the current view (and not our
            // own, if we do not loop back)?
            if self.sender_of(info.producer).is_none() || (!self.loopback && info.producer as usize == self.slot + 1) {
                // Not a member here (evicted, or before its join): not ours.
                if let Ok(g) = self.rx.try_read() {
                    drop(g);
                }
                continue;
            }
            let key = (info.producer, info.seq);
            if info.missed_before > 0 && self.reported != Some(key) {
                self.reported = Some(key);
                self.counters.lost += info.missed_before;
                self.published.lost(info.missed_before);
                self.events.push_back(Queued::Lost(info.missed_before));
                continue;
            }
            return Ok(Polled::Ready);
        }
        Ok(Polled::Empty)
    }

    /// Reads the keeper's frame at the cursor (a view) and queues it.
    fn take_view(&mut self, flags: u8, len: usize) -> Result<(), RecvError> {
        let corrupt = |what, value| RecvError::Corrupt(ringflow_ring::Corrupt { offset: 0, value, what });
        if flags != FLAG_VIEW || len > view::max_len(self.config.max_members) {
            return Err(corrupt("keeper frame that is not a view", len as u64));
        }
        self.buf.resize(len, 0);
        let copied = match self.rx.try_read() {
            Ok(mut guard) => guard.read_into(&mut self.buf).is_ok(),
            Err(_) => false,
        };
        if !copied {
            self.replay_views();
            return Ok(());
        }
        let v = view::decode(&self.buf, self.config.max_members).map_err(|what| corrupt(what, 0))?;
        if v.id > self.view.id {
            self.events.push_back(Queued::View(v));
        }
        Ok(())
    }

    /// The member that sends through producer slot `producer`, in the
    /// current view.
    fn sender_of(&self, producer: u16) -> Option<Member> {
        let slot = (producer as usize).checked_sub(1)?;
        self.senders.get(slot).copied().flatten()
    }

    /// After a lap: deliver the views we may have skipped, from the history.
    fn replay_views(&mut self) {
        let latest = self.shared.mem.param(P_LATEST_VIEW).load(Ordering::Acquire);
        let from = (self.view.id + 1).max(latest.saturating_sub(super::memory::HISTORY as u64 - 1));
        for id in from..=latest {
            if history::load(&self.shared.mem.history, self.shared.mem.history_entry_len(), id, &mut self.buf) {
                if let Ok(v) = view::decode(&self.buf, self.config.max_members) {
                    if v.id == id && !self.events.iter().any(|e| matches!(e, Queued::View(q) if q.id >= id)) {
                        self.events.push_back(Queued::View(v));
                    }
                }
            }
        }
    }

    fn take_event(&mut self) -> Result<Event<'_>, RecvError> {
        if let Some(q) = self.events.pop_front() {
            return Ok(self.deliver_queued(q));
        }
        self.take_message()
    }

    /// Delivers queued event `q`: a view becomes the current one.
    fn deliver_queued(&mut self, q: Queued) -> Event<'static> {
        match q {
            Queued::View(v) => {
                let out = v.to_view();
                self.senders.iter_mut().for_each(|m| *m = None);
                for seat in &v.seats {
                    if let Some(m) = self.senders.get_mut(seat.slot as usize) {
                        *m = Some(seat.member);
                    }
                }
                if self.view.id == 0 {
                    // Our join view: count losses from each member's
                    // first frame after it.
                    for seat in &v.seats {
                        self.rx.expect(seat.slot + 1, seat.next_seq);
                    }
                }
                self.view = v;
                self.store_counters();
                Event::View(out)
            }
            Queued::Lost(n) => Event::Lost { count: n },
        }
    }

    /// Hands out the message at the cursor, which a peek found (and
    /// checked its sender).
    #[inline]
    fn take_message(&mut self) -> Result<Event<'_>, RecvError> {
        let evict = matches!(self.config.slow, SlowMember::Evict { .. });
        if evict {
            let e = table::entry(&self.shared.mem.table, self.slot).ok_or(RecvError::Evicted)?;
            if !e.enter_guard() {
                return Err(RecvError::Evicted);
            }
        }
        self.reported = None;
        self.counters.received += 1;
        if self.counters.received % 64 == 0 {
            self.store_counters();
        }
        let (senders, table, slot) = (&self.senders, &self.shared.mem.table, self.slot);
        let lossy = self.config.slow.is_lossy();
        let guard = match self.rx.try_read() {
            Ok(g) => g,
            Err(e) => {
                if evict {
                    if let Some(e) = table::entry(table, slot) {
                        e.leave_guard();
                    }
                }
                // Lap groups: a sender overtook the frame since the poll
                // found it; the next receive reports the loss.
                if lossy && matches!(e, ReadError::Lapped { .. } | ReadError::Empty) {
                    self.counters.received -= 1;
                    return Err(RecvError::Overwritten);
                }
                return Err(RecvError::Corrupt(ringflow_ring::Corrupt { offset: 0, value: 0, what: "frame vanished" }));
            }
        };
        if std::mem::take(&mut self.answering) {
            // Our answer's claim takes the tail's line and likely the lines
            // after this frame: fetched now, their transfers overlap the
            // delivery instead of delaying the answer.
            self.tx.prefetch_claim(guard.end());
        }
        let sender = (guard.producer() as usize)
            .checked_sub(1)
            .and_then(|s| senders.get(s).copied().flatten())
            .unwrap_or(Member { id: 0, pid: 0 });
        self.published.received(guard.meta());
        Ok(Event::Message(Message { guard, sender, entry: evict.then_some((table, slot)) }))
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

enum Polled {
    Ready,
    Empty,
}

/// What [`GroupEnd::straight`] found.
enum Straight {
    /// A plain message at the cursor.
    Message,
    /// Nothing committed at the cursor (no event queued, nothing to
    /// publish).
    Empty,
    /// Anything else: the full path decides.
    No,
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
