//! The Raft log in memory: entries, hard state, conf state, and the last
//! snapshot (the directory at a compacted index), for raft-rs' `Storage`.
//!
//! Memory stays bounded: once applied entries pass the compaction
//! threshold, the node takes a snapshot of its state machine at the applied
//! index and drops the entries up to it; a follower that needs them gets
//! the snapshot instead. Nothing here is durable: a node that restarts
//! starts empty and catches up from the others (see the module's notes).
//!
//! It must never panic on what raft-rs asks: out-of-range reads are raft's
//! typed errors (`Compacted`, `Unavailable`).

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};

/// The log of one node; raft-rs reads it through `Storage`, the node
/// writes it from each `Ready`.
#[derive(Default)]
pub struct MemLog {
    hard_state: HardState,
    conf_state: ConfState,
    /// `entries[i]` has index `snapshot.index + 1 + i`.
    entries: Vec<Entry>,
    /// The last snapshot taken or received: its metadata says where the
    /// log starts, its data is the directory at that index.
    snapshot: Snapshot,
    /// The bytes of `entries`' data.
    bytes: usize,
}

/// What an entry counts for in [`MemLog::bytes`].
fn size(e: &Entry) -> usize {
    e.data.len() + e.context.len()
}

impl MemLog {
    /// An empty log whose first configuration has `voters`: every node of
    /// a new cluster starts with the same one.
    pub fn new(voters: &[u64]) -> MemLog {
        let mut log = MemLog::default();
        log.conf_state.voters = voters.to_vec();
        log.snapshot.mut_metadata().set_conf_state(log.conf_state.clone());
        log
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn first(&self) -> u64 {
        self.snapshot_index() + 1
    }

    fn last(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }

    /// Entries held (not compacted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The bytes of the held entries' data.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The index the last snapshot covers (0: none yet).
    pub fn compacted_to(&self) -> u64 {
        self.snapshot_index()
    }

    /// Appends entries from a `Ready`; an entry that overlaps the log
    /// replaces it and everything after it (a new leader's log wins).
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first) = entries.first() else { return Ok(()) };
        if first.index < self.first() {
            // Raft never sends what a snapshot already covers.
            return Err(StorageError::Compacted);
        }
        if first.index > self.last() + 1 {
            return Err(StorageError::Unavailable);
        }
        let keep = (first.index - self.first()) as usize;
        self.bytes -= self.entries[keep.min(self.entries.len())..].iter().map(size).sum::<usize>();
        self.entries.truncate(keep);
        self.bytes += entries.iter().map(size).sum::<usize>();
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Records the hard state of a `Ready`.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// Records a new commit index (a `LightReady`'s).
    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    /// Records a configuration applied from the log.
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Replaces the log with a snapshot received from the leader; refused
    /// if it is older than what the log already covers.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        let meta = snapshot.get_metadata();
        if meta.index < self.snapshot_index() {
            return Err(StorageError::SnapshotOutOfDate);
        }
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.conf_state = meta.get_conf_state().clone();
        self.entries.clear();
        self.bytes = 0;
        self.snapshot = snapshot;
        Ok(())
    }

    /// Takes a snapshot at `applied` (an index applied to the state machine,
    /// whose state is `data`) and drops every entry up to it.
    pub fn compact(&mut self, applied: u64, data: Vec<u8>) -> Result<(), StorageError> {
        if applied <= self.snapshot_index() {
            return Ok(());
        }
        if applied > self.last() {
            return Err(StorageError::Unavailable);
        }
        let term = self.term_of(applied)?;
        let mut meta = SnapshotMetadata { index: applied, term, ..Default::default() };
        meta.set_conf_state(self.conf_state.clone());
        let mut snapshot = Snapshot::default();
        snapshot.set_metadata(meta);
        snapshot.data = data.into();
        let n = (applied - self.snapshot_index()) as usize;
        self.bytes -= self.entries[..n].iter().map(size).sum::<usize>();
        self.entries.drain(..n);
        self.snapshot = snapshot;
        Ok(())
    }

    fn term_of(&self, idx: u64) -> Result<u64, StorageError> {
        if idx == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.first() {
            return Err(StorageError::Compacted);
        }
        let at = (idx - self.first()) as usize;
        self.entries.get(at).map(|e| e.term).ok_or(StorageError::Unavailable)
    }
}

