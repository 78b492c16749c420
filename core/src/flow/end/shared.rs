//! What a flow shares with the process's peer watcher: its memory (to wake
//! sleepers) and the peer's state as the watcher last saw it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::flow::readiness::Polled;
use crate::flow::watch::HangUp;
use crate::flow::{FlowMemory, Role};
use ringflow_ring::WaitPoint;

/// The peer's process holds its end (as far as anyone knows).
pub(crate) const LIVE: u32 = 0;
/// The peer's control socket hung up. Whether it left cleanly is a
/// question per direction, answered by the ring sides it closed (a peer may
/// close one direction and die lingering in the other).
pub(crate) const GONE: u32 = 1;

pub(crate) struct FlowShared {
    pub memory: Arc<FlowMemory>,
    pub role: Role,
    /// [`LIVE`] or [`GONE`]; also a futex word in this process's own
    /// memory, which every sleeper of this flow waits on beside the shared
    /// word it parks on (`futex_waitv`): the watcher's wake on it reaches
    /// them whatever the peer wrote into the shared words (see `hung_up`).
    state: AtomicU32,
    /// The descriptor the application polls, once it asked for one
    /// (`AsRawFd`; see `crate::flow::readiness::Polled`).
    pub polled: OnceLock<Polled>,
    /// Whether the application asked for the readiness fd: only then does a
    /// receive that finds nothing arm it (a system call).
    pub fd_mode: AtomicBool,
    /// Addresses of the (sequence, sleepers) words of every wait point a
    /// thread of ours may sleep on, taken once at setup: the watcher alerts
    /// them without re-reading the control areas a dying peer may have
    /// scribbled over.
    alerts: [(usize, usize); 3],
}

impl FlowShared {
    pub fn new(memory: Arc<FlowMemory>, role: Role) -> Result<Self, ringflow_ring::AttachError> {
        let points = memory.wait_points(role)?;
        let alerts = points.map(|wp| {
            let (seq, sleepers) = wp.words();
            (seq as *const AtomicU64 as usize, sleepers as *const AtomicU64 as usize)
        });
        Ok(FlowShared {
            memory,
            role,
            state: AtomicU32::new(LIVE),
            polled: OnceLock::new(),
            fd_mode: AtomicBool::new(false),
            alerts,
        })
    }

    /// The peer's state.
    #[inline]
    pub fn state(&self) -> u32 {
        // SYNC: Acquire; pairs with the Release store in `hung_up`. (Wait
        // conditions re-read it after their sleeper announcement, whose
        // SeqCst fence pairs with the one in WaitPoint::alert.)
        self.state.load(Ordering::Acquire)
    }

    /// The local futex word a sleeper of this flow also waits on, with its
    /// value while the peer lives: `(word, LIVE)` for `wait_until_with`
    /// and `FlowSet::wait`.
    pub fn alarm(&self) -> (&AtomicU32, u32) {
        (&self.state, LIVE)
    }

    /// Marks the peer's process gone.
    pub fn mark_gone(&self) {
        // SYNC: Release; pairs with the Acquire in `state`.
        self.state.store(GONE, Ordering::Release);
    }

    /// Makes the descriptor the application polls readable (if it asked
    /// for one; a set of flows looks again itself instead).
    pub fn signal_readiness(&self) {
        if let Some(p) = self.polled.get() {
            p.signal();
        }
    }
}

impl HangUp for FlowShared {
    /// Wakes every sleeper of this flow, whatever the shared words say:
    /// first through the local state word (its value and its futex queue
    /// are this process's alone: a sleeper queued before the wake below is
    /// woken, one that queues after the store finds the value changed),
    /// then through the process's death word (waits on many flows sleep on
    /// it once instead of on each flow's state word), then through the
    /// shared words for sleepers that wait on those alone (the engine's
    /// io_uring futex waits, a kernel without `futex_waitv`). Those wakes
    /// ignore the peer-writable sleeper counts; a peer that still maps the
    /// segment can only make them spurious, never cancel the local one.
    /// Whoever waits through the readiness descriptors needs nothing here:
    /// the hang-up that called this made the control socket readable for
    /// good (and with it the descriptor an application polls).
    fn hung_up(&self) {
        self.mark_gone();
        // SAFETY: the word is our own field, alive while `self` is.
        let _ = unsafe { crate::futex::wake(self.state.as_ptr(), u32::MAX) };
        // After the state store above: a wait on many flows sleeps on the
        // process's one death word instead of this flow's state word.
        crate::flow::watch::death();
        for &(seq, sleepers) in &self.alerts {
            // SAFETY: both addresses are words of the flow's segment, taken
            // from a validated layout at setup; `self.memory` keeps it
            // mapped while `self` lives. AtomicU64 may alias shared memory.
            let (seq, sleepers) = unsafe { (&*(seq as *const AtomicU64), &*(sleepers as *const AtomicU64)) };
            let wp = WaitPoint::from_words(seq, sleepers);
            // Always wake (`alert` says Wake whatever the peer-writable
            // sleeper count holds): a death must reach every waiter.
            let _ = wp.alert();
            // SAFETY: the futex word is the low half of `seq`, alive as above.
            let _ = unsafe { crate::futex::wake(wp.futex_word(), u32::MAX) };
        }
    }
}
