//! The engine: agents run in a duty cycle, either on the engine's own
//! threads (dedicated mode) or on the application's thread (invoker mode).
//!
//! This part owns threads, pinning, idling, wakeups, statistics and
//! shutdown; it does no I/O itself (io_uring and local rings arrive as
//! agents). It must never let an agent's panic pass unreported, and never
//! wait without a bound when dropped.

mod agent;
mod error;
mod idle;
mod stats;
mod thread;

#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use agent::panic_message as panic_text;
pub use agent::{Agent, WakeHook};
pub use error::EngineError;
pub use idle::{IdleStats, Idler, PARK_CAP};
pub use stats::ThreadStats;
pub use thread::Waker;

use crate::config::{EngineConfig, ThreadingMode};
use agent::AgentSet;
use stats::StatsCell;
use thread::{Plan, Shared, ThreadGroup};

/// How long `Drop` waits for the engine threads before detaching them.
/// A thread stuck in a blocking agent would otherwise hang the dropping
/// thread forever; a detached thread exits by itself once the agent returns
/// (the stop flag stays set).
pub const DROP_JOIN_DEADLINE: Duration = Duration::from_secs(1);

/// In invoker mode, one duty cycle in this many is timed for the `duty`
/// histogram (a sample: which cycles have work does not depend on it);
/// engine threads time every cycle with work.
pub const INVOKER_DUTY_SAMPLE: u64 = 16;

/// Whether invoker duty cycle `n` is one of the one in
/// [`INVOKER_DUTY_SAMPLE`] that are timed: picked by a multiplicative hash
/// of `n` (a Weyl sequence), not by `n % 16`, so that an application
/// whose loop makes its busy cycles fall every 16th cycle, or never on
/// one, still has them sampled at that rate.
#[inline]
fn sampled(n: u64) -> bool {
    const _: () = assert!(INVOKER_DUTY_SAMPLE.is_power_of_two());
    let bits = INVOKER_DUTY_SAMPLE.trailing_zeros();
    (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) == 0
}

/// What a clean [`Engine::shutdown`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Engine threads joined (0 in invoker mode).
    pub threads_joined: usize,
    /// Agents whose `on_close` ran.
    pub agents_closed: usize,
}

/// A running engine. Dropping it stops it (see [`DROP_JOIN_DEADLINE`]);
/// [`Engine::shutdown`] does so with a deadline of your choice and a report.
pub struct Engine {
    mode: Mode,
    shared: Arc<Shared>,
}

enum Mode {
    Dedicated(ThreadGroup),
    Invoker(Invoker),
    Stopped,
}

/// Invoker mode: the agents, run by whoever calls [`Engine::invoke`].
struct Invoker {
    agents: AgentSet,
    duty_cycles: u64,
    work_items: u64,
    stats: StatsCell,
    /// `ringflow-invoker` in `ringflow stat`: the duty cycles the
    /// application's threads ran (one at a time: the caller holds `&mut`).
    slot: Arc<crate::stats::Slot>,
}

impl Engine {
    /// Starts the engine `config` describes with these agents. In dedicated
    /// mode this spawns `engine.threads` threads named `ringflow-engine-N`,
    /// deals the agents to them round-robin and pins thread N to
    /// `engine.cores[N]` when cores are given; it returns once every thread
    /// is pinned and running (an unpinnable core is [`EngineError::Pin`]).
    /// In invoker mode no thread is started.
    pub fn start(config: &EngineConfig, agents: Vec<Box<dyn Agent>>) -> Result<Engine, EngineError> {
        let engine = config.engine();
        match engine.mode {
            ThreadingMode::Invoker => Ok(Engine::invoker(agents)),
            ThreadingMode::Dedicated => {
                let cores: Vec<Option<usize>> = if engine.cores.is_empty() {
                    vec![None; engine.threads]
                } else if engine.cores.len() == engine.threads {
                    engine.cores.iter().copied().map(Some).collect()
                } else {
                    return Err(EngineError::Config(format!(
                        "engine.cores lists {} cores for {} threads",
                        engine.cores.len(),
                        engine.threads
                    )));
                };
                let started =
                    Engine::dedicated(&Plan { cores: cores.clone(), idle: engine.idle, park_cap: PARK_CAP }, agents);
                match &started {
                    Ok(_) => {
                        tracing::info!(threads = engine.threads, cores = ?cores, idle = ?engine.idle, "engine started")
                    }
                    Err(e) => tracing::error!(error = %e, "engine failed to start"),
                }
                started
            }
        }
    }

