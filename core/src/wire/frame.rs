//! The frames engines exchange once the handshake is done, and their layout
//! on the wire. It must never hold anything a decoder did not check: a
//! [`Frame`] coming out of the decoder is well-formed by construction.
//!
//! ```text
//! header (8 bytes)                  body (len bytes)          trailer
//! +---------+------+-------+------+ +----------------------+ +------------------+
//! | len u32 | kind | flags | 0u16 | | fields of the kind   | | CRC32C u32       |
//! +---------+------+-------+------+ +----------------------+ | if flags has bit |
//!                                                            +------------------+
//! ```
//!
//! The CRC covers header and body. Bodies, per kind (little-endian):
//!
//! | kind | body |
//! | --- | --- |
//! | Open | flow_id u32, qos [32], name_len u8, name (UTF-8) |
//! | OpenAck | flow_id u32, result u16, granted qos [32] (zero unless accepted) |
//! | Data | flow_id u32, seq u64, [stamp u64 if flag STAMP], payload (the rest); flag CALL_TURN or CALL_PART: a call's message ([`CallMark`]) |
//! | Ack | flow_id u32, cumulative_seq u64 |
//! | Close | flow_id u32, last_seq u64 |
//! | Keepalive | ts_ns u64 |
//! | Resume | flow_id u32, next_expected_seq u64 |
//! | Gone | flow_id u32, last_seq u64 |
//! | Reset | flow_id u32, consumed_seq u64 |
//! | Cluster | an encoded message of the engines' cluster (opaque here; 1 to [`MAX_CLUSTER_LEN`] bytes) |

use std::fmt;

/// Bytes of the fixed frame header.
pub const HEADER_LEN: usize = 8;
/// Bytes of the CRC32C trailer, when present.
pub const CRC_LEN: usize = 4;
/// Header flag: a CRC32C of header and body follows the body.
pub const FLAG_CRC32C: u8 = 1;
/// Header flag of `Data`: the sender's send stamp (a clock reading of the
/// host, see `crate::clock`) follows the sequence number. Sent only to an
/// engine that announced [`crate::wire::Features::STAMPS`] and shares the
/// sender's clock (the same host).
pub const FLAG_STAMP: u8 = 2;
/// Header flag of `Data`: the last frame of a call's request or reply,
/// which hands the flow's turn over ([`CallMark::Turn`]).
pub const FLAG_CALL_TURN: u8 = 4;
/// Header flag of `Data`: a piece of a call's request or reply, more to
/// come ([`CallMark::Part`]). Never with [`FLAG_CALL_TURN`].
pub const FLAG_CALL_PART: u8 = 8;
/// Bytes of a `Data` frame's stamp, when present.
pub const STAMP_LEN: usize = 8;
/// Bytes of a flow's encoded QoS, carried opaquely by `Open`.
pub const QOS_LEN: usize = crate::flow::qos::ENCODED_LEN;
/// The name length field is one byte; [`crate::control::validate_name`]
/// then applies the (smaller) limit of flow names.
pub const MAX_WIRE_NAME_LEN: usize = u8::MAX as usize;
/// Header plus the fixed fields of a `Data` body: what precedes the payload.
pub const DATA_PREFIX_LEN: usize = HEADER_LEN + DATA_FIXED as usize;

/// Fixed body bytes of each kind (for `Open` and `Data`, before the
/// variable part).
pub(crate) const OPEN_FIXED: u32 = 4 + QOS_LEN as u32 + 1;
pub(crate) const OPEN_ACK_LEN: u32 = 4 + 2 + QOS_LEN as u32;
pub(crate) const DATA_FIXED: u32 = 4 + 8;
pub(crate) const FLOW_SEQ_LEN: u32 = 4 + 8;
pub(crate) const KEEPALIVE_LEN: u32 = 8;
/// Largest body of a `Cluster` frame: a raft message (with its entries or
/// a snapshot) of the cluster's `max_message_bytes` at most.
pub const MAX_CLUSTER_LEN: u32 = 1 << 20;

