//! The handshake that opens every engine-to-engine connection: the
//! connecting engine sends a [`Hello`], the accepting one answers with a
//! [`HelloAck`], and both end up with the same [`Agreed`] version, features
//! and keepalive. It must never let two engines talk past each other: a
//! version or feature the other side did not offer is refused, with both
//! sides' ranges in the error.
//!
//! Engines with a pre-shared key (see [`super::auth`]) also prove it to
//! each other: the hello carries the dialler's nonce, the accepting answer
//! the acceptor's nonce and proof, and the dialler, having checked that
//! proof, sends its own in a third message, [`HelloProof`] (or refuses).
//! Only then is the connection authenticated, on both sides; nothing that
//! follows the hello is read before. A keyed engine refuses an unkeyed one
//! (and says which side lacks the key): a key is never optional once set.
//!
//! ```text
//! Hello:      "RFWIRE" | body_len u16 | version u16 | min_version u16 | engine_id u64
//!             | features u32 | keepalive_ms u32
//!             | auth u8 (0: no key, 1: HMAC-SHA256) | nonce [32]        (version 3 on)
//!             | extension (ignored)
//! HelloAck:   "RFWIRE" | body_len u16 | status u8 = 0 | version u16 | features u32
//!             | engine_id u64 | keepalive_ms u32
//!             | auth u8 | nonce [32] | proof [32]                       (version 3 on)
//!             | extension (ignored)
//!          or "RFWIRE" | body_len u16 | status u8 = 1 | reason u8 | version u16
//!             | min_version u16 | extension (ignored)
//! HelloProof: "RFWIRE" | body_len u16 | status u8 = 0 | proof [32] | extension (ignored)
//!          or "RFWIRE" | body_len u16 | status u8 = 1 | reason u8 | extension (ignored)
//! ```
//!
//! With `auth = 0` the nonce and proof fields are zeros and no
//! `HelloProof` follows. The magic and the version fields sit at offsets no
//! future version may move, so any two versions can at least tell each
//! other they disagree. Unlike frames, handshake messages may grow: a later
//! version appends fields, and `body_len` lets an older one skip them.

use std::fmt;

use super::auth::{AuthKey, Nonce, Proof, Role, Transcript, NONCE_LEN, PROOF_LEN};
use super::bytes::Reader;
use super::error::WireError;

/// First bytes of both handshake messages.
pub const MAGIC: [u8; 6] = *b"RFWIRE";
/// The newest protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 3;
/// The oldest protocol version this build still speaks (version 3 brought
/// the key's proof: an engine of version 2 could neither give nor check
/// one, and speaking it would let a stranger ask for a downgrade).
pub const MIN_PROTOCOL_VERSION: u16 = 3;

/// Bytes of magic and length field.
const PREFIX_LEN: usize = MAGIC.len() + 2;
/// Body bytes of a version-1 `Hello` (enough to read the versions).
const HELLO_BODY_V1: u16 = 2 + 2 + 8 + 4 + 4;
/// Body bytes of a version-3 `Hello`.
const HELLO_BODY: u16 = HELLO_BODY_V1 + 1 + NONCE_LEN as u16;
/// Body bytes of a version-1 accepting `HelloAck`.
const ACCEPT_BODY_V1: u16 = 1 + 2 + 4 + 8 + 4;
/// Body bytes of a version-3 accepting `HelloAck`.
const ACCEPT_BODY: u16 = ACCEPT_BODY_V1 + 1 + NONCE_LEN as u16 + PROOF_LEN as u16;
/// Body bytes of a version-1 rejecting `HelloAck`.
const REJECT_BODY: u16 = 1 + 1 + 2 + 2;
/// Body bytes of a `HelloProof` that proves, and of one that refuses.
const PROOF_BODY: u16 = 1 + PROOF_LEN as u16;
const REFUSE_BODY: u16 = 1 + 1;
/// The first version whose hellos carry the auth fields.
const AUTH_VERSION: u16 = 3;
/// `auth` byte values.
const AUTH_NONE: u8 = 0;
const AUTH_HMAC_SHA256: u8 = 1;
/// Longest body accepted, extensions included: a bound on what a peer can
/// make this side wait for before the handshake fails.
const MAX_BODY: u16 = 256;

