//! Dedicated mode: the engine's own threads, `ringflow-engine-N`, each
//! optionally pinned, each running the duty cycle over its share of the
//! agents until asked to stop.
//!
//! Start is a handshake: every thread pins itself and reports; agents run
//! only once all threads reported success, so a failed pin leaves no agent
//! having done any work. Stopping never waits past its deadline: a thread
//! stuck in an agent is detached and counted, not waited for.

use std::sync::atomic::{AtomicBool, Ordering::Acquire, Ordering::Release};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use core_affinity::CoreId;

use super::agent::{panic_message, Agent, AgentSet, Failures, WakeHook};
use super::error::EngineError;
use super::idle::{IdleStats, Idler};
use super::stats::StatsCell;
use crate::clock;
use crate::config::IdleStrategy;
use crate::stats::{EngineCounter, Slot, SlotKind, ENGINE_DUTY, ENGINE_IDLE};

/// What the threads of one engine are told: one entry of `cores` per thread.
pub(crate) struct Plan {
    pub(crate) cores: Vec<Option<usize>>,
    pub(crate) idle: IdleStrategy,
    /// The longest park of [`IdleStrategy::Park`].
    pub(crate) park_cap: Duration,
}

/// State every thread of one engine shares.
#[derive(Default)]
pub(crate) struct Shared {
    stop: AtomicBool,
    pub(crate) failures: Failures,
}

/// Unparks engine threads: ends their park (or makes the next one return
/// at once), and ends the sleep of agents that sleep in their own `wait`
/// (through their wake hooks). Cheap to clone and to call from any thread.
#[derive(Clone, Default)]
pub struct Waker {
    threads: Arc<[Thread]>,
    hooks: Arc<[WakeHook]>,
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker").field("threads", &self.threads).field("hooks", &self.hooks.len()).finish()
    }
}

impl Waker {
    /// Wakes every engine thread this waker knows.
    pub fn wake(&self) {
        for thread in self.threads.iter() {
            thread.unpark();
        }
        for hook in self.hooks.iter() {
            hook();
        }
    }
}

struct EngineThread {
    handle: Option<JoinHandle<usize>>,
    stats: Arc<StatsCell>,
    exited: bool,
}

/// The running threads of one engine.
pub(crate) struct ThreadGroup {
    shared: Arc<Shared>,
    threads: Vec<EngineThread>,
    exits: Receiver<usize>,
    waker: Waker,
}

/// What stopping a group achieved.
pub(crate) struct StopOutcome {
    pub(crate) joined: usize,
    pub(crate) agents_closed: usize,
    pub(crate) still_running: usize,
}

/// Everything one thread owns.
struct ThreadContext {
    index: usize,
    core: Option<usize>,
    agents: AgentSet,
    idle: IdleStrategy,
    park_cap: Duration,
    shared: Arc<Shared>,
    stats: Arc<StatsCell>,
    ready: Sender<(usize, Result<(), EngineError>)>,
    go: Receiver<bool>,
    /// Dropped last, when the thread is done.
    _exit: ExitNotice,
}

/// Tells the group a thread has finished, even when it unwinds.
struct ExitNotice {
    index: usize,
    exits: Sender<usize>,
}

impl Drop for ExitNotice {
    fn drop(&mut self) {
        let _ = self.exits.send(self.index);
    }
}

