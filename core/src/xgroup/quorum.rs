//! The quorum as a crossing group's members see it (issue 17: "the
//! minority's members get a view saying they lost the quorum, and a clear
//! error on send").
//!
//! The cluster node publishes whether it is in touch with a majority
//! (`ClusterHandle::has_quorum`); that flips for a moment at every leader
//! election, so the gateways act only on a loss that lasts
//! `cluster.node_timeout_ms`: as long as the majority waits before it takes
//! a silent node down, so both sides of a partition learn of it after the
//! same bound. A node that never had the quorum counts from the gateways'
//! first look: an engine started on the minority side (or whose peers
//! stay away) has nothing to lose, but its members would otherwise
//! multicast into proposals that never commit. Then every gateway of this
//! host:
//!
//! - writes a view of its own, never agreed: the members of this host (the
//!   ones it can still vouch for), every member of other hosts a change of
//!   kind [`ChangeKind::QuorumLost`]; its id follows the last cluster view's
//!   (the entry's index times 256 plus a rank: see `Crossing::write_view`;
//!   a direct group's, the view it installed last, plus one). With no
//!   cluster view yet, the view is this host's members, each a change of
//!   kind `QuorumLost` (nobody else is known; the change says why). A
//!   member of this host that joins or leaves meanwhile is told in another
//!   such view (a joiner a change of kind `QuorumLost`: its first view);
//! - sets the group's quorum word, so that its members' multicasts fail at
//!   once with `McastError::NoQuorum` (`GroupEnd::gateway_quorum`);
//! - holds what the cluster commits meanwhile (a node that lost the quorum
//!   can still learn of entries: a leader's last words) without writing it;
//! - a FIFO or UNORDERED group's gateway (`direct.rs`) first writes the
//!   frames of the view installed that it holds, then holds its
//!   synchrony: frames still arrive on the relay (and this host's members'
//!   frames sent before the loss are still read and relayed), but none is
//!   written after the quorum-lost view. Virtual synchrony asks that a
//!   message be delivered in the view it was sent in: another host's
//!   frame, sent in the cluster's view, must not be delivered in a view
//!   without its sender.
//!
//! When the node has the quorum again: the word is cleared, a view with the
//! members of the cluster's last view before the loss is written (every
//! member of other hosts a change of kind [`ChangeKind::QuorumRegained`]),
//! then what was held and everything after, in the cluster's order. So a
//! member delivers nothing in the two views of its own host: every message
//! is delivered in a view whose members are the cluster's.
//!
//! A direct group on the regain writes the other hosts' frames it kept
//! (sent in the view installed, which the majority's members delivered in
//! that view: the regained view has its members). This host's own kept
//! frames wait: if the majority took the node down meanwhile, the
//! survivors delivered its frames only up to the furthest survivor's point
//! (the cut, `sync.rs`), and its members must not deliver more in a view
//! of the same members. The gateway learns which once an entry it
//! proposes on the regain (a `Mark`) is applied: everything the majority
//! committed before is applied then, a node-down of this node included.
//! Without one its frames are written (the majority gets them on the
//! relay, in the same view); with one they are cut where the survivors'
//! flushes of its barrier say, and the rest is dropped. Views wait behind
//! them. What this host's members delivered before the quorum-lost view
//! (their own frames are written at once) may go beyond that cut: they
//! moved to a view of their own host, the survivors to one without them,
//! so the two sides need not agree on it.
//!
//! What this host's members sent before the loss and was not committed is
//! proposed again once the quorum is back (the gateway's batch in flight,
//! `crossing.rs`). If the majority took this node down meanwhile, the
//! catch-up brings that node-down view (this host's members out of it);
//! the gateway then asks its live members back in first and proposes their
//! uncommitted messages after their joins, so every host delivers them in
//! a view that holds their sender (`Crossing::view`). A message committed
//! while its sender is not a member of the group's view is delivered
//! nowhere (every gateway applies the same log, so all agree).
//!
//! It only reads the clock and the node's published flag; it must never
//! block.

use std::time::{Duration, Instant};

use crate::group::{ChangeKind, Member};

/// What the gateways must do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// The quorum has been lost for the whole bound.
    Lost,
    /// It is back after a [`Turn::Lost`].
    Regained,
}

/// The node's quorum over time, as the gateways act on it.
pub(crate) struct QuorumWatch {
    /// How long a loss must last before the members are told.
    bound: Duration,
    /// Since when the node has been without the quorum (`None`: it has
    /// it, or was not checked yet). A node that never had it counts from
    /// its first check: an engine started on a partition's minority side
    /// (or whose peers stay away) tells its members as after a loss, and
    /// they get `NoQuorum` rather than multicasts that never commit.
    since: Option<Instant>,
    /// Whether the members were told of a loss not yet over.
    lost: bool,
}

