//! What waits on a flow from outside its calls: a set of flows (its wait
//! points and readiness), and an event loop (the readiness descriptor).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use super::{shared, FlowEnd};
use crate::flow::readiness;

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

    /// The readiness descriptor, for a set that polls many flows: the
    /// flow's control socket, no descriptor of its own (see
    /// `crate::flow::readiness`). It is not put in descriptor mode, as
    /// [`as_raw_fd`](AsRawFd::as_raw_fd) puts the flow: the set arms the
    /// flow itself, with [`set_arm`](Self::set_arm), and looks again after.
    /// It is readable for good once the peer hung up.
    pub fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }

    /// Resets the readiness descriptors to not readable: takes the peer's
    /// signals off the control socket (a control packet stays for its
    /// frame's receive) and this side's own signal.
    pub(crate) fn reset_readiness(&self) {
        if let Some(p) = self.shared.polled.get() {
            p.reset();
        }
        readiness::drain(self.conn.as_raw_fd());
    }

    /// What the flow offers now, for a set waiting for `reads` and
    /// `writes`: (a message to read, room for one of the inline size, the
    /// flow ended).
    pub fn set_check(&self, reads: bool, writes: bool) -> (bool, bool, bool) {
        (reads && self.has_message(), writes && self.fits_inline(), self.is_ended())
    }

    /// For a set that found nothing on this flow: resets the readiness
    /// descriptor, then arms the directions waited for, so that the peer's
    /// next publish (`reads`) or release of room (`writes`) signals it
    /// (`ringflow_ring::arm`). The set must then look again with
    /// [`set_check`](Self::set_check), after a heavy barrier
    /// (`membarrier`) when this returns true. A death signals the
    /// descriptor whatever was armed.
    pub fn set_arm(&self, reads: bool, writes: bool) -> bool {
        readiness::drain(self.conn.as_raw_fd());
        let memory = &self.shared.memory;
        if reads {
            ringflow_ring::arm::arm(memory.rx_armed(self.shared.role));
        }
        if writes {
            ringflow_ring::arm::arm(memory.tx_space_armed(self.shared.role));
        }
        // Senders and receivers publish without a fence in membarrier mode:
        // the heavy barrier between the arm and the look pays for theirs.
        (reads || writes) && self.sides.rx().0.data_wait().needs_membarrier()
    }
}

impl AsRawFd for FlowEnd {
    /// A descriptor (an epoll instance) that becomes readable when the flow
    /// may have a message to read or has ended, for epoll-based event loops
    /// (register it for `EPOLLIN`). It starts readable and is edge-like: a
    /// receive that finds nothing (`WouldBlock`) resets it and re-arms it,
    /// so after it fires, receive with the `try_` forms until `WouldBlock`.
    ///
    /// The first call makes it: two descriptors (the epoll instance and an
    /// eventfd, `crate::flow::readiness::Polled`) on top of the flow's one,
    /// kept until the flow is dropped. If the process has none left for
    /// them, the descriptor is the flow's control socket itself, which
    /// works the same except that it does not start readable (receive with
    /// the `try_` forms until `WouldBlock` before the first wait then) and
    /// cannot be re-signalled by this side when the process-wide barrier
    /// of a re-arm fails (`membarrier`, which a registered process only
    /// sees fail out of memory).
    fn as_raw_fd(&self) -> RawFd {
        // SYNC: Relaxed; read only by this flow's own receive path, which
        // the caller orders after this call.
        self.shared.fd_mode.store(true, std::sync::atomic::Ordering::Relaxed);
        let polled = match self.shared.polled.get() {
            Some(p) => Some(p),
            None => match readiness::Polled::new(self.conn.as_raw_fd()) {
                // Another thread's, if it made one first (ours is dropped).
                Ok(p) => Some(self.shared.polled.get_or_init(|| p)),
                Err(_) => None,
            },
        };
        match polled {
            Some(p) => {
                // Start readable: the caller's first look decides, then re-arms.
                p.signal();
                p.fd()
            }
            None => self.conn.as_raw_fd(),
        }
    }
}
