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
//! minority side) tells its members with a view of its own host and
//! refuses their multicasts (`McastError::NoQuorum`) until the quorum is
//! back (`quorum.rs`).
//!
//! It runs on an engine thread of its own that sleeps between duty cycles
//! on its group's log (a frame for it) and on an alarm word the cluster
//! node raises after it queued committed commands or its SAFE index moved
//! (a follower's moves on the leader's safe message, not on a commit:
//! without the alarm a SAFE change would wait out a sleep); with several groups,
//! or frames waiting for room, it polls every millisecond instead. It
//! never blocks: the log is written without waiting (what does
//! not fit waits in the agent's queue), proposals are `try_send`s.
//! Everything it reads (local frames, committed commands) is input: sizes,
//! hosts and member ids are checked, a bad item is logged and skipped.
//!
//! The gateway joins a group as it finds it (`GroupEnd::join_gateway`):
//! when it creates it, with the default options (AGREED). A SAFE group
//! crosses hosts when its members made it before the engine started.
//!
//! Not yet: FIFO and UNORDERED relayed without a consensus round trip
//! (a crossing group of those guarantees is carried through the cluster's
//! log like an AGREED one: every message reaches every host once and in
//! its sender's order, one consensus round trip later than a direct relay
//! would deliver it).

mod crossing;
mod listing;
mod note;
mod quorum;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::cluster::{Applied, ClusterHandle, Committed};
use crate::config::{EngineConfig, IdleStrategy};
use crate::engine::{Agent, Engine, EngineError};
use crate::group::{GroupEnd, GroupOptions};
use crate::wait::Deadline;

use crossing::Crossing;
use quorum::QuorumWatch;

/// The longest the agent's thread parks between duty cycles when it
/// cannot sleep on its group's log (several groups, or frames held).
const PARK: Duration = Duration::from_millis(1);
/// The longest it sleeps on its group's log (a batch in flight is looked
/// at again, for a leader change, at least this often).
const SLEEP: Duration = Duration::from_millis(10);
/// The alarm word's values.
const QUIET: u32 = 0;
const RAISED: u32 = 1;
/// How long the engine's start waits for each group's join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Committed entries handled per duty cycle.
const COMMITTED_PER_CYCLE: usize = 4096;

/// The running group agent: its engine thread.
pub struct GroupAgent {
    /// Behind a mutex only so the engine handle is `Sync`.
    engine: Mutex<Option<Engine>>,
}

impl GroupAgent {
    /// Stops the agent (its groups' gateway ends leave: every member of
    /// other hosts is gone for this host's members).
    pub fn shutdown(self) -> Result<(), EngineError> {
        match self.engine.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(engine) => engine.shutdown(Duration::from_secs(5)).map(drop),
            None => Ok(()),
        }
    }
}

impl Drop for GroupAgent {
    fn drop(&mut self) {
        if let Some(engine) = self.engine.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = engine.shutdown(Duration::from_secs(5));
        }
    }
}

/// Why the group agent did not start.
fn bad(why: String) -> EngineError {
    EngineError::Config(format!("cluster.groups: {why}"))
}

/// Joins every group of `config`'s `cluster.groups` as this host's
/// gateway and starts the agent on a thread of its own; `committed` is the
/// cluster node's stream of committed commands (the agent is its reader).
pub fn start(
    config: &EngineConfig,
    cluster: ClusterHandle,
    committed: Receiver<Committed>,
) -> Result<GroupAgent, EngineError> {
    let host = cluster.status().id;
    let host16 = u16::try_from(host)
        .ok()
        .filter(|h| u64::from(*h) <= crate::group::cross::MAX_HOST && *h != 0)
        .ok_or_else(|| bad(format!("cluster node id {host} is beyond what a group's frames can name")))?;
    let mut groups = Vec::new();
    for name in &config.cluster().groups {
        let end = GroupEnd::join_gateway(name, &GroupOptions::new(), host16, Deadline::after(JOIN_TIMEOUT))
            .map_err(|e| bad(format!("cannot join group {name:?} as its gateway: {e}")))?;
        if end.slow_member().is_lossy() {
            return Err(bad(format!("group {name:?} is a Lap group: a group that crosses hosts must not lose")));
        }
        groups.push(Crossing::new(name.clone(), end, host));
    }
    let max_bytes = config.cluster().max_message_bytes;
    let alarm = Arc::new(AtomicU32::new(QUIET));
    let raise = Arc::clone(&alarm);
    cluster.set_committed_hook(Box::new(move || {
        // SYNC: Release; pairs with the Acquire in the agent's wait and its
        // swap: the commands queued before are in the channel by then.
        raise.store(RAISED, Ordering::Release);
        // SAFETY: a word of ours, alive as long as this hook (an Arc).
        let _ = unsafe { crate::futex::wake(raise.as_ptr(), u32::MAX) };
    }));
    let quorum = QuorumWatch::new(config.cluster().node_timeout);
    let agent = Gateways { groups, cluster, committed, max_bytes, alarm, quorum };
    let thread = EngineConfig::builder()
        .threads(1)
        .idle(IdleStrategy::Park)
        .build()
        .map_err(|e| bad(format!("its thread's configuration: {e}")))?;
    let engine = Engine::start(&thread, vec![Box::new(agent)])?;
    tracing::info!(host, groups = ?config.cluster().groups, "group gateways started");
    Ok(GroupAgent { engine: Mutex::new(Some(engine)) })
}

/// The agent: every crossing group of this host.
struct Gateways {
    groups: Vec<Crossing>,
    cluster: ClusterHandle,
    committed: Receiver<Committed>,
    max_bytes: usize,
    /// Raised by the cluster node after it queued committed commands or
    /// its SAFE index moved.
    alarm: Arc<AtomicU32>,
    /// The node's quorum as the members are told of it (`quorum.rs`).
    quorum: QuorumWatch,
}

impl Agent for Gateways {
    fn name(&self) -> &str {
        "group-gateways"
    }

    fn do_work(&mut self) -> usize {
        let mut work = 0;
        for g in &mut self.groups {
            work += g.read_local();
        }
        // Before the committed queue: on a regain, the view comes before
        // what was committed meanwhile; on a loss, what follows is held.
        if let Some(turn) = self.quorum.check(self.cluster.has_quorum(), std::time::Instant::now()) {
            for g in &mut self.groups {
                g.turn(turn);
            }
            work += 1;
        }
        // SYNC: Acquire; pairs with the hook's Release (lowered before the
        // channel is read: a commit queued after this raises it again).
        self.alarm.swap(QUIET, Ordering::Acquire);
        for c in self.committed.try_iter().take(COMMITTED_PER_CYCLE) {
            work += 1;
            let group = match &c.applied {
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
            work += g.write_local();
            work += g.propose(&self.cluster, self.max_bytes);
        }
        work
    }

    fn sleeps(&self) -> bool {
        true
    }

    fn wait(&mut self, timeout: Duration) {
        match self.groups.as_slice() {
            [one] if !one.holding() => one.wait(&self.alarm, timeout.min(SLEEP)),
            _ => std::thread::park_timeout(timeout.min(PARK)),
        }
    }
}
