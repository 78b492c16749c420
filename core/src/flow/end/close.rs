//! Closing a flow end: the lingering `dealloc`, and the drop that closes
//! every side at once.

use std::mem::ManuallyDrop;
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::Deadline;

use super::{send, shared, FlowEnd, Wakers};
use crate::flow::error::DeallocError;

/// How long a lingering `dealloc` sleeps at most between looks when no
/// process-wide barrier is available (see [`linger_barrier`]).
const LINGER_SLICE: Duration = Duration::from_millis(10);

/// The lingering sender's side of the linger handshake
/// (`ringflow_ring::linger`): the receiver orders its consumed count before
/// its look at our closed flag with a compiler fence only, so after our
/// sleeper announcement a process-wide barrier must put the missing fence
/// into its instruction stream before we re-read the count. Without
/// membarrier (seccomp, `nohz_full`), each sleep is capped instead, so a
/// count the barrier would have shown is seen one slice later.
fn linger_barrier(wp: &ringflow_ring::WaitPoint<'_>) -> std::io::Result<Option<Duration>> {
    match crate::membarrier::barrier_all(wp.needs_membarrier()) {
        Ok(()) => Ok(None),
        Err(_) => Ok(Some(LINGER_SLICE)),
    }
}

impl FlowEnd {
    /// Closes the flow, first waiting until the peer has consumed every
    /// message sent (a reliable flow's linger), or `deadline` passes, or the
    /// peer leaves. The peer then reads everything and gets end of flow.
    /// Under [`Deadline::Now`] it does not linger: messages still unread are
    /// [`DeallocError::WouldBlock`] rather than `TimedOut`.
    pub fn dealloc(mut self, deadline: Deadline) -> Result<(), DeallocError> {
        self.close_tx();
        let sent = self.sent_count();
        let consumed = self.shared.memory.tx_consumed(self.shared.role);
        // A figure the peer reports: trusted only for this wait (a lie ends
        // the linger early, or lets it run to its deadline or the peer's end).
        let unconsumed = || sent.saturating_sub(ringflow_ring::linger::consumed(consumed));
        let outcome = if let Some(invoker) = self.invoker.clone() {
            // Invoker mode: the acknowledgements arrive as this thread runs
            // the engine.
            let (tx, _) = self.sides.tx();
            let shared = &self.shared;
            let done = || unconsumed() == 0 || tx.is_consumer_closed() || shared.state() != shared::LIVE;
            Ok(if invoker.drive_until(done, Duration::ZERO, deadline) {
                crate::WaitOutcome::Ready
            } else {
                crate::WaitOutcome::TimedOut
            })
        } else {
            let (tx, _) = self.sides.tx();
            let shared = &self.shared;
            crate::wait_until_with(
                || tx.space_wait(),
                || unconsumed() == 0 || tx.is_consumer_closed() || shared.state() != shared::LIVE,
                Duration::ZERO,
                deadline,
                Some(shared.alarm()),
                linger_barrier,
            )
        };
        match (outcome, unconsumed()) {
            (_, 0) => Ok(()),
            (Ok(crate::WaitOutcome::TimedOut), n) if deadline == Deadline::Now => {
                Err(DeallocError::WouldBlock { unconsumed: n })
            }
            (Ok(crate::WaitOutcome::TimedOut), n) => Err(DeallocError::TimedOut { unconsumed: n }),
            (Err(e), n) => Err(DeallocError::Wait { unconsumed: n, errno: e.raw_os_error().unwrap_or(0) }),
            (_, n) if self.sides.tx().0.is_consumer_closed() => Err(DeallocError::Closed { unconsumed: n }),
            (_, n) => Err(DeallocError::PeerGone { unconsumed: n }),
        }
    }

    /// Closes the sending sides and wakes a peer asleep waiting for data
    /// (or waiting on its readiness descriptor).
    pub(crate) fn close_tx(&mut self) {
        let s = self.sides.get();
        s.tx_bulk.close();
        let notify = s.tx.close();
        send::published(
            notify,
            &self.wakers,
            &self.slot,
            self.shared.memory.tx_armed(self.shared.role),
            self.conn.as_raw_fd(),
        );
    }
}

impl Drop for FlowEnd {
    /// Closes every side at once, without waiting (use
    /// [`dealloc`](FlowEnd::dealloc) to linger), and wakes the peer's sleepers.
    fn drop(&mut self) {
        if self.abandoned {
            // SAFETY: `sides` is taken once, here in drop, and never used after.
            unsafe { ManuallyDrop::take(&mut self.sides) }.abandon();
            return;
        }
        self.record_pending();
        self.close_tx();
        let s = self.sides.get();
        let a = s.rx.close();
        let b = s.rx_bulk.close();
        if a.is_wake() {
            Wakers::wake(self.wakers.peer_space[0]);
        }
        if b.is_wake() {
            Wakers::wake(self.wakers.peer_space[1]);
        }
        // SAFETY: dropped once, here in drop, and never used after.
        unsafe { ManuallyDrop::drop(&mut self.sides) };
    }
}
