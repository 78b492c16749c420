//! Views: the group's membership as of a point in its log, and what
//! changed there. The keeper writes one as a frame of the log (producer
//! slot 0, flag [`FLAG_VIEW`]) and a copy into the view history; members
//! decode what they read, and trust none of it: every count is checked
//! against the bytes and the group's member limit, every reason against
//! the known ones.
//!
//! Encoding, little-endian: `[view id u64][members u32][changes u32]`, then
//! per member `[id u64][pid u32][slot u16][0 u16][next seq u64]`, then per change
//! `[id u64][pid u32][kind u8][0 u8][slot u16][final seq u64]`.

use std::fmt;

/// Frame flag of a view frame.
pub const FLAG_VIEW: u8 = 1;
/// Most changes one view carries (the keeper writes more views if needed).
pub const MAX_CHANGES: usize = 8;
const HEAD: usize = 16;
const MEMBER: usize = 24;
const CHANGE: usize = 24;

/// A member of a group: an id unique for the group's lifetime on its host,
/// the process it runs in, and its host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    /// Unique within the group on its host, never reused there.
    pub id: u64,
    /// The member's process id (on its host; 0 if the host did not say).
    pub pid: u32,
    /// The host it lives on: its engine's cluster node id in a group that
    /// crosses hosts (`cluster.groups`), 0 in a group of one host.
    pub host: u64,
}

impl Member {
    /// A member of a group of one host (`host` 0).
    pub const fn local(id: u64, pid: u32) -> Member {
        Member { id, pid, host: 0 }
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            0 => write!(f, "member {} (pid {})", self.id, self.pid),
            h => write!(f, "member {} (pid {}) of host {h}", self.id, self.pid),
        }
    }
}

/// Why the membership changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeKind {
    /// The member joined.
    Joined,
    /// The member left (`leave`, or dropped its group).
    Left,
    /// The member's process died (or its control socket closed unannounced).
    ProcessDown,
    /// The keeper removed the member for holding the others back.
    Evicted,
    /// Across hosts: the member's host (its engine) is gone, or this host's
    /// engine is, which takes every member of other hosts with it.
    NodeDown,
    /// Across hosts: this host's engine has been out of touch with a
    /// majority of the cluster for `cluster.node_timeout_ms` (the minority
    /// side of a partition). Written by this host's engine alone, never
    /// agreed: the view keeps the members of this host (the ones it can
    /// still vouch for), every member of other hosts is a change of this
    /// kind, and multicasts fail with `McastError::NoQuorum` until a
    /// [`QuorumRegained`](Self::QuorumRegained) view. A member of this
    /// host that joins while the quorum is lost, or every member of a host
    /// whose engine never had the quorum, is itself a change of this kind
    /// (nobody of other hosts is known to name).
    QuorumLost,
    /// Across hosts: the engine is in touch with a majority again; the
    /// view is the cluster's last one before the loss (every member of
    /// other hosts a change of this kind), and what the cluster committed
    /// meanwhile follows in its order (a node-down view of this host
    /// among it, if the majority took it down: its members then join
    /// again).
    QuorumRegained,
}

impl ChangeKind {
    pub(crate) fn code(self) -> u8 {
        match self {
            ChangeKind::Joined => 1,
            ChangeKind::Left => 2,
            ChangeKind::ProcessDown => 3,
            ChangeKind::Evicted => 4,
            ChangeKind::NodeDown => 5,
            ChangeKind::QuorumLost => 6,
            ChangeKind::QuorumRegained => 7,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => ChangeKind::Joined,
            2 => ChangeKind::Left,
            3 => ChangeKind::ProcessDown,
            4 => ChangeKind::Evicted,
            5 => ChangeKind::NodeDown,
            6 => ChangeKind::QuorumLost,
            7 => ChangeKind::QuorumRegained,
            _ => return None,
        })
    }
}

/// One change of a view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// Who joined or went.
    pub member: Member,
    /// How.
    pub kind: ChangeKind,
}

/// The membership from a point of the log on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// Increases by one with every view of the group.
    pub id: u64,
    /// The members, in joining order.
    pub members: Vec<Member>,
    /// What changed since the previous view.
    pub changes: Vec<Change>,
}

/// A member as the log knows it: with its slot (its producer slot is
/// `slot + 1`, its consumer slot and table entry `slot`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seat {
    pub member: Member,
    pub slot: u16,
    /// The sequence number of the member's first frame after the view (the
    /// baseline a joiner counts losses from).
    pub next_seq: u64,
}

/// A change as the log knows it: with the slot and, for a member that went,
/// the sequence number its producer slot would have given its next frame
/// (so a lossy member can count what it lost of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SeatChange {
    pub seat: Seat,
    pub kind: ChangeKind,
    pub final_seq: u64,
}

/// A decoded view with what only the group layer needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawView {
    pub id: u64,
    pub seats: Vec<Seat>,
    pub changes: Vec<SeatChange>,
}

impl RawView {
    pub fn to_view(&self) -> View {
        View {
            id: self.id,
            members: self.seats.iter().map(|s| s.member).collect(),
            changes: self.changes.iter().map(|c| Change { member: c.seat.member, kind: c.kind }).collect(),
        }
    }
}

