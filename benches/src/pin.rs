//! Which cores the two benchmark threads run on.
//!
//! The core list is read once, from the main thread, before any thread is
//! pinned: `core_affinity::get_core_ids()` lists only the cores of the
//! calling thread's current mask, so asking from a pinned thread would see
//! one core. Threads are then pinned by id. This module never pins the main
//! thread, which only waits.

use core_affinity::CoreId;

use crate::error::BenchError;

/// The cores of the two sides of a run, or none when the machine (or the
/// process's affinity mask) offers fewer than two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pins {
    cores: Option<[usize; 2]>,
    available: usize,
}

impl Pins {
    /// Reads the cores this process may run on. Call from the main thread
    /// before anything is pinned. `RINGFLOW_BENCH_PIN=off` leaves the
    /// threads unpinned (to measure what pinning buys; see tuning.md).
    pub fn detect() -> Self {
        if std::env::var("RINGFLOW_BENCH_PIN").is_ok_and(|v| v == "off") {
            return Pins::unpinned();
        }
        match core_affinity::get_core_ids() {
            Some(ids) => {
                let cores = match ids.as_slice() {
                    [a, b, ..] => Some([a.id, b.id]),
                    _ => None,
                };
                Pins { cores, available: ids.len() }
            }
            // No mask to read: fall back to the core count and ids 0 and 1.
            None => {
                let available = std::thread::available_parallelism().map_or(1, |n| n.get());
                Pins { cores: (available >= 2).then_some([0, 1]), available }
            }
        }
    }

    /// No pinning at all (the scheduler decides).
    pub fn unpinned() -> Self {
        let available = std::thread::available_parallelism().map_or(1, |n| n.get());
        Pins { cores: None, available }
    }

    /// Whether the two sides run pinned to distinct cores.
    pub fn is_pinned(&self) -> bool {
        self.cores.is_some()
    }

    /// Whether both sides must share one core: then nobody may spin.
    pub fn shares_one_core(&self) -> bool {
        self.available < 2
    }

    /// Pins the calling thread to the core of `side` (0 or 1); a no-op when
    /// unpinned.
    pub fn pin_current(&self, side: usize) -> Result<(), BenchError> {
        let Some(cores) = self.cores else {
            return Ok(());
        };
        let id = cores[side % 2];
        if core_affinity::set_for_current(CoreId { id }) {
            Ok(())
        } else {
            Err(BenchError::Pin { core: id })
        }
    }

    /// The core of `side` (0 or 1), if pinned.
    pub fn core_of(&self, side: usize) -> Option<usize> {
        self.cores.map(|c| c[side % 2])
    }

    /// One line for the report header.
    pub fn describe(&self) -> String {
        match self.cores {
            Some([a, b]) => format!("threads pinned to cores {a} and {b}"),
            None if self.available < 2 => {
                "UNPINNED: only one core available, both threads share it and yield instead of spinning".to_string()
            }
            None => "UNPINNED: the scheduler places the threads".to_string(),
        }
    }
}