    pub(crate) fn dedicated(plan: &Plan, agents: Vec<Box<dyn Agent>>) -> Result<Engine, EngineError> {
        let shared = Arc::new(Shared::default());
        let group = ThreadGroup::start(plan, agents, Arc::clone(&shared))?;
        Ok(Engine { mode: Mode::Dedicated(group), shared })
    }

    fn invoker(agents: Vec<Box<dyn Agent>>) -> Engine {
        let stats = StatsCell::new(0, None, agents.len());
        let slot = Arc::new(thread::engine_slot("ringflow-invoker", 0, None));
        let mut agents = AgentSet::new(agents);
        agents.attach_stats(&slot);
        let invoker = Invoker { agents, duty_cycles: 0, work_items: 0, stats, slot };
        Engine { mode: Mode::Invoker(invoker), shared: Arc::new(Shared::default()) }
    }

    /// Invoker mode: runs one duty cycle over every agent on the calling
    /// thread and returns the work done (0 = idle). The application calls
    /// this from its own send/recv loop — the engine makes progress only
    /// while it does — and idles as it likes when this returns 0. In
    /// dedicated mode the agents belong to the engine threads and this
    /// does nothing and returns 0.
    pub fn invoke(&mut self) -> usize {
        let Mode::Invoker(invoker) = &mut self.mode else { return 0 };
        // Only one cycle in INVOKER_DUTY_SAMPLE is timed: an application
        // that polls runs this in its loop, where a clock read each time
        // was a tenth of an idle cycle (tuning.md, "The invoker's duty cycle").
        let timed = sampled(invoker.duty_cycles);
        let start = if timed { crate::clock::now() } else { 0 };
        let work = invoker.agents.do_work(&self.shared.failures);
        invoker.duty_cycles += 1;
        invoker.work_items = invoker.work_items.saturating_add(work as u64);
        let slot = &invoker.slot;
        slot.set(crate::stats::EngineCounter::Cycles as usize, invoker.duty_cycles);
        if work > 0 {
            slot.add(crate::stats::EngineCounter::Busy as usize, 1);
            slot.set(crate::stats::EngineCounter::Work as usize, invoker.work_items);
            if timed {
                if let Some(ns) = crate::clock::elapsed_ns(start, crate::clock::now()) {
                    slot.hist(crate::stats::ENGINE_DUTY).record(ns);
                }
            }
        }
        invoker.stats.publish(invoker.agents.len(), invoker.duty_cycles, invoker.work_items, IdleStats::default());
        work
    }

    /// Invoker mode, after [`invoke`](Self::invoke): whether an agent holds
    /// back something the next cycle must take up though the cycle found
    /// no work (see [`Agent::holds_back`]). False in dedicated mode.
    pub fn holds_back(&mut self) -> bool {
        match &mut self.mode {
            Mode::Invoker(invoker) => invoker.agents.holds_back(),
            _ => false,
        }
    }

    /// Invoker mode, after [`invoke`](Self::invoke) returned 0: blocks at
    /// most `timeout` until an agent's event source (its io_uring) may have
    /// work, so a waiting application sleeps in the kernel instead of
    /// spinning. Returns at once in dedicated mode.
    pub fn invoke_wait(&mut self, timeout: Duration) {
        if let Mode::Invoker(invoker) = &mut self.mode {
            invoker.agents.wait(timeout, &self.shared.failures);
        }
    }

    /// Wakes every parked engine thread so it runs a duty cycle now (for
    /// I/O completions and local rings that have work). A no-op in invoker mode.
    pub fn wake(&self) {
        if let Mode::Dedicated(group) = &self.mode {
            group.waker().wake();
        }
    }

