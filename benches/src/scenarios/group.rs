//! Scenario `group`: process groups (multicast) against what one would do
//! without them, unicast flows, and, with feature `iceoryx2`, iceoryx2's
//! publish-subscribe. Every member or subscriber is a thread of this
//! process, as in scenario `flow`.
//!
//! The fan-out cases run one publisher pinned to the first core, spinning,
//! and the subscribers on the second core, taking what reached them in
//! batches and sleeping 50 µs once empty (`fanout.rs`): on a two-core host
//! they cannot all spin. No physical limit is measured there: each ratio is
//! against the N unicast flows (see [`Case::reference`]).

use ringflow_api::Qos;
use ringflow_api::{GroupOptions, SlowMember};

use crate::fanout;
use crate::flow;
use crate::flows_fanout::{self, CopyTx, Flows, LoanTx};
use crate::group;
use crate::limit;
use crate::measure::{Measurement, RunCtx};
use crate::pingpong::{self, Either::Left, Either::Right};
use crate::scenario::{Case, CheckSpec, Impl, Metric, Scenario, Stat, Target, LIMIT};
use crate::wire::{large_template, Template};
use crate::BenchError;

/// The ping-pong group's log as asked: the bytes of the flow ping-pong's
/// ring. A group rounds its log up to hold two of its largest messages
/// (64 KiB by default), so this one gets 256 KiB.
const PING_LOG_BYTES: usize = 64 << 10;

/// The fan-out group's log, and each unicast flow's ring: every subscriber
/// has the same room (≈ 3000 messages of 64 B) in either.
const FANOUT_BYTES: usize = 256 << 10;

/// iceoryx2's buffer per subscriber, in samples: about the messages a
/// group's log or a flow's ring of [`FANOUT_BYTES`] holds.
#[cfg(feature = "iceoryx2")]
const ICEORYX2_BUFFER: usize = 2048;

/// Subscribers of the reliable and the zero-copy cases.
const SUBSCRIBERS: usize = 4;

/// The large message of `mcast-1MiB-zerocopy`.
const LARGE: usize = 1 << 20;

const CHECKS: &[CheckSpec] = &[
    CheckSpec { case: "pingpong-64B", num: "ringflow", den: "flow", stat: Stat::P50, target: Target::AtMost(1.3) },
    // One publish is one claim on the log, whatever the number of members.
    CheckSpec {
        case: "fanout-64B-x8",
        num: "ringflow",
        den: "fanout-64B-x1/ringflow",
        stat: Stat::MsgsPerSec,
        target: Target::AtLeast(0.8),
    },
    CheckSpec {
        case: "fanout-64B-x8",
        num: "ringflow",
        den: "flows",
        stat: Stat::MsgsPerSec,
        target: Target::AtLeast(3.0),
    },
];

