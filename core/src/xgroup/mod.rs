//! The engine's group agent: for each group of `cluster.groups`, this
//! host's engine is the group's gateway (issue 17; DESIGN.md, "Groups",
//! "Across hosts"). It joins the group on this host as a member whose seat
//! the keeper records, so members find that the group crosses hosts
//! (`crate::group::cross`), and then, every duty cycle:
//!
//! 1. reads the local log: the keeper's views become `Join`/`Leave`
//!    commands (with a note saying why a member went), members' submit
//!    frames become messages; all of it gathers into one batch;
//! 2. proposes that batch to the cluster's log when the previous one is
//!    committed (`crossing.rs` says why one at a time), and proposes it
//!    again after a leader change;
//! 3. writes every committed view and message of the group into the local
//!    log, in the cluster log's order, this host's own senders' included:
//!    members read views and AGREED messages in one order at every host.
//!    A SAFE group's are written only once the cluster's SAFE index
//!    reaches their entry (`ClusterHandle::safe_index`): every node not
//!    down holds it, so no member anywhere delivers what another host's
//!    members could still miss.
//!
//! A node that lost the quorum for `cluster.node_timeout_ms` (a partition's
//! minority side), or never had it for that long since it started, tells
//! its members with a view of its own host and refuses their multicasts
//! (`McastError::NoQuorum`) until the quorum is back (`quorum.rs`); a
//! direct group's gateway writes nothing of its relay meanwhile, and on
//! the regain what it kept as the majority delivered it.
//!
//! It runs as a guest of the bridge's duty cycle (`crate::remote::guest`),
//! with the cluster node: one engine thread per host carries the network,
//! the node and the gateways, so a member's frame read here is proposed,
//! sent, committed and written into the local log by calls, with no
//! thread woken in between (the member's wake and the network are what a
//! message crossing a host costs). The node's commits and SAFE index
//! moves, and the relay messages the bridge received, raise an alarm word
//! that the next duty cycle reads (and that keeps the bridge from
//! sleeping: `has_work`). Before the bridge sleeps in its io_uring, the
//! agent announces itself as a sleeper on each group's log (a frame for
//! it: a member's submit wakes the ring's futex wait) and bounds the sleep
//! by `SLEEP`; a group holding committed frames for room in its log is
//! polled every millisecond instead (a member's read wakes nobody); at
//! its intake bound a group is not armed (a submit waits at its
//! cursor: a wait on the log would end at once; only a commit, in the
//! same duty cycle, lets it read on). It never blocks: the log is
//! written without waiting (what does not fit waits in the group's `out`
//! queue), proposals are `try_send`s. What it holds is bounded where it can be
//! (`crossing.rs` says how, and why none of it wedges the local log): its
//! members' messages not yet committed by `cluster.group_intake_bytes`
//! (past it, it leaves their submits in the log, which fills, and their
//! multicasts wait or return `WouldBlock`); a FIFO or UNORDERED group's
//! by its relay's window; `out` only by what holds this host's log (a
//! slow member: nothing pushes back on other hosts yet); what is held
//! while the quorum is lost by the node's first word from a leader. The
//! counts (held frames and bytes, `out`, paused) are logged every
//! `COUNTS_EVERY` while anything is held or messages were proposed
//! ("group gateway counts"; a direct group's "group relay counts").
//! Everything it reads (local frames, committed commands) is input: sizes,
//! hosts and member ids are checked, a bad item is logged and skipped.
//!
//! The gateway joins each group with the guarantee its `cluster.groups`
//! entry names (`"orders:safe"`; `GroupEnd::join_gateway`): a group
//! nobody keeps yet it creates with that guarantee, so an engine started
//! before the group's members makes it what every host agreed on; a group
//! its members made with another guarantee refuses the gateway (its
//! keeper compares before a seat is taken: the members never see the
//! gateway come and go), and the engine does not start, naming the group,
//! the guarantee found and the one configured. Every engine of a cluster
//! must name each group with one guarantee, or hosts would order it
//! differently. An entry without a guarantee (`"orders"`) takes the
//! group as the gateway finds it, and creates it AGREED. The gateway
//! takes the slow-member policy and sizes as they are, either way.
//!
//! FIFO and UNORDERED groups are relayed directly (`direct.rs`): no
//! consensus round trip on the data path. A member's submit frame is
//! numbered (the gateway's origin seq), tagged with the view it is sent
//! in, written into the local log at once and sent to every other host's
//! gateway on a reliable link of its own over the cluster's links
//! (`relay.rs`: cumulative acks, go-back-N from a bounded window that
//! pushes back on the members, so a link cut shorter than the node
//! timeout resumes with nothing lost, duplicated or reordered); each
//! gateway writes what arrives into its local log on arrival. The log
//! carries only the group's joins, leaves and views, and what keeps the
//! views synchronous (`sync.rs`): each gateway's `Start` (its run's
//! epoch), a `Flush` of every view by every live gateway (how far its
//! frames go before it), and, when a node is taken down, the survivors'
//! flushes of a barrier saying how far each got in its frames: the cut
//! is the furthest, and the survivor holding it puts the frames the
//! others lack in the log. A view is written once every flush it waits
//! for is committed and the frames before it are here: every member
//! delivers the same views, and each message in the same view, at the
//! cost of one consensus round at each view change (not per message).
//! A gateway reads its members' frames only once its own `Start` is
//! committed. While the quorum is lost the synchrony is held (`quorum.rs`
//! says what is kept, written or dropped, and why). Left for later: a gateway that caught up from a snapshot
//! knows only the `Start`s after it (a gateway it never heard of is not
//! waited for); every gateway relays to every other, members there or
//! not.

