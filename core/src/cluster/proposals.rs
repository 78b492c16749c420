//! Proposals in flight and what became of them: each proposal a handle
//! queues gets an id, carried in its raft entry's context (this run's
//! incarnation, then the id); the node echoes the id on what it commits
//! ([`Committed::proposal`](super::Committed)) and reports on a lost-stream
//! a proposal that may never commit: refused for want of a leader, made in
//! a term that ended before it committed, or not committed within twice
//! an election timeout. A reported proposal may still commit (its entry
//! reached the new leader): the commands are idempotent (a join twice, a
//! message twice by its sequence number), so re-proposing is safe.
//!
//! Also the test feed (`RINGFLOW_CLUSTER_TEST_FEED`): a node that proposes
//! AGREED messages of its own, one in flight at a time, re-proposing what
//! is lost, so that tests of engine processes have proposals flowing
//! through every fault.

use std::collections::BTreeMap;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// A proposal's id, unique within a node's run.
pub type ProposalId = u64;

/// Why a proposal may never commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LostReason {
    /// No leader was known when the node proposed it (an election, a
    /// minority side): raft refused it.
    NoLeader,
    /// The term changed before it committed (the leader it went to may be
    /// gone).
    LeaderChanged,
    /// It did not commit within twice the election timeout.
    TimedOut,
}

/// A proposal that may never commit: re-propose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lost {
    /// Its id, as `ClusterHandle::propose` returned it.
    pub proposal: ProposalId,
    /// Why.
    pub reason: LostReason,
}

/// Bytes of an entry's context that names its proposal.
const CONTEXT_LEN: usize = 16;

/// The context of this run's proposal `id`.
pub(super) fn context(incarnation: u64, id: ProposalId) -> Vec<u8> {
    let mut out = Vec::with_capacity(CONTEXT_LEN);
    out.extend_from_slice(&incarnation.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out
}

/// The proposal id in an entry's context, if this run (`incarnation`)
/// proposed it (contexts come from peers: anything else is `None`).
pub(super) fn own_proposal(ctx: &[u8], incarnation: u64) -> Option<ProposalId> {
    let (run, id) = ctx.split_first_chunk::<8>()?;
    let id: [u8; 8] = id.try_into().ok()?;
    (u64::from_le_bytes(*run) == incarnation).then_some(u64::from_le_bytes(id))
}

/// This node's proposals not yet committed nor reported lost.
pub(super) struct InFlight {
    /// Id → the term it was proposed in and when.
    open: BTreeMap<ProposalId, (u64, Instant)>,
    lost: SyncSender<Lost>,
    /// Reports the lost-stream could not take (nobody reading, or full).
    pub(super) unreported: u64,
}

impl InFlight {
    pub(super) fn new(lost: SyncSender<Lost>) -> InFlight {
        InFlight { open: BTreeMap::new(), lost, unreported: 0 }
    }

    pub(super) fn proposed(&mut self, id: ProposalId, term: u64, now: Instant) {
        self.open.insert(id, (term, now));
    }

    /// `id` committed; whether it was still open.
    pub(super) fn committed(&mut self, id: ProposalId) -> bool {
        self.open.remove(&id).is_some()
    }

    /// Reports `id` lost (also the ids [`sweep`](Self::sweep) finds).
    pub(super) fn report(&mut self, proposal: ProposalId, reason: LostReason) {
        self.open.remove(&proposal);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.lost.try_send(Lost { proposal, reason })
        {
            self.unreported += 1;
        }
    }

    /// Every open proposal of a term before `term`, or older than
    /// `lost_after`, reported lost; returns them (the node's own feed
    /// watches its proposal among them).
    pub(super) fn sweep(&mut self, term: u64, now: Instant, lost_after: Duration) -> Vec<Lost> {
        let gone: Vec<Lost> = self
            .open
            .iter()
            .filter_map(|(id, (t, at))| {
                let reason = if *t != term {
                    LostReason::LeaderChanged
                } else if now.saturating_duration_since(*at) > lost_after {
                    LostReason::TimedOut
                } else {
                    return None;
                };
                Some(Lost { proposal: *id, reason })
            })
            .collect();
        for lost in &gone {
            self.report(lost.proposal, lost.reason);
        }
        gone
    }

    /// Proposals open.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.open.len()
    }
}

/// The group the test feed sends to.
pub const FEED_GROUP: &str = "ringflow.feed";

/// The test feed: one AGREED message at a time from this run (sender: its
/// incarnation), the next once the last committed, the same again if it
/// was lost.
pub(super) struct Feed {
    pub(super) every: Duration,
    pub(super) next_seq: u64,
    pub(super) in_flight: Option<ProposalId>,
    pub(super) next_at: Option<Instant>,
    /// The last refusal logged (so that a minority logs it once).
    pub(super) refused: bool,
}

impl Feed {
    pub(super) fn new(every: Duration) -> Feed {
        Feed { every, next_seq: 1, in_flight: None, next_at: None, refused: false }
    }

    /// Its proposal `id` committed: the next message is due after `every`.
    pub(super) fn committed(&mut self, id: ProposalId, now: Instant) {
        if self.in_flight == Some(id) {
            self.in_flight = None;
            self.next_seq += 1;
            self.next_at = Some(now + self.every);
        }
    }

    /// Its proposal `id` may be lost: the same message again, at once.
    pub(super) fn lost(&mut self, id: ProposalId) {
        if self.in_flight == Some(id) {
            self.in_flight = None;
        }
    }

    /// Whether a message is due at `now`.
    pub(super) fn due(&self, now: Instant) -> bool {
        self.in_flight.is_none() && self.next_at.is_none_or(|at| now >= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_name_only_this_runs_proposals() {
        let ctx = context(7, 42);
        assert_eq!(own_proposal(&ctx, 7), Some(42));
        assert_eq!(own_proposal(&ctx, 8), None);
        assert_eq!(own_proposal(&ctx[..15], 7), None);
        assert_eq!(own_proposal(&[], 7), None);
    }

    #[test]
    fn open_proposals_are_reported_on_a_new_term_or_after_the_deadline() {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let mut f = InFlight::new(tx);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        f.proposed(1, 5, t0);
        f.proposed(2, 5, t0 + ms(50));
        f.proposed(3, 4, t0);
        assert!(f.committed(1));
        assert!(!f.committed(1));
        assert_eq!(f.sweep(5, t0 + ms(60), ms(100)), vec![Lost { proposal: 3, reason: LostReason::LeaderChanged }]);
        assert_eq!(f.sweep(5, t0 + ms(200), ms(100)), vec![Lost { proposal: 2, reason: LostReason::TimedOut }]);
        assert_eq!(f.len(), 0);
        assert_eq!(rx.try_iter().count(), 2);
        drop(rx);
        f.report(9, LostReason::NoLeader);
        assert_eq!(f.unreported, 1);
    }
}
