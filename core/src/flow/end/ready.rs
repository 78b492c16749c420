//! What waits on a flow from outside its calls: a set of flows (its wait
//! points and readiness), and an event loop (the readiness descriptor).

use std::os::fd::{AsRawFd, RawFd};

use super::{shared, FlowEnd};

/// What a set of flows waits on (`FlowSet` in ringflow-api).
impl FlowEnd {
    /// Where a writer of this flow sleeps for room in its inline ring.
    pub fn space_wait(&self) -> ringflow_ring::WaitPoint<'_> {
        self.sides.tx().0.space_wait()
    }

    /// Whether the flow has ended for this side's reader: the peer left,
    /// or closed its sending side.
    pub fn is_ended(&self) -> bool {
        self.shared.state() != shared::LIVE || self.sides.rx().0.is_producer_closed()
    }

    /// Whether a message of the flow's inline size fits now.
    pub fn fits_inline(&self) -> bool {
        self.sides.tx().0.fits(self.geometry.inline_max)
    }
}

impl AsRawFd for FlowEnd {
    /// A descriptor (a datagram socket) that becomes readable when the flow may have
    /// a message to read or has ended, for epoll-based event loops (register
    /// it for `EPOLLIN`). It is edge-like: a receive that finds nothing
    /// (`WouldBlock`) resets it and re-arms it, so after it fires, receive
    /// with the `try_` forms until `WouldBlock`.
    fn as_raw_fd(&self) -> RawFd {
        // SYNC: Relaxed; read only by this flow's own receive path, which
        // the caller orders after this call.
        self.shared.fd_mode.store(true, std::sync::atomic::Ordering::Relaxed);
        // Start readable: the caller's first look decides, then re-arms.
        self.shared.signal_readiness();
        self.shared.readiness.0.as_raw_fd()
    }
}