mod crossing;
mod direct;
mod listing;
mod note;
mod quorum;
mod relay;
mod sync;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::{Applied, ClusterHandle, Committed, NODES_GROUP};
use crate::cluster_port::RelayPort;
use crate::config::{CrossingGroup, EngineConfig};
use crate::engine::EngineError;
use crate::group::{GatewayJoinError, GroupEnd, GroupOptions};
use crate::wait::Deadline;

use crossing::{Crossing, Held};
use quorum::QuorumWatch;

/// The longest the bridge sleeps while a group cannot sleep on its log
/// (frames held for room in it).
const PARK: Duration = Duration::from_millis(1);
/// The longest the bridge sleeps for the agent (a batch in flight is
/// looked at again, for a leader change, at least this often).
const SLEEP: Duration = Duration::from_millis(10);
/// The alarm word's values.
const QUIET: u32 = 0;
const RAISED: u32 = 1;
/// How long the engine's start waits for each group's join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Committed entries handled per duty cycle.
const COMMITTED_PER_CYCLE: usize = 4096;
/// Relay messages taken per duty cycle.
const RELAY_PER_CYCLE: usize = 4096;
/// How often a direct group's counts are logged (when they moved).
const COUNTS_EVERY: Duration = Duration::from_millis(500);

/// Why the group agent did not start.
fn bad(why: String) -> EngineError {
    EngineError::Config(format!("cluster.groups: {why}"))
}

/// Why the gateway of `group` did not join it.
fn not_joined(group: &CrossingGroup, e: GatewayJoinError) -> EngineError {
    let name = &group.name;
    match e {
        GatewayJoinError::GuaranteeDiffers { found, asked } => bad(format!(
            "group {name:?} exists on this host {}, but this engine's cluster.groups names it {asked} (entry \
             \"{group}\"): every engine of the cluster must give a group one guarantee; name it \"{name}:{}\" on \
             every engine, or let its members leave and join it again as {asked}",
            found.map_or_else(|| "with another guarantee".to_owned(), |g| format!("as {g}")),
            found.map_or("<its guarantee>", |g| g.name()),
        )),
        e => bad(format!("cannot join group {name:?} as its gateway: {e}")),
    }
}

