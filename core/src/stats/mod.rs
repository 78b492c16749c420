//! Live statistics: counters and latency histograms that every flow and
//! engine thread keeps in a stats file of its process, in shared memory, so
//! that `ringflow stat` reads a running service from outside (as AeronStat
//! reads Aeron's CnC file) and `Flow::stats` reads the same words inside.
//!
//! One file per process and runtime directory: `<dir>/stats/<pid>`, a
//! header page then slots, grown by whole chunks of slots (earlier mappings
//! stay valid: a file only grows). A slot belongs to one flow end or engine
//! thread; its owner is its only writer. Recording is one relaxed load and
//! store per counter — never a lock, fence or read-modify-write on the hot
//! path — and a reader never makes the writer wait: counters and buckets
//! only grow between resets, so a copy taken mid-way is a valid histogram
//! of some moment, and every change of a slot's identity or reset is
//! bracketed by the slot's sequence word (a seqlock), which tells a reader
//! to take its copy again or skip the slot. Nothing a reader maps is
//! trusted: headers, kinds and lengths are validated, garbage is skipped.
//!
//! If the file cannot be made (a read-only directory, no space), slots are
//! kept on the heap: statistics still work in the process, unseen outside.

pub mod hist;
mod read;
mod segment;

use std::sync::atomic::AtomicU64;

pub use read::{read_dir, ProcessStats, ReadError, SlotSnapshot};
pub use segment::Slot;

/// Counters per slot.
pub const COUNTERS: usize = 16;
/// Histograms per slot.
pub const HISTS: usize = 3;
/// Bytes of a slot's name.
pub const NAME_LEN: usize = 64;

/// What a slot describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum SlotKind {
    /// One end of a flow (counters: [`FlowCounter`]; histograms: one-way
    /// latency, round trip).
    Flow = 1,
    /// One engine thread (counters: [`EngineCounter`]; histograms: duty
    /// cycle, idle span, wake-up).
    Engine = 2,
    /// One member of a process group (name: the group; info: the member
    /// id; peer word: its seat in the group's member table; counters:
    /// [`GroupCounter`]; histogram: one-way latency).
    Group = 3,
    /// A cluster node (info: its id; counters: [`ClusterCounter`]; no
    /// histogram).
    Cluster = 4,
    /// One peer of a cluster node, as the node sees it (info: the peer's
    /// id; peer word: the node's id; counters: [`ClusterPeerCounter`]).
    ClusterPeer = 5,
    /// A member of a group that crosses hosts, on another host, as this
    /// host's gateway (its engine) last saw the cluster's view (name: the
    /// group; info: the member id; peer word: its host, a cluster node id;
    /// counters: its pid; no histogram).
    GroupRemote = 6,
    /// This host's gateway of a group that crosses hosts (name: the group;
    /// info: this host, a cluster node id; counters:
    /// [`GroupGatewayCounter`]; no histogram).
    GroupGateway = 7,
}

impl SlotKind {
    /// The kind a slot's kind word names; `None` for a free slot (0) or garbage.
    pub fn from_word(w: u64) -> Option<SlotKind> {
        match w {
            1 => Some(SlotKind::Flow),
            2 => Some(SlotKind::Engine),
            3 => Some(SlotKind::Group),
            4 => Some(SlotKind::Cluster),
            5 => Some(SlotKind::ClusterPeer),
            6 => Some(SlotKind::GroupRemote),
            7 => Some(SlotKind::GroupGateway),
            _ => None,
        }
    }

