//! The ringflow impls of scenario `group-remote`: a group that crosses
//! hosts (issue 17), its hosts being [`RemoteEngine`]s of this process,
//! each with the cluster on, `cluster.groups` naming the group, a fixed
//! port of its own on 127.0.0.1 and a runtime directory of its own (a
//! group's name is per runtime directory: members and gateways find the
//! group there through `GroupOptions::runtime_dir`).
//!
//! The ping-pong runs as scenario remote's flow ping-pong (`remote-flow`)
//! does: each engine in invoker mode, driven by its host's member, which
//! busy-polls on its own core (`GroupOptions::invoker`, a long spin): a
//! message crosses hosts on the members' threads alone, waking nobody.
//! The engines start first and make the group with the case's guarantee
//! (`cluster.groups = ["name:guarantee"]`); the members join after.
//!
//! The fan-out has three hosts and three members, more threads than
//! cores: its engines run in dedicated mode (one engine thread per host,
//! whose duty cycle runs the bridge, the cluster node and the group's
//! gateway, parking when idle) and its members join before the engines
//! start, so the group is made with their guarantee. Its members wait in
//! the kernel (a blocking receive that spins briefly, then parks): a
//! spinning member would hold the core the engine threads need.
//!
//! A member waits, before anything is measured, for a view holding every
//! member of the case.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ringflow_api::remote::RemoteEngine;
use ringflow_api::{Event, Group, GroupOptions, GroupRecvError, Guarantee, McastError};
use ringflow_core::config::{EngineConfig, IdleStrategy, ThreadingMode};

use crate::error::BenchError;
use crate::fanout::{FanRx, FanTx};
use crate::flow::{err, DirGuard};
use crate::os::{check_after_timeout, BLOCK_TIMEOUT};
use crate::pair::Waiter;
use crate::wire::{Msg, Sink, Source, Template};

/// The longest a set-up step (an engine's start, a join, the view that
/// holds every member) may take.
const SETUP: Duration = Duration::from_secs(20);
/// The cluster's clock in the bench: elections within 100–200 ms, so a
/// run's set-up stays short. Commits do not wait for ticks (the leader
/// sends an append at once and broadcasts the new commit index with it).
const TICK_MS: u64 = 10;
const ELECTION_TICKS: usize = 10;
const HEARTBEAT_TICKS: usize = 2;
/// The longest a subscriber waits for the next event: the run's end
/// for a subscriber that has not had the stop message by then.
const RX_WAIT: Duration = Duration::from_secs(10);
/// How long a stopping engine may take.
const STOP: Duration = Duration::from_secs(5);
/// How long a ping-pong member spins, driving its engine, before it
/// sleeps in the engine's io_uring: longer than any round trip.
const DRIVE_SPIN: Duration = Duration::from_secs(1);

/// A group name of its own for each run of this process.
fn fresh_name() -> String {
    static RUN: AtomicUsize = AtomicUsize::new(0);
    // SYNC: Relaxed; a counter for unique names, nothing published with it.
    let n = RUN.fetch_add(1, Ordering::Relaxed);
    format!("ringflow-bench-xg-{}-{n}", std::process::id())
}

/// `n` ports of 127.0.0.1 free a moment ago (the cluster numbers its nodes
/// by their fixed addresses): bound at once, then let go.
fn free_ports(n: usize) -> Result<Vec<u16>, BenchError> {
    let os = |call| move |source| BenchError::Os { call, source };
    let held = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(os("bind(127.0.0.1:0)")))
        .collect::<Result<Vec<_>, _>>()?;
    held.iter().map(|l| l.local_addr().map(|a| a.port()).map_err(os("getsockname"))).collect()
}

/// One host: its runtime directory and its engine (stopped on drop, before
/// the directory goes).
struct Host {
    engine: Option<RemoteEngine>,
    dir: DirGuard,
}

impl Drop for Host {
    fn drop(&mut self) {
        // Stopped explicitly, never dropped running (see `remote.rs`'s
        // `Stopping`); an error at teardown changes no figure.
        if let Some(engine) = self.engine.take() {
            let _ = engine.shutdown_within(STOP);
        }
    }
}

