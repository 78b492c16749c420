//! The handle other threads hold on a cluster node: propose commands, read
//! what the node publishes (status, quorum, safe index, the directory),
//! take the stream of proposals that may be lost.
//!
//! Every call returns at once: a proposal is queued on a bounded channel
//! (`Full` past it), what is read comes from atomics or a short lock the
//! node only ever tries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::entry::{self, Command, EncodeError};
use super::proposals::{Lost, ProposalId};
use super::state::Directory;
use super::status::{ClusterStatus, Published};
use crate::engine::Waker;

/// Why a proposal was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// The commands cannot be encoded.
    Encode(EncodeError),
    /// The encoded entry is larger than `cluster.max_message_bytes`.
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The node's proposal queue is full: try again later.
    Full,
    /// The node is gone (its engine stopped).
    NodeGone,
    /// The node is not in touch with a majority of the cluster (a minority
    /// side of a partition, or no leader elected yet): nothing it proposes
    /// could commit. [`ClusterHandle::has_quorum`] says when it is back.
    NoQuorum,
}

impl std::fmt::Display for ProposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProposeError::Encode(e) => write!(f, "cannot encode the proposal: {e}"),
            ProposeError::TooLarge { bytes, max } => write!(f, "proposal of {bytes} bytes (at most {max})"),
            ProposeError::Full => write!(f, "the cluster node's proposal queue is full"),
            ProposeError::NodeGone => write!(f, "the cluster node is gone"),
            ProposeError::NoQuorum => write!(f, "this cluster node has lost the quorum (no majority reachable)"),
        }
    }
}

impl std::error::Error for ProposeError {}

/// A proposal as queued for the node: its id and the entry's data.
pub(super) type Queued = (ProposalId, Vec<u8>);

/// Proposes commands to the cluster and reads what its node publishes;
/// cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct ClusterHandle {
    pub(super) proposals: SyncSender<Queued>,
    pub(super) published: Arc<Published>,
    pub(super) directory: Arc<Mutex<Directory>>,
    pub(super) waker: Arc<OnceLock<Waker>>,
    pub(super) max_bytes: usize,
    /// The last proposal id handed out (shared with the node's own).
    pub(super) next_id: Arc<AtomicU64>,
    pub(super) lost: Arc<Mutex<Option<Receiver<Lost>>>>,
    /// Called after the node queued committed commands or its SAFE index
    /// moved (the group agent's wake: `crate::xgroup`).
    pub(super) on_committed: Arc<OnceLock<CommittedHook>>,
}

/// What [`ClusterHandle::set_committed_hook`] takes.
pub type CommittedHook = Box<dyn Fn() + Send + Sync>;

impl ClusterHandle {
    /// Queues `commands` as one log entry; returns the proposal's id.
    ///
    /// Queued is not committed. What the node commits carries the id of
    /// its own proposals ([`Committed::proposal`](super::Committed)); a
    /// proposal that may never commit (no leader, a leader change, no
    /// commit within twice the election timeout) is reported on
    /// [`take_lost`](Self::take_lost)'s stream, and the proposer proposes
    /// it again: commands are idempotent (a `Message` twice is dropped by
    /// its sequence number, a `Join` twice changes nothing). A proposer
    /// with several `Message`s in flight re-proposes the lost one *and*
    /// every later one not yet committed, in order: the directory drops a
    /// sequence number below one it applied.
    pub fn propose(&self, commands: &[Command]) -> Result<ProposalId, ProposeError> {
        let data = entry::encode(commands).map_err(ProposeError::Encode)?;
        if data.len() > self.max_bytes {
            return Err(ProposeError::TooLarge { bytes: data.len(), max: self.max_bytes });
        }
        if !self.published.has_quorum() {
            return Err(ProposeError::NoQuorum);
        }
        // SYNC: Relaxed; only makes each id distinct (no data published).
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        match self.proposals.try_send((id, data)) {
            Ok(()) => {
                if let Some(waker) = self.waker.get() {
                    waker.wake();
                }
                Ok(id)
            }
            Err(TrySendError::Full(_)) => Err(ProposeError::Full),
            Err(TrySendError::Disconnected(_)) => Err(ProposeError::NodeGone),
        }
    }

    /// The stream of this node's proposals that may never commit (once:
    /// the first caller takes it). Until someone takes it, and once the
    /// taker stops reading, reports that do not fit are counted
    /// (`ClusterStatus::lost_unreported`).
    pub fn take_lost(&self) -> Option<Receiver<Lost>> {
        self.lost.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// `hook` runs on the node's thread after it queued committed commands
    /// and after its SAFE index ([`safe_index`](Self::safe_index)) moved,
    /// the new index published before the call (once; later calls are
    /// ignored). It must not block.
    pub fn set_committed_hook(&self, hook: CommittedHook) {
        let _ = self.on_committed.set(hook);
    }

    /// What the node publishes now.
    pub fn status(&self) -> ClusterStatus {
        self.published.read()
    }

    /// The current term and its leader's id (0: none known): what
    /// [`status`](Self::status) says of them, without its allocations (a
    /// gateway asks every duty cycle).
    pub fn term_leader(&self) -> (u64, u64) {
        self.published.term_leader()
    }

    /// Whether the node is in touch with a majority of the cluster: a
    /// leader hearing from a majority, or a follower hearing from its
    /// leader within an election timeout. Proposals fail with
    /// [`ProposeError::NoQuorum`] while it is not.
    pub fn has_quorum(&self) -> bool {
        self.published.has_quorum()
    }

    /// The SAFE index: every node of the current view (the cluster's
    /// nodes not down) holds the log up to it. A committed entry at index
    /// `i` may be delivered as SAFE once `safe_index() >= i`. Never past
    /// this node's commit index; never goes back.
    pub fn safe_index(&self) -> u64 {
        self.published.safe()
    }

    /// The directory as last published (at most a duty cycle behind the
    /// node's own).
    pub fn directory(&self) -> Directory {
        self.directory.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The engine to wake when a proposal is queued (once; later calls are
    /// ignored).
    pub fn set_waker(&self, waker: Waker) {
        let _ = self.waker.set(waker);
    }
}
