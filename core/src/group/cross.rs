//! The frames of a group that crosses hosts (`cluster.groups`), as its
//! local log carries them. The host's engine is the group's gateway there:
//! a member of the log like any other, whose seat the keeper records
//! (`memory::P_GATEWAY_*`). Frames, by producer and flag:
//!
//! - a member's multicast is a *submit* frame
//!   ([`FLAG_SUBMIT`]): only the gateway reads it, and proposes it to the
//!   cluster's log; the other members step over it;
//! - the keeper's views (producer 0) stay what the log uses for seats, and
//!   are no longer delivered: members deliver the *cluster views* the
//!   gateway writes ([`FLAG_CLUSTER_VIEW`]), one per view entry of the
//!   cluster's log, with every member and its host;
//! - every committed message, this host's senders' included, comes back as
//!   a *relayed* frame of the gateway ([`FLAG_RELAYED`]), in the cluster
//!   log's order: its metadata word names the origin (host, member), its
//!   payload starts with the origin's sequence number and send stamp
//!   ([`RELAY_HEADER`] bytes), then the message.
//!
//! Everything here is read from memory any member can write: every count
//! is checked against the bytes and the group's limits, hosts and member
//! ids against their ranges, and a bad frame is an error, never a panic.

use super::view::{ChangeKind, Member, MAX_CHANGES};

/// Frame flag: a member's message for the gateway to propose (never
/// delivered from the local log).
pub const FLAG_SUBMIT: u8 = 2;
/// Frame flag of the gateway: a message the cluster committed.
pub const FLAG_RELAYED: u8 = 4;
/// Frame flag of the gateway: a view the cluster committed.
pub const FLAG_CLUSTER_VIEW: u8 = 8;
/// Bytes before a relayed message: the origin's seq and send stamp.
pub const RELAY_HEADER: usize = 16;
/// Largest host id a relayed frame can name (16 bits of its metadata).
pub const MAX_HOST: u64 = (1 << 16) - 1;
/// Largest member id a relayed frame can name (48 bits of its metadata).
pub const MAX_MEMBER_ID: u64 = (1 << 48) - 1;

const HEAD: usize = 16;
const ITEM: usize = 24;

/// The metadata word of a relayed frame from `host`'s member `member`
/// (`None` if either is out of range).
pub fn origin_word(host: u64, member: u64) -> Option<u64> {
    (host != 0 && host <= MAX_HOST && member <= MAX_MEMBER_ID).then_some(host << 48 | member)
}

/// The origin (host, member) a relayed frame's metadata names.
pub fn origin_of(meta: u64) -> (u64, u64) {
    (meta >> 48, meta & MAX_MEMBER_ID)
}

/// The most entries (members plus changes) a cluster view of a group of
/// `max_members` may carry: what [`max_len`] bytes hold.
pub(crate) const fn max_items(max_members: usize) -> usize {
    2 * max_members + MAX_CHANGES
}

/// Bytes of the largest cluster view of a group of `max_members` (twice
/// a keeper's view at most: the log is laid out to carry it).
pub(crate) const fn max_len(max_members: usize) -> usize {
    HEAD + ITEM * max_items(max_members)
}

/// A view the cluster committed: members of every host, and what changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    /// The index of the view's entry in the cluster's log times 256, plus
    /// its rank among that entry's views of the group (the same at every
    /// host, increasing).
    pub id: u64,
    /// The members, ordered by (host, id).
    pub members: Vec<Member>,
    /// What changed since the previous view, with why.
    pub changes: Vec<(Member, ChangeKind)>,
}

/// Why a cluster view could not be encoded or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrossError {
    /// More members and changes than the group's log can carry.
    TooLarge,
    /// A frame's bytes do not say what their counts announce.
    Malformed(&'static str),
}

/// Encodes `view` into `out` for a group of `max_members`.
pub fn encode_view(view: &ClusterView, max_members: usize, out: &mut Vec<u8>) -> Result<(), CrossError> {
    if view.members.len() + view.changes.len() > max_items(max_members) {
        return Err(CrossError::TooLarge);
    }
    out.clear();
    out.extend_from_slice(&view.id.to_le_bytes());
    out.extend_from_slice(&(view.members.len() as u32).to_le_bytes());
    out.extend_from_slice(&(view.changes.len() as u32).to_le_bytes());
    for m in &view.members {
        put_member(out, m);
        out.extend_from_slice(&[0; 4]);
    }
    for (m, kind) in &view.changes {
        put_member(out, m);
        out.extend_from_slice(&[kind.code(), 0, 0, 0]);
    }
    Ok(())
}