impl ThreadGroup {
    /// Spawns one thread per entry of `plan.cores`, deals `agents` to them
    /// round-robin, and returns once every thread is pinned and running.
    /// On failure the threads already started close their agents and are
    /// joined; agents of threads never started are dropped unclosed.
    pub(crate) fn start(plan: &Plan, agents: Vec<Box<dyn Agent>>, shared: Arc<Shared>) -> Result<Self, EngineError> {
        let count = plan.cores.len();
        if count == 0 {
            return Err(EngineError::Config("engine.threads is 0; dedicated mode needs at least one thread".into()));
        }
        let hooks: Arc<[WakeHook]> = agents.iter().filter_map(|a| a.wake_hook()).collect();
        let mut shares: Vec<Vec<Box<dyn Agent>>> = (0..count).map(|_| Vec::new()).collect();
        for (position, agent) in agents.into_iter().enumerate() {
            shares[position % count].push(agent);
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        let (exit_tx, exits) = mpsc::channel();
        let mut threads = Vec::with_capacity(count);
        let mut gos = Vec::with_capacity(count);
        for (index, (share, &core)) in shares.into_iter().zip(&plan.cores).enumerate() {
            let stats = Arc::new(StatsCell::new(index, core, share.len()));
            let (go_tx, go) = mpsc::channel();
            let context = ThreadContext {
                index,
                core,
                agents: AgentSet::new(share),
                idle: plan.idle,
                park_cap: plan.park_cap,
                shared: Arc::clone(&shared),
                stats: Arc::clone(&stats),
                ready: ready_tx.clone(),
                go,
                _exit: ExitNotice { index, exits: exit_tx.clone() },
            };
            let spawned = thread::Builder::new().name(thread_name(index)).spawn(move || run(context));
            match spawned {
                Ok(handle) => {
                    threads.push(EngineThread { handle: Some(handle), stats, exited: false });
                    gos.push(go_tx);
                }
                Err(e) => {
                    abort(&shared, threads, gos);
                    return Err(EngineError::Spawn(e));
                }
            }
        }
        // Only the threads hold senders now: a thread that dies unreported
        // disconnects `ready_rx` rather than hanging this loop.
        drop((ready_tx, exit_tx));
        let mut first_error: Option<(usize, EngineError)> = None;
        for _ in 0..count {
            let report = ready_rx.recv().unwrap_or((usize::MAX, Err(EngineError::ThreadLost)));
            if let Err(e) = report.1 {
                if first_error.as_ref().is_none_or(|(index, _)| report.0 < *index) {
                    first_error = Some((report.0, e));
                }
            }
        }
        if let Some((_, e)) = first_error {
            abort(&shared, threads, gos);
            return Err(e);
        }
        for go in &gos {
            let _ = go.send(true);
        }
        let handles: Vec<Thread> =
            threads.iter().filter_map(|t| t.handle.as_ref().map(|h| h.thread().clone())).collect();
        Ok(ThreadGroup { shared, threads, exits, waker: Waker { threads: handles.into(), hooks } })
    }

    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }

    pub(crate) fn stats(&self) -> Vec<super::ThreadStats> {
        self.threads.iter().map(|t| t.stats.snapshot()).collect()
    }