impl QuorumWatch {
    pub(crate) fn new(bound: Duration) -> QuorumWatch {
        QuorumWatch { bound, since: None, lost: false }
    }

    /// Takes the node's flag at `now`; says what to do, if anything.
    pub(crate) fn check(&mut self, has_quorum: bool, now: Instant) -> Option<Turn> {
        if has_quorum {
            self.since = None;
            if self.lost {
                self.lost = false;
                return Some(Turn::Regained);
            }
            return None;
        }
        if self.lost {
            return None;
        }
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.bound {
            self.lost = true;
            return Some(Turn::Lost);
        }
        None
    }

    /// Whether the members were told the quorum is lost (and not back).
    #[cfg(test)]
    pub(crate) fn is_lost(&self) -> bool {
        self.lost
    }
}

/// The members and changes of the view a gateway of `host` writes on a
/// turn, from the cluster's last view `members`: on a loss this host's
/// members stay and the others are changes of kind `QuorumLost`; on a
/// regain everyone is back and the others are changes of kind
/// `QuorumRegained`. With no cluster view yet (the node never had the
/// quorum) the view is this host's members now, `local`, each a change
/// of the turn's kind: nobody else is known, and the change says why the
/// group is one host's.
pub(crate) fn turn_view(
    turn: Turn,
    members: &[Member],
    host: u64,
    local: &[Member],
) -> (Vec<Member>, Vec<(Member, ChangeKind)>) {
    let kind = match turn {
        Turn::Lost => ChangeKind::QuorumLost,
        Turn::Regained => ChangeKind::QuorumRegained,
    };
    if members.is_empty() {
        return (local.to_vec(), local.iter().map(|m| (*m, kind)).collect());
    }
    let kept = match turn {
        Turn::Lost => members.iter().filter(|m| m.host == host).copied().collect(),
        Turn::Regained => members.to_vec(),
    };
    let changes = members.iter().filter(|m| m.host != host).map(|m| (*m, kind)).collect();
    (kept, changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_counts_once_it_lasts_the_bound() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = QuorumWatch::new(ms(1000));
        // Never had it: counted from the first check, as a loss.
        assert_eq!(w.check(false, t0), None);
        assert_eq!(w.check(false, t0 + ms(999)), None);
        assert_eq!(w.check(false, t0 + ms(1000)), Some(Turn::Lost));
        assert_eq!(w.check(false, t0 + ms(5000)), None);
        assert_eq!(w.check(true, t0 + ms(5001)), Some(Turn::Regained));
        assert_eq!(w.check(true, t0 + ms(5002)), None);
        // An election's moment without it: nothing.
        assert_eq!(w.check(false, t0 + ms(6000)), None);
        assert_eq!(w.check(false, t0 + ms(6999)), None);
        assert_eq!(w.check(true, t0 + ms(7000)), None);
        assert!(!w.is_lost());
        // A loss that lasts the bound: told once, then the regain once.
        assert_eq!(w.check(false, t0 + ms(8000)), None);
        assert_eq!(w.check(false, t0 + ms(9000)), Some(Turn::Lost));
        assert!(w.is_lost());
        assert_eq!(w.check(false, t0 + ms(9500)), None);
        assert_eq!(w.check(true, t0 + ms(9600)), Some(Turn::Regained));
        assert_eq!(w.check(true, t0 + ms(9700)), None);
        assert!(!w.is_lost());
        // The bound counts afresh.
        assert_eq!(w.check(false, t0 + ms(10_000)), None);
        assert_eq!(w.check(false, t0 + ms(10_999)), None);
        assert_eq!(w.check(false, t0 + ms(11_000)), Some(Turn::Lost));
    }

    #[test]
    fn turn_views_keep_this_hosts_members_and_name_the_others() {
        let m = |host, id| Member { id, pid: 0, host };
        let members = [m(1, 4), m(2, 1), m(2, 2), m(3, 9)];
        let (kept, changes) = turn_view(Turn::Lost, &members, 2, &[m(2, 1), m(2, 2), m(2, 5)]);
        assert_eq!(kept, vec![m(2, 1), m(2, 2)]);
        assert_eq!(changes, vec![(m(1, 4), ChangeKind::QuorumLost), (m(3, 9), ChangeKind::QuorumLost)]);
        let (kept, changes) = turn_view(Turn::Regained, &members, 2, &[]);
        assert_eq!(kept, members.to_vec());
        assert_eq!(changes, vec![(m(1, 4), ChangeKind::QuorumRegained), (m(3, 9), ChangeKind::QuorumRegained)]);
        // No cluster view yet: this host's members, each the turn's reason.
        let (kept, changes) = turn_view(Turn::Lost, &[], 2, &[m(2, 1)]);
        assert_eq!((kept, changes), (vec![m(2, 1)], vec![(m(2, 1), ChangeKind::QuorumLost)]));
    }
}

