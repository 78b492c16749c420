//! Per-thread counters of the engine's duty cycle, written by the one thread
//! they describe and read by anyone through [`Engine::stats`].
//!
//! Counters only: nothing is ever decided from them, so every access is
//! Relaxed, and the writer stores (no read-modify-write) because it is the
//! only writer. Never put anything here that other data depends on.
//!
//! [`Engine::stats`]: super::Engine::stats

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::idle::IdleStats;

/// A snapshot of one engine thread's counters (in invoker mode, of the
/// application thread that calls [`Engine::invoke`](super::Engine::invoke)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadStats {
    /// The thread's index (`ringflow-engine-N`).
    pub index: usize,
    /// The CPU it is pinned to, if any.
    pub core: Option<usize>,
    /// Agents it runs now (a panicked agent is removed).
    pub agents: usize,
    /// Duty cycles run.
    pub duty_cycles: u64,
    /// Work items its agents reported.
    pub work_items: u64,
    /// Its idle steps.
    pub idle: IdleStats,
}

/// The shared cell a thread publishes its counters into.
#[derive(Debug)]
pub(crate) struct StatsCell {
    index: usize,
    core: Option<usize>,
    agents: AtomicUsize,
    duty_cycles: AtomicU64,
    work_items: AtomicU64,
    spins: AtomicU64,
    yields: AtomicU64,
    parks: AtomicU64,
}

impl StatsCell {
    pub(crate) fn new(index: usize, core: Option<usize>, agents: usize) -> StatsCell {
        StatsCell {
            index,
            core,
            agents: AtomicUsize::new(agents),
            duty_cycles: AtomicU64::new(0),
            work_items: AtomicU64::new(0),
            spins: AtomicU64::new(0),
            yields: AtomicU64::new(0),
            parks: AtomicU64::new(0),
        }
    }

    /// Publishes the owning thread's counters. Only that thread calls this.
    pub(crate) fn publish(&self, agents: usize, duty_cycles: u64, work_items: u64, idle: IdleStats) {
        // SYNC: Relaxed; counters only, read by `snapshot`, which orders
        // nothing after them. Single writer, so plain stores suffice.
        self.agents.store(agents, Relaxed);
        self.duty_cycles.store(duty_cycles, Relaxed);
        self.work_items.store(work_items, Relaxed);
        self.spins.store(idle.spins, Relaxed);
        self.yields.store(idle.yields, Relaxed);
        self.parks.store(idle.parks, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ThreadStats {
        // SYNC: Relaxed; pairs with nothing (see `publish`). Fields may come
        // from two neighbouring cycles; each one is a real value.
        ThreadStats {
            index: self.index,
            core: self.core,
            agents: self.agents.load(Relaxed),
            duty_cycles: self.duty_cycles.load(Relaxed),
            work_items: self.work_items.load(Relaxed),
            idle: IdleStats {
                spins: self.spins.load(Relaxed),
                yields: self.yields.load(Relaxed),
                parks: self.parks.load(Relaxed),
            },
        }
    }
}