const STATUS_ACCEPT: u8 = 0;
const STATUS_REJECT: u8 = 1;

/// An inclusive range of protocol versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VersionRange {
    /// Oldest version.
    pub min: u16,
    /// Newest version.
    pub max: u16,
}

impl VersionRange {
    /// Whether the range is non-empty and does not contain version 0.
    pub const fn is_valid(self) -> bool {
        self.min >= 1 && self.min <= self.max
    }

    /// Whether `version` is in the range.
    pub const fn contains(self, version: u16) -> bool {
        self.min <= version && version <= self.max
    }

    fn checked(self) -> Result<VersionRange, WireError> {
        if self.is_valid() {
            Ok(self)
        } else {
            Err(WireError::BadVersionRange(self))
        }
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "versions {}..={}", self.min, self.max)
    }
}

/// Optional protocol features, as bit flags. Unknown bits from a newer peer
/// are harmless: they never survive the intersection with this side's bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Features(u32);

impl Features {
    /// No optional feature.
    pub const NONE: Features = Features(0);
    /// This side verifies CRC32C trailers, so frames to it may carry one
    /// (flows whose QoS asks for no bit errors need it).
    pub const CRC32C: Features = Features(1);
    /// This side reads send stamps in `Data` frames ([`crate::wire::FLAG_STAMP`]).
    pub const STAMPS: Features = Features(2);

    /// Features from raw bits, unknown bits included.
    pub const fn from_bits(bits: u32) -> Features {
        Features(bits)
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every feature of `other` is in `self`.
    pub const fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }

    /// Features in either.
    pub const fn union(self, other: Features) -> Features {
        Features(self.0 | other.0)
    }

    /// Features in both: what two engines may use.
    pub const fn intersection(self, other: Features) -> Features {
        Features(self.0 & other.0)
    }
}

/// The connecting engine's opening message (and, through [`negotiate`], what
/// the accepting engine compares it with).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hello {
    /// Newest version spoken.
    pub version: u16,
    /// Oldest version spoken.
    pub min_version: u16,
    /// This engine's id, random per engine start; detects self-connects.
    pub engine_id: u64,
    /// Features this engine supports.
    pub features: Features,
    /// Interval of keepalives this engine wants, from the QoS peer timeout
    /// (0: it needs none).
    pub keepalive_ms: u32,
    /// This engine holds a key: the nonce the other side's proof must
    /// cover (`None`: no key).
    pub auth: Option<Nonce>,
}

/// The accepting engine's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HelloAck {
    /// The connection is on, with these settings.
    Accept {
        /// The version both will speak.
        version: u16,
        /// Features both will use.
        features: Features,
        /// The accepting engine's id.
        engine_id: u64,
        /// Keepalive interval both will use (0: none).
        keepalive_ms: u32,
        /// With a key: the acceptor's nonce and its proof of the key.
        auth: Option<(Nonce, Proof)>,
    },
    /// The connection is refused; it will be closed.
    Reject {
        /// Why.
        reason: RejectReason,
        /// What the refusing engine speaks, for the error message.
        versions: VersionRange,
    },
}

/// Why an accepting engine refused a handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RejectReason {
    /// No reason given.
    Unspecified = 0,
    /// No common protocol version.
    NoCommonVersion = 1,
    /// The connecting engine is the accepting engine.
    SelfConnect = 2,
    /// The accepting engine is shutting down.
    ShuttingDown = 3,
    /// The accepting engine has as many peers as it is configured for.
    TooManyPeers = 4,
    /// The refusing engine holds a key and the other offered none.
    KeyRequired = 5,
    /// The other engine offered a key's proof and the refusing one has no
    /// key to check it with.
    NoKey = 6,
    /// A proof of the key failed: the two engines' keys differ (or the
    /// proof was replayed or forged).
    BadProof = 7,
}

/// The dialler's last word in a keyed hello: its proof, or why it will not
/// give one (the acceptor's proof failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HelloProof {
    /// The dialler's proof of the key.
    Proof(Proof),
    /// The dialler refuses; it closes the connection.
    Refuse(RejectReason),
}

