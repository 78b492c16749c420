//! One group that crosses hosts, as this host's gateway runs it: what it
//! read in the local log becomes cluster commands (one batch in flight at
//! a time), and what the cluster committed becomes frames of the local
//! log, in the cluster log's order.
//!
//! Why one batch in flight: the directory drops a message whose seq is not
//! above the last one applied for its sender (this gateway), so a batch
//! proposed while an earlier one was lost with a leader would make the
//! earlier one's re-proposal a "duplicate". The next batch is proposed
//! once the previous one's last message is seen committed; meanwhile what
//! arrives gathers into it.
//!
//! A SAFE group: what the cluster committed of it (views and messages,
//! one queue, so their one order is kept) is held until the node's SAFE
//! index reaches its entry (every node not down holds it), and only then
//! written into the local log; its batch counts as committed only then
//! too, so the next one is proposed once the previous one is safe.
//!
//! The intake bound (`cluster.group_intake_bytes`): an AGREED or SAFE
//! group's gateway holds at most that many bytes of its members' messages
//! not yet committed (`pending` and the batch in flight: [`Held`]; a
//! message larger than the whole bound is taken alone, when nothing is
//! held). At the bound `read_local` leaves the next submit in the local
//! log, and the keeper's views behind it with it (the log's order is
//! kept); the members' log fills and their multicasts wait (blocking
//! forms) or return `WouldBlock`, as for any full log. It reads on once a
//! batch is committed (a SAFE one: safe). A FIFO or UNORDERED group is
//! bounded by its relay's window instead (`direct.rs`).
//!
//! Why that never wedges. The local log is reliable: a frame's room is
//! freed once every member, the gateway too, has passed it. At the bound
//! the gateway's cursor stops at a submit, so the log may fill behind it
//! and the committed frames of `out` find no room. But nothing that
//! lowers the bound needs the local log: a batch counts as committed when
//! its last message comes out of the cluster's committed queue (drained
//! every duty cycle, whatever the log), and `deliver` clears `in_flight`
//! before it queues any frame in `out`; a SAFE batch, when the node's
//! SAFE index (raft's match indexes) passes it; the next batch is formed
//! from `pending` alone. So each commit lowers what is held, the gateway
//! reads on (its cursor moves, the log has room), `out` is written in
//! order, and the members' reads free the rest. The gateway never stops
//! reading because `out` is full: that would be the wedge (its own cursor
//! holding the room its writes wait for). The keeper's views wait behind
//! the submits before them and are read in their order; committed views
//! wait in `out` in the cluster's order with the messages. While the
//! quorum is lost nothing commits, so the bound is lifted (`paused` is
//! set): members' multicasts fail with `NoQuorum` then, so the gateway
//! can take only what the log held at the loss (its capacity), and
//! reading it makes room for the view that tells them of the loss.
//!
//! What bounds the other queues:
//!
//! - `out` (committed frames waiting for room in the local log): only
//!   what holds this host's log does. The gateway's own cursor holds it
//!   until its batch in flight commits (above); a slow member of this
//!   host holds it for as long as its group's slow-member policy lets it
//!   (`Evict { after }` bounds that, `Block` does not). Meanwhile every
//!   other host's committed messages of the group gather here: other
//!   hosts' gateways do not learn that this host's log is full. Left for
//!   later: pushing back across hosts. Its frames and bytes are in the
//!   agent's counts line.
//! - `paused` (what the cluster committed while the quorum is lost): a
//!   node learns of commits only from a leader, and hearing one within an
//!   election timeout is having the quorum (`ClusterHandle::has_quorum`),
//!   which the agent checks every duty cycle before it takes the
//!   committed queue, turning `Regained` and emptying `paused` at once.
//!   So it holds what the node applied in the moment between a leader's
//!   words and its published flag: a few entries, at most what the
//!   committed queue (`committed_queue` entries) held between two cycles.
//! - `held` (SAFE): see the field.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::cluster::{Applied, ClusterHandle, Command, Member as NodeMember, ProposeError, ViewReason};
use crate::group::cross::{self, ClusterView, FLAG_CLUSTER_VIEW, FLAG_RELAYED};
use crate::group::{ChangeKind, GatewayFrame, GroupEnd, Guarantee, McastError, Member};
use ringflow_ring::Notify;

