//! Proof of a pre-shared key between two engines (Corosync's authkey, as a
//! challenge and response in the hello): each side sends a fresh random
//! nonce, and each proves it holds the key with an HMAC-SHA256 over both
//! nonces, both engine ids, the agreed version and features, and its own
//! role. The key itself never travels.
//!
//! Why each input is there: a fresh nonce from the verifier makes a
//! recorded proof worthless on a new connection (replay); the role makes
//! the acceptor's proof useless as the dialler's (reflection: an attacker
//! who hands an engine's own proof back to it); the ids and the agreed
//! version and features tie the proof to this negotiation. The dialler
//! checks the acceptor's proof before it sends its own, so an engine that
//! dials out never computes a dialler's proof for someone who has not
//! proved the key first: no oracle for the role an attacker would need.
//!
//! This module is pure: the caller supplies the nonces (from the operating
//! system's random source) and the key (read from its file elsewhere). It
//! must never log, print or compare a key or a proof in variable time.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of a nonce.
pub const NONCE_LEN: usize = 32;
/// Bytes of a proof (an HMAC-SHA256 tag).
pub const PROOF_LEN: usize = 32;
/// Shortest key accepted: 256 bits, the strength of the MAC.
pub const MIN_KEY_LEN: usize = 32;
/// Longest key accepted (Corosync's authkey limit).
pub const MAX_KEY_LEN: usize = 4096;

/// A nonce: random bytes, fresh for each connection.
pub type Nonce = [u8; NONCE_LEN];
/// A proof of the key.
pub type Proof = [u8; PROOF_LEN];

/// Domain separation: what every proof of this version starts with.
const LABEL: &[u8] = b"ringflow engine auth v3";

/// Which side of the connection a proof is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The engine that dialled (sent the `Hello`).
    Dialler,
    /// The engine that accepted (sent the `HelloAck`).
    Acceptor,
}

/// What a proof covers, the same on both sides of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Transcript {
    /// The agreed protocol version.
    pub version: u16,
    /// The agreed feature bits.
    pub features: u32,
    /// The dialling engine's id and nonce.
    pub dialler_id: u64,
    /// The dialler's nonce.
    pub dialler_nonce: Nonce,
    /// The accepting engine's id.
    pub acceptor_id: u64,
    /// The acceptor's nonce.
    pub acceptor_nonce: Nonce,
}

/// Why key bytes were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadKeyLength {
    /// Bytes given.
    pub len: usize,
}

impl fmt::Display for BadKeyLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a key of {} bytes; a key has {MIN_KEY_LEN} to {MAX_KEY_LEN} bytes", self.len)
    }
}

impl std::error::Error for BadKeyLength {}

/// A pre-shared key, held as the HMAC state it keys (the raw bytes are
/// not kept). Its `Debug` shows only the key's length.
#[derive(Clone)]
pub struct AuthKey {
    keyed: Hmac<Sha256>,
    len: usize,
}

impl AuthKey {
    /// A key from its bytes ([`MIN_KEY_LEN`] to [`MAX_KEY_LEN`] of them).
    pub fn from_bytes(bytes: &[u8]) -> Result<AuthKey, BadKeyLength> {
        let len = bytes.len();
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&len) {
            return Err(BadKeyLength { len });
        }
        // HMAC takes keys of any length; were it to refuse one, so do we.
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(bytes).map_err(|_| BadKeyLength { len })?;
        Ok(AuthKey { keyed, len })
    }

    fn mac(&self, role: Role, t: &Transcript) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(LABEL);
        mac.update(&[match role {
            Role::Dialler => 1,
            Role::Acceptor => 2,
        }]);
        mac.update(&t.version.to_le_bytes());
        mac.update(&t.features.to_le_bytes());
        mac.update(&t.dialler_id.to_le_bytes());
        mac.update(&t.dialler_nonce);
        mac.update(&t.acceptor_id.to_le_bytes());
        mac.update(&t.acceptor_nonce);
        mac
    }

    /// The proof `role` sends for `transcript`.
    pub fn prove(&self, role: Role, transcript: &Transcript) -> Proof {
        self.mac(role, transcript).finalize().into_bytes().into()
    }

    /// Whether `proof` is `role`'s proof of this key for `transcript`,
    /// compared in constant time.
    pub fn verify(&self, role: Role, transcript: &Transcript, proof: &Proof) -> bool {
        self.mac(role, transcript).verify_slice(proof).is_ok()
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthKey({} bytes)", self.len)
    }
}