    /// A handle that does [`Engine::wake`] from anywhere, outliving `&self`.
    pub fn waker(&self) -> Waker {
        match &self.mode {
            Mode::Dedicated(group) => group.waker().clone(),
            Mode::Invoker(_) | Mode::Stopped => Waker::default(),
        }
    }

    /// The mode this engine runs in.
    pub fn mode(&self) -> ThreadingMode {
        match self.mode {
            Mode::Invoker(_) => ThreadingMode::Invoker,
            Mode::Dedicated(_) | Mode::Stopped => ThreadingMode::Dedicated,
        }
    }

    /// Counters of each engine thread (one entry, for the invoking thread,
    /// in invoker mode).
    pub fn stats(&self) -> Vec<ThreadStats> {
        match &self.mode {
            Mode::Dedicated(group) => group.stats(),
            Mode::Invoker(invoker) => vec![invoker.stats.snapshot()],
            Mode::Stopped => Vec::new(),
        }
    }

    /// Every agent failure so far (panicked agents were removed and their
    /// threads carried on). [`Engine::shutdown`] reports the first as its error.
    pub fn failures(&self) -> Vec<EngineError> {
        self.shared.failures.snapshot()
    }

    /// Stops the engine: sets the stop flag, wakes the threads and joins
    /// them, each after calling `on_close` on its agents (invoker mode
    /// closes them on this thread). Waits at most `deadline`.
    ///
    /// Errors: [`EngineError::ShutdownTimedOut`] if threads were still
    /// running at the deadline (they were detached), else the first
    /// [`EngineError::AgentPanicked`] of the engine's life, if any (all of
    /// them: [`Engine::failures`] before shutting down).
    pub fn shutdown(mut self, deadline: Duration) -> Result<ShutdownReport, EngineError> {
        let now = Instant::now();
        // A deadline too far to represent waits a year instead: forever, in practice.
        let until = now.checked_add(deadline).unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
        let (report, still_running) = self.stop(until);
        tracing::info!(still_running, "engine stopped");
        let mut failures = self.shared.failures.take().into_iter();
        if still_running > 0 {
            return Err(EngineError::ShutdownTimedOut { threads: still_running });
        }
        match failures.next() {
            Some(failure) => Err(failure),
            None => Ok(report),
        }
    }

    fn stop(&mut self, until: Instant) -> (ShutdownReport, usize) {
        match std::mem::replace(&mut self.mode, Mode::Stopped) {
            Mode::Dedicated(mut group) => {
                let outcome = group.stop(until);
                let report = ShutdownReport { threads_joined: outcome.joined, agents_closed: outcome.agents_closed };
                (report, outcome.still_running)
            }
            Mode::Invoker(mut invoker) => {
                let closed = invoker.agents.close(&self.shared.failures);
                (ShutdownReport { threads_joined: 0, agents_closed: closed }, 0)
            }
            Mode::Stopped => (ShutdownReport::default(), 0),
        }
    }
}

/// Stops the engine like [`Engine::shutdown`], waiting at most
/// [`DROP_JOIN_DEADLINE`]. Threads still running then are detached. Each
/// agent failure was logged (an error event) when it happened; those not
/// yet reported by a shutdown are also written to stderr when no
/// subscriber listens, rather than lost.
impl Drop for Engine {
    fn drop(&mut self) {
        if let Mode::Stopped = self.mode {
            return;
        }
        let (_, still_running) = self.stop(Instant::now() + DROP_JOIN_DEADLINE);
        tracing::info!(still_running, "engine stopped");
        let mut failures = self.shared.failures.take();
        if still_running > 0 {
            failures.push(EngineError::ShutdownTimedOut { threads: still_running });
        }
        if failures.is_empty() {
            // Nothing to say: never touch stderr (a caller may hold its lock).
            return;
        }
        if still_running > 0 {
            tracing::error!(threads = still_running, "engine dropped: threads still running were detached");
        }
        if !crate::log::unheard() {
            // Each agent failure was logged when it happened.
            return;
        }
        let mut stderr = std::io::stderr().lock();
        for failure in failures {
            let _ = writeln!(stderr, "ringflow engine dropped: {failure}");
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("mode", &self.mode()).field("stats", &self.stats()).finish()
    }
}