use crate::stats::{GroupGatewayCounter, Slot, SlotKind};

use super::direct::{self, Direct};
use super::listing::RemoteListing;
use super::note::Note;
use super::quorum::{self, Turn};
use super::sync::Write;

/// A batch proposed and not yet seen committed is proposed again after
/// this long (or at once when another leader is known).
const REPROPOSE_AFTER: Duration = Duration::from_secs(2);
/// Frames read from the local log per duty cycle.
const READ_PER_CYCLE: usize = 256;

struct InFlight {
    commands: Vec<Command>,
    last_seq: u64,
    /// The (term, leader) it was proposed under.
    leader: (u64, u64),
    at: Instant,
    /// The members' messages among its commands.
    held: Held,
}

/// Members' messages a gateway holds: read from the local log and not yet
/// seen committed (queued for a batch, or in the batch in flight).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Held {
    /// How many.
    pub(crate) frames: usize,
    /// Their payloads' bytes (what the intake bound counts).
    pub(crate) bytes: usize,
}

impl Held {
    fn add(&mut self, other: Held) {
        self.frames += other.frames;
        self.bytes += other.bytes;
    }

    fn sub(&mut self, other: Held) {
        self.frames = self.frames.saturating_sub(other.frames);
        self.bytes = self.bytes.saturating_sub(other.bytes);
    }

    /// The members' messages among `commands`.
    fn of(commands: &[Command]) -> Held {
        let mut held = Held::default();
        for c in commands {
            if let Command::Message { bytes, .. } = c {
                if let Some(len) = Note::message_len(bytes) {
                    held.add(Held { frames: 1, bytes: len });
                }
            }
        }
        held
    }
}