/// The `group` scenario.
pub fn scenario() -> Scenario {
    Scenario {
        name: "group",
        about: "process groups (multicast) vs unicast flows, one publisher core and one core of subscribers",
        cases,
        checks: CHECKS,
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "pingpong-64B",
            about: "round trip of a 64-byte message, both sides spinning on try_ forms: ringflow = two members of \
                    one group (Agreed, Block, a 64 KiB log asked, 256 KiB granted) answering each other, each joined with \
                    loopback(false) (it never receives its own messages); \
                    flow = scenario flow's pingpong-spin-64B ringflow impl (a request/reply flow); limit = one \
                    cache line each way. The three take turns every 512 round trips in one run",
            metric: Metric::Latency,
            impls: vec![Impl::alternating(&[LIMIT, "ringflow", "flow"], pingpong_alternating)],
            notes: Vec::new(),
        },
        Case {
            name: "pingpong-64B-knobs",
            about: "the group ping-pong of pingpong-64B (messages up to 1 KiB) with the log capacity and the \
                    slow-member policy varied, for tuning.md: Block with a 16 KiB, 256 KiB and 4 MiB log, and \
                    Lap with 256 KiB; the five take turns every 512 round trips in one run",
            metric: Metric::Latency,
            impls: vec![Impl::alternating(
                &[LIMIT, "block-16KiB", "block-256KiB", "block-4MiB", "lap-256KiB"],
                pingpong_knobs,
            )],
            notes: Vec::new(),
        },
        fanout_case("fanout-64B-x1", 1),
        fanout_case("fanout-64B-x2", 2),
        fanout_case("fanout-64B-x4", 4),
        fanout_case("fanout-64B-x8", 8),
        Case {
            name: "fanout-reliable-64B",
            about: "64-byte messages to 4 subscribers, nothing lost: ringflow = a group with SlowMember::Block \
                    (the publisher waits for the slowest member and reads its own messages when the log is full); \
                    flows = 4 reliable flows, the publisher waits for room in each; msgs_per_sec = messages \
                    delivered to every subscriber per second",
            metric: Metric::Throughput,
            impls: vec![
                Impl::new("flows", |ctx| flows_copy(ctx, SUBSCRIBERS, true)),
                Impl::new("ringflow", |ctx| group_copy(ctx, SUBSCRIBERS, SlowMember::Block)),
            ],
            notes: vec![reference_note()],
        },
        Case {
            name: "mcast-1MiB-zerocopy",
            about: "1 MiB messages to 4 subscribers, nothing lost: the publisher loans each message in shared \
                    memory, writes all of it and sends it; subscribers read its header in place. ringflow = one \
                    loan in a group's log (Block), read by all; flows = one loan per flow (each flow's bulk area), \
                    the message written once per subscriber",
            metric: Metric::Throughput,
            impls: vec![
                Impl::new("flows", |ctx| flows_zerocopy(ctx, SUBSCRIBERS)),
                Impl::new("ringflow", |ctx| group_zerocopy(ctx, SUBSCRIBERS)),
            ],
            notes: vec![reference_note()],
        },
    ]
}

/// `pingpong-64B`'s impls in one run, taking turns.
fn pingpong_alternating(ctx: &RunCtx) -> Result<Vec<Measurement>, BenchError> {
    let lines = Box::<limit::Lines>::default();
    let (limit_ping, limit_pong) = limit::pingpong_sides(&lines);
    let (flow_ping, flow_pong, _dir) = flow::spin_pingpong_sides(true)?;
    let (group_ping, group_pong) =
        group::pingpong_sides(&GroupOptions::new().log_capacity(PING_LOG_BYTES).loopback(false))?;
    let pings = vec![Left(limit_ping), Right(Left(group_ping)), Right(Right(flow_ping))];
    let pongs = vec![Left(limit_pong), Right(Left(group_pong)), Right(Right(flow_pong))];
    pingpong::run_alternating::<64, _, _>(ctx, pings, pongs)
}

/// `pingpong-64B-knobs`'s impls in one run, taking turns.
fn pingpong_knobs(ctx: &RunCtx) -> Result<Vec<Measurement>, BenchError> {
    let lines = Box::<limit::Lines>::default();
    let (limit_ping, limit_pong) = limit::pingpong_sides(&lines);
    let (mut pings, mut pongs) = (vec![Left(limit_ping)], vec![Left(limit_pong)]);
    let knobs = [
        (16 << 10, SlowMember::Block),
        (256 << 10, SlowMember::Block),
        (4 << 20, SlowMember::Block),
        (256 << 10, SlowMember::Lap),
    ];
    for (log, slow) in knobs {
        let opts = GroupOptions::new().log_capacity(log).max_message(1024).slow_member(slow).loopback(false);
        let (ping, pong) = group::pingpong_sides(&opts)?;
        pings.push(Right(ping));
        pongs.push(Right(pong));
    }
    pingpong::run_alternating::<64, _, _>(ctx, pings, pongs)
}

/// A lossy fan-out case to `subscribers` subscribers.
fn fanout_case(name: &'static str, subscribers: usize) -> Case {
    #[allow(unused_mut)]
    let mut impls = vec![
        Impl::new("flows", move |ctx| flows_copy(ctx, subscribers, false)),
        Impl::new("ringflow", move |ctx| group_copy(ctx, subscribers, SlowMember::Lap)),
    ];
    #[cfg(feature = "iceoryx2")]
    impls.push(Impl::new("iceoryx2", move |ctx| crate::peers::iceoryx2::fanout(ctx, subscribers, ICEORYX2_BUFFER)));
    let mut notes = vec![reference_note()];
    if !cfg!(feature = "iceoryx2") {
        notes.push("iceoryx2 skipped: built without feature `iceoryx2`".to_string());
    }
    Case {
        name,
        about: "64-byte messages published as fast as the publisher can, lossy: msgs_per_sec = the publisher's \
                rate, delivered_per_sub = what each subscriber received (per second, on average). ringflow = \
                a group with SlowMember::Lap (one try_mcast per message; a lapped subscriber gets Lost); flows \
                = one lossy flow per subscriber, each message offered to every flow with try_send (a full ring \
                drops it: skip-on-full, the publisher never waits); iceoryx2 = one publisher and a subscriber \
                buffer of 2048 samples each, safe overflow. Subscribers drain with try_ forms until there is \
                nothing, then sleep 50 us (fanout::IDLE)",
        metric: Metric::Throughput,
        impls,
        notes,
    }
}

