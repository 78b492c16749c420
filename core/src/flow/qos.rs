//! Quality of service of a flow: what the allocating side asks for, what the
//! accepting side grants, and its encoding on the control channel.
//!
//! The fields are those of Ouroboros' `qosspec_t` that mean something on one
//! host. Negotiation only ever lowers a request (a listener's limits cap the
//! sizes); a decoded QoS is validated like any other input from a peer.

use std::fmt;
use std::time::Duration;

/// Smallest ring (bytes per direction) a flow may ask for.
pub const MIN_RING_BYTES: usize = 4 << 10;
/// Largest ring a flow may ask for.
pub const MAX_RING_BYTES: usize = 1 << 30;
/// Largest message a flow may ask for.
pub const MAX_MSG_LIMIT: usize = 1 << 30;
/// Message size every flow accepts, whatever it asked for.
pub const MIN_MSG: usize = 64;

/// A flow's quality of service.
///
/// The allocating side asks for one (a preset, adjusted); the listener
/// grants it within its [`QosLimits`] (sizes may be lowered, never
/// raised) and both ends see the granted one (`Flow::qos`).
///
/// ```
/// # use ringflow_core::flow::{Qos, QosLimits};
/// // Reliable and ordered (the default), with messages up to 8 MiB.
/// let asked = Qos::data().with_max_msg(8 << 20);
/// assert!(asked.reliable && asked.in_order);
/// // Lossy: a full ring refuses a message at once instead of waiting.
/// assert!(!Qos::voice().reliable);
/// // Presets by name, as a config file or a command line gives them.
/// assert_eq!(Qos::preset("best-effort"), Some(Qos::best_effort()));
/// // A listener that allows messages of 1 MiB at most lowers the ask.
/// let granted = asked.grant(&QosLimits { max_msg: 1 << 20, ..QosLimits::default() });
/// assert_eq!(granted.max_msg, 1 << 20);
/// assert!(asked.validate().is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Qos {
    /// Messages arrive in the order they were sent. Always granted on one
    /// host (a flow is a FIFO ring); kept for remote flows.
    pub in_order: bool,
    /// Nothing sent is lost: a send into a full ring waits for room. When
    /// false (lossy), a full ring refuses the message at once, the send
    /// fails with `Full` and the drop is counted; it never waits.
    pub reliable: bool,
    /// Largest message, in bytes. Larger ones are refused with `TooLarge`.
    pub max_msg: usize,
    /// Ring bytes per direction for messages sent inline; a power of two
    /// (rounded up). Larger messages travel through the flow's bulk area.
    pub ring_bytes: usize,
    /// How long a silent peer is tolerated before the flow is declared dead
    /// (used by remote flows' keepalives; a local peer's death is seen at
    /// once through its control socket).
    pub peer_timeout: Duration,
    /// No undetected bit errors (Ouroboros' `ber = 0`): between hosts, each
    /// frame of the flow carries a CRC32C, and a frame that fails it breaks
    /// the connection (a reliable flow then resumes; a lossy one counts the
    /// loss). Costs a checksum pass over every byte on both engines. On
    /// one host it changes nothing (memory does not flip bits).
    pub checksum: bool,
}

impl Default for Qos {
    /// The `data` preset.
    fn default() -> Self {
        Qos::data()
    }
}

impl Qos {
    /// No guarantees, smallest footprint: lossy, 64 KiB messages.
    pub const fn raw() -> Qos {
        Qos {
            in_order: false,
            reliable: false,
            max_msg: 64 << 10,
            ring_bytes: 64 << 10,
            peer_timeout: secs(10),
            checksum: false,
        }
    }

    /// Lossy but ordered, 1 MiB messages.
    pub const fn best_effort() -> Qos {
        Qos {
            in_order: true,
            reliable: false,
            max_msg: 1 << 20,
            ring_bytes: 256 << 10,
            peer_timeout: secs(10),
            checksum: false,
        }
    }

    /// Reliable and ordered, 1 MiB messages: the default.
    pub const fn data() -> Qos {
        Qos {
            in_order: true,
            reliable: true,
            max_msg: 1 << 20,
            ring_bytes: 256 << 10,
            peer_timeout: secs(10),
            checksum: false,
        }
    }

