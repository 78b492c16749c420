//! The ringflow impls of scenario `group`: process groups through the
//! public API (`Group::join`, `mcast` / `loan`, `try_recv`), every member
//! a thread of this process, as the flow scenario runs its flows.
//!
//! A member receives its own messages too (as in CPG) unless it joins with
//! `loopback(false)` (JGroups' DONT_LOOPBACK), as the ping-pong members do:
//! each reads only the other's messages (the sides still skip their own,
//! should any arrive); a publisher skips reading its own unless the group is
//! reliable (`SlowMember::Block`), where its unread messages would hold the
//! log (and the pool) for everyone: then it drains them whenever the log is
//! full.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ringflow_api::{Event, Group, GroupOptions, GroupRecvError, McastError, Member};

use crate::error::BenchError;
use crate::fanout::{FanRx, FanTx};
use crate::flow::err;
use crate::pair::Waiter;
use crate::pingpong::{PingSide, PongSide};
use crate::wire::{Msg, Sink, Source, Template};

/// How long a join may take before the run fails (a hang guard).
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A group name of its own for each group of this process.
fn fresh_name() -> String {
    static RUN: AtomicUsize = AtomicUsize::new(0);
    // SYNC: Relaxed; a counter for unique names, nothing published with it.
    let n = RUN.fetch_add(1, Ordering::Relaxed);
    format!("ringflow-bench-{}-{n}", std::process::id())
}

/// `count` members of a new group with `opts`, in joining order (the first
/// created the group and keeps it).
pub fn members(opts: &GroupOptions, count: usize) -> Result<Vec<Group>, BenchError> {
    let name = fresh_name();
    (0..count).map(|_| Group::join_timeout(&name, opts, JOIN_TIMEOUT).map_err(|e| err("Group::join", e))).collect()
}

/// Hands the payload of message `m` to `f`: in place where the group
/// lends it, else copied into `buf` (a lapping group lends nothing).
/// `None` when the copy was overwritten while it was made (a lapped
/// member): the message is lost, the next receive says so.
#[inline]
fn with_payload<T>(
    m: &mut ringflow_api::Message<'_>,
    buf: &mut [u8],
    f: impl FnOnce(&[u8]) -> T,
) -> Result<Option<T>, BenchError> {
    if let Some(p) = m.payload() {
        return Ok(Some(f(p)));
    }
    match m.read_into(buf) {
        Ok(n) => Ok(Some(f(&buf[..n]))),
        Err(GroupRecvError::Overwritten) => Ok(None),
        Err(e) => Err(err("Message::read_into", e)),
    }
}

/// One member of a ping-pong.
struct Side {
    group: Group,
    me: Member,
    buf: [u8; 64],
}

impl Side {
    fn new(group: Group) -> Self {
        let me = group.local_member();
        Side { group, me, buf: [0; 64] }
    }

    /// Spins (`try_recv`) until a message from the other member, skipping
    /// its own and views, and hands its payload to `f`.
    #[inline]
    fn recv_other<T>(&mut self, w: &mut Waiter<'_>, mut f: impl FnMut(&[u8]) -> T) -> Result<T, BenchError> {
        loop {
            match self.group.try_recv() {
                Ok(Event::Message(mut m)) if m.sender() != self.me => {
                    if let Some(v) = with_payload(&mut m, &mut self.buf, &mut f)? {
                        return Ok(v);
                    }
                }
                Ok(_) => {}
                Err(GroupRecvError::WouldBlock) => w.wait()?,
                Err(e) => return Err(err("Group::try_recv", e)),
            }
        }
    }

    /// Multicasts `msg`, spinning (`try_mcast`) while the log is full.
    #[inline]
    fn mcast(&mut self, msg: &[u8], w: &mut Waiter<'_>) -> Result<(), BenchError> {
        loop {
            match self.group.try_mcast(msg) {
                Ok(()) => return Ok(()),
                Err(McastError::WouldBlock) => w.wait()?,
                Err(e) => return Err(err("Group::try_mcast", e)),
            }
        }
    }
}

/// A group member's ping-pong sides: its type's `mcast` sends, and its
/// `recv_other` receives what the other member sent (the one definition
/// for one host's members here and crossing hosts' in `group_remote`).
macro_rules! group_pingpong_side {
    ($side:ty) => {
        impl $crate::pingpong::PingSide<64> for $side {
            #[inline]
            fn send(
                &mut self,
                msg: &[u8; 64],
                w: &mut $crate::pair::Waiter<'_>,
            ) -> Result<(), $crate::error::BenchError> {
                self.mcast(msg, w)
            }

            #[inline]
            fn recv(&mut self, w: &mut $crate::pair::Waiter<'_>) -> Result<u64, $crate::error::BenchError> {
                self.recv_other(w, |m| $crate::wire::word(m, 0))
            }
        }

        impl $crate::pingpong::PongSide<64> for $side {
            #[inline]
            fn echo(&mut self, w: &mut $crate::pair::Waiter<'_>) -> Result<bool, $crate::error::BenchError> {
                let mut copy = [0u8; 64];
                let stop = self.recv_other(w, |m| {
                    let n = m.len().min(64);
                    copy[..n].copy_from_slice(&m[..n]);
                    $crate::pingpong::is_stop(m)
                })?;
                if stop {
                    return Ok(false);
                }
                self.mcast(&copy, w)?;
                Ok(true)
            }
        }
    };
}
pub(crate) use group_pingpong_side;