/// The hosts of one run and the group that crosses them. Members must be
/// gone (dropped) before the hosts are: fields drop in order.
pub(crate) struct Hosts {
    name: String,
    hosts: Vec<Host>,
}

impl Hosts {
    /// `count` runtime directories and the group's name; no engine yet.
    fn dirs(count: usize) -> Hosts {
        let hosts = (0..count).map(|_| Host { engine: None, dir: DirGuard::new() }).collect();
        Hosts { name: fresh_name(), hosts }
    }

    /// A member's options on host `i`: `guarantee`, never its own messages.
    fn member_opts(&self, i: usize, guarantee: Guarantee) -> GroupOptions {
        GroupOptions::new().guarantee(guarantee).loopback(false).runtime_dir(self.hosts[i].dir.path())
    }

    /// Joins a member on host `i` (before or after its engine started).
    fn join(&self, i: usize, guarantee: Guarantee) -> Result<Group, BenchError> {
        Group::join_timeout(&self.name, &self.member_opts(i, guarantee), SETUP).map_err(|e| err("Group::join", e))
    }

    /// Joins a member on host `i`, whose engine runs in invoker mode: the
    /// member drives it, busy-polling (see the module doc).
    fn join_driving(&self, i: usize, guarantee: Guarantee) -> Result<Group, BenchError> {
        let invoker = self.hosts[i].engine.as_ref().and_then(RemoteEngine::invoker);
        let opts = self.member_opts(i, guarantee).invoker(invoker).spin(DRIVE_SPIN);
        Group::join_timeout(&self.name, &opts, SETUP).map_err(|e| err("Group::join", e))
    }

    /// Starts every host's engine in `mode`: the cluster of all of them,
    /// the group in `cluster.groups` with `guarantee` (what the group gets
    /// if the gateway makes it).
    fn start(&mut self, mode: ThreadingMode, guarantee: Guarantee) -> Result<(), BenchError> {
        let ports = free_ports(self.hosts.len())?;
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        for (i, host) in self.hosts.iter_mut().enumerate() {
            let peers = addrs.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, a)| a.as_str());
            let builder = match mode {
                ThreadingMode::Dedicated => EngineConfig::builder().mode(mode).idle(IdleStrategy::Park),
                ThreadingMode::Invoker => EngineConfig::builder().mode(mode),
            };
            let config = builder
                .listen(Some(&addrs[i]))
                .peers(peers)
                .cluster(true)
                .cluster_tick_ms(TICK_MS)
                .cluster_election_ticks(ELECTION_TICKS)
                .cluster_heartbeat_ticks(HEARTBEAT_TICKS)
                .cluster_group(&self.name, guarantee)
                .build()
                .map_err(|e| err("EngineConfig::build", e))?;
            let engine = RemoteEngine::start(&config, Some(host.dir.path().to_path_buf()))
                .map_err(|e| err("RemoteEngine::start", e))?;
            host.engine = Some(engine);
        }
        Ok(())
    }

    /// The address host `i` listens on (for a peer that talks to it).
    #[cfg(test)]
    fn addr(&self, i: usize) -> Option<std::net::SocketAddr> {
        self.hosts[i].engine.as_ref().and_then(RemoteEngine::listen_addr)
    }
}

/// Waits until `group`'s view holds `members` members (its own included),
/// taking every event before it.
fn await_view(group: &mut Group, members: usize) -> Result<(), BenchError> {
    let until = Instant::now() + SETUP;
    while group.members().len() < members {
        if Instant::now() >= until {
            let error = format!("{} of {members} members in view after {SETUP:?}", group.members().len());
            return Err(BenchError::Peer { call: "Group::recv (view)", error });
        }
        match group.recv_timeout(Duration::from_millis(50)) {
            Ok(_) | Err(GroupRecvError::TimedOut | GroupRecvError::WouldBlock) => {}
            Err(e) => return Err(err("Group::recv (view)", e)),
        }
    }
    Ok(())
}

/// One member of the ping-pong.
pub(crate) struct Side {
    group: Group,
}

