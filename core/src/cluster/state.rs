//! The state machine the cluster's log drives: the seed of the group
//! directory. Every node applies the same commands in the same (log)
//! order, so every node holds the same directory at the same index.
//!
//! It must never decide anything on its own (no clock, no randomness, no
//! local state): what it holds is a function of the commands applied.
//! Its snapshot (for a node that fell behind the compacted log) is a
//! versioned binary form like the entries'.

use std::collections::{BTreeMap, BTreeSet};

use super::entry::{put_str, Checked, Command, EntryError};
use super::node::NODES_GROUP;

/// The snapshot's encoding version (2: with the members each down node's
/// removal took, for [`ViewReason::NodeUp`]).
pub const SNAPSHOT_VERSION: u8 = 2;

/// A member of a group, as the directory knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    /// The cluster node (engine) it lives on.
    pub host: u64,
    /// Its id on that host.
    pub member: u64,
}

/// Why a view changed, as every node applies it (deterministic: a
/// function of the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViewReason {
    /// `member` joined.
    Join {
        /// Who joined.
        member: Member,
    },
    /// `member` left (its own leave).
    Leave {
        /// Who left.
        member: Member,
    },
    /// Node `host` was taken for down (a `NodeDown` the leader proposed
    /// after `cluster.node_timeout_ms` without a word from it, or a new run
    /// of the node replacing the one before): every member it had left.
    NodeDown {
        /// The node.
        host: u64,
    },
    /// `member` of node `host` came back after its node was down: a join
    /// of a member the node's removal took, or the node's own join of
    /// [`NODES_GROUP`] once it is back.
    NodeUp {
        /// The node.
        host: u64,
        /// Who (re)joined.
        member: Member,
    },
}

/// What applying one command did (what a local group agent acts on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The group's membership changed (a join, a leave, a node's members
    /// removed): the new view.
    View {
        /// The group.
        group: String,
        /// Its members after the change.
        members: Vec<Member>,
        /// Why it changed.
        reason: ViewReason,
    },
    /// The entry of one of this node's own proposals changed nothing (a
    /// duplicate message, a second join): told only so that its proposer
    /// sees its id committed (`Committed::proposal`). Never on another node.
    Unchanged,
    /// An AGREED message to deliver, in this order, everywhere.
    Message {
        /// The group.
        group: String,
        /// Its sender.
        sender: u64,
        /// The sender's sequence number.
        seq: u64,
        /// The message.
        bytes: Vec<u8>,
    },
}

/// The directory: groups and their members, and the last sequence number
/// applied per sender (to drop re-proposed duplicates).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directory {
    groups: BTreeMap<String, BTreeSet<Member>>,
    last_seq: BTreeMap<(String, u64), u64>,
    /// Nodes a `NodeDown` removed (their join of [`NODES_GROUP`] brings
    /// them back).
    down: BTreeSet<u64>,
    /// Per node, the members its last removal took (a join of one of them
    /// is a [`ViewReason::NodeUp`]); replaced at each removal of the node,
    /// so bounded by what the node had.
    removed: BTreeMap<u64, BTreeSet<(String, u64)>>,
}

impl Directory {
    /// Applies one command and appends what it changed to `out` (nothing
    /// for a duplicate message or a no-op join or leave; a view per group
    /// a `NodeDown` touched).
    pub fn apply(&mut self, command: Command, out: &mut Vec<Applied>) {
        match command {
            Command::Join { group, host, member } => {
                let m = Member { host, member };
                if group == NODES_GROUP {
                    let earlier_run = self.members(NODES_GROUP).iter().any(|n| n.host == host && n.member != member);
                    if earlier_run {
                        // A new run of the node: the one before is gone with
                        // everything it had; members come back by their joins.
                        self.node_down(host, out);
                    }
                }
                let returning = if group == NODES_GROUP {
                    self.down.remove(&host)
                } else {
                    self.removed.get_mut(&host).is_some_and(|r| r.remove(&(group.clone(), member)))
                };
                let members = self.groups.entry(group.clone()).or_default();
                if members.insert(m) {
                    let reason =
                        if returning { ViewReason::NodeUp { host, member: m } } else { ViewReason::Join { member: m } };
                    out.push(view(group, members, reason));
                }
            }
            Command::Leave { group, host, member } => {
                let Some(members) = self.groups.get_mut(&group) else { return };
                let m = Member { host, member };
                if members.remove(&m) {
                    out.push(view(group.clone(), members, ViewReason::Leave { member: m }));
                }
                if members.is_empty() {
                    self.groups.remove(&group);
                }
            }
            Command::NodeDown { host } => self.node_down(host, out),
            Command::Message { group, sender, seq, bytes } => {
                let last = self.last_seq.entry((group.clone(), sender)).or_insert(0);
                if seq > *last {
                    *last = seq;
                    out.push(Applied::Message { group, sender, seq, bytes });
                }
            }
        }
    }