fn put_member(out: &mut Vec<u8>, m: &Member) {
    out.extend_from_slice(&m.host.to_le_bytes());
    out.extend_from_slice(&m.id.to_le_bytes());
    out.extend_from_slice(&m.pid.to_le_bytes());
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// Decodes a cluster view of a group of `max_members` (hostile bytes).
pub fn decode_view(b: &[u8], max_members: usize) -> Result<ClusterView, CrossError> {
    let bad = CrossError::Malformed;
    if b.len() < HEAD {
        return Err(bad("cluster view shorter than its header"));
    }
    let (n, m) = (u32_at(b, 8) as usize, u32_at(b, 12) as usize);
    if n.saturating_add(m) > max_items(max_members) {
        return Err(CrossError::TooLarge);
    }
    if b.len() != HEAD + ITEM * (n + m) {
        return Err(bad("cluster view length does not match its counts"));
    }
    let member = |at: usize| -> Result<Member, CrossError> {
        let (host, id) = (u64_at(b, at), u64_at(b, at + 8));
        if host == 0 || host > MAX_HOST || id > MAX_MEMBER_ID {
            return Err(bad("cluster view names a host or member out of range"));
        }
        Ok(Member { id, pid: u32_at(b, at + 16), host })
    };
    let mut members: Vec<Member> = Vec::with_capacity(n);
    for k in 0..n {
        let at = HEAD + ITEM * k;
        let x = member(at)?;
        if b[at + 20..at + 24] != [0; 4] {
            return Err(bad("cluster view member padding not zero"));
        }
        if members.iter().any(|o| (o.host, o.id) == (x.host, x.id)) {
            return Err(bad("cluster view names a member twice"));
        }
        members.push(x);
    }
    let mut changes = Vec::with_capacity(m);
    for k in 0..m {
        let at = HEAD + ITEM * (n + k);
        let x = member(at)?;
        let kind = ChangeKind::from_code(b[at + 20]).ok_or(bad("cluster view change of unknown kind"))?;
        if b[at + 21..at + 24] != [0; 3] {
            return Err(bad("cluster view change padding not zero"));
        }
        changes.push((x, kind));
    }
    Ok(ClusterView { id: u64_at(b, 0), members, changes })
}

/// The relay header's fields: the origin's sequence number and send stamp.
pub fn relay_header(seq: u64, sent_at: u64) -> [u8; RELAY_HEADER] {
    let mut h = [0u8; RELAY_HEADER];
    h[..8].copy_from_slice(&seq.to_le_bytes());
    h[8..].copy_from_slice(&sent_at.to_le_bytes());
    h
}

/// The origin's (seq, send stamp) from a relayed payload, and the
/// message after them (`None`: shorter than the header).
pub fn split_relayed(payload: &[u8]) -> Option<(u64, u64, &[u8])> {
    (payload.len() >= RELAY_HEADER).then(|| (u64_at(payload, 0), u64_at(payload, 8), &payload[RELAY_HEADER..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ClusterView {
        let m = |host, id, pid| Member { id, pid, host };
        ClusterView {
            id: 42,
            members: vec![m(1, 3, 100), m(2, 1, 0), m(3, 7, 9)],
            changes: vec![(m(2, 1, 0), ChangeKind::Joined), (m(3, 2, 5), ChangeKind::NodeDown)],
        }
    }

    #[test]
    fn cluster_views_round_trip_and_every_cut_is_refused() {
        let mut b = Vec::new();
        encode_view(&sample(), 4, &mut b).expect("fits");
        assert!(b.len() <= max_len(4));
        assert_eq!(decode_view(&b, 4), Ok(sample()));
        for cut in 0..b.len() {
            assert!(decode_view(&b[..cut], 4).is_err(), "cut at {cut}");
        }
        let big = ClusterView { members: vec![Member { id: 1, pid: 1, host: 1 }; 2 + MAX_CHANGES], ..sample() };
        assert_eq!(encode_view(&big, 1, &mut b), Err(CrossError::TooLarge));
    }

    #[test]
    fn hostile_cluster_views_are_errors() {
        let mut good = Vec::new();
        encode_view(&sample(), 4, &mut good).expect("fits");
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut c = good.clone();
            let at = (x as usize) % c.len();
            c[at] = (x >> 32) as u8;
            if let Ok(v) = decode_view(&c, 4) {
                let mut again = Vec::new();
                encode_view(&v, 4, &mut again).expect("re-encodes");
                assert_eq!(again, c, "accepted bytes re-encode the same");
            }
        }
        let mut host0 = good.clone();
        host0[HEAD..HEAD + 8].copy_from_slice(&0u64.to_le_bytes());
        assert!(decode_view(&host0, 4).is_err());
        let mut huge = good.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_view(&huge, 4), Err(CrossError::TooLarge));
    }

    #[test]
    fn origins_and_relay_headers_round_trip() {
        let w = origin_word(3, 77).expect("in range");
        assert_eq!(origin_of(w), (3, 77));
        assert_eq!(origin_word(0, 1), None);
        assert_eq!(origin_word(MAX_HOST + 1, 1), None);
        assert_eq!(origin_word(1, MAX_MEMBER_ID + 1), None);
        let mut p = relay_header(9, 1234).to_vec();
        p.extend_from_slice(b"hi");
        assert_eq!(split_relayed(&p), Some((9, 1234, &b"hi"[..])));
        assert_eq!(split_relayed(&p[..RELAY_HEADER - 1]), None);
    }
}