    /// Small messages at a steady rate: lossy, ordered, a short peer timeout.
    pub const fn voice() -> Qos {
        Qos {
            in_order: true,
            reliable: false,
            max_msg: 64 << 10,
            ring_bytes: 64 << 10,
            peer_timeout: secs(2),
            checksum: false,
        }
    }

    /// Large frames at a steady rate: lossy, ordered, 16 MiB messages.
    pub const fn video() -> Qos {
        Qos {
            in_order: true,
            reliable: false,
            max_msg: 16 << 20,
            ring_bytes: 1 << 20,
            peer_timeout: secs(3),
            checksum: false,
        }
    }

    /// A preset by name: `raw`, `best-effort`, `data`, `voice`, `video`.
    pub fn preset(name: &str) -> Option<Qos> {
        Some(match name {
            "raw" => Qos::raw(),
            "best-effort" | "best_effort" => Qos::best_effort(),
            "data" => Qos::data(),
            "voice" => Qos::voice(),
            "video" => Qos::video(),
            _ => return None,
        })
    }

    /// Sets the largest message.
    #[must_use]
    pub const fn with_max_msg(mut self, bytes: usize) -> Qos {
        self.max_msg = bytes;
        self
    }

    /// Sets the ring size per direction.
    #[must_use]
    pub const fn with_ring_bytes(mut self, bytes: usize) -> Qos {
        self.ring_bytes = bytes;
        self
    }

    /// Asks for frames checked by CRC32C between hosts (see [`Qos::checksum`]).
    #[must_use]
    pub const fn with_checksum(mut self, checksum: bool) -> Qos {
        self.checksum = checksum;
        self
    }

    /// Sets reliability.
    #[must_use]
    pub const fn with_reliable(mut self, reliable: bool) -> Qos {
        self.reliable = reliable;
        self
    }

    /// Checks the ranges; sizes are then normalised (ring rounded up to a
    /// power of two, messages at least [`MIN_MSG`]).
    pub fn validate(self) -> Result<Qos, QosError> {
        if !(MIN_RING_BYTES..=MAX_RING_BYTES).contains(&self.ring_bytes) {
            return Err(QosError::RingBytes { got: self.ring_bytes, min: MIN_RING_BYTES, max: MAX_RING_BYTES });
        }
        if self.max_msg == 0 || self.max_msg > MAX_MSG_LIMIT {
            return Err(QosError::MaxMsg { got: self.max_msg, max: MAX_MSG_LIMIT });
        }
        if self.peer_timeout.is_zero() {
            return Err(QosError::PeerTimeout);
        }
        Ok(Qos { ring_bytes: self.ring_bytes.next_power_of_two(), max_msg: self.max_msg.max(MIN_MSG), ..self })
    }

    /// What a listener with `limits` grants for this (validated) request:
    /// sizes capped at the limits, reliability and order as asked.
    pub fn grant(self, limits: &QosLimits) -> Qos {
        Qos {
            max_msg: self.max_msg.min(limits.max_msg).max(MIN_MSG),
            ring_bytes: self.ring_bytes.min(limits.max_ring_bytes.next_power_of_two()).max(MIN_RING_BYTES),
            peer_timeout: self.peer_timeout,
            in_order: true,
            reliable: self.reliable,
            checksum: self.checksum,
        }
    }

    /// Whether `granted` is something this request could lead to: a peer
    /// may lower sizes, never raise them or change reliability.
    pub fn admits(self, granted: &Qos) -> bool {
        granted.max_msg <= self.max_msg
            && granted.ring_bytes <= self.ring_bytes
            && granted.reliable == self.reliable
            && granted.checksum == self.checksum
            && granted.validate().as_ref() == Ok(granted)
    }

