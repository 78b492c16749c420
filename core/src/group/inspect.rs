//! Looking at a running group from outside (`ringflow ls`, `ringflow stat`):
//! connect to the group's keeper by name and ask for its memory (INSPECT;
//! the keeper checks our credentials against the group's permit as it does
//! a joiner's, and answers with the memfd), map it, and copy out what a
//! tool shows: the keeper, the latest view, the parameters, each member
//! table entry, and each member's lag — the log's tail minus the member's
//! published cursor — computed here, by the one that maps the log. A member
//! that stopped reading runs no code, so nobody else could publish its lag.
//!
//! It takes no slot and never writes a byte of the group's memory (it
//! reads words through atomics; the mapping is read-write only because
//! members' segments are mapped so, and an inspector the permit lets in
//! could join and get the same memfd anyway). It never waits on a member.
//! Everything it reads is a peer's input: a forged word makes a wrong
//! figure, never a hang, a panic or an allocation of a forged size (the
//! table is walked within the validated parameters).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;

use ringflow_ring::broadcast;
use ringflow_shm::Segment;

use super::join::{control_name, GROUP_SUFFIX};
use super::memory::{GroupMemory, P_KEEPER_PID, P_LATEST_VIEW};
use super::options::{Guarantee, SlowMember};
use super::table::{self, Counters};
use super::view::Member;
use super::wire::{Msg, Refusal, MAX_LEN};
use crate::control::{ConnectError, ControlConn, DirError, NameError, RuntimeDir};
use crate::flow::FlowSetupError;
use crate::wait::Deadline;

/// The group a name bound in a runtime directory belongs to (`orders` for
/// `orders.group`), or `None` for a flow's name.
pub fn group_of_bound_name(bound: &str) -> Option<&str> {
    bound.strip_suffix(GROUP_SUFFIX).filter(|g| !g.is_empty())
}

/// What a member table entry says of its seat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Admitted; its join view is not committed yet.
    Joining,
    /// A member.
    Active,
    /// Being removed for holding senders back (Evict groups).
    Evicting,
    /// Removed; its seat is freed once its process lets go.
    Evicted,
}

impl MemberState {
    fn from_word(w: u64) -> Option<MemberState> {
        Some(match w {
            table::JOINING => MemberState::Joining,
            table::ACTIVE => MemberState::Active,
            table::EVICTING => MemberState::Evicting,
            table::EVICTED => MemberState::Evicted,
            _ => return None,
        })
    }

    /// The state's name, as `ringflow stat` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Joining => "joining",
            MemberState::Active => "active",
            MemberState::Evicting => "evicting",
            MemberState::Evicted => "evicted",
        }
    }
}

/// One member as the group's memory shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSnapshot {
    /// Who.
    pub member: Member,
    /// Its seat: member table entry and consumer slot of the log.
    pub seat: usize,
    /// Where it is in its life in the group.
    pub state: MemberState,
    /// Its counters as it last wrote them into the table (every 64
    /// receives and at each view; its process's stats slot has them live).
    pub counters: Counters,
    /// Bytes of log between its published cursor and the tail: what it has
    /// not handed back yet (a message it read counts until its next
    /// receive call); `None` when its seat holds no cursor (evicted, or
    /// between join and grant).
    pub lag_bytes: Option<u64>,
}

/// A group as its memory shows it at one moment.
#[derive(Clone, Debug)]
pub struct GroupSnapshot {
    /// The group's name.
    pub name: String,
    /// The process that keeps the group now.
    pub keeper_pid: u32,
    /// The id of the latest view committed.
    pub view_id: u64,
    /// The group's delivery guarantee.
    pub guarantee: Guarantee,
    /// What the group does with a slow member.
    pub slow: SlowMember,
    /// Bytes of log.
    pub capacity: u64,
    /// The most members the group takes.
    pub max_members: usize,
    /// The group's largest message, in bytes.
    pub max_message: usize,
    /// The log's tail (bytes claimed since it was laid out).
    pub tail: u64,
    /// Members by id (joining order).
    pub members: Vec<MemberSnapshot>,
}

impl GroupSnapshot {
    /// The member furthest behind the tail, if any member lags at all (the
    /// lower id among equals).
    pub fn slowest(&self) -> Option<&MemberSnapshot> {
        self.members
            .iter()
            .filter(|m| m.lag_bytes.is_some_and(|l| l > 0))
            .min_by_key(|m| (std::cmp::Reverse(m.lag_bytes), m.member.id))
    }
}

