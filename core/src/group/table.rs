//! The member table: one 128-byte entry per member slot, in the group's
//! shared memory. The keeper writes who holds a slot and in what state;
//! the member writes its guard word (Evict groups) and its counters. A
//! new keeper rebuilds the group from it after a takeover, and
//! `ringflow stat` reads it from outside.
//!
//! Every word is input: a member can write any entry. What each word's
//! worst value does:
//! - `state`: read by the member (a forged EVICTING makes it stop — it only
//!   hurts the writer's group, which any member can do by scribbling the
//!   log) and by a new keeper, which trusts only what a live member proves
//!   with its token, and checks every other entry's process.
//! - `member_id`, `pid`, `start`, `token`: compared, never used as sizes.
//! - `guard`: a forged 1 delays an eviction; a forged 0 lets the keeper
//!   evict a member that reads in place (that member's own process is the
//!   writer: it hurts itself).
//! - counters: figures for `stat`, nothing else.

use std::sync::atomic::{AtomicU64, Ordering};

use ringflow_ring::{guard, RawRegion, Region};

use super::memory::ENTRY_LEN;

/// Entry states.
pub(crate) const FREE: u64 = 0;
pub(crate) const JOINING: u64 = 1;
pub(crate) const ACTIVE: u64 = 2;
pub(crate) const EVICTING: u64 = 3;
pub(crate) const EVICTED: u64 = 4;

const STATE: usize = 0;
const MEMBER_ID: usize = 8;
const PID: usize = 16;
const START: usize = 24;
const TOKEN: usize = 32;
const JOINED_VIEW: usize = 40;
const GUARD: usize = 64;
const SENT: usize = 72;
const RECEIVED: usize = 80;
const LOST: usize = 88;

/// Entry `i` of the table.
pub(crate) struct Entry<'a> {
    region: &'a RawRegion,
    base: usize,
}

/// Who holds an entry, as the keeper wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Holder {
    pub member_id: u64,
    pub pid: u32,
    /// The process's start time (`/proc/<pid>/stat` field 22), so a reused
    /// pid is not taken for the member.
    pub start: u64,
    pub token: u64,
}

/// The counters a member keeps in its entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages the member multicast.
    pub sent: u64,
    /// Messages handed to the member's application.
    pub received: u64,
    /// Messages the member lost (lapped on a Lap group).
    pub lost: u64,
}

pub(crate) fn entry(table: &RawRegion, i: usize) -> Option<Entry<'_>> {
    let base = i.checked_mul(ENTRY_LEN)?;
    (base + ENTRY_LEN <= table.len()).then_some(Entry { region: table, base })
}

impl Entry<'_> {
    fn w(&self, off: usize) -> &AtomicU64 {
        self.region.atomic_word(self.base + off)
    }

    pub fn state(&self) -> u64 {
        // SYNC: Acquire; pairs with the Release in `set_state`: who sees a
        // state sees the holder written before it.
        self.w(STATE).load(Ordering::Acquire)
    }

    /// Keeper: stores the state after the words it covers.
    pub fn set_state(&self, s: u64) {
        // SYNC: Release; pairs with the Acquire in `state`.
        self.w(STATE).store(s, Ordering::Release);
    }

    /// Keeper, Evict groups: marks the member EVICTING and tells whether it
    /// is reading in place now (the guard handshake of
    /// `ringflow_ring::guard`, model-checked in ring/tests/loom_guard.rs):
    /// either the member sees EVICTING or we see its guard.
    pub fn mark_evicting(&self) -> bool {
        guard::close(self.w(STATE), EVICTING, self.w(GUARD))
    }

    /// Member, Evict groups: announces a read in place; false (and no
    /// guard) if the keeper is evicting us.
    pub fn enter_guard(&self) -> bool {
        guard::enter(self.w(GUARD), self.w(STATE), ACTIVE)
    }

    /// Member: the read in place is over (our reads of the frame happen
    /// before the keeper, seeing the guard down, evicts our cursor).
    pub fn leave_guard(&self) {
        guard::leave(self.w(GUARD))
    }

    pub fn holder(&self) -> Holder {
        // SYNC: Relaxed (the loads); ordered by an Acquire of `state`.
        let r = |off| self.w(off).load(Ordering::Relaxed);
        Holder { member_id: r(MEMBER_ID), pid: r(PID) as u32, start: r(START), token: r(TOKEN) }
    }

    /// Keeper: writes the holder (publish with `set_state`).
    pub fn set_holder(&self, h: Holder) {
        // SYNC: Relaxed (the stores); published by the Release in `set_state`.
        let w = |off, v| self.w(off).store(v, Ordering::Relaxed);
        w(MEMBER_ID, h.member_id);
        w(PID, h.pid as u64);
        w(START, h.start);
        w(TOKEN, h.token);
        w(GUARD, 0);
        w(SENT, 0);
        w(RECEIVED, 0);
        w(LOST, 0);
    }

    pub fn set_joined_view(&self, v: u64) {
        // SYNC: Relaxed; published by the Release in `set_state`.
        self.w(JOINED_VIEW).store(v, Ordering::Relaxed);
    }

    /// Member: publishes its counters (Relaxed: figures for observers).
    pub fn store_counters(&self, c: Counters) {
        // SYNC: Relaxed (three stores); figures, no data depends on them.
        self.w(SENT).store(c.sent, Ordering::Relaxed);
        self.w(RECEIVED).store(c.received, Ordering::Relaxed);
        self.w(LOST).store(c.lost, Ordering::Relaxed);
    }

    /// The counters the member last published (observers: any value).
    pub fn counters(&self) -> Counters {
        // SYNC: Relaxed (three loads); pair with `store_counters`'s Relaxed
        // stores: figures, no data depends on them.
        let r = |off| self.w(off).load(Ordering::Relaxed);
        Counters { sent: r(SENT), received: r(RECEIVED), lost: r(LOST) }
    }
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`), or
/// `None` if it does not exist (or `/proc` is unreadable).
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // count fields after its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}
