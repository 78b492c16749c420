//! The engine-to-engine wire protocol: a versioned handshake, length-prefixed
//! frames with an optional CRC32C, and the sequencing that lets a reliable
//! flow resume after a reconnect with nothing lost and nothing duplicated.
//!
//! This is the pure codec: it turns values into bytes and bytes into values
//! and keeps sequence state, so it can be property-tested and fuzzed without
//! a socket. It must never do I/O, never panic on bytes from the network,
//! never allocate in proportion to a length a peer wrote, and never accept a
//! malformed input silently: every kind of damage has its own error.
//!
//! # Connection lifecycle
//!
//! 1. The connecting engine sends a [`Hello`]; the accepting one answers with
//!    a [`HelloAck`] made by [`respond`]; the connecting one checks it with
//!    [`accept_ack`]. Both now hold the same [`Agreed`] version and features.
//!    Engines with a key then finish proving it: the dialler sends a
//!    [`HelloProof`], the acceptor checks it with [`check_proof`] (see
//!    [`auth`]). No frame is read before.
//! 2. Then both sides exchange [`Frame`]s: [`encode`] / [`encode_into`] on the
//!    way out, a [`Decoder`] over the receive buffer on the way in (zero-copy:
//!    a decoded frame borrows its payload from that buffer).
//! 3. A reliable flow's sender keeps what it sent in a [`SendWindow`] until
//!    acknowledged; the receiver's [`RecvSequencer`] drops duplicates and
//!    refuses gaps. After a reconnect the receiver sends `Resume` and the
//!    sender replays its window from there.
//!
//! All integers are little-endian, like the rest of ringflow's encodings: both
//! ends are engines of this project and every target it runs on is
//! little-endian, so no byte is ever swapped on the data path.

pub mod auth;
mod bytes;
mod codec;
mod crc32c;
mod error;
mod frame;
mod handshake;
mod reliable;
mod sequencer;

#[cfg(test)]
mod tests;

pub use auth::AuthKey;
pub use codec::{
    data_crc, data_prefix, encode, encode_into, encoded_len, Checksum, CrcPolicy, Decoder, Frames,
    DEFAULT_MAX_FRAME_LEN,
};
pub use crc32c::crc32c;
pub use error::{EncodeError, WireError};
pub use frame::{
    CallMark, Frame, Kind, OpenResult, CRC_LEN, DATA_PREFIX_LEN, FLAG_CALL_PART, FLAG_CALL_TURN, FLAG_CRC32C,
    FLAG_STAMP, HEADER_LEN, MAX_CLUSTER_LEN, MAX_WIRE_NAME_LEN, QOS_LEN, STAMP_LEN,
};
pub use handshake::{
    accept_ack, check_proof, negotiate, respond, Agreed, Features, Hello, HelloAck, HelloProof, RejectReason,
    VersionRange, MAGIC, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
pub use reliable::{AckError, PushError, Resend, SendWindow, WindowLimits, FIRST_SEQ};
pub use sequencer::{Delivery, RecvSequencer, SequenceError};
