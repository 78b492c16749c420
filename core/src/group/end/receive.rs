//! A member's receive path: the straight path for a plain message at the
//! cursor, and the full one (views, losses, skipped frames, publishing the
//! cursor, waiting).

use std::sync::atomic::Ordering;

use ringflow_ring::ReadError;

use super::*;

impl GroupEnd {
    /// The next event, waiting until `deadline`.
    #[inline]
    pub fn recv(&mut self, deadline: Deadline) -> Result<Event<'_>, RecvError> {
        match self.straight() {
            Straight::Message => return self.take_message(),
            // Nothing at the cursor and nothing to publish: what the full
            // path would find too, without its second look (a receive
            // polled in a loop notices the next message sooner).
            Straight::Empty
                if deadline == Deadline::Now && self.rx.cursor() == self.released && self.invoker.is_none() =>
            {
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
            || self.cross.is_some()
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
        // Invoker mode: a receive that finds nothing runs the engine once
        // (what it carries for this host lands in the log) and looks again.
        let mut invoked = false;
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
                if let Some(invoker) = self.invoker.as_ref().filter(|_| !invoked) {
                    invoked = true;
                    if invoker.invoke() > 0 {
                        continue;
                    }
                }
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
            let arrived = || tail_now() || shared.alarm.load(Ordering::Acquire) != ALARM_QUIET;
            // Invoker mode: the engine's io_uring sleep between runs is
            // woken by the network and by the log's word (the gateway arms
            // it for the submits of this host's members).
            let outcome = wait_on(self.invoker.as_deref(), data, &shared.alarm, arrived, self.spin, deadline)
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
            if let Some(c) = self.cross {
                if info.producer as usize == c.slot + 1 {
                    match info.flags {
                        FLAG_CLUSTER_VIEW => {
                            self.take_cluster_view(c, info.len)?;
                            continue;
                        }
                        FLAG_RELAYED => {
                            let (host, member) = cross::origin_of(info.meta);
                            let own = host == c.host && member == self.me.id;
                            if self.in_cluster && (self.loopback || !own) {
                                return Ok(Polled::Ready);
                            }
                        }
                        _ => {}
                    }
                    // Before our cluster join, our own (no loopback), or a
                    // frame of the gateway's we do not know: not ours.
                    if let Ok(g) = self.rx.try_read() {
                        drop(g);
                    }
                    continue;
                }
                if info.flags == FLAG_SUBMIT {
                    // For the gateway: it comes back relayed, in the
                    // cluster's order.
                    if let Ok(g) = self.rx.try_read() {
                        drop(g);
                    }
                    continue;
                }
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
                // Saturating: the count comes from the log's words, which a
                // member that scribbles can make as large as it likes.
                self.counters.lost = self.counters.lost.saturating_add(info.missed_before);
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
        if v.id <= self.view.id {
            return Ok(());
        }
        let gateway = self.gateway_in(&v);
        if self.cross.is_none() && gateway.is_none() {
            self.events.push_back(Queued::View(v));
            return Ok(());
        }
        // A group that crosses hosts (or did until this view): the keeper's
        // views give the seats, the gateway's the membership.
        let gone = self.cross.is_some() && gateway.is_none();
        self.apply_seats(&v);
        if gone {
            // The gateway (this host's engine) went: every member of the
            // other hosts is gone for us, and the group is this host's again.
            let host = self.cross.map_or(0, |c| c.host);
            let mut changes: Vec<view::Change> = self
                .cluster_view
                .iter()
                .flat_map(|x| x.members.iter())
                .filter(|m| m.host != host)
                .map(|m| view::Change { member: *m, kind: ChangeKind::NodeDown })
                .collect();
            let gateway = self.cross.map_or(0, |c| c.member);
            changes.extend(
                v.changes
                    .iter()
                    .filter(|c| c.seat.member.id != gateway)
                    .map(|c| view::Change { member: c.seat.member, kind: c.kind }),
            );
            let members = v.seats.iter().map(|s| s.member).collect();
            self.events.push_back(Queued::Local(View { id: v.id, members, changes }));
            self.in_cluster = false;
        }
        self.cross = gateway;
        self.me.host = gateway.map_or(0, |c| c.host);
        Ok(())
    }

    /// The gateway the keeper recorded, if view `v` seats it.
    pub(super) fn gateway_in(&self, v: &RawView) -> Option<Cross> {
        // SYNC: Relaxed (three loads); the keeper stored them before it
        // committed the gateway's join view (Release), which we read after
        // the log's Acquire: a view that seats the gateway comes after them.
        let p = |off| self.shared.mem.param(off).load(Ordering::Relaxed);
        let (member, slot, host) = (p(P_GATEWAY_MEMBER), p(P_GATEWAY_SLOT), p(P_GATEWAY_HOST));
        if member == 0 || host == 0 || host > cross::MAX_HOST {
            return None;
        }
        v.seats.iter().find(|s| s.member.id == member && u64::from(s.slot) == slot).map(|s| Cross {
            slot: s.slot as usize,
            member,
            host,
        })
    }

    /// Takes view `v`'s seats as the senders of the log now (a group that
    /// crosses hosts delivers the cluster's views instead).
    pub(super) fn apply_seats(&mut self, v: &RawView) {
        self.senders.iter_mut().for_each(|m| *m = None);
        for seat in &v.seats {
            if let Some(m) = self.senders.get_mut(seat.slot as usize) {
                *m = Some(seat.member);
            }
        }
        if self.view.id == 0 {
            for seat in &v.seats {
                self.rx.expect(seat.slot + 1, seat.next_seq);
            }
        }
        self.view = v.clone();
    }

    /// Reads the gateway's cluster view at the cursor and queues it if it
    /// is ours to deliver (the one of our join, and every one after).
    fn take_cluster_view(&mut self, c: Cross, len: usize) -> Result<(), RecvError> {
        let corrupt = |what| RecvError::Corrupt(ringflow_ring::Corrupt { offset: 0, value: len as u64, what });
        if len > cross::max_len(self.config.max_members) {
            return Err(corrupt("cluster view larger than the group allows"));
        }
        self.buf.resize(len, 0);
        let copied = match self.rx.try_read() {
            Ok(mut guard) => guard.read_into(&mut self.buf).is_ok(),
            Err(_) => false,
        };
        if !copied {
            return Ok(());
        }
        let v = cross::decode_view(&self.buf, self.config.max_members).map_err(|_| corrupt("cluster view"))?;
        let last = self.events.iter().rev().find_map(|q| match q {
            Queued::Cluster(x) => Some(x.id),
            _ => None,
        });
        let past = last.or(self.cluster_view.as_ref().map(|x| x.id)).unwrap_or(0).max(self.cluster_floor);
        if v.id <= past {
            return Ok(());
        }
        let named = v.members.iter().any(|m| m.host == c.host && m.id == self.me.id);
        if named || self.in_cluster {
            self.in_cluster = named;
            self.events.push_back(Queued::Cluster(v));
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
        let from = (self.view.id + 1).max(latest.saturating_sub(crate::group::memory::HISTORY as u64 - 1));
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
            Queued::Cluster(v) => {
                let out = View {
                    id: v.id,
                    members: v.members.clone(),
                    changes: v
                        .changes
                        .iter()
                        .map(|(member, kind)| view::Change { member: *member, kind: *kind })
                        .collect(),
                };
                self.cluster_floor = self.cluster_floor.max(v.id);
                self.cluster_view = Some(v);
                self.store_counters();
                Event::View(out)
            }
            Queued::Local(v) => {
                self.cluster_view = None;
                Event::View(v)
            }
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
        let relay = self.cross.filter(|c| guard.producer() as usize == c.slot + 1 && guard.flags() == FLAG_RELAYED);
        if relay.is_some() {
            let Some((seq, stamp, _)) = guard.payload().and_then(cross::split_relayed) else {
                if evict {
                    if let Some(e) = table::entry(table, slot) {
                        e.leave_guard();
                    }
                }
                let what = "relayed frame shorter than its header";
                return Err(RecvError::Corrupt(ringflow_ring::Corrupt { offset: 0, value: 0, what }));
            };
            let (host, id) = cross::origin_of(guard.meta());
            let pid = self
                .cluster_view
                .as_ref()
                .and_then(|v| v.members.iter().find(|m| m.host == host && m.id == id))
                .map_or(0, |m| m.pid);
            self.published.received(stamp);
            let sender = Member { id, pid, host };
            return Ok(Event::Message(Message {
                guard,
                sender,
                entry: evict.then_some((table, slot)),
                relayed: Some((seq, stamp)),
            }));
        }
        let mut sender = (guard.producer() as usize)
            .checked_sub(1)
            .and_then(|s| senders.get(s).copied().flatten())
            .unwrap_or(Member::local(0, 0));
        sender.host = self.me.host;
        self.published.received(guard.meta());
        Ok(Event::Message(Message { guard, sender, entry: evict.then_some((table, slot)), relayed: None }))
    }
}

/// What [`GroupEnd::poll_event`] found.
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