group_pingpong_side!(Side);

/// The two sides of a ping-pong between two members of a new group with
/// `opts`, for a driver that runs them among other variants.
pub fn pingpong_sides(opts: &GroupOptions) -> Result<(impl PingSide<64>, impl PongSide<64>), BenchError> {
    let mut both = members(opts, 2)?.into_iter().map(Side::new);
    match (both.next(), both.next()) {
        (Some(ping), Some(pong)) => Ok((ping, pong)),
        _ => Err(BenchError::Peer { call: "Group::join", error: "fewer members than joined".into() }),
    }
}

/// Reads (and drops) whatever of the log this member has not read: a
/// publisher's own messages, which hold a reliable log until it has.
/// Returns how many events it took.
fn drain_own(group: &mut Group) -> Result<usize, BenchError> {
    let mut took = 0;
    loop {
        match group.try_recv() {
            // Overwritten: lapped (a lossy group), a loss the next receive
            // reports.
            Ok(_) | Err(GroupRecvError::Overwritten) => took += 1,
            Err(GroupRecvError::WouldBlock) => return Ok(took),
            Err(e) => return Err(err("Group::try_recv", e)),
        }
    }
}

/// What a publisher does while the log is full: reads its own messages if
/// that frees room, else waits once.
#[inline]
fn make_room(group: &mut Group, w: &mut Waiter<'_>) -> Result<(), BenchError> {
    if drain_own(group)? == 0 {
        w.wait()?;
    }
    Ok(())
}

/// Multicasts each N-byte message (`try_mcast`, copied into the log once
/// for every member).
pub struct McastTx<const N: usize> {
    pub group: Group,
    pub template: Template<N>,
}

impl<const N: usize> FanTx for McastTx<N> {
    #[inline]
    fn publish(&mut self, msg: Msg, src: &Source, w: &mut Waiter<'_>) -> Result<(), BenchError> {
        let mut bytes = msg.to_array(&self.template);
        loop {
            match self.group.try_mcast(&bytes) {
                Ok(()) => return Ok(()),
                Err(McastError::WouldBlock) => {
                    make_room(&mut self.group, w)?;
                    src.restamp(&mut bytes);
                }
                Err(e) => return Err(err("Group::try_mcast", e)),
            }
        }
    }
}

/// Loans each message in the group's shared memory, writes it whole from
/// `source` and sends it: one write, read in place by every member.
pub struct LoanTx {
    pub group: Group,
    pub source: Box<[u8]>,
}

impl FanTx for LoanTx {
    #[inline]
    fn publish(&mut self, msg: Msg, src: &Source, w: &mut Waiter<'_>) -> Result<(), BenchError> {
        loop {
            let full = match self.group.try_loan(self.source.len()) {
                Ok(mut loan) => {
                    // In place where the group lends the slice (a reliable
                    // group does), else through `write`.
                    match loan.payload_mut() {
                        Some(p) => p.copy_from_slice(&self.source),
                        None => loan.write(0, &self.source),
                    }
                    let mut head = [0u8; 16];
                    msg.stamp(&mut head);
                    src.restamp(&mut head);
                    loan.write(0, &head);
                    return loan.send().map_err(|e| err("GroupLoan::send", e));
                }
                Err(McastError::WouldBlock) => true,
                Err(e) => return Err(err("Group::try_loan", e)),
            };
            if full {
                make_room(&mut self.group, w)?;
            }
        }
    }
}

/// A subscribing member: each message read whole (`touch_all`, small
/// messages) or only its 16-byte header (large ones), in place where the
/// group lends it; views and losses are taken and not counted.
pub struct Rx {
    pub group: Group,
    pub touch_all: bool,
    pub buf: [u8; 64],
}

impl Rx {
    pub fn new(group: Group, touch_all: bool) -> Self {
        Rx { group, touch_all, buf: [0; 64] }
    }
}

impl FanRx for Rx {
    #[inline]
    fn drain(&mut self, sink: &mut Sink, max: usize) -> Result<usize, BenchError> {
        for took in 0..max {
            let stop = match self.group.try_recv() {
                Ok(Event::Message(mut m)) => {
                    let touch_all = self.touch_all;
                    with_payload(&mut m, &mut self.buf, |p| {
                        if touch_all {
                            sink.on_bytes(p)
                        } else {
                            sink.on_msg(Msg::read(&p[..16]), 0)
                        }
                    })?
                    .transpose()?
                    .unwrap_or(false)
                }
                // Views, losses, and a message overwritten as it was
                // found (a lapped member: the next receive reports it).
                Ok(_) | Err(GroupRecvError::Overwritten) => false,
                Err(GroupRecvError::WouldBlock) => return Ok(took),
                Err(e) => return Err(err("Group::try_recv", e)),
            };
            if stop {
                return Ok(took + 1);
            }
        }
        Ok(max)
    }
}