/// Joins every group of `config`'s `cluster.groups` as this host's
/// gateway (in `runtime_dir`, the engine's, else the user's) and returns
/// the agent, to run as a guest of the bridge's duty cycle
/// (`crate::remote::guest`; dropped, its gateways leave their groups);
/// `committed` is the cluster node's stream of committed commands (the
/// agent is its reader), `relay` the port of the direct relay of FIFO and
/// UNORDERED groups (without it they go through the cluster's log). The
/// node runs in the same duty cycle: what it commits and what the bridge
/// relays is seen by the agent's next `do_work` without a wake-up.
pub(crate) fn start(
    config: &EngineConfig,
    runtime_dir: Option<&std::path::Path>,
    cluster: ClusterHandle,
    committed: Receiver<Committed>,
    relay: Option<RelayPort>,
) -> Result<Gateways, EngineError> {
    let host = cluster.status().id;
    let host16 = u16::try_from(host)
        .ok()
        .filter(|h| u64::from(*h) <= crate::group::cross::MAX_HOST && *h != 0)
        .ok_or_else(|| bad(format!("cluster node id {host} is beyond what a group's frames can name")))?;
    let mut groups = Vec::new();
    let opts = match runtime_dir {
        Some(dir) => GroupOptions::new().runtime_dir(dir),
        None => GroupOptions::new(),
    };
    for group in &config.cluster().groups {
        let name = &group.name;
        let end = GroupEnd::join_gateway(name, &opts, host16, group.guarantee, Deadline::after(JOIN_TIMEOUT))
            .map_err(|e| not_joined(group, e))?;
        if end.slow_member().is_lossy() {
            return Err(bad(format!("group {name:?} is a Lap group: a group that crosses hosts must not lose")));
        }
        groups.push(Crossing::new(name.clone(), end, host, relay.is_some(), config.cluster().group_intake_bytes));
    }
    let max_bytes = config.cluster().max_message_bytes;
    let alarm = Arc::new(AtomicU32::new(QUIET));
    let raise = Arc::clone(&alarm);
    // Both hooks run on the bridge's thread, the agent's own: a flag the
    // next look before a sleep (`has_work`) or the next duty cycle sees,
    // with no futex wake.
    cluster.set_committed_hook(Box::new(move || {
        // SYNC: Release; pairs with the Acquire in `has_work` and the
        // agent's swap: the commands queued before are in the channel by then.
        raise.store(RAISED, Ordering::Release);
    }));
    if let Some(port) = &relay {
        let raise = Arc::clone(&alarm);
        port.set_wake(Box::new(move || {
            // SYNC: Release; pairs with the Acquire in `has_work` and the
            // agent's swap: the message queued before is in the channel by then.
            raise.store(RAISED, Ordering::Release);
        }));
    }
    let logged = std::time::Instant::now();
    let quorum = QuorumWatch::new(config.cluster().node_timeout);
    let armed = vec![false; groups.len()];
    let names: Vec<String> = config.cluster().groups.iter().map(ToString::to_string).collect();
    tracing::info!(host, groups = ?names, "group gateways started");
    Ok(Gateways { groups, cluster, committed, max_bytes, alarm, relay, logged, quorum, armed })
}

/// The agent: every crossing group of this host.
pub(crate) struct Gateways {
    groups: Vec<Crossing>,
    cluster: ClusterHandle,
    committed: Receiver<Committed>,
    max_bytes: usize,
    /// Raised by the cluster node after it queued committed commands or
    /// its SAFE index moved, or the bridge queued a relay message.
    alarm: Arc<AtomicU32>,
    relay: Option<RelayPort>,
    /// When the direct groups' counts were last logged.
    logged: std::time::Instant,
    /// The node's quorum as the members are told of it (`quorum.rs`).
    quorum: QuorumWatch,
    /// Per group: announced as a sleeper on its log for the bridge's
    /// current sleep (`before_sleep` to `after_sleep`).
    armed: Vec<bool>,
}

