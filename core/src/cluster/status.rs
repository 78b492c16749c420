//! What a cluster node publishes for `stat` and for its handles: the
//! committed index, the term, the leader, the cluster's members, and
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
        }
    }
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
}