impl RejectReason {
    const fn from_code(code: u8) -> Option<RejectReason> {
        Some(match code {
            0 => RejectReason::Unspecified,
            1 => RejectReason::NoCommonVersion,
            2 => RejectReason::SelfConnect,
            3 => RejectReason::ShuttingDown,
            4 => RejectReason::TooManyPeers,
            5 => RejectReason::KeyRequired,
            6 => RejectReason::NoKey,
            7 => RejectReason::BadProof,
            _ => return None,
        })
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectReason::Unspecified => "no reason given",
            RejectReason::NoCommonVersion => "no common protocol version",
            RejectReason::SelfConnect => "an engine connected to itself",
            RejectReason::ShuttingDown => "the engine is shutting down",
            RejectReason::TooManyPeers => "the engine has too many peers",
            RejectReason::KeyRequired => "the engine requires a key (net.key_file) and the other engine has none",
            RejectReason::NoKey => "the other engine has a key (net.key_file) and this one has none",
            RejectReason::BadProof => "a proof of the key failed: the engines' keys (net.key_file) differ",
        })
    }
}

/// What both engines settled on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Agreed {
    /// The protocol version of every frame on this connection.
    pub version: u16,
    /// Features both sides support.
    pub features: Features,
    /// Keepalive interval (the shorter of the two asked for; 0: none).
    pub keepalive_ms: u32,
    /// The other engine's id.
    pub peer_engine_id: u64,
    /// Keyed connections: what the proofs cover. On the accepting side the
    /// dialler's proof is still due ([`check_proof`]); on the dialling side
    /// the acceptor's proof was checked and this side's is to be sent.
    pub transcript: Option<Transcript>,
}

impl Hello {
    /// A hello for this build's versions; `auth`: this side's nonce if it
    /// holds a key.
    pub const fn new(engine_id: u64, features: Features, keepalive_ms: u32, auth: Option<Nonce>) -> Hello {
        Hello { version: PROTOCOL_VERSION, min_version: MIN_PROTOCOL_VERSION, engine_id, features, keepalive_ms, auth }
    }

    /// The versions this hello offers.
    pub const fn versions(&self) -> VersionRange {
        VersionRange { min: self.min_version, max: self.version }
    }

    /// Appends the encoded hello to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&HELLO_BODY.to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.min_version.to_le_bytes());
        out.extend_from_slice(&self.engine_id.to_le_bytes());
        out.extend_from_slice(&self.features.bits().to_le_bytes());
        out.extend_from_slice(&self.keepalive_ms.to_le_bytes());
        put_auth(out, self.auth.as_ref().map(|n| (n, None)));
    }

    /// Decodes a hello from the start of `buf`: `Ok(None)` if more bytes are
    /// needed, else the hello and the bytes it took. Wrong magic is reported
    /// as soon as the first differing byte arrives. A hello that offers
    /// version 3 or later must carry the auth fields; an older one is read
    /// without them (so that it can be told there is no common version).
    pub fn decode(buf: &[u8]) -> Result<Option<(Hello, usize)>, WireError> {
        let Some((body, used)) = message(buf, HELLO_BODY_V1)? else {
            return Ok(None);
        };
        let mut r = Reader(body);
        let mut hello = Hello {
            version: r.u16(),
            min_version: r.u16(),
            engine_id: r.u64(),
            features: Features(r.u32()),
            keepalive_ms: r.u32(),
            auth: None,
        };
        hello.versions().checked()?;
        if hello.version >= AUTH_VERSION {
            if body.len() < usize::from(HELLO_BODY) {
                return Err(bad_length(body.len(), HELLO_BODY));
            }
            let (kind, nonce) = (r.u8(), r.array::<NONCE_LEN>());
            hello.auth = match kind {
                AUTH_NONE => None,
                AUTH_HMAC_SHA256 => Some(nonce),
                other => return Err(WireError::UnknownAuth(other)),
            };
        }
        Ok(Some((hello, used)))
    }
}