/// The gateway's state of one group.
pub(crate) struct Crossing {
    pub(crate) name: String,
    end: GroupEnd,
    host: u64,
    /// The last sequence number this gateway gave a message of the group.
    seq: u64,
    /// Whether the first keeper view (which seats members that joined
    /// before the gateway) was read.
    seated: bool,
    /// Commands for the next batches, in order (a deque: a batch is
    /// taken from its front while the members' messages gather at its
    /// back, thousands of them behind a batch in flight).
    pending: VecDeque<Command>,
    /// The members' messages in `pending`.
    pending_held: Held,
    in_flight: Option<InFlight>,
    /// The intake bound (`cluster.group_intake_bytes`): the members'
    /// message bytes this gateway holds at most (module doc).
    intake: usize,
    /// Whether the last read of the local log stopped at the bound, a
    /// member's submit left in the log.
    throttled: bool,
    /// Frames for the local log, in the cluster's order (a slow member of
    /// a Block group may hold them).
    out: VecDeque<(u8, u64, Vec<u8>)>,
    /// The payload bytes in `out`.
    out_bytes: usize,
    /// The members of the last cluster view.
    members: Vec<Member>,
    /// What notes said of members: their pid, why they went.
    pids: HashMap<(u64, u64), u32>,
    reasons: HashMap<(u64, u64), ChangeKind>,
    /// This host's members as the keeper's views say (id → pid).
    local: HashMap<u64, u32>,
    /// Members of this host the cluster still lists, though they are not
    /// here (an earlier run of this engine had them), already asked out.
    stale: HashSet<u64>,
    /// The entry index of the last view written, and its rank there.
    last_view: (u64, u64),
    frames: Vec<GatewayFrame>,
    /// Whether a member sleeps on the local log since a write that did not
    /// wake it (`deliver_message`): woken by the next `write_local`.
    wake: Notify,
    /// Whether the group is SAFE (committed changes wait in `held`).
    safe: bool,
    /// A SAFE group's committed changes, by entry index, not yet safe.
    /// Bounded by what the cluster committed of this group beyond the
    /// safe index: each host's gateway has one batch in flight until it
    /// is released here, so at most one batch per host (each within
    /// `cluster.max_message_bytes`), plus the views the leader commits on
    /// its own (node down or up: at most one per node and change). A
    /// re-proposed batch that commits twice is `Applied::Unchanged` the
    /// second time and never held.
    held: VecDeque<(u64, Applied)>,
    /// A FIFO or UNORDERED group's direct relay (`None`: its messages go
    /// through the cluster's log like an AGREED group's).
    pub(crate) direct: Option<Direct>,
    /// Members' messages proposed to the cluster's log.
    pub(crate) proposed_messages: u64,
    /// While this host's node has lost the quorum (`quorum.rs`): what the
    /// cluster committed meanwhile, not yet taken.
    paused: Option<VecDeque<(u64, Applied)>>,
    /// Whether a batch of this run of the gateway was seen committed: the
    /// views before it are an earlier run's history, replayed.
    live: bool,
    /// A direct group after a regain of the quorum: the last sequence
    /// number given before it. An entry of this gateway above it, applied,
    /// means everything the majority committed meanwhile is applied too
    /// (`Sync::own_known`).
    probe: Option<u64>,
    /// The id of the last view of its own host a direct group's gateway
    /// wrote (quorum lost or regained; never agreed, so not in `sync`).
    own_view: u64,
    /// The members of other hosts, published for `ringflow stat`.
    listing: RemoteListing,
    /// What the agent last logged of an AGREED or SAFE group's counts
    /// (proposed messages, held, out, paused).
    pub(crate) logged_counts: Option<(u64, Held, Held, usize)>,
    /// What it holds, published for `ringflow stat` (kind `group-gateway`).
    slot: Slot,
}

impl Crossing {
    /// `relay`: whether the direct relay is available (a FIFO or
    /// UNORDERED group uses it then); `intake`: the bytes of its members'
    /// messages it holds at most (`cluster.group_intake_bytes`).
    pub(crate) fn new(name: String, end: GroupEnd, host: u64, relay: bool, intake: usize) -> Crossing {
        let guarantee = end.config().guarantee;
        let safe = guarantee == Guarantee::Safe;
        let direct = (relay && matches!(guarantee, Guarantee::Fifo | Guarantee::Unordered))
            .then(|| Direct::new(host, direct::new_epoch(), name.clone(), end.config().max_message));
        // A gateway before this one may have left the word set.
        end.gateway_quorum(false);
        let slot = match crate::control::RuntimeDir::resolve() {
            Ok(dir) => Slot::open(dir.path(), SlotKind::GroupGateway, &name, host, 0),
            Err(_) => Slot::on_heap(),
        };
        let mut x = Crossing {
            name,
            end,
            host,
            seq: 0,
            seated: false,
            pending: VecDeque::new(),
            pending_held: Held::default(),
            in_flight: None,
            intake,
            throttled: false,
            out: VecDeque::new(),
            out_bytes: 0,
            members: Vec::new(),
            pids: HashMap::new(),
            reasons: HashMap::new(),
            local: HashMap::new(),
            stale: HashSet::new(),
            last_view: (0, 0),
            frames: Vec::new(),
            wake: Notify::None,
            safe,
            held: VecDeque::new(),
            direct,
            proposed_messages: 0,
            paused: None,
            live: false,
            probe: None,
            own_view: 0,
            listing: RemoteListing::new(),
            logged_counts: None,
            slot,
        };
        if let Some(d) = &x.direct {
            // Its relay starts once this is committed (`Sync::is_live`).
            let start = Note::Start { epoch: d.epoch() };
            x.note(start);
        }
        x
    }

