//! What a gateway puts in the bytes of a cluster `Command::Message` of a
//! group: one item of the group's stream, from one member of its host.
//! The cluster's directory orders these and drops re-proposed duplicates by
//! (group, sender = the gateway's host, seq); this encoding is the
//! gateways' own, versioned, and decoded as hostile input (it comes from
//! other engines through the log).
//!
//! ```text
//! note: version u8 (=1) | kind u8 | member u64 | a u64 | b u64 | payload
//!   kind 1 Message  a = the member's seq on its host, b = its send stamp
//!   kind 2 Joined   a = the member's pid
//!   kind 3 Gone     a = why (a view change kind's code)
//!   kind 4 Mark     the end of a batch (member 0, no payload)
//! ```

use crate::group::ChangeKind;

const VERSION: u8 = 1;
const HEAD: usize = 26;

/// One item of a group's stream from a gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Note {
    /// A member's message.
    Message { member: u64, seq: u64, sent_at: u64, bytes: Vec<u8> },
    /// A member joined (its pid, for the views of other hosts).
    Joined { member: u64, pid: u32 },
    /// A member is gone, and why (its `Leave` follows in the same entry).
    Gone { member: u64, kind: ChangeKind },
    /// The end of a batch: a batch's last command is always a message, so
    /// its gateway sees when the batch is committed.
    Mark,
}

impl Note {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (kind, member, a, b, payload): (u8, u64, u64, u64, &[u8]) = match self {
            Note::Message { member, seq, sent_at, bytes } => (1, *member, *seq, *sent_at, bytes),
            Note::Joined { member, pid } => (2, *member, u64::from(*pid), 0, &[]),
            Note::Gone { member, kind } => (3, *member, u64::from(kind.code()), 0, &[]),
            Note::Mark => (4, 0, 0, 0, &[]),
        };
        let mut out = Vec::with_capacity(HEAD + payload.len());
        out.push(VERSION);
        out.push(kind);
        for w in [member, a, b] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Note, &'static str> {
        if b.len() < HEAD {
            return Err("group note shorter than its header");
        }
        if b[0] != VERSION {
            return Err("group note of an unknown version");
        }
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let (member, a, c) = (word(2), word(10), word(18));
        let rest = &b[HEAD..];
        let plain = |n: Note| if rest.is_empty() && c == 0 { Ok(n) } else { Err("group note with stray bytes") };
        match b[1] {
            1 => Ok(Note::Message { member, seq: a, sent_at: c, bytes: rest.to_vec() }),
            2 => plain(Note::Joined { member, pid: u32::try_from(a).map_err(|_| "group note: pid out of range")? }),
            3 => {
                let kind = u8::try_from(a).ok().and_then(ChangeKind::from_code).ok_or("group note: unknown reason")?;
                plain(Note::Gone { member, kind })
            }
            4 if member == 0 && a == 0 => plain(Note::Mark),
            _ => Err("group note of an unknown kind"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_round_trip_and_hostile_bytes_are_errors() {
        let all = [
            Note::Message { member: 3, seq: 9, sent_at: 77, bytes: b"hello".to_vec() },
            Note::Message { member: 1, seq: 1, sent_at: 0, bytes: vec![] },
            Note::Joined { member: 4, pid: 4242 },
            Note::Gone { member: 4, kind: ChangeKind::ProcessDown },
            Note::Mark,
        ];
        for n in &all {
            let b = n.encode();
            assert_eq!(Note::decode(&b).as_ref(), Ok(n));
            for cut in 0..HEAD.min(b.len()) {
                assert!(Note::decode(&b[..cut]).is_err());
            }
        }
        let mut bad = Note::Mark.encode();
        bad[0] = 2;
        assert!(Note::decode(&bad).is_err());
        let mut bad = Note::Gone { member: 1, kind: ChangeKind::Left }.encode();
        bad[10] = 99;
        assert!(Note::decode(&bad).is_err());
        let mut bad = Note::Joined { member: 1, pid: 1 }.encode();
        bad.push(0);
        assert!(Note::decode(&bad).is_err());
        // Whatever the bytes, no panic.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = all[(x % 5) as usize].encode();
            let at = (x >> 8) as usize % b.len();
            b[at] = (x >> 32) as u8;
            let _ = Note::decode(&b);
        }
    }
}