impl Side {
    /// Waits (spinning on the engine it drives, see the module doc) for
    /// the other member's next message and hands its payload to `f`.
    #[inline]
    fn recv_other<T>(&mut self, w: &mut Waiter<'_>, mut f: impl FnMut(&[u8]) -> T) -> Result<T, BenchError> {
        let me = self.group.local_member();
        let mut buf = [0u8; 64];
        loop {
            match self.group.recv_timeout(BLOCK_TIMEOUT) {
                Ok(Event::Message(mut m)) if m.sender() != me => {
                    if let Some(p) = m.payload() {
                        return Ok(f(p));
                    }
                    let n = m.read_into(&mut buf).map_err(|e| err("Message::read_into", e))?;
                    return Ok(f(&buf[..n]));
                }
                Ok(_) => {}
                Err(GroupRecvError::TimedOut | GroupRecvError::WouldBlock) => check_after_timeout(w)?,
                Err(e) => return Err(err("Group::recv", e)),
            }
        }
    }

    #[inline]
    fn mcast(&mut self, msg: &[u8], w: &mut Waiter<'_>) -> Result<(), BenchError> {
        loop {
            match self.group.mcast_timeout(msg, BLOCK_TIMEOUT) {
                Ok(()) => return Ok(()),
                Err(McastError::TimedOut | McastError::WouldBlock) => check_after_timeout(w)?,
                Err(e) => return Err(err("Group::mcast", e)),
            }
        }
    }
}

crate::group::group_pingpong_side!(Side);

/// Two hosts, a group of `guarantee` crossing them, a member on each: the
/// hosts (to keep until both sides are done: a side that stopped must not
/// take the engines the other still reads its stop message through) and
/// the two sides.
pub(crate) fn pingpong_sides(guarantee: Guarantee) -> Result<(Hosts, Side, Side), BenchError> {
    let mut hosts = Hosts::dirs(2);
    hosts.start(ThreadingMode::Invoker, guarantee)?;
    let mut a = hosts.join_driving(0, guarantee)?;
    let mut b = hosts.join_driving(1, guarantee)?;
    await_view(&mut a, 2)?;
    await_view(&mut b, 2)?;
    Ok((hosts, Side { group: a }, Side { group: b }))
}

/// The fan-out's publisher: a member that multicasts each message and
/// reads the log past its own (a reliable log holds until every member,
/// its publisher too, has passed a message). It receives its own messages
/// (loopback), as the cluster committed them: its publish of the stop
/// message returns once the stop message is committed, so the measured
/// window ends when the cluster carried every message of it, not when
/// the local log took the last one (the gateway takes what members submit
/// into memory as fast as they write, whatever the cluster's pace).
pub(crate) struct Tx {
    group: Group,
    template: Template<64>,
}