/// Appends the auth fields: the kind, the nonce (zeros without a key) and,
/// in an answer, the proof.
fn put_auth(out: &mut Vec<u8>, auth: Option<(&Nonce, Option<&Proof>)>) {
    match auth {
        Some((nonce, proof)) => {
            out.push(AUTH_HMAC_SHA256);
            out.extend_from_slice(nonce);
            if let Some(proof) = proof {
                out.extend_from_slice(proof);
            }
        }
        None => {
            out.push(AUTH_NONE);
            out.extend_from_slice(&[0; NONCE_LEN]);
        }
    }
}

impl HelloAck {
    /// Appends the encoded answer to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        match *self {
            HelloAck::Accept { version, features, engine_id, keepalive_ms, auth } => {
                out.extend_from_slice(&ACCEPT_BODY.to_le_bytes());
                out.push(STATUS_ACCEPT);
                out.extend_from_slice(&version.to_le_bytes());
                out.extend_from_slice(&features.bits().to_le_bytes());
                out.extend_from_slice(&engine_id.to_le_bytes());
                out.extend_from_slice(&keepalive_ms.to_le_bytes());
                match &auth {
                    Some((nonce, proof)) => put_auth(out, Some((nonce, Some(proof)))),
                    None => {
                        put_auth(out, None);
                        out.extend_from_slice(&[0; PROOF_LEN]);
                    }
                }
            }
            HelloAck::Reject { reason, versions } => {
                out.extend_from_slice(&REJECT_BODY.to_le_bytes());
                out.push(STATUS_REJECT);
                out.push(reason as u8);
                out.extend_from_slice(&versions.max.to_le_bytes());
                out.extend_from_slice(&versions.min.to_le_bytes());
            }
        }
    }

    /// Decodes an answer from the start of `buf`, like [`Hello::decode`].
    pub fn decode(buf: &[u8]) -> Result<Option<(HelloAck, usize)>, WireError> {
        // The shorter of the two layouts; the status byte says which applies.
        let Some((body, used)) = message(buf, REJECT_BODY)? else {
            return Ok(None);
        };
        let mut r = Reader(body);
        let ack = match r.u8() {
            STATUS_ACCEPT => {
                if body.len() < usize::from(ACCEPT_BODY_V1) {
                    return Err(bad_length(body.len(), ACCEPT_BODY_V1));
                }
                let version = r.u16();
                let (features, engine_id, keepalive_ms) = (Features(r.u32()), r.u64(), r.u32());
                let mut auth = None;
                if version >= AUTH_VERSION {
                    if body.len() < usize::from(ACCEPT_BODY) {
                        return Err(bad_length(body.len(), ACCEPT_BODY));
                    }
                    let (kind, nonce, proof) = (r.u8(), r.array::<NONCE_LEN>(), r.array::<PROOF_LEN>());
                    auth = match kind {
                        AUTH_NONE => None,
                        AUTH_HMAC_SHA256 => Some((nonce, proof)),
                        other => return Err(WireError::UnknownAuth(other)),
                    };
                }
                HelloAck::Accept { version, features, engine_id, keepalive_ms, auth }
            }
            STATUS_REJECT => {
                let code = r.u8();
                let reason = RejectReason::from_code(code).ok_or(WireError::UnknownRejectReason(code))?;
                let max = r.u16();
                let versions = VersionRange { min: r.u16(), max }.checked()?;
                HelloAck::Reject { reason, versions }
            }
            other => return Err(WireError::UnknownAckStatus(other)),
        };
        Ok(Some((ack, used)))
    }
}

