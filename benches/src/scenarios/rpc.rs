//! Scenario `rpc`: request/reply (issue 16) between two pinned threads:
//! `Flow::call` against a server that replies, next to the same flow used
//! as a send + receive ping-pong in the same run, to a Unix socket and,
//! with feature `iceoryx2`, to iceoryx2's request-response.
use std::time::Duration;

use ringflow_core::config::ThreadingMode;

use crate::flow;
use crate::os::{self, Wait};
use crate::remote;
use crate::rpc;
use crate::scenario::{Case, CheckSpec, Impl, Metric, Scenario, Stat, Target, LIMIT};

const CHECKS: &[CheckSpec] = &[
    // A call costs what a send and a receive cost (issue 16's target).
    CheckSpec { case: "call-64B", num: "ringflow", den: "flow-pingpong", stat: Stat::P50, target: Target::AtMost(1.1) },
    CheckSpec { case: "call-64B", num: "ringflow", den: "unix-socket", stat: Stat::P50, target: Target::AtMost(0.05) },
    CheckSpec {
        case: "call-64B-remote",
        num: "ringflow",
        den: "tcp-spin",
        stat: Stat::P50,
        target: Target::AtMost(1.3),
    },
    CheckSpec {
        case: "call-64B-blocking",
        num: "ringflow",
        den: "flow-pingpong",
        stat: Stat::P50,
        target: Target::AtMost(1.1),
    },
];

/// The `rpc` scenario.
pub fn scenario() -> Scenario {
    Scenario {
        name: "rpc",
        about: "request/reply: Flow::call against a flow's send + receive ping-pong and kernel IPC",
        cases,
        checks: CHECKS,
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "call-64B",
            about: "one call with a 64-byte request and reply, both threads spinning: limit = cache-line handoff; \
                    ringflow = Flow::try_call then try_receive_more busy-polled on the client, try_receive_request \
                    and reply on the server; flow-pingpong = the same flow setup used with try_recv_ref + send \
                    (the flow scenario's pingpong-spin-64B); iceoryx2 = its request-response: Client::send_copy, \
                    then PendingResponse::receive busy-polled, on the server Server::receive busy-polled and \
                    ActiveRequest::send_copy; limit, ringflow, flow-pingpong (and iceoryx2) take turns every 512 \
                    round trips in one run; unix-socket = a socketpair, blocking recv",
            metric: Metric::Latency,
            impls: vec![
                call_spin_impl(),
                Impl::new("unix-socket", |ctx| os::unix_socket::pingpong::<64>(ctx, Wait::Block)),
            ],
            notes: super::iceoryx2_notes(),
        },
        Case {
            name: "call-4KiB-zerocopy",
            about: "one call with a 4 KiB request and reply, both threads spinning: flow-pingpong = a flow's \
                    ping-pong of 4 KiB messages, each copied in (send) and read in place (try_recv_ref); ringflow = \
                    the request written in a loan (loan_request), the reply read in place (receive_more_ref) and \
                    the reply loaned likewise (loan_reply): only each message's 16-byte header is written and read; \
                    iceoryx2 = its request-response with the request and the reply loaned (loan_uninit) and read in \
                    place, likewise only their headers touched; unix-socket = a socketpair, blocking recv",
            metric: Metric::Latency,
            impls: zerocopy_impls(),
            notes: [
                vec!["ratio_to_limit is against flow-pingpong (copying); no physical limit is measured".to_string()],
                super::iceoryx2_notes(),
            ]
            .concat(),
        },
        Case {
            name: "call-64B-remote",
            about: "one call with a 64-byte request and reply between two engines over TCP loopback, one per \
                    pinned core, each run by its application's thread (invoker mode): tcp-spin = nonblocking \
                    sockets, both sides busy-poll recv (the syscall floor); ringflow = try_call / \
                    try_receive_more against try_receive_request / reply on a flow allocated as name@host:port; \
                    flow-pingpong = the same remote flow with try_send / try_recv_ref (scenario remote's \
                    pingpong-64B)",
            metric: Metric::Latency,
            // Taking turns in one run, as the local cases' impls do.
            impls: vec![Impl::alternating(&["tcp-spin", "ringflow", "flow-pingpong"], |ctx| {
                remote::call_turns::<64>(ctx, ThreadingMode::Invoker)
            })],
            notes: vec!["ratio_to_limit is against tcp-spin, the syscall floor; no physical limit is measured".into()],
        },
        Case {
            name: "call-64B-blocking",
            about: "one call with a 64-byte request and reply, both sides sleeping in the kernel until woken: \
                    ringflow = the blocking Flow::call against a server in receive_request, no spin phase; \
                    flow-pingpong = a flow's blocking recv_ref + send, no spin phase; limit = shared futex \
                    wait/wake",
            metric: Metric::Latency,
            impls: vec![
                Impl::new(LIMIT, crate::futex_limit::pingpong),
                Impl::new("ringflow", rpc::call_blocking),
                Impl::new("flow-pingpong", |ctx| flow::pingpong::<64>(ctx, Wait::Block, Duration::ZERO)),
            ],
            notes: Vec::new(),
        },
    ]
}

/// Case `call-64B`'s spinning variants, taking turns in one run: with
/// feature `iceoryx2`, iceoryx2's request-response among them.
fn call_spin_impl() -> Impl {
    #[cfg(feature = "iceoryx2")]
    return Impl::alternating(
        &[LIMIT, "ringflow", "flow-pingpong", "iceoryx2"],
        crate::peers::iceoryx2_rpc::call_spin_alternating,
    );
    #[cfg(not(feature = "iceoryx2"))]
    Impl::alternating(&[LIMIT, "ringflow", "flow-pingpong"], rpc::call_spin_alternating)
}

fn zerocopy_impls() -> Vec<Impl> {
    #[allow(unused_mut)]
    let mut impls = vec![
        Impl::new("flow-pingpong", |ctx| flow::pingpong::<4096>(ctx, Wait::Spin, Duration::ZERO)),
        Impl::new("ringflow", |ctx| rpc::call_zerocopy(ctx, 4096)),
        Impl::new("unix-socket", |ctx| os::unix_socket::pingpong::<4096>(ctx, Wait::Block)),
    ];
    #[cfg(feature = "iceoryx2")]
    impls.push(Impl::new("iceoryx2", crate::peers::iceoryx2_rpc::call_zerocopy::<{ 4096 - rpc::HEADER }>));
    impls
}

#[cfg(test)]
mod tests {
    /// Every declared (case, impl) is measured in smoke mode.
    #[test]
    fn every_impl_runs_in_smoke_mode() {
        let (report, _, _) = crate::scenarios::smoke::run_scenario("rpc");
        assert!(report.records.iter().all(|r| r.n > 0 && r.ratio_to_limit.is_some()));
        assert!(report.checks.iter().all(|c| c.value.is_some()), "every check is measured");
    }
}