/// What a frame is. Zero is not a kind, so an all-zero header is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Open a flow to a name served by the remote engine.
    Open = 1,
    /// The remote engine's answer to `Open`.
    OpenAck = 2,
    /// One message of a flow.
    Data = 3,
    /// The receiver consumed every message up to a sequence number.
    Ack = 4,
    /// The sender will send no more on this flow.
    Close = 5,
    /// Liveness, sent when a connection has been quiet.
    Keepalive = 6,
    /// After a reconnect: the receiver says where the sender must resume.
    Resume = 7,
    /// The sender's application died after `last_seq`: the flow ends with
    /// "peer gone" once every message up to it is delivered.
    Gone = 8,
    /// The receiver's application closed the flow (or the flow is unknown):
    /// nothing more will be consumed; the sender stops.
    Reset = 9,
    /// A message between the engines' cluster nodes (`crate::cluster`):
    /// opaque bytes the cluster decodes and checks itself.
    Cluster = 10,
}

impl Kind {
    /// The kind with this code, if any.
    pub const fn from_code(code: u8) -> Option<Kind> {
        Some(match code {
            1 => Kind::Open,
            2 => Kind::OpenAck,
            3 => Kind::Data,
            4 => Kind::Ack,
            5 => Kind::Close,
            6 => Kind::Keepalive,
            7 => Kind::Resume,
            8 => Kind::Gone,
            9 => Kind::Reset,
            10 => Kind::Cluster,
            _ => return None,
        })
    }

