//! What a flow shares with the process's peer watcher: its memory (to wake
//! sleepers) and the peer's state as the watcher last saw it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use ringflow_core::flow::watch::HangUp;
use ringflow_core::flow::{readiness, FlowMemory, Role};

/// The peer is alive (as far as anyone knows).
pub(crate) const LIVE: u8 = 0;
/// The peer closed its sides, then its socket: a clean end of flow.
pub(crate) const CLOSED: u8 = 1;
/// The peer's socket hung up without a clean close: it died.
pub(crate) const CRASHED: u8 = 2;

pub(crate) struct FlowShared {
    pub memory: Arc<FlowMemory>,
    pub role: Role,
    state: AtomicU8,
    /// This side's readiness eventfd (see `ringflow_core::flow::readiness`).
    pub readiness: OwnedFd,
    /// Whether the application asked for the readiness fd: only then does a
    /// receive that finds nothing arm it (a system call).
    pub fd_mode: AtomicBool,
}

impl FlowShared {
    pub fn new(memory: Arc<FlowMemory>, role: Role, readiness: OwnedFd) -> Self {
        FlowShared { memory, role, state: AtomicU8::new(LIVE), readiness, fd_mode: AtomicBool::new(false) }
    }

    /// The peer's state.
    #[inline]
    pub fn state(&self) -> u8 {
        // SYNC: Acquire; pairs with the Release store in `hung_up`. (Wait
        // conditions re-read it after their sleeper announcement, whose
        // SeqCst fence pairs with the one in WaitPoint::alert.)
        self.state.load(Ordering::Acquire)
    }

    /// Marks the peer gone (also used when an operation finds the socket
    /// hung up before the watcher did).
    pub fn mark_gone(&self) {
        let clean = self.memory.peer_closed_cleanly(self.role);
        // SYNC: Release; pairs with the Acquire in `state`.
        self.state.store(if clean { CLOSED } else { CRASHED }, Ordering::Release);
    }

    /// Makes this side's readiness fd readable.
    pub fn signal_readiness(&self) {
        readiness::signal(self.readiness.as_raw_fd());
    }
}

impl HangUp for FlowShared {
    fn hung_up(&self) {
        self.mark_gone();
        if let Ok(points) = self.memory.wait_points(self.role) {
            for wp in points {
                if wp.alert().is_wake() {
                    // SAFETY: the word lies in the flow's segment, which
                    // `self.memory` keeps mapped for the duration of the call.
                    let _ = unsafe { ringflow_core::futex::wake(wp.futex_word(), u32::MAX) };
                }
            }
        }
        self.signal_readiness();
    }
}
