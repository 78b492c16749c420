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
//!   kind 5 Start    a = the gateway's epoch (FIFO/UNORDERED groups: its
//!                   relay starts; member 0, no payload)
//!   kind 6 Flush    member = epoch, a = view, b = upto; payload:
//!                   links u16 | (host, epoch, start) u64 * 3 each
//!                   | got u16 | (origin, seq) u64 * 2 each
//!   kind 7 Resend   member = the origin's epoch; payload: origin | seq
//!                   | tag | member | mseq | sent_at (u64 each) | bytes
//! ```
//!
//! A flush's and a resend's host is the committed message's sender (the
//! gateway that proposed it); `sync.rs` says what they mean.

use crate::group::ChangeKind;

use super::sync::{Flush, Frame, MAX_HOSTS};

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
    /// A FIFO/UNORDERED group's gateway starts relaying (its run's epoch).
    Start { epoch: u64 },
    /// A gateway's flush of a view (its `host` is the message's sender,
    /// given at decoding).
    Flush(Flush),
    /// A departed origin's frame (run `epoch`) a survivor puts in the log.
    Resend { epoch: u64, frame: Frame },
}

impl Note {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut tail = Vec::new();
        let (kind, member, a, b, payload): (u8, u64, u64, u64, &[u8]) = match self {
            Note::Start { epoch } => (5, 0, *epoch, 0, &[]),
            Note::Flush(f) => {
                let links = &f.links[..f.links.len().min(MAX_HOSTS)];
                tail.extend_from_slice(&(links.len() as u16).to_le_bytes());
                for (h, e, s) in links {
                    for w in [h, e, s] {
                        tail.extend_from_slice(&w.to_le_bytes());
                    }
                }
                let got = &f.got[..f.got.len().min(MAX_HOSTS)];
                tail.extend_from_slice(&(got.len() as u16).to_le_bytes());
                for (o, g) in got {
                    tail.extend_from_slice(&o.to_le_bytes());
                    tail.extend_from_slice(&g.to_le_bytes());
                }
                (6, f.epoch, f.view, f.upto, &tail)
            }
            Note::Resend { epoch, frame: f } => {
                for w in [f.origin, f.seq, f.tag, f.member, f.mseq, f.sent_at] {
                    tail.extend_from_slice(&w.to_le_bytes());
                }
                tail.extend_from_slice(&f.bytes);
                (7, *epoch, 0, 0, &tail)
            }
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

    /// The length of the member's message an encoded note carries, if it
    /// is a [`Note::Message`] this gateway encoded (what its intake bound
    /// counts: `crossing.rs`).
    pub(crate) fn message_len(encoded: &[u8]) -> Option<usize> {
        (encoded.len() >= HEAD && encoded[1] == 1).then(|| encoded.len() - HEAD)
    }

    /// A [`Note::Message`]'s fields and the member's message, borrowed
    /// from the encoded note (`None` for any other note, or a bad one:
    /// [`decode`](Self::decode) says why).
    pub(crate) fn message_view(b: &[u8]) -> Option<(u64, u64, u64, &[u8])> {
        if b.len() < HEAD || b[0] != VERSION || b[1] != 1 {
            return None;
        }
        let word = |at: usize| b.get(at..at + 8).and_then(|w| w.try_into().ok()).map(u64::from_le_bytes);
        Some((word(2)?, word(10)?, word(18)?, &b[HEAD..]))
    }

    /// Decodes a note the gateway of host `sender` proposed.
    pub(crate) fn decode_from(b: &[u8], sender: u64) -> Result<Note, &'static str> {
        match Note::decode(b)? {
            Note::Flush(f) => Ok(Note::Flush(Flush { host: sender, ..f })),
            n => Ok(n),
        }
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
            5 if member == 0 => plain(Note::Start { epoch: a }),
            6 => decode_flush(rest, member, a, c),
            7 if a == 0 && c == 0 => {
                let w = |i: usize| rest.get(8 * i..8 * i + 8).and_then(|x| x.try_into().ok()).map(u64::from_le_bytes);
                let short = "group note: resend shorter than its frame";
                let frame = Frame {
                    origin: w(0).ok_or(short)?,
                    seq: w(1).ok_or(short)?,
                    tag: w(2).ok_or(short)?,
                    member: w(3).ok_or(short)?,
                    mseq: w(4).ok_or(short)?,
                    sent_at: w(5).ok_or(short)?,
                    bytes: rest.get(48..).ok_or(short)?.to_vec(),
                };
                Ok(Note::Resend { epoch: member, frame })
            }
            _ => Err("group note of an unknown kind"),
        }
    }
}

/// A flush's payload (its host is set by the caller).
fn decode_flush(rest: &[u8], epoch: u64, view: u64, upto: u64) -> Result<Note, &'static str> {
    let short = "group note: flush cut short";
    let mut at = 0;
    let u16_at = |at: &mut usize| -> Result<usize, &'static str> {
        let v = rest.get(*at..*at + 2).and_then(|x| x.try_into().ok()).map(u16::from_le_bytes).ok_or(short)?;
        *at += 2;
        Ok(v as usize)
    };
    let u64_at = |at: usize| rest.get(at..at + 8).and_then(|x| x.try_into().ok()).map(u64::from_le_bytes).ok_or(short);
    let n = u16_at(&mut at)?;
    if n > MAX_HOSTS {
        return Err("group note: flush lists too many links");
    }
    let mut links = Vec::with_capacity(n);
    for _ in 0..n {
        links.push((u64_at(at)?, u64_at(at + 8)?, u64_at(at + 16)?));
        at += 24;
    }
    let m = u16_at(&mut at)?;
    if m > MAX_HOSTS {
        return Err("group note: flush lists too many origins");
    }
    let mut got = Vec::with_capacity(m);
    for _ in 0..m {
        got.push((u64_at(at)?, u64_at(at + 8)?));
        at += 16;
    }
    if at != rest.len() {
        return Err("group note with stray bytes");
    }
    Ok(Note::Flush(Flush { view, host: 0, epoch, upto, links, got }))
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
            Note::Start { epoch: 99 },
            Note::Flush(Flush { view: 512, host: 0, epoch: 5, upto: 9, links: vec![(2, 6, 1)], got: vec![(3, 4)] }),
            Note::Resend {
                epoch: 8,
                frame: Frame { origin: 3, seq: 4, tag: 256, member: 1, mseq: 2, sent_at: 3, bytes: b"x".to_vec() },
            },
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
            let mut b = all[(x % all.len() as u64) as usize].encode();
            let at = (x >> 8) as usize % b.len();
            b[at] = (x >> 32) as u8;
            // The borrowed view of a message agrees with the decoder: the
            // same message, or nothing where it is not one.
            let view = Note::message_view(&b).map(|(member, seq, sent_at, m)| Note::Message {
                member,
                seq,
                sent_at,
                bytes: m.to_vec(),
            });
            match Note::decode(&b) {
                Ok(n @ Note::Message { .. }) => assert_eq!(view, Some(n)),
                _ => assert_eq!(view, None),
            }
        }
        for cut in 0..HEAD {
            assert_eq!(Note::message_view(&all[0].encode()[..cut]), None);
        }
    }
}