    /// Removes every member of `host` from every group (a view of each
    /// group it touched) and remembers them for [`ViewReason::NodeUp`].
    fn node_down(&mut self, host: u64, out: &mut Vec<Applied>) {
        self.down.insert(host);
        let mut taken = BTreeSet::new();
        self.groups.retain(|group, members| {
            let before = members.len();
            members.retain(|m| {
                let keep = m.host != host;
                if !keep && group != NODES_GROUP {
                    taken.insert((group.clone(), m.member));
                }
                keep
            });
            if members.len() != before {
                out.push(view(group.clone(), members, ViewReason::NodeDown { host }));
            }
            !members.is_empty()
        });
        self.removed.insert(host, taken);
    }

    /// The members of `group` (empty if it has none).
    pub fn members(&self, group: &str) -> Vec<Member> {
        self.groups.get(group).map(|m| m.iter().copied().collect()).unwrap_or_default()
    }

    /// Every group with members, by name.
    pub fn groups(&self) -> impl Iterator<Item = (&str, usize)> {
        self.groups.iter().map(|(name, m)| (name.as_str(), m.len()))
    }

    /// Whether a `NodeDown` removed `host` (and its join of
    /// [`NODES_GROUP`] did not bring it back yet).
    pub fn is_down(&self, host: u64) -> bool {
        self.down.contains(&host)
    }

    /// Whether `host` is down with nothing of it left: a `NodeDown` removed
    /// it, and no member of it joined a group since. A new run's members
    /// may join before the node's own join of [`NODES_GROUP`] commits; if
    /// that run dies then, its members must be taken down again (the
    /// leader's liveness and the SAFE index count such a node as up).
    pub fn is_out(&self, host: u64) -> bool {
        self.is_down(host)
            && !self
                .groups
                .iter()
                .any(|(group, members)| group != NODES_GROUP && members.iter().any(|m| m.host == host))
    }

    /// Whether the run `incarnation` of node `host` is in [`NODES_GROUP`].
    pub fn has_node(&self, host: u64, incarnation: u64) -> bool {
        self.groups.get(NODES_GROUP).is_some_and(|m| m.contains(&Member { host, member: incarnation }))
    }

    /// The directory as a snapshot's data.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![SNAPSHOT_VERSION];
        out.extend_from_slice(&(self.groups.len() as u64).to_le_bytes());
        for (group, members) in &self.groups {
            // Names came through `Command`s, whose decoding bounded them.
            let _ = put_str(group, &mut out);
            out.extend_from_slice(&(members.len() as u64).to_le_bytes());
            for m in members {
                out.extend_from_slice(&m.host.to_le_bytes());
                out.extend_from_slice(&m.member.to_le_bytes());
            }
        }
        out.extend_from_slice(&(self.last_seq.len() as u64).to_le_bytes());
        for ((group, sender), seq) in &self.last_seq {
            let _ = put_str(group, &mut out);
            out.extend_from_slice(&sender.to_le_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
        }
        out.extend_from_slice(&(self.down.len() as u64).to_le_bytes());
        for host in &self.down {
            out.extend_from_slice(&host.to_le_bytes());
        }
        out.extend_from_slice(&(self.removed.len() as u64).to_le_bytes());
        for (host, taken) in &self.removed {
            out.extend_from_slice(&host.to_le_bytes());
            out.extend_from_slice(&(taken.len() as u64).to_le_bytes());
            for (group, member) in taken {
                let _ = put_str(group, &mut out);
                out.extend_from_slice(&member.to_le_bytes());
            }
        }
        out
    }