    /// Fixed little-endian encoding for the control channel.
    pub fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        out[0] = self.in_order as u8;
        out[1] = self.reliable as u8;
        out[2] = self.checksum as u8;
        out[8..16].copy_from_slice(&(self.max_msg as u64).to_le_bytes());
        out[16..24].copy_from_slice(&(self.ring_bytes as u64).to_le_bytes());
        out[24..32].copy_from_slice(&(self.peer_timeout.as_millis().min(u64::MAX as u128) as u64).to_le_bytes());
        out
    }

    /// Decodes and validates bytes from a peer.
    pub fn decode(bytes: &[u8]) -> Result<Qos, QosError> {
        let Some(bytes) = bytes.get(..ENCODED_LEN) else {
            return Err(QosError::Encoding);
        };
        let flag = |b: u8| match b {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(QosError::Encoding),
        };
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let size = |at: usize| usize::try_from(word(at)).map_err(|_| QosError::Encoding);
        let qos = Qos {
            in_order: flag(bytes[0])?,
            reliable: flag(bytes[1])?,
            checksum: flag(bytes[2])?,
            max_msg: size(8)?,
            ring_bytes: size(16)?,
            peer_timeout: Duration::from_millis(word(24)),
        };
        qos.validate()
    }
}

/// Bytes of an encoded [`Qos`].
pub const ENCODED_LEN: usize = 32;

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// What a listener is willing to grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QosLimits {
    /// Largest message granted.
    pub max_msg: usize,
    /// Largest ring granted.
    pub max_ring_bytes: usize,
}

impl Default for QosLimits {
    fn default() -> Self {
        QosLimits { max_msg: 64 << 20, max_ring_bytes: 16 << 20 }
    }
}

/// A QoS outside what ringflow supports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QosError {
    /// Ring size out of range.
    RingBytes {
        /// The ring size asked for.
        got: usize,
        /// The smallest allowed.
        min: usize,
        /// The largest allowed.
        max: usize,
    },
    /// Message size zero or too large.
    MaxMsg {
        /// The message size asked for.
        got: usize,
        /// The largest allowed.
        max: usize,
    },
    /// A zero peer timeout.
    PeerTimeout,
    /// Bytes from a peer that do not encode a QoS.
    Encoding,
}

impl fmt::Display for QosError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QosError::RingBytes { got, min, max } => {
                write!(f, "ring size {got} bytes is outside {min}..={max}")
            }
            QosError::MaxMsg { got, max } => write!(f, "maximum message size {got} must be between 1 and {max} bytes"),
            QosError::PeerTimeout => f.write_str("peer timeout must not be zero"),
            QosError::Encoding => f.write_str("malformed QoS from peer"),
        }
    }
}

impl std::error::Error for QosError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_round_trip() {
        for name in ["raw", "best-effort", "data", "voice", "video"] {
            let q = Qos::preset(name).unwrap();
            assert_eq!(q.validate(), Ok(q), "{name}");
            assert_eq!(Qos::decode(&q.encode()), Ok(q), "{name}");
        }
        assert_eq!(Qos::preset("fast"), None);
        assert!(Qos::video().max_msg >= 16 << 20);
    }

    #[test]
    fn validation_normalises_and_refuses() {
        let q = Qos::data().with_ring_bytes(5000).with_max_msg(1).validate().unwrap();
        assert_eq!((q.ring_bytes, q.max_msg), (8192, MIN_MSG));
        assert!(matches!(Qos::data().with_ring_bytes(10).validate(), Err(QosError::RingBytes { .. })));
        assert!(matches!(Qos::data().with_max_msg(0).validate(), Err(QosError::MaxMsg { .. })));
        assert!(matches!(Qos::data().with_max_msg(usize::MAX).validate(), Err(QosError::MaxMsg { .. })));
    }

    #[test]
    fn grant_caps_and_admits() {
        let limits = QosLimits { max_msg: 1 << 16, max_ring_bytes: 1 << 14 };
        let req = Qos::data().validate().unwrap();
        let g = req.grant(&limits);
        assert_eq!((g.max_msg, g.ring_bytes, g.reliable), (1 << 16, 1 << 14, true));
        assert!(req.admits(&g));
        let raised = Qos { max_msg: req.max_msg * 2, ..g };
        assert!(!req.admits(&raised));
        assert!(!req.admits(&Qos { reliable: false, ..g }));
    }

    #[test]
    fn garbage_never_decodes_to_nonsense() {
        assert_eq!(Qos::decode(&[1u8; 5]), Err(QosError::Encoding));
        let mut bad = Qos::data().encode();
        bad[1] = 7;
        assert_eq!(Qos::decode(&bad), Err(QosError::Encoding));
        let mut huge = Qos::data().encode();
        huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Qos::decode(&huge).is_err());
    }
}
