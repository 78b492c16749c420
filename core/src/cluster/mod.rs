//! The cluster: a Raft node embedded in the engine (issue 17's foundation),
//! on which groups across hosts order their views and AGREED messages.
//!
//! The consensus is raft-rs' (TiKV's), driven from the engine's duty cycle:
//! [`ClusterNode`] is an engine agent that ticks raft from the engine's
//! clock, steps the messages its [`Transport`] received, proposes what its
//! [`ClusterHandle`]s queued, and runs raft's `Ready` loop: send messages,
//! append entries to the in-memory log ([`storage::MemLog`]), apply
//! committed entries to the state machine ([`state::Directory`]) in log
//! order, advance. ringflow writes the glue, the storage, the transport and
//! the encoding of its commands ([`entry`]); never the consensus.
//!
//! It must never block the engine thread: proposals and received messages
//! come through bounded channels read with `try_recv`, what it publishes
//! (status, applied commands) goes out through atomics, a lock only tried,
//! and a bounded channel.
//!
//! **Nodes** are numbered 1..=n from the sorted listen addresses of the
//! engines (this engine's and `net.peers`'): every engine given the same
//! set numbers it the same way ([`node_ids`]).
//!
//! **Under faults** (`watch.rs`, `liveness.rs`): the leader proposes
//! `NodeDown` of a node it has not heard from for `cluster.node_timeout_ms`
//! (a new leader gives every node a full timeout from its election); every
//! member of that node leaves every view ([`ViewReason::NodeDown`]). A node
//! comes back up by itself: once it applies its own removal (or, new run,
//! once it starts) it joins [`NODES_GROUP`] again, and that join is its
//! node-up ([`ViewReason::NodeUp`]; a new run's join first takes the run
//! before it down). A node publishes whether it has the quorum (a leader
//! hearing from a majority, a follower hearing from its leader within an
//! election timeout) and refuses proposals without it
//! ([`ProposeError::NoQuorum`]). The SAFE index (`safe.rs`) is the least
//! match index over the nodes not down, computed by the leader and carried
//! to the followers by a message of ringflow's own. Each proposal has an
//! id, echoed on what it commits, and a proposal that may be lost is
//! reported ([`Lost`]).
//!
//! **Nothing is durable.** A node that restarts starts with an empty log
//! under its old id and catches up from the others (log or snapshot). Raft
//! assumes a node keeps its vote and its log across a restart: a fresh run
//! that voted as if it held what its earlier run acknowledged could elect
//! a node that lacks a committed entry (a lagging node and the fresh one
//! are a majority of three). So a run whose log is still empty does not
//! answer the vote requests of a candidate with a log (a cluster ran
//! before it) until a leader the others elected gave it one; at a first
//! start every log is empty and every vote counts (`ClusterNode::abstains`;
//! with two voters the other node holds every commit and may have it).
//! `pre_vote` and `check_quorum` keep a restarted node from disrupting a
//! working leader. A cluster that loses a majority of nodes at once loses
//! what they committed.

mod entry;
mod handle;
mod liveness;
mod node;
mod proposals;
mod run;
mod safe;
mod state;
mod status;
mod storage;
mod watch;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faults;

use std::net::SocketAddr;
use std::time::Duration;

pub use entry::{decode as decode_entry, encode as encode_entry, Command, EncodeError, EntryError, MAX_GROUP_NAME};
pub use handle::{ClusterHandle, CommittedHook, ProposeError};
pub use node::{ClusterNode, NodeError, Transport, ENVELOPE_LEN, ENVELOPE_VERSION, NODES_GROUP};
pub use proposals::{Lost, LostReason, ProposalId, FEED_GROUP};
pub(crate) use run::start as start_node;
pub use run::{ClusterRun, LinkTransport, TEST_FEED_ENV, VIA_ENV};
pub use safe::{SafeMessage, SAFE_KIND, SAFE_LEN};
pub use state::{Applied, Directory, Member, ViewReason};
pub use status::{ClusterStatus, PeerStatus};
pub use storage::MemLog;

/// A committed command as the node applied it: where it sits in the log
/// and what it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Its entry's index in the log.
    pub index: u64,
    /// The term of that entry.
    pub term: u64,
    /// What applying it changed.
    pub applied: Applied,
    /// The id of the proposal it came from, when this node's run proposed
    /// it (every `Committed` of that entry carries it).
    pub proposal: Option<ProposalId>,
}

