//! What the node watches each duty cycle besides raft: its peers' liveness
//! (a leader proposes `NodeDown` of a node silent past
//! `cluster.node_timeout_ms`), whether it has the quorum, proposals that
//! may be lost, the SAFE index (computed by the leader, carried to the
//! followers by a message of ringflow's own), and the test feed.
//!
//! Only the leader proposes a node down, and a new leader starts every
//! peer's clock afresh at its election. A node comes back up by itself:
//! once it applies its own removal, it joins the nodes' group again
//! (`node.rs`, `announce`), and that join is its node-up in the log.

use std::sync::atomic::Ordering;
use std::time::Instant;

use raft::StateRole;

use super::entry::{self, Command};
use super::node::{ClusterNode, Transport};
use super::proposals::FEED_GROUP;
use super::safe::{leader_safe, SafeMessage};
use super::status::Published;
use crate::stats::{ClusterCounter, ClusterPeerCounter, Slot, SlotKind};

/// The node's slots in the process's stats file: its own and one per peer.
pub(super) struct StatSlots {
    node: Slot,
    peers: Vec<(u64, Slot)>,
}

impl<T: Transport> ClusterNode<T> {
    /// Publishes the node in the process's stats file under `dir` (for
    /// `ringflow stat`), updated every duty cycle.
    pub fn attach_stats(&mut self, dir: &std::path::Path) {
        let id = self.settings.id;
        let node = Slot::open(dir, SlotKind::Cluster, &format!("cluster node {id}"), id, 0);
        let peers = self
            .settings
            .voters
            .iter()
            .filter(|v| **v != id)
            .map(|v| (*v, Slot::open(dir, SlotKind::ClusterPeer, &format!("cluster node {v}"), *v, id)))
            .collect();
        self.slots = Some(StatSlots { node, peers });
    }
}

impl<T: Transport> ClusterNode<T> {
    /// Liveness, quorum, lost proposals, node-down proposals, the feed.
    pub(super) fn watch(&mut self, now: Instant) {
        let election = self.election_timeout();
        let leader = self.raw.raft.state == StateRole::Leader;
        if leader && !self.was_leader {
            self.liveness.became_leader(now);
            self.safe_sent = (0, None);
        }
        self.was_leader = leader;
        let quorum = if leader {
            self.liveness.leader_has_quorum(now, election)
        } else {
            let known = self.raw.raft.leader_id;
            self.raw.raft.state == StateRole::Follower && known != 0 && self.liveness.is_up(known, now, election)
        };
        if quorum != self.quorum {
            self.quorum = quorum;
            let (node, term, leader) = (self.settings.id, self.raw.raft.term, self.raw.raft.leader_id);
            if quorum {
                tracing::info!(node, term, leader, "cluster quorum regained");
            } else {
                tracing::warn!(node, term, leader, "cluster quorum lost: proposals are refused");
            }
            Published::set(&self.published.quorum, u64::from(quorum));
        }
        let term = self.raw.raft.term;
        for lost in self.in_flight.sweep(term, now, election.saturating_mul(2)) {
            if let Some(feed) = &mut self.feed {
                feed.lost(lost.proposal);
            }
        }
        if leader && quorum {
            let directory = &self.directory;
            let down = self.liveness.take_down_due(now, self.settings.node_timeout, election, |p| directory.is_out(p));
            for host in down {
                let silent = self.liveness.last_heard(host).map(|h| now.saturating_duration_since(h));
                tracing::info!(node = self.settings.id, host, ?silent, "cluster: proposing node down");
                if let Ok(data) = entry::encode(&[Command::NodeDown { host }]) {
                    let _ = self.raw.propose(Vec::new(), data);
                }
            }
        }
        self.feed(now);
    }

