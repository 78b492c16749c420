//! A member's figures as the world outside its process sees them: one slot
//! of kind [`SlotKind::Group`] in the process's stats file (see
//! [`crate::stats`]) per member, holding its counters (sent, received,
//! lost) and its one-way latency histogram (the sender's stamp to the
//! moment a receive hands the message over). The member is the slot's only
//! writer; `ringflow stat` reads it from outside, [`GroupEnd::stats`]
//! inside.
//!
//! The member's lag is not here: it is the log's (tail − cursor), and a
//! member that stopped reading does not run code to publish it. Whoever
//! maps the log computes it when asked (see `inspect.rs`).
//!
//! Recording must stay as cheap as the flows': a relaxed load and store
//! per counter and bucket, never a lock or a system call.
//!
//! [`GroupEnd::stats`]: super::GroupEnd::stats

use std::path::Path;

use hdrhistogram::Histogram;

use crate::stats::{GroupCounter, Slot, SlotKind, GROUP_LATENCY};

/// A member's slot of statistics.
pub(crate) struct Published {
    slot: Slot,
    latency: bool,
}

impl Published {
    /// The slot of member `member_id` (seat `seat`) of group `name`, in the
    /// stats file of runtime directory `dir` (on the heap if that file
    /// cannot be made). `latency`: whether receives record latency.
    pub(crate) fn open(dir: &Path, name: &str, member_id: u64, seat: usize, latency: bool) -> Published {
        Published { slot: Slot::open(dir, SlotKind::Group, name, member_id, seat as u64), latency }
    }

    /// Counts a multicast.
    #[inline]
    pub(crate) fn sent(&self) {
        self.slot.add(GroupCounter::Sent as usize, 1);
    }

    /// Counts a message handed over, with its sender's stamp (`sent_at`,
    /// a `crate::clock` reading; a stamp that is no reading of this host's
    /// clock records no latency).
    #[inline]
    pub(crate) fn received(&self, sent_at: u64) {
        self.slot.add(GroupCounter::Received as usize, 1);
        if self.latency {
            if let Some(ns) = crate::clock::elapsed_ns(sent_at, crate::clock::now()) {
                self.slot.hist(GROUP_LATENCY).record(ns.max(1));
            }
        }
    }

    /// Counts `n` messages lost to a lap.
    #[inline]
    pub(crate) fn lost(&self, n: u64) {
        self.slot.add(GroupCounter::Lost as usize, n);
    }

    /// The latency histogram so far; `None` when the member records none.
    pub(crate) fn latency(&self) -> Option<Histogram<u64>> {
        self.latency.then(|| self.slot.hist(GROUP_LATENCY).snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::read_dir;

    #[test]
    fn a_member_slot_is_read_from_outside_with_its_counts_and_latency() {
        crate::clock::init();
        let tmp = ringflow_testkit::temp_dir("gstats");
        let p = Published::open(tmp.path(), "orders", 7, 3, true);
        p.sent();
        p.sent();
        let now = crate::clock::now();
        p.received(now);
        p.received(now);
        p.received(now);
        p.lost(5);
        let procs = read_dir(tmp.path()).unwrap();
        let me = procs.iter().find(|q| q.pid == std::process::id()).expect("our file");
        let s = me.slots.iter().find(|s| s.kind == SlotKind::Group).expect("the member's slot");
        assert_eq!((s.name.as_str(), s.info, s.peer), ("orders", 7, 3));
        assert_eq!((s.counter("sent"), s.counter("received"), s.counter("lost")), (Some(2), Some(3), Some(5)));
        assert_eq!(s.hists[GROUP_LATENCY].len(), 3);
        assert_eq!(p.latency().map(|h| h.len()), Some(3));

        let quiet = Published::open(tmp.path(), "orders", 8, 4, false);
        quiet.received(crate::clock::now());
        assert!(quiet.latency().is_none());
        drop((p, quiet));
        let procs = read_dir(tmp.path()).unwrap();
        assert!(procs.iter().all(|q| q.slots.iter().all(|s| s.kind != SlotKind::Group)), "slots freed on drop");
    }
}