impl Gateways {
    /// Hands the relay messages that arrived to their groups.
    fn relay_in(&mut self) -> usize {
        let Some(port) = &self.relay else { return 0 };
        let mut n = 0;
        while n < RELAY_PER_CYCLE {
            let Some(bytes) = port.try_recv() else { break };
            n += 1;
            let Some(name) = relay::group_of(&bytes) else { continue };
            let Some(g) = self.groups.iter_mut().find(|g| g.name == name) else { continue };
            let Some(d) = &g.direct else { continue };
            match d.decode(&bytes) {
                Some((head, msg)) => g.relayed(&head, msg),
                None => tracing::debug!(group = %g.name, "group gateway drops a malformed relay message"),
            }
        }
        n
    }

    /// Sends what the direct groups queued for other hosts.
    fn relay_out(&mut self) -> usize {
        let mut n = 0;
        for g in &mut self.groups {
            let Some(d) = &mut g.direct else { continue };
            for (host, bytes) in d.out.drain(..) {
                n += 1;
                if let Some(port) = &self.relay {
                    // Dropped on a full queue: the link sends it again.
                    let _ = port.send(host, bytes);
                }
            }
        }
        n
    }

    /// Logs each direct group's counts every [`COUNTS_EVERY`], and an
    /// AGREED or SAFE group's when it holds anything or its count of
    /// proposed messages moved.
    fn log_counts(&mut self, now: std::time::Instant) {
        if now.saturating_duration_since(self.logged) < COUNTS_EVERY {
            return;
        }
        self.logged = now;
        for g in &mut self.groups {
            let held = g.held();
            let out = g.out_held();
            match &g.direct {
                Some(d) => {
                    let c = d.counts;
                    tracing::info!(
                        group = %g.name,
                        relayed = c.relayed,
                        received = c.received,
                        resent = c.resent,
                        dropped = c.dropped,
                        proposed_messages = g.proposed_messages,
                        views_pending = d.sync.pending(),
                        waiting = ?d.sync.waiting(),
                        out_frames = out.frames,
                        out_bytes = out.bytes,
                        "group relay counts"
                    );
                }
                None => {
                    let now = (g.proposed_messages, held, out, g.paused_len());
                    if g.logged_counts == Some(now) && held == Held::default() && out == Held::default() {
                        continue;
                    }
                    g.logged_counts = Some(now);
                    tracing::info!(
                        group = %g.name,
                        proposed_messages = g.proposed_messages,
                        held_frames = held.frames,
                        held_bytes = held.bytes,
                        intake_bytes = g.intake(),
                        throttled = g.throttled(),
                        out_frames = out.frames,
                        out_bytes = out.bytes,
                        paused = g.paused_len(),
                        "group gateway counts"
                    );
                }
            }
        }
    }
}

impl crate::remote::guest::Guest for Gateways {
    fn name(&self) -> &str {
        "group-gateways"
    }

