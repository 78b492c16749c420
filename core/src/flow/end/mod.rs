//! A flow end: one side of a named, bidirectional message channel between
//! two processes on one host, through rings in shared memory (Ouroboros
//! `flow_alloc` / `flow_accept`, libdill `ipc_connect` / `ipc_accept`).
//! Every flow operation is implemented here once: ringflow-api's public
//! `Flow` forwards to it, and the engine's bridge (`crate::remote`) holds
//! one for each remote flow, with a few operations of its own (`engine`)
//! that no public type offers.
//!
//! The data path never makes a system call unless the other side sleeps:
//! a send writes a frame in place and publishes it with one Release store;
//! a receive reads it in place. The control socket that set the flow up
//! stays open: it carries passed descriptors, and its hang-up tells the
//! process's watcher that the peer died.
//!
//! Every operation that can wait comes in four forms over one internal
//! function taking a [`Deadline`](crate::Deadline): `x` (blocks), `try_x` (never waits,
//! `WouldBlock`), `x_deadline(d)` and `x_timeout(dur)`.

mod alloc;
mod batch;
mod buf;
mod call;
mod close;
#[cfg(test)]
mod close_tests;
mod engine;
#[cfg(test)]
mod latency_tests;
mod options;
mod pair;
mod ready;
mod recv;
mod send;
pub(crate) mod shared;
mod stats;
mod turn;

use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::Duration;

use crate::control::{ControlConn, PeerCred};
use crate::flow::watch::Watch;
use crate::flow::{Geometry, Qos, Sides};
use crate::stats::Slot;

pub(crate) use alloc::StatsSetup;
pub use buf::{RecvBuf, SendBuf};
pub use hdrhistogram::Histogram;
pub(crate) use options::DirChoice;
pub use options::FlowOptions;
pub use stats::FlowStats;

use crate::remote::Invoker;
use shared::FlowShared;

/// Default time a blocking operation spins before it parks.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);

/// The send window for request/reply flows ([`FlowEnd::set_send_window`]):
/// a few small messages per pass through the ring's first bytes.
pub const REQUEST_REPLY_WINDOW: usize = ringflow_ring::spsc::LATENCY_WINDOW;

/// Futex words of the peer's sleepers, woken after we publish. Addresses in
/// the flow's segment, kept as integers so the flow stays `Send`; valid
/// while the flow's memory is mapped (the flow holds it).
#[derive(Clone, Copy)]
pub(crate) struct Wakers {
    /// Where the peer sleeps for data (our inline ring).
    pub peer_data: usize,
    /// Where the peer sleeps for room (its inline and bulk rings).
    pub peer_space: [usize; 2],
    /// The space arm word of our receiving direction (an `AtomicU64` of the
    /// flow's state area): the peer set it if it waits for room through its
    /// readiness descriptor, and we signal `peer_event` after a release.
    pub space_armed: usize,
    /// The data arm word of our sending direction (an `AtomicU64` of the
    /// flow's state area, `FlowMemory::tx_armed`): the peer set it if it
    /// waits for data through its readiness descriptor, and we signal
    /// `peer_event` after a publish. Kept as an address, as `consumed` is,
    /// so a send does not look it up in the memory's regions each time.
    pub data_armed: usize,
    /// Where we signal the peer's readiness: our end of the control socket
    /// (owned by the flow; see `crate::flow::readiness`).
    pub peer_event: i32,
    /// Our count of messages consumed (an `AtomicU64` of the flow's state
    /// area), which the peer reads when we die or close.
    pub consumed: usize,
}

impl Wakers {
    /// After handing room back: signals the peer's readiness descriptor if
    /// it armed for room (`ringflow_ring::arm`, the release's notify ran
    /// the fence the handshake needs).
    #[inline]
    pub fn room_released(&self) {
        // SAFETY: `space_armed` is the address of an `AtomicU64` in the
        // flow's state area, which the flow (and so every holder of these
        // Wakers, which borrows or owns the flow) keeps mapped.
        let armed = unsafe { &*(self.space_armed as *const std::sync::atomic::AtomicU64) };
        if ringflow_ring::arm::take_arm(armed) {
            crate::flow::readiness::signal(self.peer_event);
        }
    }

    /// The data arm word of our sending direction, in the flow's state area.
    #[inline(always)]
    pub fn data_armed(&self) -> &std::sync::atomic::AtomicU64 {
        // SAFETY: `data_armed` is the address of an `AtomicU64` in the
        // flow's state area (`FlowMemory::tx_armed`), which the flow (and
        // so every holder of these Wakers, which borrows or owns the flow)
        // keeps mapped; the returned reference borrows `self`.
        unsafe { &*(self.data_armed as *const std::sync::atomic::AtomicU64) }
    }

    /// Our count of messages consumed, in the flow's state area.
    #[inline(always)]
    pub fn consumed(&self) -> &std::sync::atomic::AtomicU64 {
        // SAFETY: `consumed` is the address of an `AtomicU64` in the flow's
        // state area (`FlowMemory::rx_consumed`), which the flow (and so
        // every holder of these Wakers, which borrows or owns the flow)
        // keeps mapped; the returned reference borrows `self`.
        unsafe { &*(self.consumed as *const std::sync::atomic::AtomicU64) }
    }

