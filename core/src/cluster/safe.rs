//! The SAFE index: the highest log index every node of the current view
//! holds, which the leader alone can see (its match index of each
//! follower), and the small message of ringflow's own that carries it to
//! the followers on the `Cluster` frame, beside raft's messages. A
//! follower whose every other voter but its leader is down needs no such
//! message: the view is it and its leader, which holds everything
//! committed, so its SAFE index is its commit (`watch.rs`).
//!
//! ```text
//! safe message (41 bytes): kind u8 (=SAFE_KIND) | sender's incarnation u64
//!                          | from u64 | to u64 | term u64 | safe u64   (LE)
//! ```
//!
//! Its first byte tells it from raft's envelope (whose first byte is
//! `ENVELOPE_VERSION`, 1); a message of another length or kind is refused.
//! A follower takes a safe index only from the leader it knows in the
//! current term, and never past its own commit index: whatever a peer
//! says, the index it publishes covers only entries it holds committed.

/// The safe message's first byte (version 1 of ringflow's own cluster
/// message; raft's envelope starts with 1).
pub const SAFE_KIND: u8 = 0x81;
/// Its exact length.
pub const SAFE_LEN: usize = 41;

/// A safe message's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SafeMessage {
    /// The sender's incarnation.
    pub incarnation: u64,
    /// The sender (the leader).
    pub from: u64,
    /// The node it is for.
    pub to: u64,
    /// The leader's term.
    pub term: u64,
    /// The index every node of the view holds.
    pub safe: u64,
}

impl SafeMessage {
    /// Its bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SAFE_LEN);
        out.push(SAFE_KIND);
        for word in [self.incarnation, self.from, self.to, self.term, self.safe] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// A safe message from untrusted bytes (`None`: not one, or malformed).
    pub fn decode(bytes: &[u8]) -> Option<SafeMessage> {
        if bytes.len() != SAFE_LEN || bytes[0] != SAFE_KIND {
            return None;
        }
        let word = |i: usize| {
            let at = 1 + 8 * i;
            bytes.get(at..at + 8).and_then(|w| w.try_into().ok()).map(u64::from_le_bytes)
        };
        Some(SafeMessage { incarnation: word(0)?, from: word(1)?, to: word(2)?, term: word(3)?, safe: word(4)? })
    }
}

/// The leader's safe index: the least match index over `voters` that are
/// not down (`matched` of each, `None`: unknown, counted as 0), and never
/// past `commit`.
pub fn leader_safe(
    voters: &[u64],
    matched: impl Fn(u64) -> Option<u64>,
    is_down: impl Fn(u64) -> bool,
    commit: u64,
) -> u64 {
    voters.iter().filter(|v| !is_down(**v)).map(|v| matched(*v).unwrap_or(0)).min().unwrap_or(0).min(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_round_trips_and_anything_else_is_refused() {
        let m = SafeMessage { incarnation: 7, from: 1, to: 2, term: 3, safe: 40 };
        let bytes = m.encode();
        assert_eq!(bytes.len(), SAFE_LEN);
        assert_eq!(SafeMessage::decode(&bytes), Some(m));
        for cut in 0..bytes.len() {
            assert_eq!(SafeMessage::decode(&bytes[..cut]), None);
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(SafeMessage::decode(&long), None);
        let mut kind = bytes;
        kind[0] = 1;
        assert_eq!(SafeMessage::decode(&kind), None);
    }

    #[test]
    fn the_safe_index_is_the_least_held_by_a_node_not_down() {
        let matched = |v: u64| [None, Some(10), Some(7), Some(12)].get(v as usize).copied().flatten();
        assert_eq!(leader_safe(&[1, 2, 3], matched, |_| false, 11), 7);
        // Node 2 down: it no longer holds the others back; still within commit.
        assert_eq!(leader_safe(&[1, 2, 3], matched, |v| v == 2, 11), 10);
        assert_eq!(leader_safe(&[1, 2, 3], matched, |v| v == 2, 9), 9);
        // Unknown counts as nothing held.
        assert_eq!(leader_safe(&[1, 2, 4], matched, |_| false, 11), 0);
    }
}
