//! The messages on a group's control sockets, between a member and the
//! keeper. Fixed little-endian records, one per SOCK_SEQPACKET message;
//! the first word is the tag. Decoding checks the exact length of each
//! kind and refuses unknown tags: a keeper or member that sends garbage
//! gets an error, never a misread.

/// The protocol version a JOIN carries.
pub(crate) const VERSION: u32 = 1;
/// The largest message either side sends.
pub(crate) const MAX_LEN: usize = 48;
/// A gateway's JOIN `guarantee` that takes the group's, whichever it is
/// (no guarantee's code: a member that sends it is refused).
pub(crate) const ANY_GUARANTEE: u8 = 0;

/// A control message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Msg {
    /// Member → keeper: let me in, with these options. `gateway`: not 0,
    /// the joiner is this host's engine, the gateway of a group that
    /// crosses hosts, and this is its cluster node id (it takes the
    /// group's options as they are, its guarantee too when `guarantee` is
    /// [`ANY_GUARANTEE`]: see `GroupEnd::join_gateway`).
    Join { version: u32, guarantee: u8, slow: u8, evict_ns: u64, max_message: u64, gateway: u32 },
    /// Keeper → member (with the segment's memfd): you hold slot `index`;
    /// start reading at `start`, where view `view_id` (your join) is.
    Grant { index: u64, member_id: u64, token: u64, start: u64, view_id: u64 },
    /// Keeper → member: not admitted, for `reason` (see [`Refusal`]).
    Refuse { reason: u32, detail: u64 },
    /// Member → a new keeper: I am `member_id` in slot `index`, with `token`.
    Rejoin { index: u64, member_id: u64, token: u64 },
    /// Keeper → member: rejoin accepted.
    Rejoined,
    /// Member → keeper: I am leaving; commit my Left view.
    Leave,
    /// Keeper → member: your Left view is committed.
    Left,
    /// Anyone the permit lets in → keeper: show me the group (`ringflow
    /// stat`; see `inspect.rs`).
    Inspect,
    /// Keeper → inspector (with the segment's memfd): here it is.
    Inspected,
}

/// Why a keeper refused a join or a rejoin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Guarantee,
    SlowMember,
    MaxMessage,
    Full,
    Permission,
    Unknown,
    Busy,
    Version,
}

impl Refusal {
    pub fn code(self) -> u32 {
        self as u32 + 1
    }

    pub fn from_code(c: u32) -> Option<Self> {
        use Refusal::*;
        [Guarantee, SlowMember, MaxMessage, Full, Permission, Unknown, Busy, Version]
            .get(c.checked_sub(1)? as usize)
            .copied()
    }
}

fn put(out: &mut Vec<u8>, tag: u32, a: u32, words: &[u64]) {
    out.clear();
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&a.to_le_bytes());
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

impl Msg {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Msg::Join { version, guarantee, slow, evict_ns, max_message, gateway } => put(
                out,
                1,
                version,
                &[u64::from(guarantee) | u64::from(slow) << 8 | u64::from(gateway) << 32, evict_ns, max_message],
            ),
            Msg::Grant { index, member_id, token, start, view_id } => {
                put(out, 2, 0, &[index, member_id, token, start, view_id])
            }
            Msg::Refuse { reason, detail } => put(out, 3, reason, &[detail]),
            Msg::Rejoin { index, member_id, token } => put(out, 4, 0, &[index, member_id, token]),
            Msg::Rejoined => put(out, 5, 0, &[]),
            Msg::Leave => put(out, 6, 0, &[]),
            Msg::Left => put(out, 7, 0, &[]),
            Msg::Inspect => put(out, 8, 0, &[]),
            Msg::Inspected => put(out, 9, 0, &[]),
        }
    }

    pub fn decode(b: &[u8]) -> Result<Msg, &'static str> {
        if b.len() < 8 || b.len() % 8 != 0 {
            return Err("control message length");
        }
        let tag = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let a = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let words: Vec<u64> =
            b[8..].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
        let want = |n: usize| if words.len() == n { Ok(()) } else { Err("control message length for its kind") };
        Ok(match tag {
            1 => {
                want(3)?;
                if (words[0] >> 16) as u16 != 0 {
                    return Err("join options word has unknown bits");
                }
                Msg::Join {
                    version: a,
                    guarantee: words[0] as u8,
                    slow: (words[0] >> 8) as u8,
                    evict_ns: words[1],
                    max_message: words[2],
                    gateway: (words[0] >> 32) as u32,
                }
            }
            2 => {
                want(5)?;
                Msg::Grant { index: words[0], member_id: words[1], token: words[2], start: words[3], view_id: words[4] }
            }
            3 => {
                want(1)?;
                Msg::Refuse { reason: a, detail: words[0] }
            }
            4 => {
                want(3)?;
                Msg::Rejoin { index: words[0], member_id: words[1], token: words[2] }
            }
            5 => want(0).map(|_| Msg::Rejoined)?,
            6 => want(0).map(|_| Msg::Leave)?,
            7 => want(0).map(|_| Msg::Left)?,
            8 => want(0).map(|_| Msg::Inspect)?,
            9 => want(0).map(|_| Msg::Inspected)?,
            _ => return Err("unknown control message"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips_and_truncations_are_refused() {
        let all = [
            Msg::Join { version: VERSION, guarantee: 3, slow: 2, evict_ns: 5, max_message: 99, gateway: 0 },
            Msg::Join { version: VERSION, guarantee: 1, slow: 1, evict_ns: 0, max_message: 9, gateway: 3 },
            Msg::Grant { index: 1, member_id: 2, token: 3, start: 4, view_id: 5 },
            Msg::Refuse { reason: Refusal::Full.code(), detail: 64 },
            Msg::Rejoin { index: 1, member_id: 2, token: 3 },
            Msg::Rejoined,
            Msg::Leave,
            Msg::Left,
            Msg::Inspect,
            Msg::Inspected,
        ];
        let mut b = Vec::new();
        for m in all {
            m.encode(&mut b);
            assert!(b.len() <= MAX_LEN);
            assert_eq!(Msg::decode(&b), Ok(m));
            for cut in 0..b.len() {
                assert!(Msg::decode(&b[..cut]).is_err() || cut == 8 && b.len() == 8);
            }
        }
        assert!(Msg::decode(&[10, 0, 0, 0, 0, 0, 0, 0]).is_err());
        for r in 1..=8 {
            assert_eq!(Refusal::from_code(r).map(Refusal::code), Some(r));
        }
        assert_eq!(Refusal::from_code(0), None);
        assert_eq!(Refusal::from_code(9), None);
    }
}