    /// Wakes sleepers on `word`.
    #[inline]
    pub fn wake(word: usize) {
        // SAFETY: `word` is a futex word of the flow's segment, which the
        // flow (and so every caller holding these Wakers) keeps mapped.
        let _ = unsafe { crate::futex::wake(word as *const u32, u32::MAX) };
    }
}

/// One end of a flow.
pub struct FlowEnd {
    // Field order is drop order: the ring sides close first, then the
    // watch registration goes, then the socket closes (telling the peer).
    /// Dropped by hand in `Drop` (closed, or abandoned), before the rest.
    pub(crate) sides: ManuallyDrop<Sides>,
    pub(crate) wakers: Wakers,
    pub(crate) shared: Arc<FlowShared>,
    pub(crate) geometry: Geometry,
    pub(crate) qos: Qos,
    pub(crate) spin: Duration,
    /// Counters and histograms, in the process's stats file.
    pub(crate) slot: Slot,
    /// Stamp sends and record receive latencies.
    pub(crate) latency: bool,
    /// The last received message's latency, until the next receive call
    /// records it.
    pub(crate) pending: Option<recv::PendingLatency>,
    name: String,
    peer: Option<PeerCred>,
    _watch: Watch,
    /// The control socket: passed descriptors travel on it, its hang-up
    /// tells the watcher that the peer died, and readiness signals travel
    /// on it both ways (we signal the peer when we publish while its
    /// receiving direction is armed; it is our readiness descriptor). The
    /// flow end's one descriptor (`crate::flow::readiness`).
    pub(crate) conn: ControlConn,
    /// The invoker-mode engine this flow drives from its calls, if any
    /// (see [`crate::remote`]).
    pub(crate) invoker: Option<Arc<Invoker>>,
    /// Dropped as if dead (see `abandon`): the ring sides stay open.
    abandoned: bool,
    /// The flow leads to another host: descriptors cannot go with its
    /// messages (`send_fds` refuses them: `TooManyFds { max: 0 }`), and
    /// `dealloc` waits for the engine to hand the flow's end to the network
    /// (`close`). Set by whoever bridges it, or, on an accepted flow, by
    /// the engine's word in the handshake.
    pub(crate) crosses_hosts: bool,
    /// Messages this end sent and received before the flow was the
    /// application's: an attached application's request to the host engine
    /// and the engine's answer (see `remote::host`). They travel in the
    /// rings and count there (the linger compares the ring's figures), but
    /// are no message of the flow: the counts a `PeerGone` reports and
    /// `stats` shows leave them out.
    pub(crate) preamble: Preamble,
    /// Who holds the flow's turn for calls, and how far the message in
    /// flight has come (local state: nothing of it is shared).
    pub(crate) turn: turn::Turn,
}

/// See [`FlowEnd::preamble`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Preamble {
    pub(crate) sent: u64,
    pub(crate) received: u64,
}

impl FlowEnd {
    /// The QoS granted to this flow (the same on both sides).
    pub fn qos(&self) -> &Qos {
        &self.qos
    }

    /// The name the flow was allocated to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The peer process's id (from the control socket's credentials).
    pub fn peer_pid(&self) -> Option<u32> {
        self.peer.map(|c| c.pid)
    }

    /// Tunes this side's sending ring for request/reply traffic (one message
    /// or a few in flight): while the peer keeps up, messages cycle through
    /// the ring's first `bytes` (plus one message) instead of all of it, so
    /// they travel through cache lines both cores already share (what that
    /// gains a round trip: tuning.md, "Window").
    /// [`REQUEST_REPLY_WINDOW`] suits small messages; `None` turns it off
    /// (the default). Local to this side: the peer reads as before.
    ///
    /// The price, and why it is off by default: right after the ring wraps
    /// early, this side's room is what it wrote on that pass through the
    /// ring, until the peer reads on. A peer that polls or parks on the flow
    /// does so at once; a burst of sends while the peer is busy elsewhere
    /// (sending to us, say, with its own ring full) waits for it sooner
    /// than with the whole ring. The ring never overwrites a message the
    /// peer has not read: it wraps early only while the peer is awake and
    /// within one window of the last message.
    pub fn set_send_window(&mut self, bytes: Option<usize>) {
        self.sides.get().tx.set_window(bytes.unwrap_or(usize::MAX));
    }

    /// Largest message sent inline through the ring; larger ones travel
    /// through the flow's bulk area (still zero-copy).
    pub fn inline_max(&self) -> usize {
        self.geometry.inline_max
    }

    /// Whether the peer has left (closed or died) as far as this side knows.
    pub fn is_peer_gone(&self) -> bool {
        self.shared.state() != shared::LIVE
    }
}

impl std::fmt::Debug for FlowEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("name", &self.name)
            .field("qos", &self.qos)
            .field("sent", &self.sent_count())
            .field("received", &self.received_count())
            .finish()
    }
}
