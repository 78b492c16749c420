//! The cluster node: an engine agent driving raft-rs' `RawNode` from the
//! duty cycle (ticks from the clock, received messages stepped, queued
//! proposals proposed, then raft's `Ready` handled). What it watches besides
//! (peers' liveness, quorum, the SAFE index, the test feed) is `watch.rs`;
//! the handle other threads propose through is `handle.rs`.
//!
//! It must never block: everything it reads arrives through bounded
//! channels read with `try_recv` (at most `DRAIN` per cycle each), what it
//! sends goes to its [`Transport`] (which queues), and what it publishes
//! goes through atomics, a bounded channel and a lock only tried.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use protobuf::Message as PbMessage;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message, MessageType};
use raft::{RawNode, StateRole, Storage};

use super::entry::{self, Command};
use super::handle::{ClusterHandle, CommittedHook, Queued};
use super::liveness::Liveness;
use super::proposals::{self, Feed, InFlight, LostReason};
use super::safe::SafeMessage;
use super::state::{Applied, Directory};
use super::status::{PeerCells, Published};
use super::storage::MemLog;
use super::{ClusterSettings, Committed};
use crate::engine::Agent;

/// How often an idle `poll` (nothing received or proposed, no tick due,
/// nothing ready) still looks at what time alone changes.
const UPKEEP: Duration = Duration::from_micros(200);
/// At most this many received messages and this many proposals are taken
/// per duty cycle (the rest wait for the next): one cycle stays short.
const DRAIN: usize = 256;

/// The envelope's version (see [`ClusterNode`]'s wire form).
pub const ENVELOPE_VERSION: u8 = 1;
/// Bytes of the envelope before the raft message.
pub const ENVELOPE_LEN: usize = 9;

/// How raft messages reach the other nodes and arrive from them: the
/// engines' links (a `Cluster` frame each), or anything else that carries
/// bytes (a test's channels). Both calls must return at once.
pub trait Transport: Send {
    /// Queues an encoded raft message for node `to`. It may be dropped
    /// (the link is down, its queue full): raft resends what matters.
    fn send(&mut self, to: u64, message: Vec<u8>);

    /// The next encoded message received, if one is there.
    fn try_recv(&mut self) -> Option<Vec<u8>>;

    /// A buffer to encode the next message into (cleared by the node), if
    /// the transport keeps buffers of messages it sent (the node allocates
    /// one if not).
    fn spare(&mut self) -> Option<Vec<u8>> {
        None
    }
}

/// Gives the entries of a message parsed in place (their data slices of
/// the `len` bytes received) buffers of their own when they are a small
/// part of it: an entry is kept until the log is compacted, and a slice
/// keeps the whole buffer alive (a resent entry or two riding with a
/// large message must not hold it for a thousand entries).
pub(super) fn unpin_small_entries(message: &mut Message, len: usize) {
    let data: usize = message.entries.iter().map(|e| e.data.len() + e.context.len()).sum();
    if data.saturating_mul(2) >= len {
        return;
    }
    for e in message.entries.iter_mut() {
        e.data = bytes::Bytes::copy_from_slice(&e.data);
        e.context = bytes::Bytes::copy_from_slice(&e.context);
    }
}

/// Why a node could not be made.
#[derive(Debug)]
pub enum NodeError {
    /// The settings are not a valid raft configuration (an id of 0 or not
    /// among the voters, ticks out of order).
    Config(String),
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::Config(why) => write!(f, "invalid cluster configuration: {why}"),
        }
    }
}

impl std::error::Error for NodeError {}