    /// A directory from a snapshot's data (from another node: hostile).
    pub fn decode(data: &[u8]) -> Result<Directory, EntryError> {
        let mut r = Checked(data);
        let version = r.u8().map_err(|_| EntryError::Empty)?;
        if version != SNAPSHOT_VERSION {
            return Err(EntryError::UnknownVersion(version));
        }
        let mut dir = Directory::default();
        // Counts are only loop bounds: every item read is checked, so a
        // forged count ends in `Truncated` without allocating for it.
        for _ in 0..r.u64()? {
            let group = r.str()?;
            let mut members = BTreeSet::new();
            for _ in 0..r.u64()? {
                members.insert(Member { host: r.u64()?, member: r.u64()? });
            }
            dir.groups.insert(group, members);
        }
        for _ in 0..r.u64()? {
            let group = r.str()?;
            let sender = r.u64()?;
            dir.last_seq.insert((group, sender), r.u64()?);
        }
        for _ in 0..r.u64()? {
            dir.down.insert(r.u64()?);
        }
        for _ in 0..r.u64()? {
            let host = r.u64()?;
            let mut taken = BTreeSet::new();
            for _ in 0..r.u64()? {
                let group = r.str()?;
                taken.insert((group, r.u64()?));
            }
            dir.removed.insert(host, taken);
        }
        if !r.0.is_empty() {
            return Err(EntryError::TrailingBytes(r.0.len()));
        }
        Ok(dir)
    }
}

