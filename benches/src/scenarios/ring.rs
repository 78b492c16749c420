//! Scenario `ring`: the SPSC ring alone, between two pinned threads, against
//! the physical limit and other in-process rings and channels.
//!
//! The ringflow impls run over [`RING_MEMORY`]; pointing it at a shared
//! memory segment moves them there.

use crate::limit;
use crate::memory::Heap;
use crate::pingpong::{self, Either::Left, Either::Right};
use crate::ringflow;
use crate::scenario::{Case, CheckSpec, Impl, Metric, Scenario, Stat, Target, LIMIT};
use crate::stream;
use ringflow_ring::spsc;

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
            about: "round trip of a 64-byte message; the impls take turns every 512 round trips in one run; \
                    ringflow's 16 KiB rings are set up for request/reply (Producer::set_window(LATENCY_WINDOW))",
            metric: Metric::Latency,
            impls: pingpong_impls(),
            notes: peer_notes(),
        },
        Case {
            name: "stream-64B",
            about: "one-way stream of 64-byte messages, batched (ringflow: Producer::write_batch and \
                    Consumer::read_batch of 32 frames); latency = one-way under load; the impls take turns every 32768 \
                    messages in one run",
            metric: Metric::Throughput,
            impls: stream_impls::<64>(&STREAM_64B),
            notes: peer_notes(),
        },
        Case {
            name: "stream-4KiB",
            about: "one-way stream of 4096-byte messages: filled from a source buffer, every line read; the impls \
                    take turns every 32768 messages in one run",
            metric: Metric::Throughput,
            impls: stream_impls::<4096>(&STREAM_4KIB),
            notes: peer_notes(),
        },
    ]
}

/// The impls of `pingpong-64B`, measured in one run taking turns every
/// `pingpong::BLOCK` round trips: a ratio of two of them is then taken
/// under the same moods of this VM (its round trips drift 3x within
/// seconds), not under two moods that happened to follow each other.
#[cfg(feature = "peers")]
const PINGPONG: &[&str] = &[LIMIT, "ringflow", "rtrb", "crossbeam"];
#[cfg(not(feature = "peers"))]
const PINGPONG: &[&str] = &[LIMIT, "ringflow"];

fn pingpong_impls() -> Vec<Impl> {
    vec![Impl::alternating(PINGPONG, |ctx| {
        let lines = Box::<limit::Lines>::default();
        let (limit_ping, limit_pong) = limit::pingpong_sides(&lines);
        let (ring_ping, ring_pong) =
            ringflow::pingpong_sides::<_, 64>(&RING_MEMORY, PING_RING_BYTES, spsc::LATENCY_WINDOW)?;
        #[cfg(feature = "peers")]
        let (pings, pongs) = {
            use crate::peers::{crossbeam, rtrb};
            let (rtrb_ping, rtrb_pong) = rtrb::pingpong_sides::<64>(PING_SLOTS);
            let (cb_ping, cb_pong) = crossbeam::pingpong_sides::<64>(PING_SLOTS);
            (
                vec![
                    Left(limit_ping),
                    Right(Left(ring_ping)),
                    Right(Right(Left(rtrb_ping))),
                    Right(Right(Right(cb_ping))),
                ],
                vec![
                    Left(limit_pong),
                    Right(Left(ring_pong)),
                    Right(Right(Left(rtrb_pong))),
                    Right(Right(Right(cb_pong))),
                ],
            )
        };
        #[cfg(not(feature = "peers"))]
        let (pings, pongs) = (vec![Left(limit_ping), Right(ring_ping)], vec![Left(limit_pong), Right(ring_pong)]);
        pingpong::run_alternating::<64, _, _>(ctx, pings, pongs)
    })]
}

/// The impls of a stream case, in one run taking turns every
/// `stream::TURN` messages (as the ping-pong's do).
#[cfg(feature = "peers")]
const STREAMS: &[&str] = &[LIMIT, "ringflow", "rtrb", "crossbeam"];
#[cfg(not(feature = "peers"))]
const STREAMS: &[&str] = &[LIMIT, "ringflow"];

fn stream_impls<const N: usize>(shape: &'static StreamShape) -> Vec<Impl> {
    vec![Impl::alternating(STREAMS, move |ctx| {
        let slots = limit::stream_ring::<N>(shape.slots);
        let (limit_tx, limit_rx) = limit::stream_sides(&slots, shape.batch);
        let (ring_tx, ring_rx) = ringflow::stream_sides::<_, N>(&RING_MEMORY, shape.ring_bytes, shape.batch)?;
        #[cfg(feature = "peers")]
        let (txs, rxs) = {
            use crate::peers::{crossbeam, rtrb};
            let (rtrb_tx, rtrb_rx) = rtrb::stream_sides::<N>(shape.slots, shape.batch);
            let (cb_tx, cb_rx) = crossbeam::stream_sides::<N>(shape.slots, shape.batch);
            (
                vec![Left(limit_tx), Right(Left(ring_tx)), Right(Right(Left(rtrb_tx))), Right(Right(Right(cb_tx)))],
                vec![Left(limit_rx), Right(Left(ring_rx)), Right(Right(Left(rtrb_rx))), Right(Right(Right(cb_rx)))],
            )
        };
        #[cfg(not(feature = "peers"))]
        let (txs, rxs) = (vec![Left(limit_tx), Right(ring_tx)], vec![Left(limit_rx), Right(ring_rx)]);
        stream::run_alternating(ctx, txs, rxs)
    })]
}

fn peer_notes() -> Vec<String> {
    if cfg!(feature = "peers") {
        Vec::new()
    } else {
        vec!["rtrb and crossbeam skipped: built without feature `peers`".to_string()]
    }
}