    fn do_work(&mut self) -> usize {
        let mut work = 0;
        // SYNC: Acquire; pairs with the hooks' Release (lowered before the
        // channels are read: a commit or relay message queued after this
        // raises it again).
        self.alarm.swap(QUIET, Ordering::Acquire);
        work += self.relay_in();
        for g in &mut self.groups {
            work += g.read_local();
        }
        // Before the committed queue: on a regain, the view comes before
        // what was committed meanwhile; on a loss, what follows is held.
        // One clock read a cycle, for the quorum's bound and the counts.
        let now = std::time::Instant::now();
        if let Some(turn) = self.quorum.check(self.cluster.has_quorum(), now) {
            for g in &mut self.groups {
                g.turn(turn);
            }
            work += 1;
        }
        for c in self.committed.try_iter().take(COMMITTED_PER_CYCLE) {
            work += 1;
            let group = match &c.applied {
                Applied::View { group, reason, .. } if group == NODES_GROUP => {
                    for g in &mut self.groups {
                        g.node_event(c.index, *reason);
                    }
                    continue;
                }
                Applied::View { group, .. } | Applied::Message { group, .. } => group,
                Applied::Unchanged => continue,
            };
            if let Some(g) = self.groups.iter_mut().find(|g| g.name == *group) {
                g.committed(c.index, c.applied);
            }
        }
        // Read after the alarm's swap above: a move of the safe index the
        // node raised the alarm for before that swap is seen here.
        let safe = self.cluster.safe_index();
        for g in &mut self.groups {
            work += g.release(safe);
            work += g.direct_cycle();
            work += g.write_local();
            work += g.propose(&self.cluster, self.max_bytes);
            g.publish();
        }
        work += self.relay_out();
        self.log_counts(now);
        work
    }

    /// Each group's log word, unless the group waits for a commit (at its
    /// intake bound: the node in this same duty cycle ends that) or holds
    /// committed frames waiting for room (its members' reads wake nobody:
    /// polled every [`PARK`]). A batch in flight is looked at again, for a
    /// leader change, at least every [`SLEEP`].
    fn before_sleep(&mut self, sleep: &mut crate::remote::guest::Sleep) {
        for (g, armed) in self.groups.iter().zip(self.armed.iter_mut()) {
            sleep.at_most(SLEEP);
            if g.holding() {
                sleep.at_most(PARK);
                continue;
            }
            if g.throttled() || g.reads_paused() {
                continue;
            }
            match g.sleep_prepare() {
                Some((word, value, barrier)) => {
                    sleep.words.push((word, value));
                    sleep.barrier |= barrier;
                    *armed = true;
                }
                None => sleep.at_most(PARK),
            }
        }
    }

    fn has_work(&self) -> bool {
        // SYNC: Acquire; pairs with the hooks' Release.
        self.alarm.load(Ordering::Acquire) != QUIET
            || self.groups.iter().zip(&self.armed).any(|(g, armed)| *armed && g.log_readable())
    }