/// The cluster node's settings (`cluster.*` in the engine configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// This node's id (1..=n, see [`node_ids`]).
    pub id: u64,
    /// Every node's id, this one's included: the first configuration.
    pub voters: Vec<u64>,
    /// Tells this run of the node from an earlier one under the same id
    /// (the engine's id: new at every start).
    pub incarnation: u64,
    /// One raft tick (`cluster.tick_ms`).
    pub tick: Duration,
    /// Ticks without a leader's word before a follower stands for
    /// election (`cluster.election_ticks`; raft randomises it up to twice
    /// this).
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats (`cluster.heartbeat_ticks`).
    pub heartbeat_ticks: usize,
    /// Applied entries kept before the log is compacted into a snapshot
    /// (`cluster.compact_after`).
    pub compact_after: u64,
    /// Bytes of applied entries' data kept before those every node of
    /// the view holds (up to the SAFE index) are compacted
    /// (`cluster.compact_after_bytes`).
    pub compact_after_bytes: usize,
    /// Largest encoded raft message accepted from a peer, in bytes
    /// (`cluster.max_message_bytes`); also bounds what one message carries.
    pub max_message_bytes: usize,
    /// Proposals queued by handles and not yet taken by the node
    /// (`cluster.proposal_queue`); beyond it `propose` says `Full`.
    pub proposal_queue: usize,
    /// Committed commands queued for the local consumer
    /// ([`ClusterNode::committed`]); beyond it they are counted as dropped.
    pub committed_queue: usize,
    /// How long the leader waits without a word from a node before it
    /// proposes the node down (`cluster.node_timeout_ms`; longer than an
    /// election timeout).
    pub node_timeout: Duration,
    /// The test feed's interval (`RINGFLOW_TEST_CLUSTER_FEED`, ms): the
    /// node proposes AGREED messages of its own to [`FEED_GROUP`]. Tests
    /// only; `None` in every real configuration.
    pub test_feed: Option<Duration>,
}

impl ClusterSettings {
    /// The defaults for node `id` of `voters`, with an incarnation from
    /// the clock and the process id.
    pub fn new(id: u64, voters: Vec<u64>) -> ClusterSettings {
        static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        // SYNC: Relaxed; a counter that only makes each value distinct.
        let nth = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let incarnation =
            (nanos as u64) ^ (u64::from(std::process::id()) << 32) ^ nth.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ClusterSettings {
            id,
            voters,
            incarnation,
            tick: Duration::from_millis(DEFAULT_TICK_MS),
            election_ticks: DEFAULT_ELECTION_TICKS,
            heartbeat_ticks: DEFAULT_HEARTBEAT_TICKS,
            compact_after: DEFAULT_COMPACT_AFTER,
            compact_after_bytes: DEFAULT_COMPACT_AFTER_BYTES,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            proposal_queue: DEFAULT_PROPOSAL_QUEUE,
            committed_queue: DEFAULT_COMMITTED_QUEUE,
            node_timeout: Duration::from_millis(DEFAULT_NODE_TIMEOUT_MS),
            test_feed: None,
        }
    }
}

/// `cluster.tick_ms`'s default.
pub const DEFAULT_TICK_MS: u64 = 10;
/// `cluster.election_ticks`' default (an election after 0.5 to 1 s of
/// silence at the default tick).
pub const DEFAULT_ELECTION_TICKS: usize = 50;
/// `cluster.heartbeat_ticks`' default (a heartbeat every 50 ms).
pub const DEFAULT_HEARTBEAT_TICKS: usize = 5;
/// `cluster.node_timeout_ms`' default: twice the longest election timeout
/// at the default tick.
pub const DEFAULT_NODE_TIMEOUT_MS: u64 = 2000;
/// `cluster.compact_after`'s default.
pub const DEFAULT_COMPACT_AFTER: u64 = 1024;
/// `cluster.compact_after_bytes`' default: 64 MiB.
pub const DEFAULT_COMPACT_AFTER_BYTES: usize = 64 << 20;
/// `cluster.max_message_bytes`' default.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;
/// `cluster.proposal_queue`'s default.
pub const DEFAULT_PROPOSAL_QUEUE: usize = 4096;
/// The committed queue's default.
pub const DEFAULT_COMMITTED_QUEUE: usize = 65536;

/// The nodes of a cluster and their ids: this engine's address and its
/// peers', sorted and numbered from 1 (duplicates counted once), so that
/// every engine given the same set agrees. Returns this engine's id and
/// every `(id, address)`.
pub fn node_ids(own: SocketAddr, peers: &[SocketAddr]) -> (u64, Vec<(u64, SocketAddr)>) {
    let mut all: Vec<SocketAddr> = peers.iter().copied().chain(std::iter::once(own)).collect();
    all.sort();
    all.dedup();
    let numbered: Vec<(u64, SocketAddr)> = all.into_iter().zip(1u64..).map(|(addr, id)| (id, addr)).collect();
    let own_id = numbered.iter().find(|(_, a)| *a == own).map_or(0, |(id, _)| *id);
    (own_id, numbered)
}