    /// Reads the local log: keeper views become joins and leaves, submits
    /// become messages, all queued for the next batch. A submit that would
    /// take what the gateway holds of its members' messages past its
    /// intake bound is left in the log until a batch commits (unless it
    /// holds none: a message larger than the bound goes alone), the keeper's
    /// views behind it too (the log's order is kept). Returns the work done.
    pub(crate) fn read_local(&mut self) -> usize {
        self.throttled = false;
        // A direct group not started, or a link's window full: the members
        // wait. While the quorum is lost the keeper's views are read still
        // (members joining then are told: `quorum.rs`), not the submits.
        let views_only = self.direct.as_ref().is_some_and(|d| !d.may_read());
        if views_only && self.paused.is_none() {
            return 0;
        }
        self.frames.clear();
        // A direct group's window bounds it (above); while the quorum is
        // lost members' multicasts are refused, so what is in the log is
        // all there is to take, and taking it makes room for the views.
        let bounded = self.direct.is_none() && self.paused.is_none();
        let (intake, mut holds, mut refused) = (self.intake, self.held().bytes, false);
        let admit = |len: usize| {
            if views_only {
                refused = true;
                false
            } else if !bounded || holds == 0 || holds.saturating_add(len) <= intake {
                holds = holds.saturating_add(len);
                true
            } else {
                refused = true;
                false
            }
        };
        let n = match self.end.gateway_poll(&mut self.frames, READ_PER_CYCLE, admit) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(group = %self.name, error = %e, "group gateway cannot read the local log");
                return 0;
            }
        };
        // This host's changes while the quorum is lost (its members are
        // told in a view of their own host).
        let mut own = Vec::new();
        for frame in std::mem::take(&mut self.frames) {
            match frame {
                GatewayFrame::View { members, changes } => {
                    if !self.seated {
                        self.seated = true;
                        for m in members {
                            self.joined(m);
                            own.push((Member { host: self.host, ..m }, ChangeKind::QuorumLost));
                        }
                        continue;
                    }
                    for (m, kind) in changes {
                        match kind {
                            ChangeKind::Joined => {
                                self.joined(m);
                                own.push((Member { host: self.host, ..m }, ChangeKind::QuorumLost));
                            }
                            kind => {
                                self.gone(m, kind);
                                own.push((Member { host: self.host, ..m }, kind));
                            }
                        }
                    }
                }
                GatewayFrame::Submit { member, seq, sent_at, bytes } => match &mut self.direct {
                    Some(d) => d.submit(member, seq, sent_at, bytes),
                    None => {
                        self.proposed_messages += 1;
                        self.pending_held.add(Held { frames: 1, bytes: bytes.len() });
                        self.note(Note::Message { member, seq, sent_at, bytes });
                    }
                },
            }
        }
        self.throttled = refused;
        if self.paused.is_some() && !own.is_empty() {
            let members = self.local_members();
            self.write_own_view(members, own);
        }
        n
    }

    /// This host's members as the keeper's views say, by id.
    fn local_members(&self) -> Vec<Member> {
        let mut m: Vec<Member> =
            self.local.iter().map(|(id, pid)| Member { id: *id, pid: *pid, host: self.host }).collect();
        m.sort_unstable_by_key(|m| m.id);
        m
    }

    /// Writes a view of this gateway's own (never agreed: the quorum lost
    /// or regained). An AGREED or SAFE group's goes after the last cluster
    /// view written (its entry's index, the next rank); a direct group's
    /// right after the view it installed last, at once (`sync` holds what
    /// it would write: `quorum.rs`).
    fn write_own_view(&mut self, members: Vec<Member>, changes: Vec<(Member, ChangeKind)>) {
        let Some(d) = &self.direct else {
            let id = self.last_view.0;
            self.write_view(&ClusterView { id, members, changes });
            return;
        };
        let id = self.own_view.max(d.sync.installed()) + 1;
        if d.sync.first_pending().is_some_and(|p| p <= id) {
            // No room between the installed view and the next: members
            // would skip that one (ids only grow at a member).
            tracing::warn!(group = %self.name, view = id, "group gateway's own view is not before the next view of the cluster");
        }
        self.own_view = id;
        let mut bytes = Vec::new();
        let view = ClusterView { id, members, changes };
        match cross::encode_view(&view, self.end.config().max_members, &mut bytes) {
            Ok(()) => self.push_out(FLAG_CLUSTER_VIEW, 0, bytes),
            Err(e) => tracing::error!(group = %self.name, error = ?e, "a view too large for this host's log"),
        }
    }

    /// What the gateway holds of its members' messages, not yet committed.
    pub(crate) fn held(&self) -> Held {
        let mut held = self.pending_held;
        if let Some(f) = &self.in_flight {
            held.add(f.held);
        }
        held
    }

    /// The intake bound, in bytes of members' messages.
    pub(crate) fn intake(&self) -> usize {
        self.intake
    }

    /// Whether the last read stopped at the intake bound: a submit waits
    /// in the log for a commit (the agent sleeps on its alarm, not on the
    /// log, or it would wake for that frame at once).
    pub(crate) fn throttled(&self) -> bool {
        self.throttled
    }

    /// Whether a direct group takes none of its members' frames now (its
    /// relay not started, or a link's window full): a frame waiting at
    /// its cursor is no work until the relay moves, which the network or
    /// the cluster brings (the agent does not sleep on the log then, or it
    /// would wake for that frame at once).
    pub(crate) fn reads_paused(&self) -> bool {
        self.direct.as_ref().is_some_and(|d| !d.may_read())
    }

    /// The committed frames waiting for room in the local log (frames,
    /// bytes).
    pub(crate) fn out_held(&self) -> Held {
        Held { frames: self.out.len(), bytes: self.out_bytes }
    }

    /// How many committed changes are held while the quorum is lost.
    pub(crate) fn paused_len(&self) -> usize {
        self.paused.as_ref().map_or(0, VecDeque::len)
    }

    fn joined(&mut self, m: Member) {
        self.local.insert(m.id, m.pid);
        self.note(Note::Joined { member: m.id, pid: m.pid });
        self.pending.push_back(Command::Join { group: self.name.clone(), host: self.host, member: m.id });
    }

    fn gone(&mut self, m: Member, kind: ChangeKind) {
        self.local.remove(&m.id);
        // Asked out: a view committed before its Leave does not make it stale.
        self.stale.insert(m.id);
        self.note(Note::Gone { member: m.id, kind });
        self.pending.push_back(Command::Leave { group: self.name.clone(), host: self.host, member: m.id });
    }

    /// Queues `note` (its seq is given when its batch is formed).
    fn note(&mut self, note: Note) {
        let c = self.note_command(&note);
        self.pending.push_back(c);
    }

    fn note_command(&self, note: &Note) -> Command {
        Command::Message { group: self.name.clone(), sender: self.host, seq: 0, bytes: note.encode() }
    }

    /// This host's node lost the quorum for good, or has it back
    /// (`quorum.rs`): the members' view of it, the quorum word, and what
    /// the cluster committed meanwhile (held, then taken in order).
    pub(crate) fn turn(&mut self, turn: Turn) {
        self.end.gateway_quorum(turn == Turn::Lost);
        if turn == Turn::Lost && self.direct.is_some() {
            // What the installed view holds goes before the view of the
            // loss; nothing after it until the regain.
            self.direct_cycle();
        }
        let (members, changes) = quorum::turn_view(turn, &self.members, self.host, &self.local_members());
        if let Some(d) = &mut self.direct {
            d.sync.hold(turn == Turn::Lost);
        }
        if !(members.is_empty() && changes.is_empty()) {
            self.write_own_view(members, changes);
        }
        match turn {
            Turn::Lost => self.paused = Some(self.paused.take().unwrap_or_default()),
            Turn::Regained => {
                if self.direct.is_some() {
                    // This host's kept frames wait until an entry of its
                    // own, proposed now, is applied (`Sync::own_known`).
                    self.probe = Some(self.seq);
                    self.note(Note::Mark);
                }
                for (index, applied) in self.paused.take().unwrap_or_default() {
                    self.committed(index, applied);
                }
            }
        }
    }

    /// Proposes the next batch, or the one in flight again after a leader
    /// change or a long silence. Returns the work done.
    pub(crate) fn propose(&mut self, cluster: &ClusterHandle, max_bytes: usize) -> usize {
        if self.in_flight.is_none() && self.pending.is_empty() {
            return 0;
        }
        let leader = cluster.term_leader();
        if let Some(f) = &mut self.in_flight {
            // Without a leader a proposal is dropped: wait for one. A new
            // leader (or term) may have lost what the old one had.
            if leader.1 == 0 || (f.leader == leader && f.at.elapsed() < REPROPOSE_AFTER) {
                return 0;
            }
            match cluster.propose(&f.commands) {
                Ok(_) => {
                    f.leader = leader;
                    f.at = Instant::now();
                    return 1;
                }
                Err(e) => {
                    tracing::debug!(group = %self.name, error = %e, "group gateway cannot re-propose yet");
                    return 0;
                }
            }
        }
        let Some(mut batch) = self.batch(max_bytes) else { return 0 };
        let result = cluster.propose(&batch.commands);
        if let Err(e) = &result {
            match e {
                ProposeError::Full | ProposeError::NoQuorum => {}
                e => tracing::warn!(group = %self.name, error = %e, "group gateway's proposal refused"),
            }
        }
        // In flight either way: a refused proposal goes again at once (its
        // `at` is long past), with the same sequence numbers.
        batch.leader = leader;
        batch.at = if result.is_ok() { Instant::now() } else { Instant::now() - REPROPOSE_AFTER };
        self.in_flight = Some(batch);
        1
    }

    /// Forms the next batch from `pending` (its sequence numbers given),
    /// not yet proposed: `None` if nothing is pending.
    fn batch(&mut self, max_bytes: usize) -> Option<InFlight> {
        if self.pending.is_empty() {
            return None;
        }
        // A batch within the cluster's message limit (half of it: raft's
        // own framing and other entries ride in the same message).
        let budget = max_bytes / 2;
        let mut size = 0;
        let mut take = 0;
        for c in &self.pending {
            let len = match c {
                Command::Message { bytes, .. } => bytes.len() + self.name.len() + 32,
                _ => self.name.len() + 32,
            };
            if take > 0 && size + len > budget {
                break;
            }
            size += len;
            take += 1;
        }
        let mut commands: Vec<Command> = self.pending.drain(..take).collect();
        if !matches!(commands.last(), Some(Command::Message { .. })) {
            commands.push(Command::Message {
                group: self.name.clone(),
                sender: self.host,
                seq: 0,
                bytes: Note::Mark.encode(),
            });
        }
        // Sequence numbers that grow across this engine's restarts too:
        // the clock's microseconds, or one more than the last.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
        for c in &mut commands {
            if let Command::Message { seq, .. } = c {
                self.seq = (self.seq + 1).max(now as u64);
                *seq = self.seq;
            }
        }
        let last_seq = self.seq;
        let held = Held::of(&commands);
        self.pending_held.sub(held);
        Some(InFlight { commands, last_seq, leader: (0, 0), at: Instant::now(), held })
    }

    /// A relay message for this group from another gateway.
    pub(crate) fn relayed(&mut self, head: &super::relay::Head, msg: super::relay::Msg) {
        if let Some(d) = &mut self.direct {
            d.arrived(head, msg);
        }
    }

    /// A direct group's duty: acknowledgements, resends, what can be
    /// written locally. Relay messages to send are left in `direct.out`.
    pub(crate) fn direct_cycle(&mut self) -> usize {
        let Some(d) = &mut self.direct else { return 0 };
        let mut writes = Vec::new();
        let resends = d.cycle(std::time::Instant::now(), |w| writes.push(w));
        let n = writes.len() + resends.len();
        for w in writes {
            match w {
                Write::View(bytes) => self.push_out(FLAG_CLUSTER_VIEW, 0, bytes),
                Write::Frame(f) => {
                    let Some(meta) = cross::origin_word(f.origin, f.member) else {
                        tracing::warn!(group = %self.name, origin = f.origin, member = f.member, "group gateway skips a relayed frame of an origin out of range");
                        continue;
                    };
                    let mut payload = cross::relay_header(f.mseq, f.sent_at).to_vec();
                    payload.extend_from_slice(&f.bytes);
                    self.push_out(FLAG_RELAYED, meta, payload);
                }
            }
        }
        for r in resends {
            self.note(r);
        }
        n
    }

    fn push_out(&mut self, flags: u8, meta: u64, payload: Vec<u8>) {
        self.out_bytes += payload.len();
        self.out.push_back((flags, meta, payload));
    }

    fn pop_out(&mut self) {
        if let Some((_, _, payload)) = self.out.pop_front() {
            self.out_bytes = self.out_bytes.saturating_sub(payload.len());
        }
    }

    /// Publishes what the gateway holds in its stats slot (`ringflow stat`).
    pub(crate) fn publish(&self) {
        let held = self.held();
        let out = self.out_held();
        let words = [
            held.frames,
            held.bytes,
            self.intake,
            usize::from(self.throttled),
            out.frames,
            out.bytes,
            self.paused_len(),
        ];
        for (i, w) in words.into_iter().enumerate() {
            self.slot.set(i, w as u64);
        }
        self.slot.set(GroupGatewayCounter::Proposed as usize, self.proposed_messages);
    }

    /// Whether frames wait for room in the local log.
    pub(crate) fn holding(&self) -> bool {
        !self.out.is_empty()
    }

    /// Announces the gateway as a sleeper on the local log (a member's
    /// frame wakes the bridge's sleep): see `GroupEnd::gateway_sleep_prepare`.
    pub(crate) fn sleep_prepare(&self) -> Option<(usize, u32, bool)> {
        self.end.gateway_sleep_prepare()
    }

    /// Withdraws [`sleep_prepare`](Self::sleep_prepare)'s announcement.
    pub(crate) fn sleep_done(&self) {
        self.end.gateway_sleep_done();
    }

    /// Whether a frame of the local log waits for the gateway.
    pub(crate) fn log_readable(&self) -> bool {
        self.end.gateway_readable()
    }

    /// Writes what the cluster committed into the local log, in order,
    /// while it has room. Returns the work done.
    pub(crate) fn write_local(&mut self) -> usize {
        let mut n = 0;
        // One wake for the run (`GroupEnd::gateway_write_quiet`), and for
        // the messages `deliver_message` wrote before it.
        let mut wake = std::mem::replace(&mut self.wake, Notify::None);
        while let Some((flags, meta, payload)) = self.out.front() {
            match self.end.gateway_write_quiet(*flags, *meta, &[payload]) {
                Ok(w) => {
                    if w.is_wake() {
                        wake = w;
                    }
                    self.pop_out();
                    n += 1;
                }
                Err(McastError::WouldBlock) => break,
                Err(McastError::TooLarge { len, max }) => {
                    tracing::error!(group = %self.name, len, max, "a committed frame too large for this host's log");
                    self.pop_out();
                }
                Err(e) => {
                    tracing::warn!(group = %self.name, error = %e, "group gateway cannot write the local log");
                    break;
                }
            }
        }
        if let Err(e) = self.end.gateway_wake(wake) {
            tracing::warn!(group = %self.name, error = %e, "group gateway cannot wake its members");
        }
        n
    }
}

#[path = "crossing_deliver.rs"]
mod deliver;

#[cfg(test)]
#[path = "crossing_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "intake_tests.rs"]
mod intake_tests;