    /// The kind's name, as `ringflow stat` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotKind::Flow => "flow",
            SlotKind::Engine => "engine",
            SlotKind::Group => "group",
            SlotKind::Cluster => "cluster",
            SlotKind::ClusterPeer => "cluster-peer",
            SlotKind::GroupRemote => "group-remote",
            SlotKind::GroupGateway => "group-gateway",
        }
    }

    /// Names of the counters in use, by index.
    pub fn counter_names(self) -> &'static [&'static str] {
        match self {
            SlotKind::Flow => FlowCounter::NAMES,
            SlotKind::Engine => EngineCounter::NAMES,
            SlotKind::Group => GroupCounter::NAMES,
            SlotKind::Cluster => ClusterCounter::NAMES,
            SlotKind::ClusterPeer => ClusterPeerCounter::NAMES,
            SlotKind::GroupRemote => &["pid"],
            SlotKind::GroupGateway => GroupGatewayCounter::NAMES,
        }
    }

    /// Names of the histograms in use, by index.
    pub fn hist_names(self) -> &'static [&'static str] {
        match self {
            SlotKind::Flow => &["latency", "rtt"],
            SlotKind::Engine => &["duty", "idle", "wake"],
            SlotKind::Group => &["latency"],
            SlotKind::Cluster | SlotKind::ClusterPeer | SlotKind::GroupRemote | SlotKind::GroupGateway => &[],
        }
    }
}

/// One kind of slot's counters: an enum of indices and their names, in
/// one list (`NAMES` is what `ringflow stat --json` prints).
macro_rules! counters {
    ($(#[$meta:meta])* $name:ident { $($(#[$doc:meta])* $variant:ident = $index:literal => $label:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$doc])* $variant = $index,)*
        }

        impl $name {
            /// The counters' names, in their order.
            pub const NAMES: &'static [&'static str] = &[$($label),*];
        }
    };
}

counters! {
    /// Counters of a flow end.
    FlowCounter {
        /// Messages sent.
        Sent = 0 => "sent",
        /// Messages received.
        Received = 1 => "received",
        /// Payload bytes sent.
        BytesSent = 2 => "bytes_sent",
        /// Payload bytes received.
        BytesReceived = 3 => "bytes_received",
        /// Messages refused because the ring was full (lossy QoS).
        Dropped = 4 => "dropped",
        /// Messages lost on the way here (a lossy flow between hosts).
        Lost = 5 => "lost",
        /// Times this side woke its sleeping peer (a futex wake).
        Wakeups = 6 => "wakeups",
        /// Times this side slept waiting for the peer.
        Parked = 7 => "parked",
        /// Times a send found no room.
        Backpressure = 8 => "backpressure",
        /// Received stamps that could not be a latency (a clock not shared).
        Unstamped = 9 => "unstamped",
    }
}

/// Histogram indices of a flow end.
pub const FLOW_LATENCY: usize = 0;
/// A flow end bridged to another host: round trips measured from acknowledgements.
pub const FLOW_RTT: usize = 1;

counters! {
    /// Counters of an engine thread.
    EngineCounter {
        /// Duty cycles run.
        Cycles = 0 => "cycles",
        /// Cycles that did work.
        Busy = 1 => "busy_cycles",
        /// Times the thread slept (parked, or waited in its io_uring).
        Sleeps = 2 => "sleeps",
        /// Units of work done (the agents' sum).
        Work = 3 => "work",
    }
}

/// Histogram indices of an engine thread.
pub const ENGINE_DUTY: usize = 0;
/// Idle spans: from the first cycle without work to the next with some.
pub const ENGINE_IDLE: usize = 1;
/// How long a wake-up took, from the wake to the thread running.
pub const ENGINE_WAKE: usize = 2;

counters! {
    /// Counters of a group member.
    GroupCounter {
        /// Messages this member multicast.
        Sent = 0 => "sent",
        /// Messages handed to this member's application.
        Received = 1 => "received",
        /// Messages this member lost (lapped on a Lap group).
        Lost = 2 => "lost",
    }
}

counters! {
    /// Counters of a cluster node (gauges, set every duty cycle).
    ClusterCounter {
        /// The current term.
        Term = 0 => "term",
        /// The leader it knows (0: none).
        Leader = 1 => "leader",
        /// The commit index.
        Commit = 2 => "commit",
        /// The applied index.
        Applied = 3 => "applied",
        /// The SAFE index.
        Safe = 4 => "safe",
        /// 1 while it has the quorum.
        Quorum = 5 => "quorum",
        /// The last index of its log.
        LastIndex = 6 => "last_index",
    }
}