/// A raft node in the engine's duty cycle.
///
/// What it sends to a peer (the body of a `Cluster` frame between engines)
/// is an envelope: version u8 (=1), the sender's incarnation u64 (LE), then
/// the raft message (protobuf). The incarnation tells a restarted node
/// from the one it replaces: nothing here is durable, so a node that comes
/// back under its old id has an empty log, and a leader that still counted
/// its old log as held would never send it again (raft assumes a node
/// keeps its log). On a new incarnation the leader probes the node from
/// the start (its log, or a snapshot once compacted).
pub struct ClusterNode<T: Transport> {
    name: String,
    pub(super) raw: RawNode<MemLog>,
    pub(super) transport: T,
    pub(super) settings: ClusterSettings,
    proposals: Receiver<Queued>,
    committed: SyncSender<Committed>,
    pub(super) on_committed: Arc<OnceLock<CommittedHook>>,
    pub(super) published: Arc<Published>,
    pub(super) directory: Directory,
    shared_directory: Arc<Mutex<Directory>>,
    /// The shared directory is behind the node's (a tried lock failed).
    directory_stale: bool,
    next_tick: Option<Instant>,
    /// When `poll` next does its upkeep though nothing happened.
    upkeep_at: Option<Instant>,
    /// Scratch for what applying one entry changed.
    applied: Vec<Applied>,
    /// Snapshots sent this cycle, reported to raft after the `Ready`.
    snapshots_sent: Vec<u64>,
    /// The last incarnation heard from each peer.
    pub(super) peers: HashMap<u64, u64>,
    /// This run's join of [`NODES_GROUP`] was applied (and no `NodeDown`
    /// of this node since).
    announced: bool,
    /// When to propose that join (again): a proposal lost with a leader
    /// is made again after an election timeout.
    announce_at: Option<Instant>,
    /// The leader and term last logged.
    logged: (u64, u64),
    /// The others' liveness as heard here.
    pub(super) liveness: Liveness,
    /// Whether the node had the quorum at the last cycle (logged on change).
    pub(super) quorum: bool,
    /// The role at the last cycle (a new leader re-checks its peers).
    pub(super) was_leader: bool,
    /// The SAFE index published (never goes back).
    pub(super) safe: u64,
    /// The directory at an applied index, kept for a compaction once the
    /// SAFE index reaches it (`compact`).
    checkpoint: Option<(u64, Vec<u8>)>,
    /// The leader's safe index last sent, and when (sent again with
    /// heartbeats).
    pub(super) safe_sent: (u64, Option<Instant>),
    /// The safe index the leader last told this follower, and its term.
    pub(super) safe_heard: (u64, u64),
    /// This node's proposals not yet committed.
    pub(super) in_flight: InFlight,
    /// Ids of the node's own proposals (shared with its handles).
    pub(super) next_id: Arc<AtomicU64>,
    /// The test feed, when `RINGFLOW_TEST_CLUSTER_FEED` asks for one.
    pub(super) feed: Option<Feed>,
    /// Its statistics slots (`ringflow stat`), when attached.
    pub(super) slots: Option<super::watch::StatSlots>,
}

/// The group every node joins once a leader is known (host: its id,
/// member: its incarnation): the log's "node up", so that every node learns
/// of every run of every other in log order.
pub const NODES_GROUP: &str = "ringflow.nodes";

