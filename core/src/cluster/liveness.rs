//! What a node knows of the others' liveness: when it last heard from
//! each, whether it is in touch with a majority (the quorum it publishes),
//! and, on the leader, which nodes have been silent past
//! `cluster.node_timeout_ms` and must be proposed down.
//!
//! It decides nothing that every node must agree on: that is the log's
//! (a `NodeDown` the leader proposes, applied alike everywhere). It only
//! reads the clock and what arrived; it must never block.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Liveness of the other voters, as this node sees it.
pub(super) struct Liveness {
    own: u64,
    voters: Vec<u64>,
    /// The last time a well-formed message arrived from each peer.
    heard: HashMap<u64, Instant>,
    /// When a `NodeDown` of a peer was last proposed (re-proposed after
    /// `retry` if it did not apply: lost with a leader).
    proposed_down: HashMap<u64, Instant>,
}

impl Liveness {
    pub(super) fn new(own: u64, voters: &[u64]) -> Liveness {
        Liveness { own, voters: voters.to_vec(), heard: HashMap::new(), proposed_down: HashMap::new() }
    }

    /// A message from `peer` arrived at `now`.
    pub(super) fn heard(&mut self, peer: u64, now: Instant) {
        self.heard.insert(peer, now);
    }

    /// When `peer` was last heard from, if ever.
    pub(super) fn last_heard(&self, peer: u64) -> Option<Instant> {
        self.heard.get(&peer).copied()
    }

    /// This node just became leader: every peer gets a full timeout from
    /// now before it can be taken for down (a new leader re-checks them all
    /// from its own view, not from what it heard as a follower), and no
    /// earlier proposal is counted.
    pub(super) fn became_leader(&mut self, now: Instant) {
        for peer in self.voters.iter().filter(|p| **p != self.own) {
            self.heard.insert(*peer, now);
        }
        self.proposed_down.clear();
    }

    /// Whether `peer` was heard from within `within` of `now`.
    pub(super) fn is_up(&self, peer: u64, now: Instant, within: Duration) -> bool {
        peer == self.own || self.heard.get(&peer).is_some_and(|h| now.saturating_duration_since(*h) <= within)
    }

    /// Whether a leader is in touch with a majority of the voters (itself
    /// counted) within `within`.
    pub(super) fn leader_has_quorum(&self, now: Instant, within: Duration) -> bool {
        let up = self.voters.iter().filter(|p| self.is_up(**p, now, within)).count();
        up > self.voters.len() / 2
    }

    /// The peers a leader must propose down at `now`: silent longer than
    /// `timeout`, not already down in the log (`is_down`), and not proposed
    /// within `retry`. Marks them proposed.
    pub(super) fn take_down_due(
        &mut self,
        now: Instant,
        timeout: Duration,
        retry: Duration,
        is_down: impl Fn(u64) -> bool,
    ) -> Vec<u64> {
        let mut out = Vec::new();
        for peer in self.voters.iter().copied().filter(|p| *p != self.own) {
            if self.is_up(peer, now, timeout) || is_down(peer) {
                self.proposed_down.remove(&peer);
                continue;
            }
            if self.proposed_down.get(&peer).is_some_and(|at| now.saturating_duration_since(*at) < retry) {
                continue;
            }
            self.proposed_down.insert(peer, now);
            out.push(peer);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_past_the_timeout_is_proposed_down_once_per_retry() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut l = Liveness::new(1, &[1, 2, 3]);
        l.became_leader(t0);
        assert!(l.leader_has_quorum(t0, ms(100)));
        l.heard(2, t0 + ms(500));
        assert!(l.take_down_due(t0 + ms(900), ms(1000), ms(300), |_| false).is_empty());
        // Node 3 silent since t0: down after the timeout, once per retry.
        assert_eq!(l.take_down_due(t0 + ms(1001), ms(1000), ms(300), |_| false), vec![3]);
        assert!(l.take_down_due(t0 + ms(1100), ms(1000), ms(300), |_| false).is_empty());
        assert_eq!(l.take_down_due(t0 + ms(1400), ms(1000), ms(300), |_| false), vec![3]);
        // Once the log says it is down, nothing more.
        assert!(l.take_down_due(t0 + ms(1450), ms(1000), ms(300), |p| p == 3).is_empty());
        // Node 2, heard at 500, is silent past the timeout at 1501.
        assert_eq!(l.take_down_due(t0 + ms(1501), ms(1000), ms(300), |p| p == 3), vec![2]);
        // Node 2 heard at 500: with 1 and 2 up, a quorum of 3 until 2 is silent too.
        assert!(l.leader_has_quorum(t0 + ms(550), ms(100)));
        assert!(!l.leader_has_quorum(t0 + ms(700), ms(100)));
    }
}
