//! Agents: the units of work an engine thread polls in its duty cycle, and
//! the set of them one thread (or the invoking application thread) owns.
//!
//! An agent must never block: every agent on a thread waits while one does.
//! A panicking agent is caught here, removed from its set and recorded as a
//! failure the engine reports; it never takes its thread's other agents or
//! the process down silently.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, PoisonError};

use super::error::EngineError;

/// A unit of work the engine polls: a socket to drive, a local ring to drain.
///
/// `do_work` is called once per duty cycle and must return without blocking;
/// the count it returns decides whether the thread idles (0 = nothing done).
pub trait Agent: Send {
    /// A name for diagnostics and failure reports.
    fn name(&self) -> &str;

    /// Does whatever work is ready and returns how many items it handled;
    /// 0 means it found nothing to do.
    fn do_work(&mut self) -> usize;

    /// Called once on the agent's thread when the engine stops (not after
    /// the agent panicked).
    fn on_close(&mut self) {}

    /// Whether the cycle that just ran left something its next cycle must
    /// take up though it found no work: a completion that its closing
    /// kernel entry brought, an entry a direct read owes. An invoking
    /// application's answer (`Invoker::invoke_after_send`) runs cycles
    /// until one finds nothing and holds nothing back. The default: never.
    fn holds_back(&mut self) -> bool {
        false
    }

    /// Invoker mode, when a duty cycle found nothing to do: blocks at most
    /// `timeout` until this agent's own event source (its io_uring, say)
    /// may have work. The default returns at once (the caller then idles
    /// its own way); an agent with nothing to block on keeps it.
    fn wait(&mut self, timeout: std::time::Duration) {
        let _ = timeout;
    }

    /// Whether an idle engine thread should sleep in [`wait`](Agent::wait)
    /// rather than park (the agent then wakes for its own events, and
    /// whoever gives it work must wake it its own way: `Engine::wake`
    /// unparks threads only).
    fn sleeps(&self) -> bool {
        false
    }

    /// How long an idle engine thread may sleep in [`wait`](Agent::wait)
    /// (for an agent that [`sleeps`](Agent::sleeps)) before this agent needs
    /// a duty cycle for its own timers, when everything else that could
    /// give it work wakes it. The thread then sleeps that long rather than
    /// the idle strategy's shorter park. `None` (the default): the idle
    /// strategy alone bounds the sleep.
    fn idle_sleep(&self) -> Option<std::time::Duration> {
        None
    }

    /// How to end this agent's [`wait`](Agent::wait) from another thread
    /// (the engine stopping, `Engine::wake`): asked once, when the engine
    /// starts, and called by every wake. `None` (the default): the agent's
    /// wait ends by its timeout only.
    fn wake_hook(&self) -> Option<WakeHook> {
        None
    }

    /// Hands the agent its engine thread's statistics slot, before the
    /// first duty cycle: an agent that can tell how long a wake-up took
    /// (a stamped message found after a sleep) records it there. The slot
    /// is written only from the engine thread, so the agent writes it only
    /// from `do_work` and `wait`.
    fn attach_stats(&mut self, slot: std::sync::Arc<crate::stats::Slot>) {
        let _ = slot;
    }
}

/// Ends an agent's `wait` from any thread; see [`Agent::wake_hook`].
pub type WakeHook = std::sync::Arc<dyn Fn() + Send + Sync>;

/// Agent panics recorded by every thread of one engine. Locked only when an
/// agent panics and when the engine reports, never in the duty cycle.
#[derive(Default)]
pub(crate) struct Failures(Mutex<Vec<EngineError>>);

impl Failures {
    pub(crate) fn record(&self, failure: EngineError) {
        tracing::error!(error = %failure, "engine agent failed");
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(failure);
    }

    /// Every failure recorded so far, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<EngineError> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).iter().map(EngineError::duplicate).collect()
    }

    pub(crate) fn take(&self) -> Vec<EngineError> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The agents of one thread and one duty cycle over them.