impl HelloProof {
    /// Appends the encoded message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        match self {
            HelloProof::Proof(proof) => {
                out.extend_from_slice(&PROOF_BODY.to_le_bytes());
                out.push(STATUS_ACCEPT);
                out.extend_from_slice(proof);
            }
            HelloProof::Refuse(reason) => {
                out.extend_from_slice(&REFUSE_BODY.to_le_bytes());
                out.push(STATUS_REJECT);
                out.push(*reason as u8);
            }
        }
    }

    /// Decodes the message from the start of `buf`, like [`Hello::decode`].
    pub fn decode(buf: &[u8]) -> Result<Option<(HelloProof, usize)>, WireError> {
        let Some((body, used)) = message(buf, REFUSE_BODY)? else {
            return Ok(None);
        };
        let mut r = Reader(body);
        let msg = match r.u8() {
            STATUS_ACCEPT => {
                if body.len() < usize::from(PROOF_BODY) {
                    return Err(bad_length(body.len(), PROOF_BODY));
                }
                HelloProof::Proof(r.array())
            }
            STATUS_REJECT => {
                let code = r.u8();
                HelloProof::Refuse(RejectReason::from_code(code).ok_or(WireError::UnknownRejectReason(code))?)
            }
            other => return Err(WireError::UnknownAckStatus(other)),
        };
        Ok(Some((msg, used)))
    }
}

/// The accepting side's comparison of its own hello with the peer's: the
/// newest common version, the features both have, the shorter keepalive.
/// Keys are not looked at here (see [`respond`]).
pub fn negotiate(ours: &Hello, theirs: &Hello) -> Result<Agreed, WireError> {
    let (a, b) = (ours.versions().checked()?, theirs.versions().checked()?);
    let (lo, hi) = (a.min.max(b.min), a.max.min(b.max));
    if lo > hi {
        return Err(WireError::NoCommonVersion { ours: a, theirs: b });
    }
    if ours.engine_id == theirs.engine_id {
        return Err(WireError::SelfConnect { engine_id: ours.engine_id });
    }
    Ok(Agreed {
        version: hi,
        features: ours.features.intersection(theirs.features),
        keepalive_ms: shorter_keepalive(ours.keepalive_ms, theirs.keepalive_ms),
        peer_engine_id: theirs.engine_id,
        transcript: None,
    })
}

/// The accepting side's whole turn: the answer to send, and the outcome.
/// On failure the answer is a rejection naming the reason and the
/// connection should be closed once it is sent. `key`: this engine's key
/// (`ours.auth` then holds the nonce of this connection); a keyed engine
/// refuses an unkeyed peer and the other way round. On success with a key
/// the answer carries this side's proof, and the dialler's is still due:
/// [`check_proof`] with the returned transcript.
pub fn respond(ours: &Hello, theirs: &Hello, key: Option<&AuthKey>) -> (HelloAck, Result<Agreed, WireError>) {
    let reject = |e: WireError| {
        let reason = match e {
            WireError::NoCommonVersion { .. } => RejectReason::NoCommonVersion,
            WireError::SelfConnect { .. } => RejectReason::SelfConnect,
            WireError::Rejected { reason, .. } | WireError::KeyMismatch { reason } => reason,
            _ => RejectReason::Unspecified,
        };
        (HelloAck::Reject { reason, versions: ours.versions() }, Err(e))
    };
    let mut agreed = match negotiate(ours, theirs) {
        Ok(agreed) => agreed,
        Err(e) => return reject(e),
    };
    let auth = match (key.zip(ours.auth), theirs.auth) {
        (None, None) => None,
        (Some(_), None) => return reject(WireError::KeyMismatch { reason: RejectReason::KeyRequired }),
        (None, Some(_)) => return reject(WireError::KeyMismatch { reason: RejectReason::NoKey }),
        (Some((key, our_nonce)), Some(their_nonce)) => {
            let t = transcript(&agreed, theirs.engine_id, their_nonce, ours.engine_id, our_nonce);
            agreed.transcript = Some(t);
            Some((our_nonce, key.prove(Role::Acceptor, &t)))
        }
    };
    let ack = HelloAck::Accept {
        version: agreed.version,
        features: agreed.features,
        engine_id: ours.engine_id,
        keepalive_ms: agreed.keepalive_ms,
        auth,
    };
    (ack, Ok(agreed))
}

/// The accepting side's check of the dialler's [`HelloProof`], against the
/// transcript [`respond`] returned: a refusal becomes
/// [`WireError::Rejected`], a wrong proof [`WireError::BadProof`].
pub fn check_proof(key: &AuthKey, transcript: &Transcript, msg: &HelloProof) -> Result<(), WireError> {
    match msg {
        HelloProof::Refuse(reason) => Err(WireError::Rejected {
            reason: *reason,
            theirs: VersionRange { min: transcript.version, max: transcript.version },
        }),
        HelloProof::Proof(proof) if key.verify(Role::Dialler, transcript, proof) => Ok(()),
        HelloProof::Proof(_) => Err(WireError::BadProof),
    }
}