impl Tx {
    /// Waits for the stop message `seq` to come back committed.
    fn await_committed_stop(&mut self, seq: u64, w: &mut Waiter<'_>) -> Result<(), BenchError> {
        let me = self.group.local_member();
        loop {
            match self.group.recv_timeout(BLOCK_TIMEOUT) {
                Ok(Event::Message(m)) if m.sender() == me => {
                    if m.payload().is_some_and(|p| p.len() >= 16 && Msg::read(&p[..16]).seq == seq) {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(GroupRecvError::TimedOut | GroupRecvError::WouldBlock) => check_after_timeout(w)?,
                Err(e) => return Err(err("Group::recv", e)),
            }
        }
    }
}

impl Tx {
    /// Takes what waits in the publisher's log; returns how much.
    fn drain(&mut self) -> Result<usize, BenchError> {
        let mut took = 0;
        loop {
            match self.group.try_recv() {
                Ok(_) => took += 1,
                Err(GroupRecvError::WouldBlock) => return Ok(took),
                Err(e) => return Err(err("Group::try_recv", e)),
            }
        }
    }
}

impl FanTx for Tx {
    #[inline]
    fn publish(&mut self, msg: Msg, src: &Source, w: &mut Waiter<'_>) -> Result<(), BenchError> {
        let mut bytes = msg.to_array(&self.template);
        loop {
            match self.group.try_mcast(&bytes) {
                Ok(()) if msg.mark == crate::wire::STOP => return self.await_committed_stop(msg.seq, w),
                Ok(()) => return Ok(()),
                Err(McastError::WouldBlock) => {
                    // Full: the log waits for the cluster to commit; the
                    // engines' threads need this core meanwhile.
                    if self.drain()? == 0 {
                        std::thread::sleep(crate::fanout::IDLE);
                        w.wait()?;
                    }
                    src.restamp(&mut bytes);
                }
                Err(e) => return Err(err("Group::try_mcast", e)),
            }
        }
    }
}

/// A subscribing member on another host.
pub(crate) struct Rx {
    group: Group,
    buf: [u8; 64],
}

impl FanRx for Rx {
    #[inline]
    fn drain(&mut self, sink: &mut Sink, max: usize) -> Result<usize, BenchError> {
        for took in 0..max {
            // The first event waited for: the driver takes a drain that
            // finds nothing after the publisher is done for the end, and
            // a crossing group's messages are still on their way then.
            let event = if took == 0 { self.group.recv_timeout(RX_WAIT) } else { self.group.try_recv() };
            let stop = match event {
                Ok(Event::Message(mut m)) => match m.payload() {
                    Some(p) => sink.on_bytes(p)?,
                    None => {
                        let n = m.read_into(&mut self.buf).map_err(|e| err("Message::read_into", e))?;
                        sink.on_bytes(&self.buf[..n])?
                    }
                },
                Ok(_) => false,
                Err(GroupRecvError::WouldBlock | GroupRecvError::TimedOut) => return Ok(took),
                Err(e) => return Err(err("Group::try_recv", e)),
            };
            if stop {
                return Ok(took + 1);
            }
        }
        Ok(max)
    }
}

/// Three hosts, an AGREED group crossing them: the publisher on the first,
/// a subscriber on each of the others. The hosts are kept until the run
/// is over (see [`pingpong_sides`]).
pub(crate) fn fanout_sides() -> Result<(Hosts, Tx, Vec<Rx>), BenchError> {
    let mut hosts = Hosts::dirs(3);
    let publisher = GroupOptions::new().runtime_dir(hosts.hosts[0].dir.path());
    let publisher = Group::join_timeout(&hosts.name, &publisher, SETUP).map_err(|e| err("Group::join", e))?;
    let mut members = vec![publisher];
    for i in 1..3 {
        members.push(hosts.join(i, Guarantee::Agreed)?);
    }
    hosts.start(ThreadingMode::Dedicated, Guarantee::Agreed)?;
    for m in &mut members {
        await_view(m, 3)?;
    }
    let mut members = members.into_iter();
    let tx = match members.next() {
        Some(group) => Tx { group, template: Template::new() },
        None => return Err(BenchError::Peer { call: "Group::join", error: "no publisher".into() }),
    };
    Ok((hosts, tx, members.map(|group| Rx { group, buf: [0; 64] }).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::RunCtx;

    /// A group crossing two engines of this process carries an AGREED and
    /// a SAFE ping-pong, and one crossing three carries a fan-out whose
    /// every message reaches both subscribers.
    #[test]
    fn crossing_groups_carry_pingpong_and_fanout() {
        let _machine = crate::scenarios::smoke::one_at_a_time();
        ringflow_testkit::isolate_runtime_dir();
        for g in [Guarantee::Agreed, Guarantee::Safe] {
            let (hosts, ping, pong) = pingpong_sides(g).expect("sides");
            assert!(hosts.addr(0).is_some() && hosts.addr(1).is_some());
            let m =
                crate::pingpong::run::<64>(&RunCtx::for_tests(), ping, pong).unwrap_or_else(|e| panic!("{g:?}: {e}"));
            assert!(m.msgs > 0, "{g:?}");
        }
        let (hosts, tx, rxs) = fanout_sides().expect("fan-out");
        let m = crate::fanout::run(&RunCtx::for_tests(), tx, rxs, false).expect("fan-out run");
        drop(hosts);
        assert!(m.msgs > 0);
        assert_eq!(m.delivered, Some(m.msgs));
    }
}