    /// Smallest and largest body length this kind can have.
    pub(crate) const fn body_bounds(self) -> (u32, u32) {
        match self {
            Kind::Open => (OPEN_FIXED, OPEN_FIXED + MAX_WIRE_NAME_LEN as u32),
            Kind::OpenAck => (OPEN_ACK_LEN, OPEN_ACK_LEN),
            Kind::Data => (DATA_FIXED, u32::MAX),
            Kind::Ack | Kind::Close | Kind::Resume | Kind::Gone | Kind::Reset => (FLOW_SEQ_LEN, FLOW_SEQ_LEN),
            Kind::Keepalive => (KEEPALIVE_LEN, KEEPALIVE_LEN),
            Kind::Cluster => (1, MAX_CLUSTER_LEN),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The outcome of an `Open`, as the remote engine reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum OpenResult {
    /// The flow is open; data may follow.
    Accepted = 0,
    /// No listener binds that name on the remote host.
    NameNotFound = 1,
    /// The listener cannot grant the QoS asked for.
    QosRefused = 2,
    /// The listener's permit refused this peer.
    PermissionDenied = 3,
    /// The flow id is already open on this connection.
    FlowIdInUse = 4,
    /// The remote engine is shutting down.
    ShuttingDown = 5,
    /// The remote engine has too many opens under way: try again later.
    Busy = 6,
    /// The remote engine ran out of a resource (descriptors, memory,
    /// threads) setting the flow up: not a missing name. The answer's
    /// `qos` field carries the cause, an errno as a little-endian u32 in
    /// its first four bytes (0: unknown). An engine of before this code
    /// answered `NameNotFound` instead.
    ResourceLimit = 7,
}

impl OpenResult {
    /// The result with this code, if any.
    pub const fn from_code(code: u16) -> Option<OpenResult> {
        Some(match code {
            0 => OpenResult::Accepted,
            1 => OpenResult::NameNotFound,
            2 => OpenResult::QosRefused,
            3 => OpenResult::PermissionDenied,
            4 => OpenResult::FlowIdInUse,
            5 => OpenResult::ShuttingDown,
            6 => OpenResult::Busy,
            7 => OpenResult::ResourceLimit,
            _ => return None,
        })
    }
}

/// One frame. Decoded frames borrow `name` and `payload` from the receive
/// buffer; frames to encode borrow them from wherever the caller keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Frame<'a> {
    /// Open `flow_id` to the flow `name` on the remote host.
    Open {
        /// Chosen by the opening engine, unique on the connection.
        flow_id: u32,
        /// A valid flow name (see [`crate::control::validate_name`]).
        name: &'a str,
        /// The flow's QoS request, encoded by [`crate::flow::Qos::encode`];
        /// opaque to the wire layer.
        qos: [u8; QOS_LEN],
    },
    /// The answer to `Open { flow_id }`.
    OpenAck {
        /// The flow being answered.
        flow_id: u32,
        /// Whether it opened, and if not why.
        result: OpenResult,
        /// The QoS the remote listener granted (encoded like `Open`'s; all
        /// zero unless accepted), written back to the opening application.
        qos: [u8; QOS_LEN],
    },
    /// A message. Sequence numbers start at [`crate::wire::FIRST_SEQ`].
    Data {
        /// The flow it belongs to.
        flow_id: u32,
        /// Its position in the flow.
        seq: u64,
        /// When its sender published it, on the sending host's clock (0:
        /// not stamped; see [`FLAG_STAMP`]).
        stamp: u64,
        /// What the message is to a call (`crate::flow::call`): the turn
        /// and the pieces travel with the frames.
        call: CallMark,
        /// The message.
        payload: &'a [u8],
    },
    /// The receiver consumed every message with `seq <= cumulative_seq`
    /// (0: none yet); the sender may forget them.
    Ack {
        /// The flow acknowledged.
        flow_id: u32,
        /// Highest sequence number consumed, with all before it.
        cumulative_seq: u64,
    },
    /// The sender is done; `last_seq` is its last message (0: none).
    Close {
        /// The flow being closed.
        flow_id: u32,
        /// The last sequence number sent on it.
        last_seq: u64,
    },
    /// Liveness, with the sender's clock for round-trip estimates.
    Keepalive {
        /// The sender's monotonic time, in nanoseconds.
        ts_ns: u64,
    },
    /// After a reconnect: resend from `next_expected_seq` on.
    Resume {
        /// The flow to resume.
        flow_id: u32,
        /// The first sequence number the receiver has not received.
        next_expected_seq: u64,
    },
    /// The sending application died; `last_seq` is its last message.
    Gone {
        /// The flow whose sender died.
        flow_id: u32,
        /// The last sequence number sent on it (0: none).
        last_seq: u64,
    },
    /// The receiving application closed the flow, or it is unknown here.
    Reset {
        /// The flow being reset.
        flow_id: u32,
        /// Every message up to this one was consumed (0: none).
        consumed_seq: u64,
    },
    /// A message of the engines' cluster, for its node on this engine.
    Cluster {
        /// The encoded message (1 to [`MAX_CLUSTER_LEN`] bytes).
        payload: &'a [u8],
    },
}

impl Frame<'_> {
    /// This frame's kind.
    pub const fn kind(&self) -> Kind {
        match self {
            Frame::Open { .. } => Kind::Open,
            Frame::OpenAck { .. } => Kind::OpenAck,
            Frame::Data { .. } => Kind::Data,
            Frame::Ack { .. } => Kind::Ack,
            Frame::Close { .. } => Kind::Close,
            Frame::Keepalive { .. } => Kind::Keepalive,
            Frame::Resume { .. } => Kind::Resume,
            Frame::Gone { .. } => Kind::Gone,
            Frame::Reset { .. } => Kind::Reset,
            Frame::Cluster { .. } => Kind::Cluster,
        }
    }

    /// The flow this frame is about; `None` for connection-level frames.
    pub const fn flow_id(&self) -> Option<u32> {
        match *self {
            Frame::Open { flow_id, .. }
            | Frame::OpenAck { flow_id, .. }
            | Frame::Data { flow_id, .. }
            | Frame::Ack { flow_id, .. }
            | Frame::Close { flow_id, .. }
            | Frame::Resume { flow_id, .. }
            | Frame::Gone { flow_id, .. }
            | Frame::Reset { flow_id, .. } => Some(flow_id),
            Frame::Keepalive { .. } | Frame::Cluster { .. } => None,
        }
    }
}

/// What a `Data` frame's message is to a call on its flow
/// (`crate::flow::call`), carried in the header's flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CallMark {
    /// A plain message.
    #[default]
    Plain,
    /// A piece of a request or reply ([`FLAG_CALL_PART`]).
    Part,
    /// The last frame of a request or reply: it hands the turn over
    /// ([`FLAG_CALL_TURN`]).
    Turn,
}

impl CallMark {
    /// The header flags that carry it.
    pub fn wire_flags(self) -> u8 {
        match self {
            CallMark::Plain => 0,
            CallMark::Part => FLAG_CALL_PART,
            CallMark::Turn => FLAG_CALL_TURN,
        }
    }

    /// The mark of a flow frame's flags (`crate::flow::FLAG_TURN`,
    /// `crate::flow::FLAG_PART`; a flow never sets both).
    pub fn from_flow_flags(flags: u8) -> CallMark {
        if flags & crate::flow::FLAG_TURN != 0 {
            CallMark::Turn
        } else if flags & crate::flow::FLAG_PART != 0 {
            CallMark::Part
        } else {
            CallMark::Plain
        }
    }

    /// The flow frame flags that carry it on the receiving host.
    pub fn flow_flags(self) -> u8 {
        match self {
            CallMark::Plain => 0,
            CallMark::Part => crate::flow::FLAG_PART,
            CallMark::Turn => crate::flow::FLAG_TURN,
        }
    }
}
