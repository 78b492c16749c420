//! What a cluster node publishes for `stat` and for its handles: the
//! committed index, the term, the leader, the cluster's members, whether it
//! has the quorum, the SAFE index, each peer as this node sees it, and
//! counters of what it refused. Written by the node's engine thread only,
//! read from anywhere.

use std::sync::atomic::{AtomicU64, Ordering};

/// The node's published state (see [`ClusterStatus`] for a reading).
#[derive(Default)]
pub(super) struct Published {
    pub(super) id: u64,
    pub(super) voters: Vec<u64>,
    pub(super) term: AtomicU64,
    pub(super) leader: AtomicU64,
    pub(super) commit: AtomicU64,
    pub(super) applied: AtomicU64,
    pub(super) compacted_to: AtomicU64,
    pub(super) log_len: AtomicU64,
    pub(super) bad_messages: AtomicU64,
    pub(super) bad_entries: AtomicU64,
    pub(super) committed_dropped: AtomicU64,
    /// 1 while the node has the quorum.
    pub(super) quorum: AtomicU64,
    pub(super) safe: AtomicU64,
    pub(super) last_index: AtomicU64,
    pub(super) lost_unreported: AtomicU64,
    /// One per other voter, by id.
    pub(super) peers: Vec<PeerCells>,
}

/// What a node publishes of one peer.
#[derive(Default)]
pub(super) struct PeerCells {
    pub(super) id: u64,
    pub(super) matched: AtomicU64,
    /// 1: heard from within an election timeout.
    pub(super) up: AtomicU64,
    /// 1: the log says it is down.
    pub(super) down: AtomicU64,
    /// Milliseconds since it was last heard from (`u64::MAX`: never).
    pub(super) silent_ms: AtomicU64,
}

impl Published {
    /// Stores a value for readers. Each counter stands alone (no reader
    /// infers one from another), so the stores need no order.
    pub(super) fn set(cell: &AtomicU64, value: u64) {
        // SYNC: Relaxed; pairs with the Relaxed loads in `read`: independent
        // gauges, no data published through them.
        cell.store(value, Ordering::Relaxed);
    }

    pub(super) fn bump(cell: &AtomicU64) {
        // SYNC: Relaxed; a counter read by `read` alone.
        cell.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn has_quorum(&self) -> bool {
        // SYNC: Relaxed; pairs with the Relaxed store in `set`: a gauge.
        self.quorum.load(Ordering::Relaxed) == 1
    }

    /// The current term and its leader (0: none known), without the
    /// copy `read` makes of the voters and peers.
    pub(super) fn term_leader(&self) -> (u64, u64) {
        // SYNC: Relaxed; pairs with the Relaxed stores in `set`: gauges (a
        // term read with another term's leader is noticed a cycle later).
        (self.term.load(Ordering::Relaxed), self.leader.load(Ordering::Relaxed))
    }

    pub(super) fn safe(&self) -> u64 {
        // SYNC: Relaxed; pairs with the Relaxed store in `set`: a gauge.
        self.safe.load(Ordering::Relaxed)
    }

    pub(super) fn read(&self) -> ClusterStatus {
        // SYNC: Relaxed; pairs with the Relaxed stores in `set` and `bump`
        // (each value is a gauge of its own).
        let load = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        ClusterStatus {
            id: self.id,
            voters: self.voters.clone(),
            term: load(&self.term),
            leader: load(&self.leader),
            commit: load(&self.commit),
            applied: load(&self.applied),
            compacted_to: load(&self.compacted_to),
            log_len: load(&self.log_len),
            bad_messages: load(&self.bad_messages),
            bad_entries: load(&self.bad_entries),
            committed_dropped: load(&self.committed_dropped),
            quorum: load(&self.quorum) == 1,
            safe: load(&self.safe),
            last_index: load(&self.last_index),
            lost_unreported: load(&self.lost_unreported),
            peers: self
                .peers
                .iter()
                .map(|p| PeerStatus {
                    id: p.id,
                    matched: load(&p.matched),
                    up: load(&p.up) == 1,
                    down: load(&p.down) == 1,
                    silent_ms: Some(load(&p.silent_ms)).filter(|ms| *ms != u64::MAX),
                })
                .collect(),
        }
    }
}

/// One peer as a node sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStatus {
    /// Its id.
    pub id: u64,
    /// The highest log index it is known to hold: the leader's match index
    /// of it (0 on a node that is not the leader: only the leader knows).
    pub matched: u64,
    /// Heard from within an election timeout.
    pub up: bool,
    /// The log says it is down (a `NodeDown` applied, no node-up since).
    pub down: bool,
    /// Since it was last heard from, in milliseconds (`None`: never).
    pub silent_ms: Option<u64>,
}

/// One reading of a node's state (each field read on its own: they may be
/// from slightly different moments).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    /// This node's id.
    pub id: u64,
    /// The cluster's members (the voters of its configuration).
    pub voters: Vec<u64>,
    /// The current term.
    pub term: u64,
    /// The leader this node knows of (0: none).
    pub leader: u64,
    /// The highest index known committed.
    pub commit: u64,
    /// The highest index applied to the state machine.
    pub applied: u64,
    /// The index the last snapshot covers (entries up to it are dropped).
    pub compacted_to: u64,
    /// Entries held in memory.
    pub log_len: u64,
    /// Messages from peers refused (too large, undecodable, not for us).
    pub bad_messages: u64,
    /// Committed entries that did not decode as commands (skipped).
    pub bad_entries: u64,
    /// Committed commands the local consumer did not take in time.
    pub committed_dropped: u64,
    /// In touch with a majority (see `ClusterHandle::has_quorum`).
    pub quorum: bool,
    /// The SAFE index (see `ClusterHandle::safe_index`).
    pub safe: u64,
    /// The last index of this node's log.
    pub last_index: u64,
    /// Lost proposals not reported (nobody took the lost-stream, or it
    /// was full).
    pub lost_unreported: u64,
    /// Every other node, by id.
    pub peers: Vec<PeerStatus>,
}