fn transcript(
    agreed: &Agreed,
    dialler_id: u64,
    dialler_nonce: Nonce,
    acceptor_id: u64,
    acceptor_nonce: Nonce,
) -> Transcript {
    Transcript {
        version: agreed.version,
        features: agreed.features.bits(),
        dialler_id,
        dialler_nonce,
        acceptor_id,
        acceptor_nonce,
    }
}

/// The connecting side's check of the answer to its hello: a rejection
/// becomes [`WireError::Rejected`], and an acceptance must stay within what
/// was offered. With a `key` (`ours.auth` then holds this connection's
/// nonce) the acceptor's proof must hold ([`WireError::BadProof`]), and an
/// unkeyed acceptor is refused; the returned transcript is what this
/// side's proof ([`HelloProof::Proof`] of `Role::Dialler`) covers.
pub fn accept_ack(ours: &Hello, ack: &HelloAck, key: Option<&AuthKey>) -> Result<Agreed, WireError> {
    match *ack {
        HelloAck::Reject { reason, versions } => Err(WireError::Rejected { reason, theirs: versions }),
        HelloAck::Accept { version, features, engine_id, keepalive_ms, auth } => {
            let offered = ours.versions().checked()?;
            if !offered.contains(version) {
                return Err(WireError::AckVersionNotOffered { version, ours: offered });
            }
            if !ours.features.contains(features) {
                return Err(WireError::AckFeaturesNotOffered {
                    agreed: features.bits(),
                    offered: ours.features.bits(),
                });
            }
            if engine_id == ours.engine_id {
                return Err(WireError::SelfConnect { engine_id });
            }
            let mut agreed = Agreed {
                version,
                features,
                keepalive_ms: shorter_keepalive(ours.keepalive_ms, keepalive_ms),
                peer_engine_id: engine_id,
                transcript: None,
            };
            match (key.zip(ours.auth), auth) {
                (None, None) => {}
                (Some(_), None) => return Err(WireError::KeyMismatch { reason: RejectReason::KeyRequired }),
                (None, Some(_)) => return Err(WireError::KeyMismatch { reason: RejectReason::NoKey }),
                (Some((key, our_nonce)), Some((their_nonce, proof))) => {
                    let t = transcript(&agreed, ours.engine_id, our_nonce, engine_id, their_nonce);
                    if !key.verify(Role::Acceptor, &t, &proof) {
                        return Err(WireError::BadProof);
                    }
                    agreed.transcript = Some(t);
                }
            }
            Ok(agreed)
        }
    }
}

/// The shorter nonzero interval: a side that asks for none gets the other's.
fn shorter_keepalive(a: u32, b: u32) -> u32 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

fn bad_length(len: usize, min: u16) -> WireError {
    // Every caller passes a length read from a u16 field or bounded by it.
    WireError::BadHandshakeLength { len: u16::try_from(len).unwrap_or(u16::MAX), min, max: MAX_BODY }
}

/// Splits a handshake message off the start of `buf`: checks the magic (as
/// far as it has arrived) and the length, then waits for the whole body.
fn message(buf: &[u8], min_body: u16) -> Result<Option<(&[u8], usize)>, WireError> {
    let seen = buf.len().min(MAGIC.len());
    if buf[..seen] != MAGIC[..seen] {
        return Err(WireError::BadMagic);
    }
    let Some(len) = buf.get(MAGIC.len()..PREFIX_LEN) else {
        return Ok(None);
    };
    let len = u16::from_le_bytes([len[0], len[1]]);
    if !(min_body..=MAX_BODY).contains(&len) {
        return Err(bad_length(usize::from(len), min_body));
    }
    let total = PREFIX_LEN + usize::from(len);
    Ok(buf.get(PREFIX_LEN..total).map(|body| (body, total)))
}