/// Why a group could not be inspected.
#[derive(Debug)]
#[non_exhaustive]
pub enum InspectError {
    /// The name cannot name a group.
    Name(NameError),
    /// The runtime directory is unusable (missing, wrong owner or mode).
    RuntimeDir(DirError),
    /// Nobody keeps a group of this name.
    NotFound {
        /// The group name looked up.
        name: String,
    },
    /// Connecting to the keeper failed otherwise.
    Connect(ConnectError),
    /// The keeper does not let this process look (the group's `Permit`).
    PermissionDenied,
    /// The keeper did not answer before the deadline.
    TimedOut,
    /// The keeper hung up without answering (it is going, or a keeper
    /// without INSPECT).
    KeeperGone,
    /// The keeper's answer or the group's memory is invalid.
    Corrupt {
        /// What was found wrong.
        what: &'static str,
    },
    /// The group's memory could not be mapped or does not check out.
    Setup(FlowSetupError),
    /// A system call failed.
    Io {
        /// The system call that failed.
        op: &'static str,
        /// Its error.
        source: io::Error,
    },
}

impl fmt::Display for InspectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InspectError::Name(e) => write!(f, "cannot inspect the group: {e}"),
            InspectError::RuntimeDir(e) => write!(f, "cannot inspect the group: {e}"),
            InspectError::NotFound { name } => write!(f, "nobody keeps a group named {name:?}"),
            InspectError::Connect(e) => write!(f, "cannot inspect the group: {e}"),
            InspectError::PermissionDenied => f.write_str("the group's keeper refused our credentials"),
            InspectError::TimedOut => f.write_str("the group's keeper did not answer in time"),
            InspectError::KeeperGone => f.write_str("the group's keeper hung up without answering"),
            InspectError::Corrupt { what } => write!(f, "corrupt group: {what}"),
            InspectError::Setup(e) => write!(f, "cannot map the group's memory: {e}"),
            InspectError::Io { op, source } => write!(f, "cannot inspect the group: {op}: {source}"),
        }
    }
}

impl std::error::Error for InspectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InspectError::Name(e) => Some(e),
            InspectError::RuntimeDir(e) => Some(e),
            InspectError::Connect(e) => Some(e),
            InspectError::Setup(e) => Some(e),
            InspectError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Inspects group `name` of runtime directory `dir`, waiting for its
/// keeper until `deadline`.
pub fn inspect(dir: &Path, name: &str, deadline: Deadline) -> Result<GroupSnapshot, InspectError> {
    let cname = control_name(name).map_err(|e| match e {
        super::JoinError::Name(n) => InspectError::Name(n),
        _ => InspectError::Corrupt { what: "group name" },
    })?;
    let dir = RuntimeDir::at(dir).map_err(InspectError::RuntimeDir)?;
    let conn = ControlConn::connect_deadline(&dir, &cname, deadline).map_err(|e| match e {
        ConnectError::NotFound { .. } => InspectError::NotFound { name: name.to_owned() },
        e => InspectError::Connect(e),
    })?;
    let mut b = Vec::new();
    Msg::Inspect.encode(&mut b);
    conn.send_deadline(&b, &[], deadline).map_err(|_| InspectError::KeeperGone)?;
    let mut buf = [0u8; MAX_LEN];
    let mut fds = [None];
    let timeout = match deadline {
        Deadline::Now => Some(std::time::Duration::ZERO),
        d => d.remaining(),
    };
    let got = match conn.recv(&mut buf, &mut fds, timeout) {
        Ok(r) => r,
        Err(crate::control::RecvError::TimedOut | crate::control::RecvError::WouldBlock) => {
            return Err(InspectError::TimedOut)
        }
        Err(crate::control::RecvError::Io { op, source }) => return Err(InspectError::Io { op, source }),
        Err(_) => return Err(InspectError::KeeperGone),
    };
    match Msg::decode(&buf[..got.len]) {
        Ok(Msg::Inspected) => {}
        Ok(Msg::Refuse { reason, .. }) if Refusal::from_code(reason) == Some(Refusal::Permission) => {
            return Err(InspectError::PermissionDenied)
        }
        _ => return Err(InspectError::Corrupt { what: "keeper's answer" }),
    }
    let fd = fds[0].take().ok_or(InspectError::Corrupt { what: "answer without the group's memory" })?;
    let segment = Segment::from_fd(fd, None).map_err(|e| InspectError::Setup(e.into()))?;
    let mem = GroupMemory::attach(segment).map_err(InspectError::Setup)?;
    Ok(snapshot(name, &mem))
}

