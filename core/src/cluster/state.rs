//! The state machine the cluster's log drives: the seed of the group
//! directory. Every node applies the same commands in the same (log)
//! order, so every node holds the same directory at the same index.
//!
//! It must never decide anything on its own (no clock, no randomness, no
//! local state): what it holds is a function of the commands applied.
//! Its snapshot (for a node that fell behind the compacted log) is a
//! versioned binary form like the entries'.

use std::collections::{BTreeMap, BTreeSet};

use super::entry::{put_str, Checked, Command, EntryError, ENTRY_VERSION};

/// A member of a group, as the directory knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    /// The cluster node (engine) it lives on.
    pub host: u64,
    /// Its id on that host.
    pub member: u64,
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
    },
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
    /// Nodes a `NodeDown` removed (a `Join` from such a node brings it back).
    down: BTreeSet<u64>,
}

impl Directory {
    /// Applies one command and appends what it changed to `out` (nothing
    /// for a duplicate message or a no-op join or leave; a view per group
    /// a `NodeDown` touched).
    pub fn apply(&mut self, command: Command, out: &mut Vec<Applied>) {
        match command {
            Command::Join { group, host, member } => {
                self.down.remove(&host);
                let members = self.groups.entry(group.clone()).or_default();
                if members.insert(Member { host, member }) {
                    out.push(view(group, members));
                }
            }
            Command::Leave { group, host, member } => {
                let Some(members) = self.groups.get_mut(&group) else { return };
                if members.remove(&Member { host, member }) {
                    out.push(view(group.clone(), members));
                }
                if members.is_empty() {
                    self.groups.remove(&group);
                }
            }
            Command::NodeDown { host } => {
                self.down.insert(host);
                self.groups.retain(|group, members| {
                    let before = members.len();
                    members.retain(|m| m.host != host);
                    if members.len() != before {
                        out.push(view(group.clone(), members));
                    }
                    !members.is_empty()
                });
            }
            Command::Message { group, sender, seq, bytes } => {
                let last = self.last_seq.entry((group.clone(), sender)).or_insert(0);
                if seq > *last {
                    *last = seq;
                    out.push(Applied::Message { group, sender, seq, bytes });
                }
            }
        }
    }

    /// The members of `group` (empty if it has none).
    pub fn members(&self, group: &str) -> Vec<Member> {
        self.groups.get(group).map(|m| m.iter().copied().collect()).unwrap_or_default()
    }

    /// Every group with members, by name.
    pub fn groups(&self) -> impl Iterator<Item = (&str, usize)> {
        self.groups.iter().map(|(name, m)| (name.as_str(), m.len()))
    }

    /// Whether a `NodeDown` removed `host` (and no join brought it back).
    pub fn is_down(&self, host: u64) -> bool {
        self.down.contains(&host)
    }

    /// The directory as a snapshot's data.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![ENTRY_VERSION];
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
        out
    }

    /// A directory from a snapshot's data (from another node: hostile).
    pub fn decode(data: &[u8]) -> Result<Directory, EntryError> {
        let mut r = Checked(data);
        let version = r.u8().map_err(|_| EntryError::Empty)?;
        if version != ENTRY_VERSION {
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
        if !r.0.is_empty() {
            return Err(EntryError::TrailingBytes(r.0.len()));
        }
        Ok(dir)
    }
}

fn view(group: String, members: &BTreeSet<Member>) -> Applied {
    Applied::View { group, members: members.iter().copied().collect() }
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
        assert_eq!(
            down,
            vec![
                Applied::View { group: "g".into(), members: vec![Member { host: 1, member: 10 }] },
                Applied::View { group: "h".into(), members: vec![] },
            ]
        );
        assert!(d.is_down(2));
        let leave = apply(&mut d, Command::Leave { group: "g".into(), host: 1, member: 10 });
        assert_eq!(leave, vec![Applied::View { group: "g".into(), members: vec![] }]);
        assert_eq!(d.groups().count(), 0);
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
        let bytes = d.encode();
        assert_eq!(Directory::decode(&bytes), Ok(d.clone()));
        for cut in 0..bytes.len() {
            assert!(Directory::decode(&bytes[..cut]).is_err(), "cut at {cut} accepted");
        }
        let mut forged = vec![ENTRY_VERSION];
        forged.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Directory::decode(&forged), Err(EntryError::Truncated));
    }
}