impl raft::Storage for MemLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let from = (low - self.first()) as usize;
        let to = (high - self.first()) as usize;
        let mut entries = self.entries[from..to].to_vec();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.term_of(idx).map_err(raft::Error::Store)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // The last one taken: it covers everything compacted, which is all a
        // follower can need a snapshot for.
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn entry(index: u64, term: u64) -> Entry {
        Entry { index, term, ..Default::default() }
    }

    #[test]
    fn appends_overwrite_and_compaction_keeps_reads_typed() {
        let mut log = MemLog::new(&[1, 2, 3]);
        assert_eq!(log.first_index().ok(), Some(1));
        assert_eq!(log.last_index().ok(), Some(0));
        log.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]).expect("appends");
        // A new leader's entries replace index 3 onwards.
        log.append(&[entry(3, 2), entry(4, 2)]).expect("appends");
        assert_eq!(log.term(3).ok(), Some(2));
        assert_eq!(log.last_index().ok(), Some(4));
        assert_eq!(log.append(&[entry(9, 2)]), Err(StorageError::Unavailable));

        log.compact(2, b"dir".to_vec()).expect("compacts");
        assert_eq!(log.first_index().ok(), Some(3));
        assert_eq!(log.term(2).ok(), Some(1));
        assert!(matches!(log.term(1), Err(raft::Error::Store(StorageError::Compacted))));
        assert!(matches!(
            log.entries(1, 3, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert!(matches!(
            log.entries(3, 9, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Unavailable))
        ));
        let got = log.entries(3, 5, None, GetEntriesContext::empty(false)).expect("reads");
        assert_eq!(got.iter().map(|e| e.index).collect::<Vec<_>>(), vec![3, 4]);
        let snap = log.snapshot(0, 2).expect("snapshot");
        assert_eq!((snap.get_metadata().index, &snap.data[..]), (2, &b"dir"[..]));
        assert_eq!(snap.get_metadata().get_conf_state().voters, vec![1, 2, 3]);
    }

    /// The bytes held follow every change of the entries: appends, an
    /// overlapping append, compaction, a received snapshot.
    #[test]
    fn the_bytes_held_follow_the_entries() {
        let sized =
            |index: u64, term: u64, n: usize| Entry { index, term, data: vec![1; n].into(), ..Default::default() };
        let mut log = MemLog::new(&[1, 2]);
        log.append(&[sized(1, 1, 10), sized(2, 1, 20), sized(3, 1, 30)]).expect("appends");
        assert_eq!(log.bytes(), 60);
        log.append(&[sized(3, 2, 5), sized(4, 2, 7)]).expect("replaces 3");
        assert_eq!(log.bytes(), 42);
        log.compact(2, Vec::new()).expect("compacts");
        assert_eq!(log.bytes(), 12);
        let mut snap = log.snapshot(0, 2).expect("snapshot");
        snap.mut_metadata().index = 9;
        log.apply_snapshot(snap).expect("applies");
        assert_eq!(log.bytes(), 0);
    }

    #[test]
    fn a_received_snapshot_replaces_the_log() {
        let mut leader = MemLog::new(&[1, 2]);
        leader.append(&[entry(1, 1), entry(2, 1), entry(3, 3)]).expect("appends");
        leader.compact(3, b"state".to_vec()).expect("compacts");
        let snap = leader.snapshot(0, 2).expect("snapshot");

        let mut fresh = MemLog::new(&[1, 2]);
        fresh.apply_snapshot(snap.clone()).expect("applies");
        assert_eq!(fresh.first_index().ok(), Some(4));
        assert_eq!(fresh.term(3).ok(), Some(3));
        assert_eq!(fresh.initial_state().expect("state").hard_state.commit, 3);
        // An older snapshot than what the log covers is refused.
        let mut old = snap;
        old.mut_metadata().index = 1;
        assert_eq!(fresh.apply_snapshot(old), Err(StorageError::SnapshotOutOfDate));
    }
}