    /// Asks every thread to stop, wakes them and joins those that finish by
    /// `deadline`; the rest are detached. Safe to call more than once.
    pub(crate) fn stop(&mut self, deadline: Instant) -> StopOutcome {
        // SYNC: Release; pairs with the Acquire load in `duty_cycle`, so a
        // thread that sees the flag also sees everything done before stop.
        self.shared.stop.store(true, Release);
        self.waker.wake();
        let mut pending = self.threads.iter().filter(|t| t.handle.is_some() && !t.exited).count();
        while pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.exits.recv_timeout(left) {
                Ok(index) => {
                    if let Some(thread) = self.threads.get_mut(index) {
                        if !thread.exited {
                            thread.exited = true;
                            pending -= 1;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let mut outcome = StopOutcome { joined: 0, agents_closed: 0, still_running: 0 };
        for (index, thread) in self.threads.iter_mut().enumerate() {
            let Some(handle) = thread.handle.take() else { continue };
            if !thread.exited && !handle.is_finished() {
                outcome.still_running += 1;
                drop(handle); // Detached: it exits by itself once its agent returns.
                continue;
            }
            outcome.joined += 1;
            match handle.join() {
                Ok(closed) => outcome.agents_closed += closed,
                Err(payload) => self.shared.failures.record(EngineError::AgentPanicked {
                    name: format!("<ringflow-engine-{index} itself>"),
                    during: "the duty cycle",
                    message: panic_message(payload.as_ref()),
                }),
            }
        }
        outcome
    }
}

/// Stops threads that started but must not run: they close their agents.
fn abort(shared: &Shared, threads: Vec<EngineThread>, gos: Vec<Sender<bool>>) {
    for go in gos {
        let _ = go.send(false);
    }
    for handle in threads.into_iter().filter_map(|t| t.handle) {
        if let Err(payload) = handle.join() {
            shared.failures.record(EngineError::AgentPanicked {
                name: "<engine thread>".into(),
                during: "start",
                message: panic_message(payload.as_ref()),
            });
        }
    }
}

/// The statistics slot of engine thread `index`, in the stats file of the
/// user's runtime directory (on the heap if there is none).
fn thread_slot(index: usize, core: Option<usize>) -> Slot {
    engine_slot(&format!("ringflow-engine-{index}"), index, core)
}

/// A statistics slot of kind `Engine` in the process's stats file (on the
/// heap when there is no runtime directory).
pub(crate) fn engine_slot(name: &str, index: usize, core: Option<usize>) -> Slot {
    let core = core.map_or(u64::MAX, |c| c as u64);
    match crate::control::RuntimeDir::resolve() {
        Ok(dir) => Slot::open(dir.path(), SlotKind::Engine, name, index as u64, core),
        Err(_) => Slot::on_heap(),
    }
}

/// Pins the calling thread to `core`.
fn pin(core: Option<usize>) -> Result<(), EngineError> {
    let Some(core) = core else { return Ok(()) };
    // core_affinity's CPU_SET would index past the cpu_set_t beyond this.
    let fits = usize::try_from(libc::CPU_SETSIZE).is_ok_and(|size| core < size);
    if fits && core_affinity::set_for_current(CoreId { id: core }) {
        Ok(())
    } else {
        Err(EngineError::Pin { core })
    }
}

/// An engine thread's whole life; returns how many agents it closed.
fn run(mut context: ThreadContext) -> usize {
    let pinned = pin(context.core);
    let may_run = pinned.is_ok();
    let _ = context.ready.send((context.index, pinned));
    if may_run && context.go.recv().unwrap_or(false) {
        duty_cycle(&mut context);
    }
    // `context._exit` is dropped after this, telling `stop` the thread is done.
    context.agents.close(&context.shared.failures)
}

/// loop { work = Σ do_work; if stopping, break; idle(work) }, recording
/// in the thread's stats slot how long each cycle that did work took and
/// how long each idle span (from the first cycle without work to the next
/// with some) lasted: one clock reading per idle cycle, two per busy one.
fn duty_cycle(context: &mut ThreadContext) {
    let mut idler = Idler::with_park_cap(context.idle, context.park_cap);
    let (mut cycles, mut work_items) = (0u64, 0u64);
    let slot = Arc::new(thread_slot(context.index, context.core));
    context.agents.attach_stats(&slot);
    let mut idle_since: Option<u64> = None;
    loop {
        let start = clock::now();
        let work = context.agents.do_work(&context.shared.failures);
        cycles += 1;
        work_items = work_items.saturating_add(work as u64);
        slot.set(EngineCounter::Cycles as usize, cycles);
        if work > 0 {
            slot.add(EngineCounter::Busy as usize, 1);
            slot.set(EngineCounter::Work as usize, work_items);
            if let Some(ns) = clock::elapsed_ns(start, clock::now()) {
                slot.hist(ENGINE_DUTY).record(ns);
            }
            // An idle span ends where the first cycle with work starts.
            if let Some(ns) = idle_since.take().and_then(|since| clock::elapsed_ns(since, start)) {
                slot.hist(ENGINE_IDLE).record(ns);
            }
        } else if idle_since.is_none() {
            idle_since = Some(start);
        }
        let agents = context.agents.len();
        context.stats.publish(agents, cycles, work_items, idler.stats());
        // SYNC: Acquire; pairs with the Release store in `ThreadGroup::stop`.
        if context.shared.stop.load(Acquire) {
            break;
        }
        let stats = &context.stats;
        let slot = &slot;
        let before_park = |idle: IdleStats| {
            slot.add(EngineCounter::Sleeps as usize, 1);
            stats.publish(agents, cycles, work_items, idle)
        };
        if context.agents.sleeps() {
            // The agent sleeps for its own events (its io_uring) and is
            // woken its own way; see `Agent::sleeps`.
            // With nothing left but its own timers, it sleeps until they
            // are due rather than the strategy's short park (asked only
            // when it parks: the spin steps stay cheap).
            let (set, failures) = (&mut context.agents, &context.shared.failures);
            idler.idle_sleeping(work, before_park, |d| {
                let settled = set.idle_sleep();
                set.wait(settled.map_or(d, |s| d.max(s)), failures)
            });
        } else {
            idler.idle_with(work, before_park);
        }
    }
    context.stats.publish(context.agents.len(), cycles, work_items, idler.stats());
}

/// The name of the engine's thread `index`: `ringflow-engine-N`.
fn thread_name(index: usize) -> String {
    #[cfg(test)]
    if let Some(prefix) = TEST_THREAD_PREFIX.with(std::cell::Cell::get) {
        return format!("{prefix}-{index}");
    }
    format!("ringflow-engine-{index}")
}

#[cfg(test)]
thread_local! {
    /// The engine tests name the threads of the engines they start apart
    /// from those that other tests of this crate start meanwhile (remote,
    /// cluster): they count their own threads in the process.
    pub(super) static TEST_THREAD_PREFIX: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}