counters! {
    /// Counters of a cluster node's peer (gauges).
    ClusterPeerCounter {
        /// The leader's match index of it (0 when this node is not the leader).
        Matched = 0 => "matched",
        /// This node's last index less the match index (the leader's view).
        Lag = 1 => "lag",
        /// 1: heard from within an election timeout.
        Up = 2 => "up",
        /// 1: the log says it is down.
        Down = 3 => "down",
        /// Milliseconds since it was heard from (`u64::MAX`: never).
        SilentMs = 4 => "silent_ms",
    }
}

counters! {
    /// Counters of a crossing group's gateway (gauges but the last, set
    /// every duty cycle; `crate::xgroup`).
    GroupGatewayCounter {
        /// Members' messages read from the local log, not yet committed.
        HeldFrames = 0 => "held_frames",
        /// Their bytes.
        HeldBytes = 1 => "held_bytes",
        /// The bound on those bytes (`cluster.group_intake_bytes`).
        IntakeBytes = 2 => "intake_bytes",
        /// 1: the last read stopped at the bound (a submit waits).
        Throttled = 3 => "throttled",
        /// Committed frames waiting for room in the local log.
        OutFrames = 4 => "out_frames",
        /// Their bytes.
        OutBytes = 5 => "out_bytes",
        /// Committed changes held while the quorum is lost.
        Paused = 6 => "paused",
        /// Members' messages proposed to the cluster's log (a count).
        Proposed = 7 => "proposed",
    }
}

/// Histogram index of a group member: one-way latency, send to receive.
pub const GROUP_LATENCY: usize = 0;

/// Words of a slot before its histograms: sequence, kind, info, peer pid,
/// opened-at, name, counters, reserve.
pub(crate) const SLOT_HEAD_WORDS: usize = 32;
pub(crate) const W_SEQ: usize = 0;
pub(crate) const W_KIND: usize = 1;
pub(crate) const W_INFO: usize = 2;
pub(crate) const W_PEER: usize = 3;
pub(crate) const W_OPENED: usize = 4;
pub(crate) const W_NAME: usize = 5;
pub(crate) const W_COUNTERS: usize = W_NAME + NAME_LEN / 8;
const _: () = assert!(W_COUNTERS + COUNTERS <= SLOT_HEAD_WORDS);

/// Bytes of one slot, whole pages (so chunks map at page offsets).
pub(crate) const SLOT_BYTES: usize = ((SLOT_HEAD_WORDS + HISTS * hist::COUNTS_LEN) * 8).div_ceil(4096) * 4096;
pub(crate) const SLOT_WORDS: usize = SLOT_BYTES / 8;

/// Whether recording latencies is on by default for new flows: on, unless
/// `RINGFLOW_FLOW_LATENCY` (the environment form of the config key
/// `flow.latency`) is `false` / `0` / `off`, or [`set_latency_default`]
/// (which an engine calls with its `flow.latency`) says otherwise.
pub fn latency_default() -> bool {
    use std::sync::atomic::Ordering;
    // SYNC: Relaxed; a setting read at flow setup, no data hangs off it.
    match LATENCY_DEFAULT.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let on = match std::env::var("RINGFLOW_FLOW_LATENCY") {
                Err(_) => true,
                Ok(v) => crate::config::parse_env_bool(&v).unwrap_or_else(|| {
                    // `ringflow config` refuses this value; a flow cannot,
                    // so it says so once and keeps the default.
                    tracing::warn!(value = ?v, "RINGFLOW_FLOW_LATENCY is not a boolean: latency recording stays on");
                    crate::log::stderr_if_unheard(format_args!(
                        "ringflow: RINGFLOW_FLOW_LATENCY={v:?} is not true/false/on/off/1/0 \
                         (`ringflow config` refuses it): latency recording stays on"
                    ));
                    true
                }),
            };
            set_latency_default(on);
            on
        }
    }
}

/// Turns latency recording on or off for flows set up from now on (each
/// flow can still choose with `FlowOptions::latency`).
pub fn set_latency_default(on: bool) {
    use std::sync::atomic::Ordering;
    // SYNC: Relaxed; see `latency_default`.
    LATENCY_DEFAULT.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

static LATENCY_DEFAULT: AtomicU64 = AtomicU64::new(0);

#[cfg(test)]
mod tests;