fn view(group: String, members: &BTreeSet<Member>, reason: ViewReason) -> Applied {
    Applied::View { group, members: members.iter().copied().collect(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(d: &mut Directory, command: Command) -> Vec<Applied> {
        let mut out = Vec::new();
        d.apply(command, &mut out);
        out
    }

    #[test]
    fn joins_leaves_and_node_down_make_views() {
        let mut d = Directory::default();
        let join = |group: &str, host, member| Command::Join { group: group.into(), host, member };
        assert_eq!(apply(&mut d, join("g", 1, 10)).len(), 1);
        assert_eq!(apply(&mut d, join("g", 2, 20)).len(), 1);
        assert_eq!(apply(&mut d, join("h", 2, 21)).len(), 1);
        // A second join of the same member changes nothing.
        assert_eq!(apply(&mut d, join("g", 2, 20)), vec![]);
        assert_eq!(d.members("g"), vec![Member { host: 1, member: 10 }, Member { host: 2, member: 20 }]);
        // Node 2's members leave both groups: a view of each.
        let down = apply(&mut d, Command::NodeDown { host: 2 });
        let node_down = ViewReason::NodeDown { host: 2 };
        assert_eq!(
            down,
            vec![
                Applied::View { group: "g".into(), members: vec![Member { host: 1, member: 10 }], reason: node_down },
                Applied::View { group: "h".into(), members: vec![], reason: node_down },
            ]
        );
        assert!(d.is_down(2));
        let m10 = Member { host: 1, member: 10 };
        let leave = apply(&mut d, Command::Leave { group: "g".into(), host: 1, member: 10 });
        assert_eq!(
            leave,
            vec![Applied::View { group: "g".into(), members: vec![], reason: ViewReason::Leave { member: m10 } }]
        );
        assert_eq!(d.groups().count(), 0);
    }

    /// A down node whose new run's member joined before the node itself
    /// is not out: if that run dies, the leader must take it down again.
    #[test]
    fn a_down_node_with_a_member_back_is_not_out() {
        let mut d = Directory::default();
        let join = |group: &str, host, member| Command::Join { group: group.into(), host, member };
        apply(&mut d, join(NODES_GROUP, 2, 200));
        apply(&mut d, join("g", 2, 20));
        apply(&mut d, Command::NodeDown { host: 2 });
        assert!(d.is_down(2) && d.is_out(2));
        apply(&mut d, join("g", 2, 20));
        assert!(d.is_down(2) && !d.is_out(2), "its member is back before the node's own join");
        let again = apply(&mut d, Command::NodeDown { host: 2 });
        assert_eq!(again.len(), 1, "g's view without it");
        assert!(d.is_out(2));
        apply(&mut d, join(NODES_GROUP, 2, 201));
        assert!(!d.is_down(2) && !d.is_out(2));
    }

    #[test]
    fn a_node_that_comes_back_is_up_and_its_members_rejoin_as_node_up() {
        let mut d = Directory::default();
        let join = |group: &str, host, member| Command::Join { group: group.into(), host, member };
        apply(&mut d, join(NODES_GROUP, 1, 100));
        apply(&mut d, join(NODES_GROUP, 2, 200));
        apply(&mut d, join("g", 2, 20));
        assert!(d.has_node(2, 200));
        let down = apply(&mut d, Command::NodeDown { host: 2 });
        assert!(down.iter().all(|a| matches!(a, Applied::View { reason: ViewReason::NodeDown { host: 2 }, .. })));
        assert_eq!(down.len(), 2, "the nodes' group and g");
        assert!(d.is_down(2) && !d.has_node(2, 200));
        // The same run back (a healed link): its node-up, then its member's.
        let m = |host, member| Member { host, member };
        let up = apply(&mut d, join(NODES_GROUP, 2, 200));
        assert!(
            matches!(up[..], [Applied::View { reason: ViewReason::NodeUp { host: 2, member }, .. }] if member == m(2, 200))
        );
        assert!(!d.is_down(2));
        let back = apply(&mut d, join("g", 2, 20));
        assert!(matches!(back[..], [Applied::View { reason: ViewReason::NodeUp { host: 2, .. }, .. }]));
        // A new member of that node later is a plain join.
        let fresh = apply(&mut d, join("g", 2, 21));
        assert!(matches!(fresh[..], [Applied::View { reason: ViewReason::Join { .. }, .. }]));
        // A new run of node 2 without a NodeDown first: the run before is
        // taken down (its members leave), then the new run is up.
        let restart = apply(&mut d, join(NODES_GROUP, 2, 201));
        let reasons: Vec<ViewReason> = restart
            .iter()
            .map(|a| match a {
                Applied::View { reason, .. } => *reason,
                other => panic!("{other:?} from a join"),
            })
            .collect();
        assert_eq!(
            reasons,
            vec![
                ViewReason::NodeDown { host: 2 },
                ViewReason::NodeDown { host: 2 },
                ViewReason::NodeUp { host: 2, member: m(2, 201) }
            ]
        );
        assert_eq!(d.members("g"), vec![]);
        assert_eq!(d.members(NODES_GROUP), vec![m(1, 100), m(2, 201)]);
    }

    #[test]
    fn a_re_proposed_message_is_applied_once() {
        let mut d = Directory::default();
        let msg = |seq| Command::Message { group: "g".into(), sender: 7, seq, bytes: vec![seq as u8] };
        assert_eq!(apply(&mut d, msg(1)).len(), 1);
        assert_eq!(apply(&mut d, msg(2)).len(), 1);
        assert_eq!(apply(&mut d, msg(2)), vec![]);
        assert_eq!(apply(&mut d, msg(1)), vec![]);
        assert_eq!(apply(&mut d, msg(3)).len(), 1);
    }

    #[test]
    fn snapshots_round_trip_and_refuse_hostile_bytes() {
        let mut d = Directory::default();
        apply(&mut d, Command::Join { group: "a".into(), host: 1, member: 2 });
        apply(&mut d, Command::Join { group: "b".into(), host: 3, member: 4 });
        apply(&mut d, Command::Message { group: "a".into(), sender: 2, seq: 5, bytes: vec![] });
        apply(&mut d, Command::NodeDown { host: 3 });
        assert_eq!(d.removed.get(&3).map(BTreeSet::len), Some(1));
        let bytes = d.encode();
        assert_eq!(Directory::decode(&bytes), Ok(d.clone()));
        for cut in 0..bytes.len() {
            assert!(Directory::decode(&bytes[..cut]).is_err(), "cut at {cut} accepted");
        }
        let mut forged = vec![SNAPSHOT_VERSION];
        forged.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Directory::decode(&forged), Err(EntryError::Truncated));
    }
}
