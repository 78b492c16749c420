//! The members of other hosts in a crossing group, published in the
//! engine's stats file (one slot of kind `group-remote` each: the group's
//! name, the member's id, its host, its pid) so that `ringflow stat` lists
//! them beside this host's own. Kept in step with the cluster views the
//! gateway writes; a member gone from the view gives its slot back.
//!
//! Only bookkeeping for `stat`: nothing reads these slots to decide
//! anything. Without a runtime directory it publishes nothing.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::group::Member;
use crate::stats::{Slot, SlotKind};

/// The published remote members of one group.
pub(crate) struct RemoteListing {
    dir: Option<PathBuf>,
    slots: HashMap<(u64, u64), Slot>,
}

impl RemoteListing {
    pub(crate) fn new() -> RemoteListing {
        let dir = crate::control::RuntimeDir::resolve().ok().map(|d| d.path().to_path_buf());
        RemoteListing { dir, slots: HashMap::new() }
    }

    /// Publishes `members` of group `group` that are not of host `own`.
    pub(crate) fn show(&mut self, group: &str, members: &[Member], own: u64) {
        let Some(dir) = &self.dir else { return };
        let remote = || members.iter().filter(|m| m.host != own);
        self.slots.retain(|(host, id), _| remote().any(|m| (m.host, m.id) == (*host, *id)));
        for m in remote() {
            let slot = self
                .slots
                .entry((m.host, m.id))
                .or_insert_with(|| Slot::open(dir, SlotKind::GroupRemote, group, m.id, m.host));
            slot.set(0, u64::from(m.pid));
        }
    }

    /// How many members are published.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_members_are_published_and_given_back() {
        let _dir = ringflow_testkit::isolate_runtime_dir();
        let mut l = RemoteListing::new();
        let m = |host, id, pid| Member { id, pid, host };
        l.show("xg-listing", &[m(1, 2, 10), m(2, 2, 20), m(3, 5, 30)], 1);
        assert_eq!(l.len(), 2, "the members of hosts 2 and 3");
        let slot = l.slots.get(&(3, 5)).expect("host 3's member");
        assert_eq!(slot.get(0), 30);
        l.show("xg-listing", &[m(1, 2, 10), m(3, 5, 31)], 1);
        assert_eq!(l.len(), 1);
        assert_eq!(l.slots.get(&(3, 5)).map(|s| s.get(0)), Some(31));
    }
}