fn reference_note() -> String {
    "ratio_to_limit is against flows; no physical limit is measured".to_string()
}

/// 64-byte messages through `subscribers` unicast flows, lossy or not.
fn flows_copy(ctx: &RunCtx, subscribers: usize, reliable: bool) -> Result<Measurement, BenchError> {
    let qos = Qos::data().with_ring_bytes(FANOUT_BYTES).with_reliable(reliable);
    let Flows { txs, rxs, dirs: _dirs } = flows_fanout::flows(qos, subscribers)?;
    let rxs = rxs.into_iter().map(|flow| flow::Rx { flow, touch_all: true }).collect();
    fanout::run(ctx, CopyTx::<64> { flows: txs, template: Template::new() }, rxs, !reliable)
}

/// 64-byte messages through a group of `subscribers` + 1 members.
fn group_copy(ctx: &RunCtx, subscribers: usize, slow: SlowMember) -> Result<Measurement, BenchError> {
    let opts = GroupOptions::new().slow_member(slow).log_capacity(FANOUT_BYTES);
    let mut members = group::members(&opts, subscribers + 1)?;
    let publisher = members.remove(0);
    let rxs = members.into_iter().map(|g| group::Rx::new(g, true)).collect();
    fanout::run(ctx, group::McastTx::<64> { group: publisher, template: Template::new() }, rxs, slow.is_lossy())
}

/// 1 MiB loaned messages through `subscribers` reliable flows.
fn flows_zerocopy(ctx: &RunCtx, subscribers: usize) -> Result<Measurement, BenchError> {
    let Flows { txs, rxs, dirs: _dirs } = flows_fanout::flows(Qos::data().with_max_msg(LARGE), subscribers)?;
    let rxs = rxs.into_iter().map(|flow| flow::Rx { flow, touch_all: false }).collect();
    fanout::run(ctx, LoanTx { flows: txs, source: large_template(LARGE) }, rxs, false)
}

/// 1 MiB loaned messages through a reliable group of `subscribers` + 1.
fn group_zerocopy(ctx: &RunCtx, subscribers: usize) -> Result<Measurement, BenchError> {
    let opts = GroupOptions::new().max_message(LARGE);
    let mut members = group::members(&opts, subscribers + 1)?;
    let publisher = members.remove(0);
    let rxs = members.into_iter().map(|g| group::Rx::new(g, false)).collect();
    fanout::run(ctx, group::LoanTx { group: publisher, source: large_template(LARGE) }, rxs, false)
}

#[cfg(test)]
mod tests {
    /// Every declared (case, impl) is measured in smoke mode; the fan-out
    /// cases carry a delivered rate no higher than what was published, and
    /// the reliable ones deliver every message.
    #[test]
    fn every_impl_runs_in_smoke_mode() {
        let (report, _, out) = crate::scenarios::smoke::run_scenario("group");
        for r in &report.records {
            assert!(r.msgs > 0 && r.ratio_to_limit.is_some(), "{r:?}");
            match (r.case, r.delivered_per_sec) {
                ("pingpong-64B" | "pingpong-64B-knobs", d) => assert_eq!(d, None, "{r:?}"),
                ("fanout-reliable-64B" | "mcast-1MiB-zerocopy", Some(d)) => {
                    assert!((d - r.msgs_per_sec).abs() <= 1e-6 * r.msgs_per_sec, "{r:?}")
                }
                (_, Some(d)) => assert!(d <= r.msgs_per_sec, "{r:?}"),
                (_, None) => panic!("a fan-out record without its delivered rate: {r:?}"),
            }
        }
        assert!(out.contains("delivered_per_sub"), "{out}");
    }
}
