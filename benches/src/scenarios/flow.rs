//! Scenario `flow`: ringflow's flows (the whole transport, not the ring
//! alone) between two pinned threads, against the physical limits and other
//! transports: the kernel's (Unix sockets, pipes, TCP loopback) and, with
//! feature `iceoryx2`, iceoryx2. Spinning cases busy-poll; blocking cases
//! sleep in the kernel between messages.
use std::time::Duration;

use ringflow_api::DEFAULT_SPIN;

use crate::flow;
use crate::footprint;
use crate::futex_limit;
use crate::limit;
use crate::os::{self, Wait};
use crate::scenario::{Case, CheckSpec, Impl, Metric, Scenario, Stat, Target, LIMIT};
use crate::set_wake;

/// The flow ring of stream-64B (128 KiB: 1638 frames of 80 bytes) and the
/// slots of its limit.
const STREAM_RING_BYTES: usize = 128 << 10;
const STREAM_SLOTS: usize = 2048;

const CHECKS: &[CheckSpec] = &[
    CheckSpec { case: "pingpong-spin-64B", num: "ringflow", den: LIMIT, stat: Stat::P50, target: Target::AtMost(1.4) },
    CheckSpec {
        case: "pingpong-spin-64B-processes",
        num: "ringflow",
        den: LIMIT,
        stat: Stat::P50,
        target: Target::AtMost(1.4),
    },
    CheckSpec {
        case: "pingpong-spin-64B",
        num: "ringflow",
        den: "unix-socket",
        stat: Stat::P50,
        target: Target::AtMost(0.05),
    },
    // What the flows' built-in latency histograms cost a round trip:
    // within 5% of off (issue 18; the first flows' target was 10%).
    CheckSpec {
        case: "pingpong-spin-64B",
        num: "ringflow",
        den: "ringflow-nohist",
        stat: Stat::P50,
        target: Target::AtMost(1.05),
    },
    CheckSpec {
        case: "pingpong-blocking-64B",
        num: "ringflow",
        den: LIMIT,
        stat: Stat::P50,
        target: Target::AtMost(1.3),
    },
    // The batch forms against the limit (issue 18).
    CheckSpec {
        case: "stream-64B",
        num: "ringflow-batch",
        den: LIMIT,
        stat: Stat::MsgsPerSec,
        target: Target::AtLeast(0.7),
    },
    // Waking one flow among 10,000 in a set against one among 1 (issue 18).
    CheckSpec {
        case: "set-wake-64B-x10000",
        num: "ringflow",
        den: "set-wake-64B-x1/ringflow",
        stat: Stat::P50,
        target: Target::AtMost(2.0),
    },
    // The async forms (feature `tokio`) against tokio's own Unix socket,
    // both woken through a runtime's epoll (issue 19).
    CheckSpec {
        case: "pingpong-async-64B",
        num: "ringflow-async",
        den: "tokio-uds",
        stat: Stat::P50,
        target: Target::AtMost(1.0),
    },
    // Across cases: 1 MiB zero-copy messages against 64-byte ones.
    CheckSpec {
        case: "stream-1MiB-zerocopy",
        num: "ringflow",
        den: "stream-64B/ringflow",
        stat: Stat::MsgsPerSec,
        target: Target::AtLeast(0.25),
    },
];

/// The `flow` scenario.
pub fn scenario() -> Scenario {
    Scenario {
        name: "flow",
        about: "transports between two pinned threads, spinning or blocking, vs the limits and kernel IPC",
        cases,
        checks: CHECKS,
    }
}