/// Bytes of the largest view of a group of `max_members`.
pub(crate) const fn max_len(max_members: usize) -> usize {
    HEAD + MEMBER * max_members + CHANGE * MAX_CHANGES
}

/// Bytes `view` encodes to.
pub(crate) fn encoded_len(view: &RawView) -> usize {
    HEAD + MEMBER * view.seats.len() + CHANGE * view.changes.len()
}

/// Encodes `view` into `out` (exactly [`encoded_len`] bytes).
pub(crate) fn encode(view: &RawView, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&view.id.to_le_bytes());
    out.extend_from_slice(&(view.seats.len() as u32).to_le_bytes());
    out.extend_from_slice(&(view.changes.len() as u32).to_le_bytes());
    for s in &view.seats {
        out.extend_from_slice(&s.member.id.to_le_bytes());
        out.extend_from_slice(&s.member.pid.to_le_bytes());
        out.extend_from_slice(&s.slot.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&s.next_seq.to_le_bytes());
    }
    for c in &view.changes {
        out.extend_from_slice(&c.seat.member.id.to_le_bytes());
        out.extend_from_slice(&c.seat.member.pid.to_le_bytes());
        out.extend_from_slice(&[c.kind.code(), 0]);
        out.extend_from_slice(&c.seat.slot.to_le_bytes());
        out.extend_from_slice(&c.final_seq.to_le_bytes());
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Decodes a view of a group of `max_members`: the counts must match the
/// bytes exactly, every slot must exist, no member may appear twice.
pub(crate) fn decode(b: &[u8], max_members: usize) -> Result<RawView, &'static str> {
    if b.len() < HEAD {
        return Err("view shorter than its header");
    }
    let id = u64_at(b, 0);
    let (n, m) = (u32_at(b, 8) as usize, u32_at(b, 12) as usize);
    if n > max_members || m > MAX_CHANGES {
        return Err("view counts out of range");
    }
    if b.len() != HEAD + n * MEMBER + m * CHANGE {
        return Err("view length does not match its counts");
    }
    let seat = |at: usize, slot_at: usize| -> Result<Seat, &'static str> {
        let slot = u16_at(b, slot_at);
        if slot as usize >= max_members {
            return Err("view names a slot out of range");
        }
        Ok(Seat { member: Member::local(u64_at(b, at), u32_at(b, at + 8)), slot, next_seq: 0 })
    };
    let mut seats = Vec::with_capacity(n);
    for k in 0..n {
        let at = HEAD + k * MEMBER;
        let mut s = seat(at, at + 12)?;
        s.next_seq = u64_at(b, at + 16);
        if b[at + 14..at + 16] != [0, 0] {
            return Err("view member padding not zero");
        }
        if seats.iter().any(|o: &Seat| o.slot == s.slot || o.member.id == s.member.id) {
            return Err("view names a member or a slot twice");
        }
        seats.push(s);
    }
    let mut changes = Vec::with_capacity(m);
    for k in 0..m {
        let at = HEAD + n * MEMBER + k * CHANGE;
        let kind = ChangeKind::from_code(b[at + 12]).ok_or("unknown change kind")?;
        if b[at + 13] != 0 {
            return Err("view change padding not zero");
        }
        changes.push(SeatChange { seat: seat(at, at + 14)?, kind, final_seq: u64_at(b, at + 16) });
    }
    Ok(RawView { id, seats, changes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RawView {
        let s = |id, pid, slot| Seat { member: Member::local(id, pid), slot, next_seq: id * 3 };
        RawView {
            id: 7,
            seats: vec![s(1, 100, 0), s(4, 101, 3)],
            changes: vec![SeatChange {
                seat: Seat { next_seq: 0, ..s(5, 102, 1) },
                kind: ChangeKind::ProcessDown,
                final_seq: 9,
            }],
        }
    }

    #[test]
    fn views_round_trip_and_every_truncation_is_refused() {
        let v = sample();
        let mut b = Vec::new();
        encode(&v, &mut b);
        assert_eq!(b.len(), encoded_len(&v));
        assert_eq!(decode(&b, 8), Ok(v.clone()));
        assert_eq!(v.to_view().members, vec![Member::local(1, 100), Member::local(4, 101)]);
        for cut in 0..b.len() {
            assert!(decode(&b[..cut], 8).is_err(), "{cut}");
        }
        // A slot beyond the group's members is refused.
        assert!(decode(&b, 3).is_err());
    }

    #[test]
    fn garbage_views_are_errors_never_panics_or_huge_allocations() {
        let mut b = Vec::new();
        encode(&sample(), &mut b);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut c = b.clone();
            let at = (x as usize) % c.len();
            c[at] = (x >> 32) as u8;
            if let Ok(v) = decode(&c, 8) {
                let mut again = Vec::new();
                encode(&v, &mut again);
                assert_eq!(again, c);
            }
        }
        // Counts that promise more than the bytes hold.
        let mut huge = b.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge, 8), Err("view counts out of range"));
        let mut dup = Vec::new();
        let mut v = sample();
        v.seats[1].slot = 0;
        encode(&v, &mut dup);
        assert_eq!(decode(&dup, 8), Err("view names a member or a slot twice"));
    }
}
