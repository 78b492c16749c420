//! The cluster's side of a crossing group's gateway: committed changes
//! (held for SAFE until the safe index reaches them) turned into views
//! and messages in the local log, in the cluster log's order.

use super::*;

impl Crossing {
    /// Takes one committed change of this group: turned into local frames
    /// now, or for a SAFE group held until [`release`](Self::release)
    /// sees the safe index reach `index`.
    pub(crate) fn committed(&mut self, index: u64, applied: Applied) {
        if let Some(paused) = &mut self.paused {
            paused.push_back((index, applied));
        } else if self.safe {
            self.held.push_back((index, applied));
        } else {
            self.deliver(index, applied);
        }
    }

    /// Delivers a SAFE group's held changes whose entry every node holds
    /// (`safe`: the node's SAFE index), in order. Returns the work done.
    pub(crate) fn release(&mut self, safe: u64) -> usize {
        let mut n = 0;
        while self.held.front().is_some_and(|(index, _)| *index <= safe) {
            if let Some((index, applied)) = self.held.pop_front() {
                self.deliver(index, applied);
                n += 1;
            }
        }
        n
    }

    /// Turns one committed (and for SAFE, safe) change into local frames.
    pub(super) fn deliver(&mut self, index: u64, applied: Applied) {
        match applied {
            Applied::Message { sender, seq, bytes, .. } => {
                if sender == self.host && self.in_flight.as_ref().is_some_and(|f| f.last_seq <= seq) {
                    self.in_flight = None;
                    self.live = true;
                }
                if sender == self.host && self.probe.is_some_and(|p| seq > p) {
                    self.probe = None;
                    if let Some(d) = &mut self.direct {
                        d.sync.own_known();
                    }
                }
                if let Some((member, seq, sent_at, message)) = Note::message_view(&bytes) {
                    self.deliver_message(sender, member, seq, sent_at, message);
                    return;
                }
                let note = match Note::decode_from(&bytes, sender) {
                    Ok(n) => n,
                    Err(why) => {
                        tracing::warn!(group = %self.name, sender, why, "group gateway skips a bad cluster message");
                        return;
                    }
                };
                match note {
                    Note::Message { member, seq, sent_at, bytes } => {
                        self.deliver_message(sender, member, seq, sent_at, &bytes);
                    }
                    Note::Joined { member, pid } => {
                        self.pids.insert((sender, member), pid);
                        if let Some(m) = self.members.iter_mut().find(|m| (m.host, m.id) == (sender, member)) {
                            // A member the cluster lists already joins
                            // again: its host's engine restarted while it
                            // lived. Its `Join` changes nothing, so this
                            // view (the same at every host) is the one of
                            // its join there.
                            m.pid = pid;
                            let m = *m;
                            let view = ClusterView {
                                id: index,
                                members: self.members.clone(),
                                changes: vec![(m, ChangeKind::Joined)],
                            };
                            self.write_view(&view);
                        }
                    }
                    Note::Gone { member, kind } => {
                        self.reasons.insert((sender, member), kind);
                    }
                    Note::Mark => {}
                    note @ (Note::Start { .. } | Note::Flush(_) | Note::Resend { .. }) => {
                        if let Some(d) = &mut self.direct {
                            d.note(sender, note);
                        }
                    }
                }
            }
            Applied::View { members, reason, .. } => {
                // A node's departure or return as this group sees it: a
                // node may be taken down without a view of the nodes'
                // group (seen in group_hosts_fifo's kill test).
                if matches!(reason, ViewReason::NodeDown { .. } | ViewReason::NodeUp { .. }) {
                    self.node_event(index, reason);
                }
                self.view(index, &members)
            }
            Applied::Unchanged => {}
        }
    }

    /// A member's committed message: written into the local log at once
    /// when nothing waits before it there (its wake left to
    /// [`write_local`](Self::write_local), which the agent runs after the
    /// committed queue), queued in `out` otherwise.
    fn deliver_message(&mut self, sender: u64, member: u64, seq: u64, sent_at: u64, bytes: &[u8]) {
        let max = self.end.config().max_message;
        if bytes.len() > max {
            tracing::warn!(group = %self.name, sender, len = bytes.len(), max, "group gateway skips a message larger than the group allows");
            return;
        }
        let Some(meta) = cross::origin_word(sender, member) else {
            tracing::warn!(group = %self.name, sender, member, "group gateway skips a message of an origin out of range");
            return;
        };
        if !self.members.iter().any(|m| (m.host, m.id) == (sender, member)) {
            // Committed after its sender left the view (its node taken
            // down first): delivered nowhere.
            tracing::info!(group = %self.name, sender, member, seq, "group gateway skips a message of a sender not in the view");
            return;
        }
        let header = cross::relay_header(seq, sent_at);
        if self.out.is_empty() {
            if let Ok(wake) = self.end.gateway_write_quiet(FLAG_RELAYED, meta, &[&header, bytes]) {
                if wake.is_wake() {
                    self.wake = wake;
                }
                return;
            }
            // No room, or an error `write_local` reports: queued.
        }
        let mut payload = header.to_vec();
        payload.extend_from_slice(bytes);
        self.push_out(FLAG_RELAYED, meta, payload);
    }