fn cases() -> Vec<Case> {
    let mut cases = vec![
        Case {
            name: "pingpong-spin-64B",
            about: "round trip of a 64-byte message, ringflow spinning: limit = cache-line handoff; ringflow = a \
                    flow set up for request/reply (Flow::set_send_window(REQUEST_REPLY_WINDOW) on both sides), \
                    try_recv_ref busy-polled, recording its latency histograms (the default); \
                    ringflow-nohist = the same with recording off (limit, ringflow and ringflow-nohist run \
                    in one run, taking turns every 512 round trips); unix-socket = a socketpair used as applications use it, \
                    blocking recv; unix-socket-spin, pipe (two pipes), tcp (127.0.0.1, TCP_NODELAY) = \
                    nonblocking fds, the receiver busy-polls recv/read; iceoryx2 = zero-copy \
                    publish-subscribe, receive() busy-polled",
            metric: Metric::Latency,
            impls: pingpong_spin_impls(),
            notes: super::iceoryx2_notes(),
        },
        Case {
            name: "pingpong-spin-64B-processes",
            about: "round trip of a 64-byte message between two processes, as users run ringflow: the ping side \
                    in the bench's process, the pong side in a child process pinned to the other core; limit = \
                    cache-line handoff through a file both map; ringflow = a flow the child allocates to the \
                    parent's listener, set up for request/reply, try_ forms busy-polled, histograms recorded \
                    (limit and ringflow take turns every 512 round trips)",
            metric: Metric::Latency,
            impls: vec![Impl::alternating(&[LIMIT, "ringflow"], crate::processes::pingpong_spin)],
            notes: Vec::new(),
        },
        Case {
            name: "pingpong-blocking-64B",
            about: "round trip of a 64-byte message, both sides sleeping in the kernel until woken: limit = shared \
                    futex wait/wake, no spinning; ringflow = a flow's blocking recv_ref with no spin phase (parks on \
                    the flow's futex at once); ringflow-spin20us = the same with the default spin budget (20 us) before \
                    parking; unix-socket = blocking recv on a socketpair",
            metric: Metric::Latency,
            impls: pingpong_blocking_impls(),
            notes: Vec::new(),
        },
        Case {
            name: "stream-64B",
            about: "one-way stream of 64-byte messages through a flow: ringflow = try_send copies each in, \
                    try_recv_ref reads each in place (every line touched); ringflow-batch = the batch forms, \
                    try_send_batch_with writes up to 32 in place and publishes them with one commit, \
                    try_recv_batch reads up to 32 in place and releases them together; limit = raw stream \
                    of fixed slots",
            metric: Metric::Throughput,
            impls: vec![
                Impl::new(LIMIT, |ctx| limit::stream::<64>(ctx, STREAM_SLOTS, 32)),
                Impl::new("ringflow", |ctx| flow::stream_copy::<64>(ctx, STREAM_RING_BYTES)),
                Impl::new("ringflow-batch", |ctx| flow::stream_batch::<64>(ctx, STREAM_RING_BYTES)),
            ],
            notes: Vec::new(),
        },
        Case {
            name: "stream-1MiB-zerocopy",
            about: "one-way stream of 1 MiB messages: the sender loans each in the flow's shared memory and \
                    writes a 16-byte header, the receiver reads the header in place; nothing is copied",
            metric: Metric::Throughput,
            impls: vec![
                Impl::new(LIMIT, |ctx| limit::stream::<64>(ctx, STREAM_SLOTS, 32)),
                Impl::new("ringflow", |ctx| flow::stream_zerocopy(ctx, 1 << 20)),
            ],
            notes: vec!["limit: the 64-byte fixed-slot stream, the most messages per second memory allows".into()],
        },
    ];
    cases.extend(set_wake_cases());
    #[cfg(feature = "peers")]
    cases.push(pingpong_async_case());
    cases.push(Case {
        name: "footprint",
        about: "descriptors and resident memory per 1,000 flows (Flow::pairs opened in this process and counted \
                in /proc/self/fd and /proc/self/statm), rings prefaulted at setup (the default) or touched lazily \
                (FlowOptions::prefault(false)); nothing is timed",
        metric: Metric::Latency,
        impls: Vec::new(),
        notes: footprint::lines(),
    });
    cases
}

