//! Errors of the wire codec: [`WireError`] for anything a peer sent that
//! cannot be accepted (the connection is then closed), [`EncodeError`] for a
//! frame this side cannot put on the wire. Neither ever carries bytes from the
//! peer beyond a few fixed-size fields, so building one never allocates.

use std::fmt;

use super::frame::Kind;
use super::handshake::{RejectReason, VersionRange};
use crate::control::NameError;

/// Why bytes from a peer were refused. Every distinct kind of damage has its
/// own variant; each one means "close this connection".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The stream did not start with [`crate::wire::MAGIC`]: not a ringflow
    /// engine on the other end.
    BadMagic,
    /// A handshake message's length field is outside what any version uses.
    BadHandshakeLength {
        /// The length it declared.
        len: u16,
        /// The smallest length this version can read.
        min: u16,
        /// The largest length accepted.
        max: u16,
    },
    /// A version range with `min > max`, or version 0.
    BadVersionRange(VersionRange),
    /// The two engines share no protocol version.
    NoCommonVersion {
        /// What this engine speaks.
        ours: VersionRange,
        /// What the peer speaks.
        theirs: VersionRange,
    },
    /// The peer has this engine's own id: the engine connected to itself.
    SelfConnect {
        /// The id both sides claim.
        engine_id: u64,
    },
    /// A `HelloAck` status byte that is neither accept nor reject.
    UnknownAckStatus(u8),
    /// A `HelloAck` rejection with a reason code this version does not know.
    UnknownRejectReason(u8),
    /// The peer refused the handshake.
    Rejected {
        /// Why it refused.
        reason: RejectReason,
        /// The versions it speaks.
        theirs: VersionRange,
    },
    /// An auth kind this version does not know.
    UnknownAuth(u8),
    /// One engine holds a key and the other none (`reason` says which, as
    /// this engine would tell the peer).
    KeyMismatch {
        /// [`RejectReason::KeyRequired`]: this engine has a key, the peer
        /// none; [`RejectReason::NoKey`]: the other way round.
        reason: RejectReason,
    },
    /// The peer's proof of the key is wrong: the keys differ, or the proof
    /// was replayed, reflected or forged.
    BadProof,
    /// The peer accepted with a version this engine did not offer.
    AckVersionNotOffered {
        /// The version it chose.
        version: u16,
        /// What this engine offered.
        ours: VersionRange,
    },
    /// The peer accepted with features this engine did not offer.
    AckFeaturesNotOffered {
        /// The features it agreed to.
        agreed: u32,
        /// What this engine offered.
        offered: u32,
    },
    /// A frame header with a kind code that is not a [`Kind`].
    UnknownKind(u8),
    /// A frame header with flag bits this version does not define.
    UnknownFlags(u8),
    /// A frame header whose reserved field is not zero.
    ReservedNotZero(u16),
    /// A frame longer than the decoder's `max_frame_len` (checked from the
    /// header, before any of the body is awaited).
    FrameTooLong {
        /// The body length the header declared.
        len: u32,
        /// The decoder's limit.
        max: u32,
    },
    /// The body is too short to hold the fields of its kind.
    BodyTooShort {
        /// The frame's kind.
        kind: Kind,
        /// The body length.
        len: u32,
        /// The length the kind's fields need.
        min: u32,
    },
    /// The body is longer than the fields of its kind.
    TrailingBytes {
        /// The frame's kind.
        kind: Kind,
        /// Bytes left over after the last field.
        extra: u32,
    },
    /// The CRC32C trailer does not match header and body.
    BadCrc {
        /// The checksum of what arrived.
        computed: u32,
        /// The checksum the frame carried.
        carried: u32,
    },
    /// The decoder requires a CRC32C and the frame has none.
    MissingCrc {
        /// The frame's kind.
        kind: Kind,
    },
    /// An `Open` name that is not UTF-8.
    NameNotUtf8,
    /// An `Open` name that is not a valid flow name.
    BadName(NameError),
    /// An `OpenAck` result code that is not an [`crate::wire::OpenResult`].
    UnknownOpenResult(u16),
    /// A datagram (or other complete buffer) ends inside a frame.
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes that were there.
        have: usize,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::BadMagic => f.write_str("peer did not send the ringflow wire magic (not a ringflow engine?)"),
            WireError::BadHandshakeLength { len, min, max } => {
                write!(f, "handshake message declares {len} bytes, allowed {min}..={max}")
            }
            WireError::BadVersionRange(r) => write!(f, "invalid protocol version range {r}"),
            WireError::NoCommonVersion { ours, theirs } => write!(
                f,
                "no common wire protocol version: this engine speaks {ours}, the peer speaks {theirs}; \
                 upgrade the older engine"
            ),
            WireError::SelfConnect { engine_id } => {
                write!(f, "engine {engine_id:#x} connected to itself (check the peer address)")
            }
            WireError::UnknownAckStatus(s) => write!(f, "handshake answer has unknown status {s}"),
            WireError::UnknownRejectReason(r) => write!(f, "handshake rejected with unknown reason code {r}"),
            WireError::Rejected { reason, theirs } => {
                write!(f, "peer rejected the handshake: {reason} (it speaks {theirs})")
            }
            WireError::UnknownAuth(a) => write!(f, "handshake names unknown auth kind {a}"),
            WireError::KeyMismatch { reason } => write!(f, "engines' keys do not match: {reason}"),
            WireError::BadProof => f.write_str(
                "the peer's proof of the key is wrong: the engines' keys (net.key_file) differ, or the proof was \
                 replayed or forged",
            ),
            WireError::AckVersionNotOffered { version, ours } => {
                write!(f, "peer chose protocol version {version}, this engine offered {ours}")
            }
            WireError::AckFeaturesNotOffered { agreed, offered } => {
                write!(f, "peer agreed to features {agreed:#x}, this engine offered only {offered:#x}")
            }
            WireError::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            WireError::UnknownFlags(fl) => write!(f, "frame has unknown flag bits {fl:#04x}"),
            WireError::ReservedNotZero(r) => write!(f, "frame header reserved field is {r:#06x}, not zero"),
            WireError::FrameTooLong { len, max } => write!(f, "frame body of {len} bytes exceeds the limit of {max}"),
            WireError::BodyTooShort { kind, len, min } => {
                write!(f, "{kind} frame body is {len} bytes, its fields need {min}")
            }
            WireError::TrailingBytes { kind, extra } => write!(f, "{kind} frame has {extra} bytes after its fields"),
            WireError::BadCrc { computed, carried } => {
                write!(f, "frame CRC32C mismatch: computed {computed:#010x}, frame carried {carried:#010x}")
            }
            WireError::MissingCrc { kind } => write!(f, "{kind} frame has no CRC32C and this connection requires one"),
            WireError::NameNotUtf8 => f.write_str("flow name in Open frame is not UTF-8"),
            WireError::BadName(e) => write!(f, "Open frame: {e}"),
            WireError::UnknownOpenResult(c) => write!(f, "OpenAck has unknown result code {c}"),
            WireError::Truncated { needed, have } => {
                write!(f, "frame truncated: needs {needed} bytes, the buffer ends after {have}")
            }
        }
    }
}

impl std::error::Error for WireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WireError::BadName(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a frame could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is too small; nothing was written past its end, and
    /// the frame fits once `needed` bytes are free.
    BufferTooSmall {
        /// Bytes the encoded frame takes.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// The body would not fit the 32-bit length field.
    TooLarge {
        /// The body length it would have.
        body_len: usize,
    },
    /// An `Open` frame's name is not a valid flow name.
    BadName(NameError),
    /// A `Cluster` frame's message is empty or longer than
    /// [`crate::wire::MAX_CLUSTER_LEN`].
    ClusterLen {
        /// The message's length.
        len: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall { needed, available } => {
                write!(f, "frame needs {needed} bytes, the buffer has {available}")
            }
            EncodeError::TooLarge { body_len } => {
                write!(f, "frame body of {body_len} bytes does not fit the 32-bit length field")
            }
            EncodeError::BadName(e) => write!(f, "cannot encode Open: {e}"),
            EncodeError::ClusterLen { len } => {
                write!(f, "cluster message of {len} bytes (1 to {} allowed)", crate::wire::MAX_CLUSTER_LEN)
            }
        }
    }
}

impl std::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EncodeError::BadName(e) => Some(e),
            _ => None,
        }
    }
}
