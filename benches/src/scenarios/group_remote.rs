//! Scenario `group-remote` (issue 17's benchmark): a group that crosses
//! hosts, its hosts being engines of this process (`RemoteEngine`s in
//! dedicated mode, each with the cluster on, a port of its own on
//! 127.0.0.1 and a runtime directory of its own; see `group_remote.rs`),
//! against what the same two hosts do without a group: a remote flow
//! (scenario `remote`'s ping-pong, two invoker-mode engines) and kernel
//! TCP; and a fan-out to two other hosts against tokio writing each
//! message to each host's connection.
//!
//! Every impl crosses the kernel's TCP; each case's ratios are against
//! its first impl (see [`Case::reference`]): the remote flow for the
//! ping-pongs, which the checks are stated against.

use ringflow_api::{Guarantee, Qos};
use ringflow_core::config::ThreadingMode;

use crate::fanout;
use crate::group_remote;
use crate::measure::{Measurement, RunCtx};
use crate::os::Wait;
use crate::pingpong::{self, PingSide, PongSide};
use crate::remote::{self, Auth};
use crate::scenario::{Case, CheckSpec, Impl, Metric, Scenario, Stat, Target};
use crate::BenchError;

/// The ping-pongs' impls, taking turns every `pingpong::BLOCK` round
/// trips in one run.
const PINGPONG_TURNS: &[&str] = &["remote-flow", "ringflow", "tcp-spin"];

const CHECKS: &[CheckSpec] = &[
    CheckSpec {
        case: "agreed-pingpong-64B",
        num: "ringflow",
        den: "remote-flow",
        stat: Stat::P50,
        target: Target::AtMost(2.0),
    },
    CheckSpec {
        case: "safe-pingpong-64B",
        num: "ringflow",
        den: "remote-flow",
        stat: Stat::P50,
        target: Target::AtMost(3.0),
    },
    CheckSpec {
        case: "fanout-64B",
        num: "ringflow",
        den: "tokio",
        stat: Stat::MsgsPerSec,
        target: Target::AtLeast(2.0),
    },
];

/// The `group-remote` scenario.
pub fn scenario() -> Scenario {
    Scenario {
        name: "group-remote",
        about: "a group crossing engines on loopback (AGREED/SAFE through the cluster's Raft log) vs a remote flow, \
                kernel TCP and tokio",
        cases,
        checks: CHECKS,
    }
}

/// What the two ping-pong cases say of themselves.
const AGREED_ABOUT: &str = "round trip of a 64-byte multicast between a member on host A and one on host B of an \
                            AGREED group crossing the two hosts' engines (each message a Raft entry, delivered once \
                            committed), members waiting in the kernel; remote-flow = scenario remote's ringflow \
                            ping-pong between two other engines (invoker mode, busy-polled); tcp-spin = nonblocking \
                            sockets busy-polled. The three take turns every 512 round trips in one run";
const SAFE_ABOUT: &str = "agreed-pingpong-64B with a SAFE group: each message delivered once every node of the view \
                          holds it (the leader tells the followers in a message of its own)";

fn pingpong_case(name: &'static str, guarantee: Guarantee, about: &'static str) -> Case {
    Case {
        name,
        about,
        metric: Metric::Latency,
        impls: vec![Impl::alternating(PINGPONG_TURNS, move |ctx| pingpong_turns(ctx, guarantee))],
        notes: vec![
            "ratio_to_limit is against remote-flow; no physical limit is measured".to_string(),
            "engines run in this process, one per host, each with its own port and runtime directory".to_string(),
        ],
    }
}

fn cases() -> Vec<Case> {
    vec![
        pingpong_case("agreed-pingpong-64B", Guarantee::Agreed, AGREED_ABOUT),
        pingpong_case("safe-pingpong-64B", Guarantee::Safe, SAFE_ABOUT),
        Case {
            name: "fanout-64B",
            about: "one publisher on host A multicasts 64-byte messages to members on hosts B and C of an AGREED \
                    group crossing the three hosts' engines, msgs/s of the publisher, whose window ends when its \
                    stop message comes back committed (the cluster carried all of it); tokio = a current-thread \
                    runtime writing each message to a TCP connection per receiving host",
            metric: Metric::Throughput,
            impls: fanout_impls(),
            notes: fanout_notes(),
        },
    ]
}

fn fanout_notes() -> Vec<String> {
    let mut notes = vec![
        "ratio_to_limit is against ringflow; no physical limit is measured".to_string(),
        "engines run in this process, one per host, each with its own port and runtime directory".to_string(),
    ];
    if !cfg!(feature = "peers") {
        notes.push("tokio skipped: built without feature `peers`".to_string());
    }
    notes
}

/// A ping-pong case's impls taking turns in one run: the remote flow, the
/// crossing group of `guarantee`, kernel TCP busy-polled.
fn pingpong_turns(ctx: &RunCtx, guarantee: Guarantee) -> Result<Vec<Measurement>, BenchError> {
    let (spin_ping, spin_pong) = crate::os::tcp::pingpong_sides::<64>(Wait::Spin)?;
    let (alloc, accept) = remote::builders(ThreadingMode::Invoker, Qos::data(), Auth::None, 0);
    // Kept until both sides are done (see `group_remote::pingpong_sides`).
    let (hosts, ping, pong) = group_remote::pingpong_sides(guarantee)?;
    let make_pings = move || -> Result<Vec<Box<dyn PingSide<64>>>, BenchError> {
        Ok(vec![Box::new(alloc()?), Box::new(ping), Box::new(spin_ping)])
    };
    let make_pongs = move || -> Result<Vec<Box<dyn PongSide<64>>>, BenchError> {
        Ok(vec![Box::new(accept()?), Box::new(pong), Box::new(spin_pong)])
    };
    let measured = pingpong::run_built_alternating::<64, _, _>(ctx, PINGPONG_TURNS.len(), make_pings, make_pongs);
    drop(hosts);
    measured
}

fn fanout_impls() -> Vec<Impl> {
    let ringflow = Impl::new("ringflow", |ctx| {
        let (hosts, tx, rxs) = group_remote::fanout_sides()?;
        let measured = fanout::run(ctx, tx, rxs, false);
        drop(hosts);
        measured
    });
    std::iter::once(ringflow).chain(tokio_fanout()).collect()
}

#[cfg(feature = "peers")]
fn tokio_fanout() -> Option<Impl> {
    Some(Impl::new("tokio", |ctx| {
        let (tx, rxs) = crate::group_remote_tokio::fanout_sides(2)?;
        fanout::run(ctx, tx, rxs, false)
    }))
}

#[cfg(not(feature = "peers"))]
fn tokio_fanout() -> Option<Impl> {
    None
}

#[cfg(test)]
mod tests {
    /// Every declared (case, impl) is measured in smoke mode, each case's
    /// ratios go against its first impl, and every check is evaluated
    /// (the tokio one only when tokio is built in).
    #[test]
    fn every_impl_runs_in_smoke_mode() {
        let (report, scenario, _out) = crate::scenarios::smoke::run_scenario("group-remote");
        for case in &(scenario.cases)() {
            assert_eq!(report.reference(case.name), case.impls[0].name);
        }
        for r in &report.records {
            assert!(r.n > 0 && r.msgs > 0, "{r:?}");
        }
        for c in &report.checks {
            assert_eq!(c.value.is_some(), cfg!(feature = "peers") || c.spec.den != "tokio", "{}", c.line());
        }
    }
}
