//! Scenario `ring`: the SPSC ring alone, between two pinned threads, against
//! the physical limit and other in-process rings and channels.
//!
//! The ringflow impls run over [`RING_MEMORY`]; pointing it at a shared
//! memory segment moves them there.

use crate::limit;
use crate::memory::Heap;
use crate::ringflow;
use crate::scenario::{Case, CheckSpec, Impl, Metric, Scenario, Stat, Target, LIMIT};

/// Where the ringflow rings of this scenario live.
const RING_MEMORY: Heap = Heap;

/// Ping-pong rings: room for many messages, only one is ever in flight.
const PING_RING_BYTES: usize = 1 << 14;
#[cfg(feature = "peers")]
const PING_SLOTS: usize = 64;

/// A stream case: message size and comparable room in every impl.
struct StreamShape {
    /// ringflow ring data bytes (a frame is the payload + 16 B header).
    ring_bytes: usize,
    /// Messages the limit, rtrb and crossbeam hold.
    slots: usize,
    /// Messages per commit / release / chunk.
    batch: usize,
}

/// 128 KiB of 80-byte frames ≈ 1638 messages; peers hold 2048.
const STREAM_64B: StreamShape = StreamShape { ring_bytes: 1 << 17, slots: 2048, batch: 32 };
/// 256 KiB of 4112-byte frames ≈ 63 messages; peers hold 64.
const STREAM_4KIB: StreamShape = StreamShape { ring_bytes: 1 << 18, slots: 64, batch: 8 };

const CHECKS: &[CheckSpec] = &[
    CheckSpec { case: "pingpong-64B", num: "ringflow", den: LIMIT, stat: Stat::P50, target: Target::AtMost(1.5) },
    CheckSpec {
        case: "stream-64B",
        num: "ringflow",
        den: "rtrb",
        stat: Stat::MsgsPerSec,
        target: Target::AtLeast(0.8),
    },
];

/// The `ring` scenario.
pub fn scenario() -> Scenario {
    Scenario {
        name: "ring",
        about: "SPSC ring between two pinned threads vs the physical limit and peers",
        cases,
        checks: CHECKS,
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "pingpong-64B",
            about: "round trip of a 64-byte message",
            metric: Metric::Latency,
            impls: pingpong_impls(),
            notes: peer_notes(),
        },
        Case {
            name: "stream-64B",
            about: "one-way stream of 64-byte messages, batched; latency = one-way under load",
            metric: Metric::Throughput,
            impls: stream_impls::<64>(&STREAM_64B),
            notes: peer_notes(),
        },
        Case {
            name: "stream-4KiB",
            about: "one-way stream of 4096-byte messages: filled from a source buffer, every line read",
            metric: Metric::Throughput,
            impls: stream_impls::<4096>(&STREAM_4KIB),
            notes: peer_notes(),
        },
    ]
}

fn pingpong_impls() -> Vec<Impl> {
    #[allow(unused_mut)]
    let mut impls = vec![
        Impl::new(LIMIT, limit::pingpong),
        Impl::new("ringflow", |ctx| ringflow::pingpong::<_, 64>(ctx, &RING_MEMORY, PING_RING_BYTES)),
    ];
    #[cfg(feature = "peers")]
    {
        use crate::peers::{crossbeam, rtrb};
        impls.push(Impl::new("rtrb", |ctx| rtrb::pingpong::<64>(ctx, PING_SLOTS)));
        impls.push(Impl::new("crossbeam", |ctx| crossbeam::pingpong::<64>(ctx, PING_SLOTS)));
    }
    impls
}

fn stream_impls<const N: usize>(shape: &'static StreamShape) -> Vec<Impl> {
    #[allow(unused_mut)]
    let mut impls = vec![
        Impl::new(LIMIT, |ctx| limit::stream::<N>(ctx, shape.slots, shape.batch)),
        Impl::new("ringflow", |ctx| ringflow::stream::<_, N>(ctx, &RING_MEMORY, shape.ring_bytes, shape.batch)),
    ];
    #[cfg(feature = "peers")]
    {
        use crate::peers::{crossbeam, rtrb};
        impls.push(Impl::new("rtrb", |ctx| rtrb::stream::<N>(ctx, shape.slots, shape.batch)));
        impls.push(Impl::new("crossbeam", |ctx| crossbeam::stream::<N>(ctx, shape.slots, shape.batch)));
    }
    impls
}

fn peer_notes() -> Vec<String> {
    if cfg!(feature = "peers") {
        Vec::new()
    } else {
        vec!["rtrb and crossbeam skipped: built without feature `peers`".to_string()]
    }
}