/// Case `pingpong-async-64B`: the async forms (feature `tokio`) against
/// tokio's own Unix socket, in one run (see `async_pingpong.rs`).
#[cfg(feature = "peers")]
fn pingpong_async_case() -> Case {
    Case {
        name: "pingpong-async-64B",
        about: "round trip of a 64-byte message through async APIs, each side a tokio current-thread runtime on \
                its own pinned core, one block_on per send or receive (the pong side: one per echo): \
                ringflow-async = AsyncFlow::send / recv_into on a flow (Qos::data, histograms recorded), \
                which sleep in the runtime's epoll on the flow's readiness descriptor; tokio-uds = tokio's \
                UnixStream (a socketpair), write_all / read_exact (the two take turns every 512 round trips); \
                limit = shared futex wait/wake, the cost of waking a sleeping thread at all",
        metric: Metric::Latency,
        impls: vec![
            Impl::new(LIMIT, futex_limit::pingpong),
            Impl::alternating(crate::async_pingpong::NAMES, crate::async_pingpong::pingpong::<64>),
        ],
        notes: Vec::new(),
    }
}

/// Cases `set-wake-64B-x1` .. `-x10000` (see `set_wake.rs`).
fn set_wake_cases() -> Vec<Case> {
    set_wake::SIZES
        .iter()
        .map(|&n| {
            let skipped = set_wake::unavailable(n);
            Case {
                name: match n {
                    1 => "set-wake-64B-x1",
                    100 => "set-wake-64B-x100",
                    1000 => "set-wake-64B-x1000",
                    _ => "set-wake-64B-x10000",
                },
                about: "round trip through a FlowSet of N flows: the pong side sleeps in the set's blocking \
                        wait, the ping side sends 64 bytes on one flow (another each time, striding through all \
                        N) and busy-polls it for the echo; up to 127 flows the set sleeps in futex_waitv, past \
                        that in epoll on the flows' readiness descriptors",
                metric: Metric::Latency,
                impls: if skipped.is_some() {
                    Vec::new()
                } else {
                    vec![Impl::new("ringflow", move |ctx| set_wake::run(ctx, n))]
                },
                notes: skipped.into_iter().collect(),
            }
        })
        .collect()
}

fn pingpong_spin_impls() -> Vec<Impl> {
    #[allow(unused_mut)]
    let mut impls = vec![
        Impl::alternating(&[LIMIT, "ringflow", "ringflow-nohist"], flow::pingpong_spin_alternating),
        Impl::new("unix-socket", |ctx| os::unix_socket::pingpong::<64>(ctx, Wait::Block)),
        Impl::new("unix-socket-spin", |ctx| os::unix_socket::pingpong::<64>(ctx, Wait::Spin)),
        Impl::new("pipe", |ctx| os::pipe::pingpong::<64>(ctx, Wait::Spin)),
        Impl::new("tcp", |ctx| os::tcp::pingpong::<64>(ctx, Wait::Spin)),
    ];
    #[cfg(feature = "iceoryx2")]
    impls.push(Impl::new("iceoryx2", crate::peers::iceoryx2::pingpong::<64>));
    impls
}

fn pingpong_blocking_impls() -> Vec<Impl> {
    vec![
        Impl::new(LIMIT, futex_limit::pingpong),
        Impl::new("ringflow", |ctx| flow::pingpong::<64>(ctx, Wait::Block, Duration::ZERO)),
        Impl::new("ringflow-spin20us", |ctx| flow::pingpong::<64>(ctx, Wait::Block, DEFAULT_SPIN)),
        Impl::new("unix-socket", |ctx| os::unix_socket::pingpong::<64>(ctx, Wait::Block)),
    ]
}

#[cfg(test)]
mod tests {
    /// Every declared (case, impl) is measured in smoke mode, and the checks
    /// on impls not in this run are reported as not measured.
    #[test]
    fn every_impl_runs_in_smoke_mode() {
        let (report, _, _) = crate::scenarios::smoke::run_scenario("flow");
        assert!(report.records.iter().all(|r| r.n > 0 && r.ratio_to_limit.is_some()));
        for c in &report.checks {
            let measured = report.records.iter().any(|r| r.case == c.spec.case && r.imp == c.spec.num)
                && report.records.iter().any(|r| (r.case, r.imp) == c.spec.den_case_impl());
            assert_eq!(c.value.is_some(), measured, "{}", c.line());
        }
    }
}