/// Copies the figures out of a group's memory.
pub(crate) fn snapshot(name: &str, mem: &GroupMemory) -> GroupSnapshot {
    let config = mem.config;
    // SYNC: Relaxed; a figure the keeper stores (Relaxed) as it starts.
    let keeper_pid = mem.param(P_KEEPER_PID).load(Ordering::Relaxed) as u32;
    // SYNC: Acquire; pairs with the keeper's Release store after a commit.
    let view_id = mem.param(P_LATEST_VIEW).load(Ordering::Acquire);
    // The tail first: a cursor read later can only be further on, so a lag
    // is never overstated (saturating: a cursor past this tail lags 0).
    let tail = broadcast::tail(&mem.log).unwrap_or(0);
    let mut members = Vec::new();
    for seat in 0..config.max_members {
        let Some(e) = table::entry(&mem.table, seat) else { break };
        let Some(state) = MemberState::from_word(e.state()) else { continue };
        let holder = e.holder();
        let lag_bytes = match broadcast::consumer_cursor(&mem.log, seat) {
            Ok(Some(cursor)) => Some(tail.saturating_sub(cursor)),
            _ => None,
        };
        members.push(MemberSnapshot {
            member: Member::local(holder.member_id, holder.pid),
            seat,
            state,
            counters: e.counters(),
            lag_bytes,
        });
    }
    members.sort_by_key(|m| (m.member.id, m.seat));
    GroupSnapshot {
        name: name.to_owned(),
        keeper_pid,
        view_id,
        guarantee: config.guarantee,
        slow: config.slow,
        capacity: config.capacity as u64,
        max_members: config.max_members,
        max_message: config.max_message,
        tail,
        members,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::group::{Event, GroupEnd, GroupOptions, RecvError};

    const LONG: Deadline = Deadline::Never;

    fn opts() -> GroupOptions {
        GroupOptions::new().log_capacity(1 << 16).max_message(1024).max_members(4).spin(Duration::ZERO)
    }

    /// Receives the next event and drops it (a message is consumed).
    fn take(g: &mut GroupEnd) -> &'static str {
        match g.recv(Deadline::after(Duration::from_secs(20))).expect("an event") {
            Event::Message(_) => "message",
            Event::View(_) => "view",
            Event::Lost { .. } => "lost",
        }
    }

    #[test]
    fn an_outside_look_names_members_their_lag_and_the_slowest() {
        let dir = ringflow_testkit::isolate_runtime_dir();
        let mut reader = GroupEnd::join("inspect-lag", &opts(), LONG).expect("create");
        let mut idle = GroupEnd::join("inspect-lag", &opts(), LONG).expect("join");
        assert_eq!((take(&mut reader), take(&mut reader), take(&mut idle)), ("view", "view", "view"));
        for i in 0u64..100 {
            reader.mcast(&i.to_le_bytes(), LONG).expect("mcast");
        }
        for _ in 0..100 {
            assert_eq!(take(&mut reader), "message");
        }
        // Looking again hands the last message's room back.
        assert!(matches!(reader.recv(Deadline::Now), Err(RecvError::WouldBlock)));

        let snap = inspect(dir, "inspect-lag", Deadline::after(Duration::from_secs(20))).expect("inspect");
        assert_eq!(snap.keeper_pid, std::process::id());
        assert_eq!(snap.view_id, 2);
        let ids: Vec<u64> = snap.members.iter().map(|m| m.member.id).collect();
        assert_eq!(ids, vec![reader.local_member().id, idle.local_member().id]);
        assert!(snap.members.iter().all(|m| m.state == MemberState::Active && m.member.pid == std::process::id()));
        let (r, i) = (&snap.members[0], &snap.members[1]);
        assert_eq!(r.lag_bytes, Some(0), "the reader read everything");
        assert!(i.lag_bytes.is_some_and(|l| l >= 100 * 8), "the idle member lags by 100 frames: {i:?}");
        assert_eq!(snap.slowest().map(|m| m.member.id), Some(idle.local_member().id));
        // The table holds what the member last stored: every 64 receives.
        assert_eq!(r.counters.received, 64);
        // The member's own view counts from its local cursor, which may be
        // ahead of the one it last published (it publishes in batches).
        assert!(idle.stats().lag_bytes <= i.lag_bytes.unwrap_or(0));
        assert_eq!(reader.stats().latency.map(|h| h.len()), Some(100));

        // Once the idle member catches up, nobody is behind.
        for _ in 0..100 {
            assert_eq!(take(&mut idle), "message");
        }
        assert!(matches!(idle.recv(Deadline::Now), Err(RecvError::WouldBlock)));
        let snap = inspect(dir, "inspect-lag", Deadline::after(Duration::from_secs(20))).expect("inspect again");
        assert!(snap.members.iter().all(|m| m.lag_bytes == Some(0)), "{snap:?}");
        assert!(snap.slowest().is_none());

        idle.leave(LONG).expect("leave");
        reader.leave(LONG).expect("leave");
        match inspect(dir, "inspect-lag", Deadline::after(Duration::from_secs(20))) {
            Err(InspectError::NotFound { name }) => assert_eq!(name, "inspect-lag"),
            other => panic!("a group nobody keeps: {other:?}"),
        }
        assert!(matches!(inspect(dir, "a/b", Deadline::Now), Err(InspectError::Name(_))));
        assert_eq!(group_of_bound_name("orders.group"), Some("orders"));
        assert_eq!(group_of_bound_name("orders"), None);
        assert_eq!(group_of_bound_name(".group"), None);
    }
}