    fn after_sleep(&mut self) {
        for (g, armed) in self.groups.iter().zip(self.armed.iter_mut()) {
            if std::mem::take(armed) {
                g.sleep_done();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterNode, ClusterSettings, Transport};
    use crate::group::{Event, Guarantee, JoinError, RecvError};

    /// A link to nobody: the agent's start needs a node's handle and its
    /// committed stream, never a committed command.
    struct Nowhere;

    impl Transport for Nowhere {
        fn send(&mut self, _to: u64, _message: Vec<u8>) {}

        fn try_recv(&mut self) -> Option<Vec<u8>> {
            None
        }
    }

    fn node() -> (ClusterNode<Nowhere>, ClusterHandle, Receiver<Committed>) {
        ClusterNode::new(ClusterSettings::new(1, vec![1]), Nowhere).expect("node")
    }

    fn config(groups: &[&str]) -> EngineConfig {
        EngineConfig::builder()
            .cluster(true)
            .listen(Some("127.0.0.1:0"))
            .cluster_groups(groups)
            .build()
            .expect("config")
    }

    const JOIN: Duration = Duration::from_secs(10);

    /// `cluster.groups = ["xg-conf:safe"]` and nobody keeps the group:
    /// the gateway makes it SAFE, so a member that comes afterwards joins
    /// a SAFE group (one that asks for AGREED, the default, is refused).
    #[test]
    fn the_gateway_makes_a_group_with_the_configured_guarantee() {
        ringflow_testkit::isolate_runtime_dir();
        let (_node, handle, committed) = node();
        let agent = start(&config(&["xg-conf:safe"]), None, handle, committed, None).expect("start");
        let e = GroupEnd::join("xg-conf", &GroupOptions::new(), Deadline::after(JOIN)).err().expect("refused");
        assert!(matches!(e, JoinError::OptionsDiffer { what: "guarantee" }), "{e}");
        let safe = GroupOptions::new().guarantee(Guarantee::Safe);
        let member = GroupEnd::join("xg-conf", &safe, Deadline::after(JOIN)).expect("a SAFE member");
        assert_eq!(member.guarantee(), Guarantee::Safe);
        drop(member);
        drop(agent);
    }

    /// The bridge's sleep ends for a member's frame: before the sleep the
    /// gateways announce themselves on their group's log, and what a
    /// member then puts into it (its join's view) changes the futex word
    /// they handed the bridge (the ring's wait then returns at once or is
    /// woken: no lost wake) and shows as work before the sleep; afterwards
    /// the duty cycle reads it.
    #[test]
    fn a_members_frame_ends_the_bridges_sleep() {
        use crate::remote::guest::{Guest, Sleep};
        ringflow_testkit::isolate_runtime_dir();
        let (_node, handle, committed) = node();
        let mut gateways = start(&config(&["xg-sleep"]), None, handle, committed, None).expect("start");
        for _ in 0..1000 {
            if gateways.do_work() == 0 {
                break;
            }
        }
        let mut sleep = Sleep::with_capacity(4);
        gateways.before_sleep(&mut sleep);
        assert_eq!(sleep.words.len(), 1, "the group's log word");
        assert!(sleep.bound <= SLEEP, "a batch in flight is looked at again");
        if sleep.barrier {
            crate::membarrier::heavy_barrier().expect("barrier");
        }
        assert!(!gateways.has_work(), "nothing in the log yet");
        let (word, armed_value) = sleep.words[0];
        let member = GroupEnd::join("xg-sleep", &GroupOptions::new(), Deadline::after(JOIN)).expect("member");
        // SAFETY: the word lies in the group's log, which the gateway's end
        // keeps mapped for as long as `gateways` lives.
        let word = unsafe { &*(word as *const AtomicU32) };
        // SYNC: Acquire; pairs with the log's notify (a Release bump).
        assert_ne!(word.load(Ordering::Acquire), armed_value, "the armed word moved: the ring's wait ends");
        assert!(gateways.has_work(), "the frame shows before the sleep");
        gateways.after_sleep();
        assert!(gateways.do_work() > 0, "the next duty cycle reads it");
        drop(member);
    }

    /// A group its members made AGREED, and an engine configured to give
    /// it SAFE: the start fails, naming the group and both guarantees,
    /// and the members never see the gateway (the keeper refused it
    /// before a seat was taken). Named AGREED, or without a guarantee,
    /// the engine joins it.
    #[test]
    fn a_group_of_another_guarantee_fails_the_start() {
        ringflow_testkit::isolate_runtime_dir();
        let mut member = GroupEnd::join("xg-other", &GroupOptions::new(), Deadline::after(JOIN)).expect("member");
        let me = member.local_member();
        assert!(matches!(member.recv(Deadline::after(JOIN)), Ok(Event::View(_))), "its own join first");

        let (_node, handle, committed) = node();
        let e = start(&config(&["xg-other:safe"]), None, handle, committed, None).err().expect("refused");
        let text = e.to_string();
        for part in ["cluster.groups", "\"xg-other\"", "as AGREED", "names it SAFE", "xg-other:agreed"] {
            assert!(text.contains(part), "{text:?} should say {part:?}");
        }
        assert!(matches!(member.recv(Deadline::Now), Err(RecvError::WouldBlock)), "no view of a gateway");
        assert_eq!(member.members(), vec![me]);
        assert_eq!(member.crossing_host(), None);

        for entry in ["xg-other:agreed", "xg-other"] {
            let (_node, handle, committed) = node();
            let agent = start(&config(&[entry]), None, handle, committed, None).expect(entry);
            drop(agent);
        }
        assert_eq!(member.guarantee(), Guarantee::Agreed);
    }
}
