//! Scenario `remote`: a flow between two engines over TCP loopback, one
//! engine on each pinned thread (two hosts in one run), against the kernel's
//! TCP driven directly and tokio, measured in the same run. Every impl
//! crosses the kernel's TCP, so no shared-memory limit applies: each case's
//! ratios are against its first impl, the kernel path (see
//! [`Case::reference`]).
use ringflow_core::config::ThreadingMode;

use crate::os::{self, Wait};
use crate::remote::{self, Auth};
use crate::scenario::{Case, CheckSpec, Impl, Metric, Scenario, Stat, Target};

/// How the ringflow impls run their engines: in invoker mode the
/// application's thread runs its engine inside its flow calls, so each side
/// is one busy thread on its own core, like the other impls.
// NOTE(lead): the one place to switch modes. `ThreadingMode::Dedicated`
// measures the same flows through engine threads (which back off and park;
// the application threads then block instead of spinning).
const RINGFLOW_MODE: ThreadingMode = ThreadingMode::Invoker;

/// Local ring bytes per direction of the ringflow streams: 4096 messages
/// of 64 B, or 16 of 64 KiB.
const STREAM_64B_RING: usize = 256 << 10;
const STREAM_64KIB_RING: usize = 1 << 20;

/// Case `pingpong-64B`'s impls, taking turns in one run (see
/// `remote::pingpong_turns`).
#[cfg(feature = "peers")]
const PINGPONG_TURNS: &[&str] = &["tcp-spin", "ringflow", "ringflow-key", "tcp", "tokio"];
#[cfg(not(feature = "peers"))]
const PINGPONG_TURNS: &[&str] = &["tcp-spin", "ringflow", "ringflow-key", "tcp"];

/// Flows open beside the measured one in case `pingpong-64B-x1000`.
const IDLE_FLOWS: usize = 999;
/// The same in a run that yields instead of spinning (smoke tests).
const IDLE_FLOWS_SMOKE: usize = 99;

const CHECKS: &[CheckSpec] = &[
    // Issue 18's target ("closer to tcp-spin"); the first remote flows' was 1.5.
    CheckSpec { case: "pingpong-64B", num: "ringflow", den: "tcp-spin", stat: Stat::P50, target: Target::AtMost(1.2) },
    // An engine's per-message cost stays flat with the number of flows it
    // carries (issue 18, "Scale").
    CheckSpec {
        case: "pingpong-64B-x1000",
        num: "ringflow-x1000",
        den: "ringflow",
        stat: Stat::P50,
        target: Target::AtMost(1.2),
    },
    CheckSpec {
        case: "stream-64B",
        num: "ringflow",
        den: "tokio",
        stat: Stat::MsgsPerSec,
        target: Target::AtLeast(3.0),
    },
    // Large messages between hosts (issue 18, "Between hosts").
    CheckSpec {
        case: "stream-64KiB",
        num: "ringflow",
        den: "tokio",
        stat: Stat::MsgsPerSec,
        target: Target::AtLeast(1.5),
    },
];

