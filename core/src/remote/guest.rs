//! Guests of the bridge's duty cycle: agents that run on the bridge's
//! engine thread, inside its duty cycle, rather than on threads of their
//! own (the cluster node and the crossing groups' gateways, issue 17).
//! What one of them hands another (a `Cluster` frame to the node, a
//! commit to the gateways, a proposal to the node, a message to the
//! network) is then a call within one thread, never a thread's wake-up.
//!
//! The bridge sleeps in its io_uring; a guest tells it, before each
//! sleep, what must end that sleep: futex words announced as sleepers (a
//! group log's data wait point) and how long it may last at most (the
//! cluster's next tick). A guest must never make the bridge spin: what it
//! cannot arm a word for, it bounds the sleep for (a poll every
//! millisecond at worst), and it says "work now" only for work its next
//! duty cycle does.

use std::time::Duration;

/// The longest the bridge sleeps while a guest's word cannot be waited on
/// in its ring (a kernel without io_uring futex waits, plain sockets, or
/// more words than one wait takes): the guest is polled this often.
pub(crate) const POLL: Duration = Duration::from_millis(1);

/// What the bridge's next sleep waits for, as its guests fill it in.
#[derive(Debug)]
pub(crate) struct Sleep {
    /// Futex words (address, the value it must still hold) whose wake or
    /// change must end the sleep, each announced as a sleeper by the
    /// guest that pushed it.
    pub(crate) words: Vec<(usize, u32)>,
    /// A publisher of one of the words skips its fence (membarrier wake
    /// mode): the bridge issues the barrier before the guests' re-check.
    pub(crate) barrier: bool,
    /// The longest the sleep may last.
    pub(crate) bound: Duration,
}

impl Default for Sleep {
    fn default() -> Sleep {
        Sleep::with_capacity(0)
    }
}

impl Sleep {
    /// An empty plan with room for `words` words (reused: a steady duty
    /// cycle allocates nothing).
    pub(crate) fn with_capacity(words: usize) -> Sleep {
        Sleep { words: Vec::with_capacity(words), barrier: false, bound: Duration::MAX }
    }

    /// Shortens the sleep to at most `d`.
    pub(crate) fn at_most(&mut self, d: Duration) {
        self.bound = self.bound.min(d);
    }

    /// Empties the plan for the next sleep (keeping its room).
    pub(crate) fn clear(&mut self) {
        self.words.clear();
        self.barrier = false;
        self.bound = Duration::MAX;
    }
}

/// An agent run inside the bridge's duty cycle (see the module doc).
pub(crate) trait Guest: Send {
    /// For diagnostics.
    fn name(&self) -> &str;

    /// One duty cycle; returns the work done (0: nothing).
    fn do_work(&mut self) -> usize;

    /// Before the bridge sleeps: pushes the words the guest's events wake
    /// (announcing itself as their sleeper) and bounds the sleep.
    fn before_sleep(&mut self, sleep: &mut Sleep);

    /// After `before_sleep` (and the bridge's barrier): whether work
    /// arrived that the sleep would miss. The bridge then does not sleep.
    fn has_work(&self) -> bool;

    /// After the sleep (or the decision not to): withdraws what
    /// `before_sleep` announced.
    fn after_sleep(&mut self);
}