    /// The test feed's next message, when due and the node has the quorum.
    fn feed(&mut self, now: Instant) {
        let quorum = self.quorum;
        let Some(feed) = &mut self.feed else { return };
        if !feed.due(now) {
            return;
        }
        if !quorum {
            if !feed.refused {
                feed.refused = true;
                tracing::info!(node = self.settings.id, seq = feed.next_seq, "cluster feed refused: no quorum");
            }
            return;
        }
        if feed.refused {
            feed.refused = false;
            tracing::info!(node = self.settings.id, seq = feed.next_seq, "cluster feed resumed");
        }
        // SYNC: Relaxed; only makes each id distinct (shared with handles).
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let seq = feed.next_seq;
        feed.in_flight = Some(id);
        let message = Command::Message {
            group: FEED_GROUP.to_owned(),
            sender: self.settings.incarnation,
            seq,
            bytes: Vec::new(),
        };
        if let Ok(data) = entry::encode(&[message]) {
            self.propose_own(id, data, now);
        }
    }

    /// A safe message: taken from the current term's leader only, checked
    /// first (`None`: malformed or not for us, counted as bad).
    pub(super) fn accept_safe(&mut self, m: SafeMessage, now: Instant) -> Option<()> {
        let from_voter = self.settings.voters.contains(&m.from) && m.from != self.settings.id;
        if m.to != self.settings.id || !from_voter {
            return None;
        }
        self.liveness.heard(m.from, now);
        let raft = &self.raw.raft;
        let current = m.from == raft.leader_id && m.term == raft.term;
        if current && self.peers.get(&m.from) == Some(&m.incarnation) {
            let held = if self.safe_heard.1 == m.term { self.safe_heard.0 } else { 0 };
            self.safe_heard = (held.max(m.safe), m.term);
        }
        Some(())
    }

    /// A leader's SAFE index as its followers' match indexes say now
    /// (commit at most; voters out of the view not counted).
    pub(super) fn held_by_every_follower(&self) -> u64 {
        let raft = &self.raw.raft;
        let prs = raft.prs();
        let directory = &self.directory;
        leader_safe(
            &self.settings.voters,
            |v| prs.get(v).map(|p| p.matched),
            |v| directory.is_out(v),
            raft.raft_log.committed,
        )
    }

    /// After raft's `Ready`: the SAFE index, and the leader's message of it.
    pub(super) fn after_ready(&mut self, now: Instant) {
        let raft = &self.raw.raft;
        let commit = raft.raft_log.committed;
        let candidate = if raft.state == StateRole::Leader {
            self.held_by_every_follower()
        } else if raft.state == StateRole::Follower && self.only_the_leader_besides_me() {
            // Every node not down is this one or the leader, and the
            // leader holds everything committed: what this node
            // committed, every node of the view holds (a follower of two
            // voters needs no safe message; its commit came on the append).
            commit
        } else if self.safe_heard.1 == raft.term {
            self.safe_heard.0.min(commit)
        } else {
            0
        };
        if candidate > self.safe {
            self.safe = candidate;
            tracing::trace!(node = self.settings.id, safe = self.safe, "cluster safe index");
        }
        if raft.state != StateRole::Leader {
            return;
        }
        let heartbeat = self.settings.tick.saturating_mul(self.settings.heartbeat_ticks.max(1) as u32);
        let advanced = self.safe > self.safe_sent.0;
        let due = self.safe_sent.1.is_none_or(|at| now.saturating_duration_since(at) >= heartbeat);
        if !(advanced || due) {
            return;
        }
        let term = raft.term;
        let peers: Vec<u64> = self.settings.voters.iter().copied().filter(|v| *v != self.settings.id).collect();
        // The heartbeat's clock restarts only when every live follower got
        // this one.
        let mut skipped = false;
        for to in peers {
            // A follower whose only other live node is this leader takes
            // its commit for its SAFE index (above): a message of each move
            // would only be one more send(2) on the round trip of every
            // message, before the leader's next read. It still gets one a
            // heartbeat, for a view it has not applied yet.
            if self.directory.is_down(to) {
                continue;
            }
            if !due && self.derives_safe(to) {
                skipped = true;
                continue;
            }
            let m = SafeMessage {
                incarnation: self.settings.incarnation,
                from: self.settings.id,
                to,
                term,
                safe: self.safe,
            };
            self.transport.send(to, m.encode());
        }
        self.safe_sent = (self.safe, if skipped { self.safe_sent.1 } else { Some(now) });
    }