    pub(super) fn view(&mut self, index: u64, now: &[NodeMember]) {
        let members: Vec<Member> = now
            .iter()
            .filter(|m| m.host <= cross::MAX_HOST && m.member <= cross::MAX_MEMBER_ID)
            .map(|m| Member {
                id: m.member,
                pid: self.pids.get(&(m.host, m.member)).copied().unwrap_or(0),
                host: m.host,
            })
            .collect();
        let key = |m: &Member| (m.host, m.id);
        let mut changes = Vec::new();
        let mut back = Vec::new();
        for old in &self.members {
            if !members.iter().any(|m| key(m) == key(old)) {
                // No note said why: its host's node was taken down.
                let kind = self.reasons.remove(&key(old)).unwrap_or(ChangeKind::NodeDown);
                let pid = self.pids.remove(&key(old)).unwrap_or(old.pid);
                if kind == ChangeKind::NodeDown && old.host == self.host && self.local.contains_key(&old.id) {
                    back.push((old.id, pid));
                }
                changes.push((*old, kind));
            }
        }
        self.join_again(&back);
        for m in &members {
            if !self.members.iter().any(|o| key(o) == key(m)) {
                changes.push((*m, ChangeKind::Joined));
            }
        }
        // Members of this host that are not here: an earlier run of this
        // engine had them (nothing is durable: it restarted with an empty
        // log and replays the cluster's). Asked out once, as gone with
        // their node. Only once this gateway read its first keeper view
        // (before it, `local` is not known yet).
        if self.seated {
            let host = self.host;
            let stale: Vec<Member> = members
                .iter()
                .filter(|m| m.host == host && !self.local.contains_key(&m.id) && !self.stale.contains(&m.id))
                .copied()
                .collect();
            for m in stale {
                self.stale.insert(m.id);
                self.note(Note::Gone { member: m.id, kind: ChangeKind::NodeDown });
                self.pending.push_back(Command::Leave { group: self.name.clone(), host, member: m.id });
            }
        }
        self.listing.show(&self.name, &members, self.host);
        self.members = members.clone();
        self.write_view(&ClusterView { id: index, members, changes });
    }

    /// The majority took this node down while `members` (id, pid) of this
    /// host lived (a partition: `quorum.rs`): they join again, and what
    /// this gateway had not seen committed before the node-down goes after
    /// their joins (with new sequence numbers: the old ones, if they
    /// commit now, are of a sender out of the view and delivered nowhere).
    /// Not while this run replays an earlier run's history: the joins its
    /// gateway queued when it seated them bring them in.
    pub(super) fn join_again(&mut self, members: &[(u64, u32)]) {
        if members.is_empty() || !self.live {
            return;
        }
        let mut again = Vec::new();
        for (member, pid) in members {
            again.push(self.note_command(&Note::Joined { member: *member, pid: *pid }));
            again.push(Command::Join { group: self.name.clone(), host: self.host, member: *member });
        }
        tracing::info!(group = %self.name, members = members.len(), "group gateway: this node was taken down; its members join again");
        if let Some(f) = self.in_flight.take() {
            self.pending_held.add(f.held);
            again.extend(f.commands);
        }
        again.extend(self.pending.drain(..));
        self.pending = again.into();
    }

    /// Writes `view` (its `id` the index of its entry) as a cluster view
    /// frame. One entry may hold several views of the group (a batch of
    /// joins): a view's id is its entry's index times 256 plus its rank in
    /// the entry, the same at every host, increasing.
    pub(super) fn write_view(&mut self, view: &ClusterView) {
        let rank = if self.last_view.0 == view.id { self.last_view.1 + 1 } else { 0 };
        self.last_view = (view.id, rank);
        // Rank 255 is a direct group's barrier (`sync.rs`).
        let view = ClusterView { id: view.id.saturating_mul(256).saturating_add(rank.min(254)), ..view.clone() };
        let mut bytes = Vec::new();
        match cross::encode_view(&view, self.end.config().max_members, &mut bytes) {
            Ok(()) => match &mut self.direct {
                Some(d) => {
                    d.sync.view(view.id, bytes);
                    if let Some(flush) = d.flush_of(view.id) {
                        self.note(flush);
                    }
                }
                None => self.push_out(FLAG_CLUSTER_VIEW, 0, bytes),
            },
            Err(e) => tracing::error!(group = %self.name, error = ?e, "a cluster view too large for this host's log"),
        }
    }

    /// A change of the cluster's nodes at entry `index` (a direct group's
    /// barrier when a node went down).
    pub(crate) fn node_event(&mut self, index: u64, reason: ViewReason) {
        let Some(d) = &mut self.direct else { return };
        if let Some(barrier) = d.node_event(index, reason) {
            if let Some(flush) = d.flush_of(barrier) {
                self.note(flush);
            }
        }
    }
}