/// The `remote` scenario.
pub fn scenario() -> Scenario {
    Scenario {
        name: "remote",
        about: "a flow between two engines over TCP loopback, one per pinned core, vs kernel TCP and tokio",
        cases,
        checks: CHECKS,
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "pingpong-64B",
            about: "round trip of a 64-byte message over 127.0.0.1 (TCP_NODELAY): tcp-spin = nonblocking sockets, \
                    both sides busy-poll recv (the syscall floor); ringflow = a flow allocated as name@host:port \
                    through two engines, try_send / try_recv_ref busy-polled; ringflow-key = the same with both \
                    engines holding a key (net.key_file), proved in the hello; tcp = blocking sockets; tokio = \
                    write_all / read_exact on a current-thread runtime per side",
            metric: Metric::Latency,
            impls: vec![Impl::alternating(PINGPONG_TURNS, |ctx| remote::pingpong_turns::<64>(ctx, RINGFLOW_MODE))],
            notes: notes("tcp-spin, the syscall floor"),
        },
        Case {
            name: "pingpong-64B-x1000",
            about: "pingpong-64B's ringflow over one flow (ringflow) and over one flow among 1,000 open between \
                    the same two engines, the other 999 silent (ringflow-x1000): what an engine's per-message \
                    cost owes to the flows it carries",
            metric: Metric::Latency,
            impls: vec![Impl::alternating(&["ringflow", "ringflow-x1000"], |ctx| {
                // A smoke run (tests, in a process that opens descriptors
                // for other tests at once) proves the case with fewer.
                let idle = if ctx.yielding { IDLE_FLOWS_SMOKE } else { IDLE_FLOWS };
                remote::pingpong_among_turns::<64>(ctx, RINGFLOW_MODE, idle)
            })],
            notes: vec!["ratio_to_limit is against ringflow over a single flow".to_string()],
        },
        Case {
            name: "stream-64B",
            about: "one-way stream of 64-byte messages, one send call per message: ringflow = try_send into a \
                    flow, the engines carry it; tcp = blocking send per message, the receiver reads up to 256 KiB \
                    at a time and splits it; tokio = write_all per message, read likewise",
            metric: Metric::Throughput,
            impls: impls(
                vec![
                    Impl::new("tcp", |ctx| os::tcp::stream::<64>(ctx, Wait::Block)),
                    Impl::new("ringflow", |ctx| remote::stream::<64>(ctx, RINGFLOW_MODE, STREAM_64B_RING, Auth::None)),
                ],
                tokio_stream::<64>(),
            ),
            notes: notes("tcp, the kernel's TCP driven directly"),
        },
        Case {
            name: "stream-64KiB",
            about: "one-way stream of 64 KiB messages, as stream-64B; ringflow-inplace = each message written \
                    where it travels (Flow::try_loan, then send) instead of copied in by try_send",
            metric: Metric::Throughput,
            impls: impls(
                vec![
                    Impl::new("tcp", |ctx| os::tcp::stream::<{ 64 << 10 }>(ctx, Wait::Block)),
                    Impl::new("ringflow", |ctx| {
                        remote::stream::<{ 64 << 10 }>(ctx, RINGFLOW_MODE, STREAM_64KIB_RING, Auth::None)
                    }),
                    Impl::new("ringflow-key", |ctx| {
                        remote::stream::<{ 64 << 10 }>(ctx, RINGFLOW_MODE, STREAM_64KIB_RING, Auth::Key)
                    }),
                    Impl::new("ringflow-checksum", |ctx| {
                        remote::stream_checksum::<{ 64 << 10 }>(ctx, RINGFLOW_MODE, STREAM_64KIB_RING)
                    }),
                    Impl::new("ringflow-inplace", |ctx| {
                        remote::stream_inplace::<{ 64 << 10 }>(ctx, RINGFLOW_MODE, STREAM_64KIB_RING)
                    }),
                ],
                tokio_stream::<{ 64 << 10 }>(),
            ),
            notes: notes("tcp, the kernel's TCP driven directly"),
        },
    ]
}

/// The case's impls, tokio's last when built in.
fn impls(mut impls: Vec<Impl>, tokio: Option<Impl>) -> Vec<Impl> {
    impls.extend(tokio);
    impls
}

/// What every case says: what its ratios are against, and whether tokio
/// was left out.
fn notes(reference: &str) -> Vec<String> {
    let mut notes = vec![format!("ratio_to_limit is against {reference}; no physical limit is measured")];
    if !cfg!(feature = "peers") {
        notes.push("tokio skipped: built without feature `peers`".to_string());
    }
    notes
}

#[cfg(feature = "peers")]
fn tokio_stream<const N: usize>() -> Option<Impl> {
    Some(Impl::new("tokio", crate::peers::tokio::stream::<N>))
}

#[cfg(not(feature = "peers"))]
fn tokio_stream<const N: usize>() -> Option<Impl> {
    None
}

#[cfg(test)]
mod tests {
    /// Every declared (case, impl) is measured in smoke mode, each case's
    /// ratios go against its first impl, and every check is evaluated.
    #[test]
    fn every_impl_runs_in_smoke_mode() {
        let (report, remote, out) = crate::scenarios::smoke::run_scenario("remote");
        let cases = (remote.cases)();
        for case in &cases {
            assert_eq!(report.reference(case.name), case.impls[0].name);
        }
        for r in &report.records {
            assert!(r.n > 0 && r.msgs > 0, "{r:?}");
            let reference = report.reference(r.case);
            assert!(r.ratio_to_limit.is_some(), "{r:?}");
            if r.imp == reference {
                assert_eq!(r.ratio_to_limit, Some(1.0), "{r:?}");
            }
        }
        assert!(out.contains("ratio_to_limit of pingpong-64B: against tcp-spin"), "{out}");
        for c in &report.checks {
            assert_eq!(c.value.is_some(), cfg!(feature = "peers") || c.spec.den != "tokio", "{}", c.line());
        }
    }
}