impl<T: Transport> ClusterNode<T> {
    /// A node with `settings` talking through `transport`, its handle, and
    /// the queue of what it commits (every command applied, in log order;
    /// bounded by `committed_queue`: what the consumer does not take in
    /// time is dropped and counted).
    pub fn new(
        settings: ClusterSettings,
        transport: T,
    ) -> Result<(ClusterNode<T>, ClusterHandle, Receiver<Committed>), NodeError> {
        let config = raft::Config {
            id: settings.id,
            election_tick: settings.election_ticks,
            heartbeat_tick: settings.heartbeat_ticks,
            max_size_per_msg: settings.max_message_bytes as u64 / 2,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            // With two or three voters a follower commits on the append
            // (`commit_held`): the leader's word of each new commit, an
            // empty append and its answer, would be two messages per entry
            // for nothing, each a `send(2)` on the path of the thread that
            // delivers (tuning.md, "Groups across hosts"). Followers still
            // learn the commit with the next append or heartbeat (what
            // `commit_held` cannot take: an earlier term's entries).
            skip_bcast_commit: (2..=3).contains(&settings.voters.len()),
            ..Default::default()
        };
        config.validate().map_err(|e| NodeError::Config(e.to_string()))?;
        if !settings.voters.contains(&settings.id) {
            return Err(NodeError::Config(format!("node {} is not among the voters", settings.id)));
        }
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&config, MemLog::new(&settings.voters), &logger)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let (proposals_tx, proposals) = mpsc::sync_channel(settings.proposal_queue.max(1));
        let (committed, committed_rx) = mpsc::sync_channel(settings.committed_queue.max(1));
        let (lost_tx, lost_rx) = mpsc::sync_channel(settings.proposal_queue.max(1));
        let peers = settings
            .voters
            .iter()
            .filter(|v| **v != settings.id)
            .map(|v| PeerCells { id: *v, silent_ms: AtomicU64::new(u64::MAX), ..Default::default() })
            .collect();
        let published =
            Arc::new(Published { id: settings.id, voters: settings.voters.clone(), peers, ..Default::default() });
        let shared_directory = Arc::new(Mutex::new(Directory::default()));
        let next_id = Arc::new(AtomicU64::new(0));
        let handle = ClusterHandle {
            proposals: proposals_tx,
            published: Arc::clone(&published),
            directory: Arc::clone(&shared_directory),
            waker: Arc::new(OnceLock::new()),
            max_bytes: settings.max_message_bytes,
            next_id: Arc::clone(&next_id),
            lost: Arc::new(Mutex::new(Some(lost_rx))),
            on_committed: Arc::new(OnceLock::new()),
        };
        let liveness = Liveness::new(settings.id, &settings.voters);
        let feed = settings.test_feed.map(Feed::new);
        let node = ClusterNode {
            name: format!("cluster node {}", settings.id),
            raw,
            transport,
            settings,
            proposals,
            committed,
            on_committed: Arc::clone(&handle.on_committed),
            published,
            directory: Directory::default(),
            shared_directory,
            directory_stale: false,
            next_tick: None,
            upkeep_at: None,
            applied: Vec::new(),
            snapshots_sent: Vec::new(),
            peers: HashMap::new(),
            announced: false,
            announce_at: None,
            logged: (0, 0),
            liveness,
            quorum: false,
            was_leader: false,
            safe: 0,
            checkpoint: None,
            safe_sent: (0, None),
            safe_heard: (0, 0),
            in_flight: InFlight::new(lost_tx),
            next_id,
            feed,
            slots: None,
        };
        Ok((node, handle, committed_rx))
    }

    /// The node's directory (the state machine at the applied index).
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Its transport (a test's, to cut or mend links).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// One duty cycle at time `now`: ticks due, messages received,
    /// proposals queued, then raft's `Ready`. Returns the work done (0:
    /// nothing but time passed).
    pub fn poll(&mut self, now: Instant) -> usize {
        let mut work = 0;
        let ticked = self.tick_until(now);
        for _ in 0..DRAIN {
            let Some(bytes) = self.transport.try_recv() else { break };
            work += 1;
            self.receive(bytes, now);
        }
        for _ in 0..DRAIN {
            match self.proposals.try_recv() {
                Ok((id, data)) => {
                    work += 1;
                    self.propose_own(id, data, now);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        // Nothing came in, no tick fell due and raft has nothing ready: the
        // upkeep below (liveness and quorum, lost proposals, the SAFE
        // index and its message, the published status) would find what it
        // found last time, unless time moved it, and time it looks at
        // every UPKEEP. A spinning duty cycle (invoker mode) then pays
        // none of it.
        if work == 0 && !ticked && self.upkeep_at.is_some_and(|at| now < at) && !self.raw.has_ready() {
            return 0;
        }
        self.upkeep_at = Some(now + UPKEEP);
        self.watch(now);
        self.announce(now);
        work += self.on_ready();
        self.after_ready(now);
        self.publish(now);
        work
    }

    /// Proposes this run's proposal `id`: tracked until it commits; raft
    /// refuses it at once when no leader is known (an election, a minority
    /// side), and then it is reported lost.
    pub(super) fn propose_own(&mut self, id: u64, data: Vec<u8>, now: Instant) {
        let context = proposals::context(self.settings.incarnation, id);
        match self.raw.propose(context, data) {
            Ok(()) => self.in_flight.proposed(id, self.raw.raft.term, now),
            Err(_) => {
                self.in_flight.report(id, LostReason::NoLeader);
                if let Some(feed) = &mut self.feed {
                    feed.lost(id);
                }
            }
        }
    }

    /// One election timeout (raft randomises it up to twice this).
    pub(super) fn election_timeout(&self) -> Duration {
        self.settings.tick.saturating_mul(self.settings.election_ticks.max(1) as u32)
    }

    /// Proposes this run's join of [`NODES_GROUP`] once a leader is known,
    /// again every election timeout until it is applied.
    fn announce(&mut self, now: Instant) {
        if self.announced || self.raw.raft.leader_id == 0 || self.announce_at.is_some_and(|at| now < at) {
            return;
        }
        let join =
            Command::Join { group: NODES_GROUP.to_owned(), host: self.settings.id, member: self.settings.incarnation };
        if let Ok(data) = entry::encode(&[join]) {
            let _ = self.raw.propose(Vec::new(), data);
        }
        self.announce_at = Some(now + self.election_timeout());
    }

    /// Runs the ticks due by `now`; whether there were any.
    fn tick_until(&mut self, now: Instant) -> bool {
        let tick = self.settings.tick.max(std::time::Duration::from_micros(100));
        let next = *self.next_tick.get_or_insert(now + tick);
        if now < next {
            return false;
        }
        // Every tick that passed, but no more than an election's worth: a
        // thread that was descheduled for long does not replay them all.
        let due = ((now - next).as_nanos() / tick.as_nanos()) as usize + 1;
        for _ in 0..due.min(self.settings.election_ticks.max(1)) {
            self.raw.tick();
        }
        self.next_tick = Some(now + tick);
        true
    }

    /// A message from a peer: untrusted bytes, bounded and checked before
    /// raft sees them.
    fn receive(&mut self, bytes: Vec<u8>, now: Instant) {
        let accepted = match SafeMessage::decode(&bytes) {
            Some(safe) => self.accept_safe(safe, now),
            None => self.accept(bytes, now),
        };
        if accepted.is_none() {
            Published::bump(&self.published.bad_messages);
        }
    }

    fn accept(&mut self, bytes: Vec<u8>, now: Instant) -> Option<()> {
        if bytes.len() > self.settings.max_message_bytes {
            return None;
        }
        let (head, _) = bytes.split_first_chunk::<ENVELOPE_LEN>()?;
        if head[0] != ENVELOPE_VERSION {
            return None;
        }
        let incarnation = u64::from_le_bytes(head[1..].try_into().ok()?);
        // Parsed in place: the entries' data are slices of this buffer
        // (an append of a batch is hundreds of KiB; copying each entry out
        // of it cost a fresh allocation of that size per message).
        let body = bytes::Bytes::from(bytes).slice(ENVELOPE_LEN..);
        let mut message = Message::parse_from_carllerche_bytes(&body).ok()?;
        unpin_small_entries(&mut message, body.len());
        let from_voter = self.settings.voters.contains(&message.from) && message.from != self.settings.id;
        if message.to != self.settings.id || !from_voter || is_local(message.get_msg_type()) {
            return None;
        }
        self.liveness.heard(message.from, now);
        let known = self.peers.insert(message.from, incarnation);
        if known.is_some_and(|k| k != incarnation) {
            self.peer_restarted(message.from);
        }
        if self.abstains(&message) {
            tracing::debug!(
                node = self.settings.id,
                candidate = message.from,
                "cluster: a fresh run does not vote for a candidate with a log"
            );
            return Some(());
        }
        if message.get_msg_type() == MessageType::MsgHeartbeat {
            // A leader that has not heard of our restart yet may announce a
            // commit past our (empty) log; raft would take that for a
            // corrupt log and panic. Committing less is always safe.
            message.commit = message.commit.min(self.raw.raft.raft_log.last_index());
        }
        self.raw.step(message).ok()
    }

    /// Whether to leave `message`, a (pre-)vote request, unanswered: this
    /// run's log is empty (a fresh run of this node, not caught up by any
    /// leader yet) and the candidate has entries, so a cluster has run
    /// before. Raft counts this node's vote as the vote of a node that
    /// holds what it acknowledged; a fresh run forgot it, and its vote
    /// could elect a candidate that lacks an entry the cluster committed
    /// with this node's earlier run (a lagging node and this one make a
    /// majority of three). It votes again once a leader gave it a log: a
    /// leader the other nodes elected holds every committed entry. At a
    /// first start every log is empty and every vote counts. With two
    /// voters every commit needs both, so the other node holds all of it
    /// and may have this vote.
    fn abstains(&self, message: &Message) -> bool {
        let kind = message.get_msg_type();
        matches!(kind, MessageType::MsgRequestVote | MessageType::MsgRequestPreVote)
            && message.index > 0
            && self.raw.raft.raft_log.last_index() == 0
            && self.settings.voters.len() > 2
    }

    /// `peer` came back with an empty log: a leader forgets what it held
    /// and probes it from the start.
    fn peer_restarted(&mut self, peer: u64) {
        tracing::info!(node = self.settings.id, peer, "cluster peer restarted");
        if self.raw.raft.state != StateRole::Leader {
            return;
        }
        if let Some(progress) = self.raw.raft.mut_prs().get_mut(peer) {
            // Lowering a match index never lowers the commit index (raft
            // never moves it back), so this is safe whatever the peer holds.
            progress.matched = 0;
            progress.become_probe();
        }
    }

    fn send_all(&mut self, messages: Vec<Message>) {
        for message in messages {
            if message.get_msg_type() == MessageType::MsgSnapshot {
                self.snapshots_sent.push(message.to);
            }
            let size = ENVELOPE_LEN + message.compute_size() as usize;
            let mut bytes = self.transport.spare().unwrap_or_default();
            bytes.clear();
            bytes.reserve(size);
            bytes.push(ENVELOPE_VERSION);
            bytes.extend_from_slice(&self.settings.incarnation.to_le_bytes());
            match message.write_to_vec(&mut bytes) {
                Ok(()) => self.transport.send(message.to, bytes),
                Err(e) => tracing::warn!(error = %e, to = message.to, "cluster message not encoded"),
            }
        }
    }

    /// Raft's `Ready`: send, persist (in memory), apply, advance.
    fn on_ready(&mut self) -> usize {
        if !self.raw.has_ready() {
            return 0;
        }
        let mut ready = self.raw.ready();
        self.send_all(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            match Directory::decode(&snapshot.data) {
                Ok(directory) => {
                    self.directory = directory;
                    self.directory_stale = true;
                }
                Err(e) => {
                    Published::bump(&self.published.bad_entries);
                    tracing::error!(error = %e, "cluster snapshot's directory did not decode");
                }
            }
            if let Err(e) = self.raw.mut_store().apply_snapshot(snapshot) {
                tracing::warn!(error = %e, "cluster snapshot not applied");
            }
        }
        self.apply(ready.take_committed_entries());
        if !ready.entries().is_empty() {
            if let Err(e) = self.raw.mut_store().append(ready.entries()) {
                tracing::error!(error = %e, "cluster entries not appended");
            }
        }
        if let Some(hs) = ready.hs() {
            self.raw.mut_store().set_hard_state(hs.clone());
        }
        self.send_all(ready.take_persisted_messages());
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit);
        }
        self.send_all(light.take_messages());
        self.apply(light.take_committed_entries());
        self.raw.advance_apply();
        for to in std::mem::take(&mut self.snapshots_sent) {
            // Sent is all this node knows; a lost snapshot is asked for again.
            self.raw.report_snapshot(to, raft::SnapshotStatus::Finish);
        }
        self.compact();
        if self.commit_held() {
            // What it holds is committed: apply it in this cycle.
            self.on_ready();
        }
        1
    }

    /// A follower of a cluster of two or three voters commits what it
    /// holds of its leader's current term without waiting for the leader
    /// to say so: the leader holds it too, and they are a majority, which
    /// is raft's own definition of committed (an entry of the leader's
    /// term on a majority). No later leader lacks it: one needs a vote of
    /// this node or of the leader, and a fresh run of either does not vote
    /// for a candidate with a log ([`abstains`](Self::abstains); with two
    /// voters this node is the only candidate with it). The leader's word
    /// of the commit would come one message later: the followers' members
    /// deliver one network hop sooner. Returns whether the commit index
    /// moved.
    fn commit_held(&mut self) -> bool {
        let raft = &self.raw.raft;
        if raft.state != StateRole::Follower || raft.leader_id == 0 || !(2..=3).contains(&self.settings.voters.len()) {
            return false;
        }
        let log = &raft.raft_log;
        let last = log.last_index();
        if last <= log.committed || log.term(last).ok() != Some(raft.term) {
            return false;
        }
        self.raw.raft.raft_log.commit_to(last);
        true
    }

    /// Applies committed entries in log order.
    fn apply(&mut self, entries: Vec<Entry>) {
        let any = !entries.is_empty();
        self.apply_entries(entries);
        if any {
            if let Some(hook) = self.on_committed.get() {
                hook();
            }
        }
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            if entry.data.is_empty() {
                // A new leader's empty entry: no command.
                continue;
            }
            match entry.get_entry_type() {
                EntryType::EntryNormal => self.apply_commands(&entry),
                EntryType::EntryConfChange => {
                    if let Ok(cc) = ConfChange::parse_from_bytes(&entry.data) {
                        let applied = self.raw.apply_conf_change(&cc);
                        self.on_conf_change(applied);
                    }
                }
                EntryType::EntryConfChangeV2 => {
                    if let Ok(cc) = ConfChangeV2::parse_from_bytes(&entry.data) {
                        let applied = self.raw.apply_conf_change(&cc);
                        self.on_conf_change(applied);
                    }
                }
            }
        }
    }

    /// Records a configuration raft applied (none is proposed yet: every
    /// node starts with the same voters).
    fn on_conf_change(&mut self, applied: raft::Result<raft::eraftpb::ConfState>) {
        match applied {
            Ok(cs) => self.raw.mut_store().set_conf_state(cs),
            Err(e) => tracing::warn!(error = %e, "cluster configuration change refused"),
        }
    }

    fn apply_commands(&mut self, entry: &Entry) {
        let proposal = proposals::own_proposal(&entry.context, self.settings.incarnation);
        if let Some(id) = proposal {
            self.in_flight.committed(id);
            if let Some(feed) = &mut self.feed {
                feed.committed(id, Instant::now());
            }
        }
        let commands = match entry::decode(&entry.data) {
            Ok(commands) => commands,
            Err(e) => {
                // Committed everywhere alike: every node skips it alike.
                Published::bump(&self.published.bad_entries);
                tracing::warn!(error = %e, index = entry.index, "cluster entry skipped");
                Vec::new()
            }
        };
        for command in commands {
            self.directory.apply(command, &mut self.applied);
        }
        // Announced while the log holds this run in the nodes' group: a
        // `NodeDown` of this node (a link down too long) takes it out, and
        // the node joins again once it reaches a leader (its node-up).
        let own = self.directory.has_node(self.settings.id, self.settings.incarnation);
        if self.announced && !own {
            tracing::info!(
                node = self.settings.id,
                index = entry.index,
                "cluster: this node was taken down; rejoining"
            );
            self.announce_at = None;
        }
        self.announced = own;
        self.directory_stale |= !self.applied.is_empty();
        if self.applied.is_empty() && proposal.is_some() {
            // Its proposer waits for the echo of its id.
            self.applied.push(Applied::Unchanged);
        }
        for applied in self.applied.drain(..) {
            tracing::debug!(node = self.settings.id, index = entry.index, term = entry.term, applied = ?applied, "cluster committed");
            let committed = Committed { index: entry.index, term: entry.term, applied, proposal };
            // Nobody reading (the receiver dropped): nothing to count.
            if let Err(TrySendError::Full(_)) = self.committed.try_send(committed) {
                Published::bump(&self.published.committed_dropped);
            }
        }
    }

    /// Once enough applied entries are held (`compact_after`), snapshots
    /// the directory at the applied index and drops them. Before that,
    /// once their data passes `compact_after_bytes`, the directory at the
    /// applied index is kept aside (`checkpoint`), and the entries up to it
    /// are dropped as soon as every node of the view holds them (the SAFE
    /// index reaches it; a leader asks its followers' match indexes now,
    /// which a restarted peer's reset): no live node needs them from this
    /// one then. A batch of a crossing group is an entry of hundreds of
    /// KiB: a thousand of them held half a gigabyte.
    fn compact(&mut self) {
        let applied = self.raw.raft.raft_log.applied;
        let store = self.raw.store();
        let compacted = store.compacted_to();
        if self.checkpoint.as_ref().is_some_and(|(at, _)| *at <= compacted) {
            self.checkpoint = None;
        }
        let (upto, data) = if applied.saturating_sub(compacted) >= self.settings.compact_after.max(1) {
            (applied, self.directory.encode())
        } else if store.bytes() > self.settings.compact_after_bytes {
            // A leader asks its followers' match indexes now: the SAFE
            // index never goes back, but a peer that restarted (before it
            // was taken down) holds nothing any more.
            let held_by_all = if self.raw.raft.state == StateRole::Leader {
                self.held_by_every_follower().min(self.safe)
            } else {
                self.safe
            };
            match self.checkpoint.take() {
                Some((at, data)) if at <= held_by_all => (at, data),
                Some(kept) => {
                    self.checkpoint = Some(kept);
                    return;
                }
                None if applied > compacted => {
                    self.checkpoint = Some((applied, self.directory.encode()));
                    return;
                }
                None => return,
            }
        } else {
            return;
        };
        if let Err(e) = self.raw.mut_store().compact(upto, data) {
            tracing::warn!(error = %e, upto, "cluster log not compacted");
        }
    }

    fn publish(&mut self, now: Instant) {
        self.publish_watch(now);
        let p = &self.published;
        let raft = &self.raw.raft;
        if self.logged != (raft.leader_id, raft.term) {
            self.logged = (raft.leader_id, raft.term);
            let (leader, term, commit) = (raft.leader_id, raft.term, raft.raft_log.committed);
            tracing::info!(node = self.settings.id, leader, term, commit, "cluster leader");
        }
        Published::set(&p.term, raft.term);
        Published::set(&p.leader, raft.leader_id);
        Published::set(&p.commit, raft.raft_log.committed);
        Published::set(&p.applied, raft.raft_log.applied);
        let store = self.raw.store();
        Published::set(&p.compacted_to, store.compacted_to());
        Published::set(&p.log_len, store.len() as u64);
        if self.directory_stale {
            if let Ok(mut shared) = self.shared_directory.try_lock() {
                shared.clone_from(&self.directory);
                self.directory_stale = false;
            }
        }
    }

    /// When the next tick is due (`None` before the first cycle).
    pub fn next_tick(&self) -> Option<Instant> {
        self.next_tick
    }

    /// The last index of the log (for tests).
    pub fn last_index(&self) -> u64 {
        self.raw.store().last_index().unwrap_or(0)
    }
}

/// Message types raft makes for itself: never accepted from a peer.
fn is_local(t: MessageType) -> bool {
    matches!(
        t,
        MessageType::MsgHup
            | MessageType::MsgBeat
            | MessageType::MsgUnreachable
            | MessageType::MsgSnapStatus
            | MessageType::MsgCheckQuorum
    )
}

impl<T: Transport> Agent for ClusterNode<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn do_work(&mut self) -> usize {
        self.poll(Instant::now())
    }
}