pub(crate) struct AgentSet {
    agents: Vec<Box<dyn Agent>>,
}

impl AgentSet {
    pub(crate) fn new(agents: Vec<Box<dyn Agent>>) -> AgentSet {
        AgentSet { agents }
    }

    pub(crate) fn len(&self) -> usize {
        self.agents.len()
    }

    /// One pass over every agent; returns the work they did. An agent that
    /// panics is dropped from the set and recorded in `failures`.
    pub(crate) fn do_work(&mut self, failures: &Failures) -> usize {
        let mut work = 0usize;
        let mut index = 0;
        while let Some(agent) = self.agents.get_mut(index) {
            // The agent is not touched again after a panic (it is removed
            // below), so state it left half-updated is never observed.
            match catch_unwind(AssertUnwindSafe(|| agent.do_work())) {
                Ok(done) => {
                    work = work.saturating_add(done);
                    index += 1;
                }
                Err(payload) => {
                    let agent = self.agents.remove(index);
                    failures.record(panicked(agent, "do_work", payload));
                }
            }
        }
        work
    }

    /// Whether any agent holds something back (see [`Agent::holds_back`]).
    pub(crate) fn holds_back(&mut self) -> bool {
        self.agents.iter_mut().any(|a| a.holds_back())
    }

    /// Lets the agents block for their own events, `timeout` shared among
    /// them (an agent that panics here is removed like in `do_work`).
    pub(crate) fn wait(&mut self, timeout: std::time::Duration, failures: &Failures) {
        let n = u32::try_from(self.agents.len().max(1)).unwrap_or(u32::MAX);
        let each = timeout / n;
        let mut index = 0;
        while let Some(agent) = self.agents.get_mut(index) {
            match catch_unwind(AssertUnwindSafe(|| agent.wait(each))) {
                Ok(()) => index += 1,
                Err(payload) => {
                    let agent = self.agents.remove(index);
                    failures.record(panicked(agent, "wait", payload));
                }
            }
        }
    }

    /// Hands every agent the thread's statistics slot.
    pub(crate) fn attach_stats(&mut self, slot: &std::sync::Arc<crate::stats::Slot>) {
        for agent in &mut self.agents {
            agent.attach_stats(std::sync::Arc::clone(slot));
        }
    }

    /// Whether an idle thread sleeps in the agents' `wait` (a single agent
    /// that asks to: with several, the thread parks as usual).
    pub(crate) fn sleeps(&self) -> bool {
        matches!(&self.agents[..], [only] if only.sleeps())
    }

    /// The agent's [`Agent::idle_sleep`] when the thread sleeps in it
    /// (see `sleeps`).
    pub(crate) fn idle_sleep(&self) -> Option<std::time::Duration> {
        match &self.agents[..] {
            [only] if only.sleeps() => only.idle_sleep(),
            _ => None,
        }
    }

    /// Calls `on_close` once on every agent, empties the set and returns how
    /// many closed without panicking.
    pub(crate) fn close(&mut self, failures: &Failures) -> usize {
        let mut closed = 0;
        for mut agent in self.agents.drain(..) {
            match catch_unwind(AssertUnwindSafe(|| agent.on_close())) {
                Ok(()) => closed += 1,
                Err(payload) => failures.record(panicked(agent, "on_close", payload)),
            }
        }
        closed
    }
}

/// The failure of `agent`, which panicked in `during`; drops the agent,
/// containing a panic of its `Drop` as well.
fn panicked(agent: Box<dyn Agent>, during: &'static str, payload: Box<dyn Any + Send>) -> EngineError {
    let name = catch_unwind(AssertUnwindSafe(|| agent.name().to_owned())).unwrap_or_else(|_| "<unnamed>".to_owned());
    let message = panic_message(payload.as_ref());
    let _ = catch_unwind(AssertUnwindSafe(move || drop(agent)));
    EngineError::AgentPanicked { name, during, message }
}

/// The text of a panic payload (`panic!` makes a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}