    /// Whether follower `to` of this leader derives its SAFE index itself
    /// ([`only_the_leader_besides_me`](Self::only_the_leader_besides_me)
    /// as `to` sees it, by this node's view).
    fn derives_safe(&self, to: u64) -> bool {
        let me = self.settings.id;
        self.settings.voters.iter().all(|v| *v == me || *v == to || self.directory.is_out(*v))
    }

    /// Whether every voter but this node and its known leader is down.
    fn only_the_leader_besides_me(&self) -> bool {
        let (me, leader) = (self.settings.id, self.raw.raft.leader_id);
        leader != 0 && self.settings.voters.iter().all(|v| *v == me || *v == leader || self.directory.is_out(*v))
    }

    /// Publishes quorum, safe index, last index and each peer.
    pub(super) fn publish_watch(&mut self, now: Instant) {
        let p = &self.published;
        let election = self.election_timeout();
        Published::set(&p.quorum, u64::from(self.quorum));
        // Only this node stores the cell: what it reads back is its own.
        let safe_moved = p.safe() != self.safe;
        Published::set(&p.safe, self.safe);
        if safe_moved {
            // A SAFE group's gateway holds committed entries until the
            // safe index reaches them: wake it (after the store, which its
            // alarm's Acquire then sees).
            if let Some(hook) = self.on_committed.get() {
                hook();
            }
        }
        Published::set(&p.last_index, self.raw.raft.raft_log.last_index());
        Published::set(&p.lost_unreported, self.in_flight.unreported);
        let leader = self.raw.raft.state == StateRole::Leader;
        for cells in &p.peers {
            let matched = if leader { self.raw.raft.prs().get(cells.id).map_or(0, |pr| pr.matched) } else { 0 };
            Published::set(&cells.matched, matched);
            Published::set(&cells.up, u64::from(self.liveness.is_up(cells.id, now, election)));
            Published::set(&cells.down, u64::from(self.directory.is_down(cells.id)));
            let silent = self.liveness.last_heard(cells.id).map_or(u64::MAX, |h| {
                u64::try_from(now.saturating_duration_since(h).as_millis()).unwrap_or(u64::MAX - 1)
            });
            Published::set(&cells.silent_ms, silent);
        }
        let Some(slots) = &self.slots else { return };
        let raft = &self.raw.raft;
        let last = raft.raft_log.last_index();
        for (i, v) in [
            (ClusterCounter::Term, raft.term),
            (ClusterCounter::Leader, raft.leader_id),
            (ClusterCounter::Commit, raft.raft_log.committed),
            (ClusterCounter::Applied, raft.raft_log.applied),
            (ClusterCounter::Safe, self.safe),
            (ClusterCounter::Quorum, u64::from(self.quorum)),
            (ClusterCounter::LastIndex, last),
        ] {
            slots.node.set(i as usize, v);
        }
        for (peer, slot) in &slots.peers {
            let Some(cells) = p.peers.iter().find(|c| c.id == *peer) else { continue };
            // SYNC: Relaxed; the gauges this thread just stored.
            let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            let matched = get(&cells.matched);
            let lag = if leader { last.saturating_sub(matched) } else { 0 };
            for (i, v) in [
                (ClusterPeerCounter::Matched, matched),
                (ClusterPeerCounter::Lag, lag),
                (ClusterPeerCounter::Up, get(&cells.up)),
                (ClusterPeerCounter::Down, get(&cells.down)),
                (ClusterPeerCounter::SilentMs, get(&cells.silent_ms)),
            ] {
                slot.set(i as usize, v);
            }
        }
    }
}