#[cfg(test)]
mod gateway_tests {
    use super::*;
    use crate::cluster::{Applied, Member as NodeMember, ViewReason};
    use crate::group::{Event, GroupEnd, GroupOptions, McastError, RecvError};
    use crate::wait::Deadline;
    use crate::xgroup::crossing::Crossing;
    use crate::xgroup::note::Note;

    fn message(member: u64, text: &[u8]) -> Applied {
        let note = Note::Message { member, seq: 1, sent_at: 0, bytes: text.to_vec() };
        Applied::Message { group: "xg-quorum".into(), sender: 2, seq: 1, bytes: note.encode() }
    }

    fn payload(e: Event<'_>) -> Vec<u8> {
        match e {
            Event::Message(m) => m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            _ => panic!("a message"),
        }
    }

    fn view(e: Event<'_>) -> crate::group::View {
        match e {
            Event::View(v) => v,
            _ => panic!("a view"),
        }
    }

    /// A loss of the quorum, as a member sees it: a view of its own host
    /// (the other host's member a `QuorumLost` change), `NoQuorum` on
    /// multicast, nothing the cluster commits meanwhile; on the regain a
    /// view of the cluster's members again (`QuorumRegained`), then what
    /// was held, in order, and multicasts go again.
    #[test]
    fn members_see_the_quorum_lost_and_regained() {
        ringflow_testkit::isolate_runtime_dir();
        let opts = GroupOptions::new();
        let gw = GroupEnd::join_gateway("xg-quorum", &opts, 1, None, Deadline::Never).expect("gateway");
        let mut member = GroupEnd::join("xg-quorum", &opts, Deadline::Never).expect("member");
        let me = member.local_member().id;
        let mut x = Crossing::new("xg-quorum".into(), gw, 1, false, crate::config::DEFAULT_GROUP_INTAKE_BYTES);
        let node = |host, member| NodeMember { host, member };
        let members = vec![node(1, me), node(2, 3)];
        x.committed(
            5,
            Applied::View { group: "xg-quorum".into(), members, reason: ViewReason::Join { member: node(2, 3) } },
        );
        x.committed(6, message(3, b"before"));
        x.turn(Turn::Lost);
        x.committed(7, message(3, b"during"));
        assert_eq!(x.write_local(), 3, "the view, the message before, the quorum-lost view");
        let v = view(member.recv(Deadline::Never).expect("view"));
        assert_eq!((v.id, v.members.len()), (5 * 256, 2));
        assert_eq!(payload(member.recv(Deadline::Never).expect("before")), b"before");
        let lost = view(member.recv(Deadline::Never).expect("quorum-lost view"));
        assert_eq!(lost.id, 5 * 256 + 1);
        assert_eq!(lost.members.iter().map(|m| (m.host, m.id)).collect::<Vec<_>>(), vec![(1, me)]);
        assert_eq!(lost.changes.len(), 1);
        assert_eq!((lost.changes[0].kind, lost.changes[0].member.host), (ChangeKind::QuorumLost, 2));
        assert!(matches!(member.recv(Deadline::Now), Err(RecvError::WouldBlock)), "nothing held is delivered");
        assert!(matches!(member.mcast(b"now?", Deadline::Now), Err(McastError::NoQuorum)));

        x.turn(Turn::Regained);
        assert_eq!(x.write_local(), 2, "the regained view, the message held");
        let back = view(member.recv(Deadline::Never).expect("regained view"));
        assert_eq!((back.id, back.members), (5 * 256 + 2, v.members));
        assert!(back.changes.iter().all(|c| c.kind == ChangeKind::QuorumRegained && c.member.host == 2));
        assert_eq!(payload(member.recv(Deadline::Never).expect("during")), b"during");
        member.mcast(b"again", Deadline::Now).expect("a multicast with the quorum back");
    }
}

#[cfg(test)]
#[path = "quorum_tests.rs"]
mod direct_tests;
